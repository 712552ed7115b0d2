// The heartbeat socket's kernel filter, at the edge: membership hands it the sources its
// peers published and the peers whose datagrams went over budget; it compiles the program
// (heartbeat-filter.ts) and installs it on the socket (the addon's udpSetFilter), again
// whenever either changes. A program that cannot be installed (no addon, too many peers
// for one program) leaves the socket unfiltered, said once in a Warning: floods then reach
// the process, which still drops them itself (membership.ts), as before the filter.

import { encodeFilter } from "../layer2/bpf-filter.ts";
import { loadAddon } from "../layer2/packet-socket.ts";
import type { Logger } from "../observability/log.ts";
import { type FilterSource, heartbeatFilter } from "./heartbeat-filter.ts";

/**
 * How long a peer's source stays muted after its datagrams went over budget: only its
 * current incarnation passes meanwhile (a restart of that peer is heard after this, or
 * judged by its Lease). A flood that goes on is muted again at once: the process then sees
 * one budget's worth of it (and what the socket queued before the swap) per period.
 */
export const MUTE_MS = 5000;

type SetFilter = (address: string, port: number, program: Buffer | null) => void;

export interface HeartbeatGateOptions {
  /** The heartbeat socket's bound address and port. */
  address: string;
  port: number;
  log: Logger;
  /** Installs a program (tests: a fake); default: the addon's udpSetFilter. */
  setFilter?: SetFilter;
}

export class HeartbeatGate {
  readonly #o: HeartbeatGateOptions;
  readonly #family: 4 | 6;
  #setFilter: SetFilter | undefined;
  #peers = new Map<string, { host: string; port: number }>();
  /** node -> incarnation that still passes (null: none known) and when the mute ends. */
  readonly #muted = new Map<string, { incarnation: number | null; until: number }>();
  #timer: NodeJS.Timeout | undefined;
  #failedSaid = false;
  #installed: Buffer | undefined;
  #closed = false;

  constructor(o: HeartbeatGateOptions) {
    this.#o = o;
    this.#family = o.address.includes(":") ? 6 : 4;
    this.#setFilter = o.setFilter;
  }

  /** The sources the peers published (node -> address and port); reinstalls on a change. */
  setPeers(peers: ReadonlyMap<string, { host: string; port: number }>): void {
    this.#peers = new Map(peers);
    for (const node of this.#muted.keys()) if (!peers.has(node)) this.#muted.delete(node);
    this.#install();
  }

  /**
   * `node`'s datagrams went over budget: for MUTE_MS only those carrying `incarnation`
   * (its last accepted beat's; undefined: none heard) pass the kernel. Idempotent while muted.
   */
  mute(node: string, incarnation: number | undefined): void {
    if (this.#closed || !this.#peers.has(node) || this.#muted.has(node)) return;
    this.#muted.set(node, { incarnation: incarnation ?? null, until: performance.now() + MUTE_MS });
    this.#o.log.warn(
      { peer: node, source: this.#peers.get(node), muteMs: MUTE_MS },
      "heartbeats from a peer's address over budget (a flood with its address as source?): only its current run's beats pass the kernel filter for a while",
    );
    this.#install();
    this.#arm();
  }

  /** Muted now: its silence may be the filter's doing (a restart not yet let through). */
  isMuted(node: string): boolean {
    return this.#muted.has(node);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#muted.size === 0) return;
    const next = Math.min(...[...this.#muted.values()].map((m) => m.until));
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        const now = performance.now();
        let changed = false;
        for (const [node, m] of this.#muted)
          if (m.until <= now) changed = this.#muted.delete(node) || changed;
        if (changed) this.#install();
        this.#arm();
      },
      Math.max(0, next - performance.now()),
    );
    this.#timer.unref();
  }

  #install(): void {
    if (this.#closed) return;
    const sources: FilterSource[] = [];
    for (const [node, p] of this.#peers) {
      const m = this.#muted.get(node);
      sources.push(m ? { ...p, incarnation: m.incarnation } : p);
    }
    try {
      const program = encodeFilter(heartbeatFilter(this.#family, sources));
      if (this.#installed?.equals(program)) return;
      this.#setFilter ??= loadAddon().udpSetFilter;
      this.#setFilter(this.#o.address, this.#o.port, program);
      this.#installed = program;
    } catch (err) {
      // An old program would drop a new peer's beats: none is better than a stale one.
      if (this.#installed !== undefined)
        try {
          this.#setFilter?.(this.#o.address, this.#o.port, null);
          this.#installed = undefined;
        } catch {
          // Said below.
        }
      if (this.#failedSaid) return;
      this.#failedSaid = true;
      this.#o.log.warn(
        { err: err instanceof Error ? err.message : String(err), peers: this.#peers.size },
        "cannot filter the heartbeat socket in the kernel: datagrams from strangers reach the speaker, which drops them itself",
      );
    }
  }
}
