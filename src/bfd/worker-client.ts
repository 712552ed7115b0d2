// The main thread's side of BFD: starts the worker thread (worker.ts) that runs the
// sessions, forwards opens and closes, delivers state changes to listeners and logs them,
// and records the main event loop's delay, so that a stall is visible next to the BFD
// timers it would have broken. `inThread: true` runs the sessions on the main thread
// instead (tests use it to show why the worker is there).
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import type { DropReason } from "./packet.ts";
import { type BfdCounters, BfdEndpoint, type BfdPeer, type BfdStateChange } from "./udp.ts";

type Request =
  | { op: "open"; peer: BfdPeer }
  | { op: "close"; name: string }
  | { op: "counters" }
  | { op: "stop" }
  | { op: "block"; ms: number };

export type WorkerRequest = { id: number } & Request;

export type WorkerReply =
  | { id: number; result?: unknown; error?: string; event?: undefined }
  | { event: "change"; change: BfdStateChange }
  | { event: "problem"; text: string; fields: Record<string, unknown> }
  | { event: "drop"; reason: DropReason; count: number };

export interface BfdRunnerOptions {
  log: Logger;
  /** Run the sessions on the calling thread (no worker): shares fate with its event loop. */
  inThread?: boolean;
  /** Received datagrams dropped before any session (TTL not 255, malformed, no session). */
  onDrop?: (reason: DropReason, count: number) => void;
  /** A main-loop delay above this (ms) within a second is logged as a stall; default 100. */
  stallWarnMs?: number;
}

/** The main event loop's delay, milliseconds, since the runner started. */
export interface LoopLag {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Seconds in which the delay exceeded stallWarnMs. */
  stalls: number;
}

const nsToMs = (ns: number) => Math.round(ns / 1e4) / 100;

/** Period of the ticker whose lateness measures a stall within each second. */
const TICK_MS = 20;

export class BfdRunner {
  readonly #log: Logger;
  readonly #worker: Worker | undefined;
  readonly #inThread: BfdEndpoint | undefined;
  readonly #listeners = new Set<(c: BfdStateChange) => void>();
  readonly #pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  #nextId = 1;
  readonly #lag = monitorEventLoopDelay({ resolution: 10 });
  readonly #lagTimer: NodeJS.Timeout;
  // The longest lateness of a 20 ms ticker in the current second. Not a second histogram
  // reset every second: a reset drops the histogram's next delta, and when it ran just
  // after a stall, before the histogram's own timer, the stall was never counted.
  readonly #ticker: NodeJS.Timeout;
  #windowMaxMs = 0;
  #stalls = 0;
  #exited: Error | undefined;

  constructor(opts: BfdRunnerOptions) {
    this.#log = opts.log.child({ component: "bfd" });
    const onChange = (c: BfdStateChange) => this.#change(c);
    const onProblem = (text: string, fields: Record<string, unknown>) =>
      this.#log.warn(fields, text);
    const onDrop = (reason: DropReason, count: number) => opts.onDrop?.(reason, count);
    if (opts.inThread) {
      this.#inThread = new BfdEndpoint({ onChange, onProblem, onDrop });
    } else {
      // Compiled to dist/ the worker is a .js file next to this one.
      const file = import.meta.url.endsWith(".ts") ? "./worker.ts" : "./worker.js";
      this.#worker = new Worker(new URL(file, import.meta.url));
      this.#worker.on("message", (m: WorkerReply) => {
        if (m.event === "change") onChange(m.change);
        else if (m.event === "problem") onProblem(m.text, m.fields);
        else if (m.event === "drop") onDrop(m.reason, m.count);
        else this.#settle(m);
      });
      this.#worker.on("error", (err) => {
        this.#log.error({ err: err.stack }, "bfd worker failed");
      });
      this.#worker.on("exit", (code) => {
        this.#exited = new Error(`bfd worker exited (${code})`);
        for (const p of this.#pending.values()) p.reject(this.#exited);
        this.#pending.clear();
      });
    }
    const warnMs = opts.stallWarnMs ?? 100;
    this.#lag.enable();
    let last = performance.now();
    this.#ticker = setInterval(() => {
      const now = performance.now();
      this.#windowMaxMs = Math.max(this.#windowMaxMs, now - last - TICK_MS);
      last = now;
    }, TICK_MS);
    this.#ticker.unref();
    this.#lagTimer = setInterval(() => {
      const maxMs = Math.round(this.#windowMaxMs);
      this.#windowMaxMs = 0;
      if (maxMs > warnMs) {
        this.#stalls++;
        this.#log.warn(
          { maxMs, inThread: this.#worker === undefined },
          "main event loop stalled (BFD runs in its own thread unless inThread)",
        );
      }
    }, 1000);
    this.#lagTimer.unref();
  }

  /** Called on every session state change; returns an unsubscribe. */
  onChange(fn: (c: BfdStateChange) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  open(peer: BfdPeer): Promise<void> {
    if (this.#inThread) return this.#inThread.open(peer);
    return this.#call({ op: "open", peer }) as Promise<void>;
  }

  close(name: string): Promise<void> {
    if (this.#inThread) return this.#inThread.close(name);
    return this.#call({ op: "close", name }) as Promise<void>;
  }

  counters(): Promise<BfdCounters[]> {
    if (this.#inThread) return Promise.resolve(this.#inThread.counters());
    return this.#call({ op: "counters" }) as Promise<BfdCounters[]>;
  }

  mainLoopLag(): LoopLag {
    return {
      p50Ms: nsToMs(this.#lag.percentile(50)),
      p99Ms: nsToMs(this.#lag.percentile(99)),
      maxMs: nsToMs(this.#lag.max),
      stalls: this.#stalls,
    };
  }

  /** Closes every session (AdminDown) and ends the worker. */
  async stop(): Promise<void> {
    clearInterval(this.#lagTimer);
    clearInterval(this.#ticker);
    this.#lag.disable();
    if (this.#inThread) return this.#inThread.closeAll();
    if (this.#exited) return;
    const exited = new Promise((r) => this.#worker?.once("exit", r));
    await this.#call({ op: "stop" }).catch(() => undefined);
    await exited;
  }

  /** Test hook: busy-loops the BFD thread (the worker, or the caller's in-thread). */
  blockBfdThread(ms: number): Promise<void> {
    if (this.#worker === undefined) {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        // busy
      }
      return Promise.resolve();
    }
    return this.#call({ op: "block", ms }) as Promise<void>;
  }

  #change(c: BfdStateChange): void {
    const fields = { peer: c.name, from: c.from, to: c.state, diag: c.reason };
    if (c.from === "Up" && c.state !== "AdminDown") this.#log.warn(fields, "bfd session down");
    else this.#log.info(fields, "bfd session state");
    for (const fn of this.#listeners) fn(c);
  }

  #call(req: Request): Promise<unknown> {
    if (this.#exited) return Promise.reject(this.#exited);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker?.postMessage({ ...req, id });
    });
  }

  #settle(m: { id: number; result?: unknown; error?: string }): void {
    const p = this.#pending.get(m.id);
    if (p === undefined) return;
    this.#pending.delete(m.id);
    if (m.error !== undefined) p.reject(new Error(m.error));
    else p.resolve(m.result);
  }
}
