// Keeps the speaker's nftables table equal to what the Services and EndpointSlices ask for:
// every update computes the desired table; a change is applied as one nft transaction,
// one at a time, the newest state winning when several arrive during an apply.
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import type { ClassFilter } from "../api/service.ts";
import type { Logger } from "../observability/log.ts";
import { desiredForwarding, type Forward } from "./desired.ts";
import { NftMissingError, type NftRunner, runNft } from "./nft.ts";
import { buildTable, deleteIfPresentScript, type Table, transaction } from "./nftables.ts";

export interface ForwarderOptions extends ClassFilter {
  node: string;
  /** Runs an nft script (default: the nft binary). */
  nft?: NftRunner;
}

export class Forwarder {
  readonly #o: ForwarderOptions;
  readonly #log: Logger;
  readonly #nft: NftRunner;
  /** What the kernel has (undefined: unknown, so the next apply rebuilds from scratch). */
  #applied: Table | undefined;
  /**
   * Known to have no table: while no Service here needs one (no ipMode Proxy IP), the node
   * has none at all, so a node, or a test host, without such Services is left untouched.
   */
  #absent = false;
  #appliedForwards = new Map<string, string>();
  #want: { table: Table; forwards: Forward[] } | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #missing = false;
  /** Last failure logged (a persistent one is logged once, not on every update). */
  #lastError = "";

  constructor(opts: ForwarderOptions, log: Logger) {
    this.#o = opts;
    this.#log = log;
    this.#nft = opts.nft ?? ((s) => runNft(s));
  }

  /**
   * Leaves the kernel as an earlier run left it: the first update replaces that table whole,
   * in one transaction, with what this run computes. Until then a restarted speaker's table
   * keeps forwarding, which is what BGP graceful restart promises the router (the F bit).
   */
  async start(): Promise<void> {}

  /** Hands over the current Services and EndpointSlices; applies what changed. */
  update(services: readonly V1Service[], slices: readonly V1EndpointSlice[]): void {
    if (this.#stopped) return;
    const forwards = desiredForwarding({
      node: this.#o.node,
      lbClass: this.#o.lbClass,
      handleUnclassed: this.#o.handleUnclassed,
      services,
      slices,
    });
    this.#want = { table: buildTable(forwards), forwards };
    this.#running ??= this.#drain();
  }

  /** Resolves once the kernel has the latest update (or the apply failed and was logged). */
  settled(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  /**
   * Removes the table (clean stop). `keepTable`: the speaker restarts with BGP graceful
   * restart; the table keeps forwarding what the routers still send here until the next
   * run replaces it (start()).
   */
  async stop(opts: { keepTable?: boolean } = {}): Promise<void> {
    this.#stopped = true;
    await this.#running;
    if (this.#missing || this.#absent || opts.keepTable) return;
    try {
      await this.#deleteTable();
      this.#log.info("removed the forwarding table");
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, "could not remove the forwarding table");
    }
  }

  async #drain(): Promise<void> {
    // Yield first: the caller stores this promise in #running before the loop can end.
    await null;
    try {
      while (this.#want && !this.#missing) {
        const want = this.#want;
        this.#want = undefined;
        const none = want.forwards.length === 0;
        if (none && this.#absent) continue;
        // No forwards: delete the table; otherwise change it (undefined: nothing to change).
        const script = none
          ? undefined
          : transaction(this.#absent ? undefined : this.#applied, want.table);
        if (!none && script === undefined) continue;
        const t0 = performance.now();
        try {
          const first = this.#applied === undefined;
          await (script === undefined ? this.#deleteTable() : this.#nft(script));
          this.#applied = none ? undefined : want.table;
          this.#absent = none;
          this.#lastError = "";
          this.#report(want.forwards, performance.now() - t0, first && !none);
        } catch (err) {
          if (err instanceof NftMissingError) {
            this.#missing = true;
            this.#log.error(
              { err: err.message },
              "cannot forward ipMode Proxy Services: nft is missing",
            );
            break;
          }
          // Unknown kernel state: the next update rebuilds the table from scratch.
          this.#applied = undefined;
          const msg = (err as Error).message;
          if (msg !== this.#lastError)
            this.#log.error({ err: msg }, "applying the forwarding table failed");
          this.#lastError = msg;
        }
      }
    } finally {
      this.#running = undefined;
    }
  }

  /** Deletes the table; one that is not there is already as wanted. */
  async #deleteTable(): Promise<void> {
    await this.#nft(deleteIfPresentScript()).catch((err: Error) => {
      if (!/No such file or directory/.test(err.message)) throw err;
    });
  }

  /** One log line per Service IP:port whose forwarding changed. */
  #report(forwards: Forward[], ms: number, first: boolean): void {
    const now = new Map<string, string>();
    for (const f of forwards) {
      const key = `${f.ip}|${f.protocol}|${f.port}`;
      const eps = f.endpoints.map((e) => `${e.address}:${e.port}`).join(",");
      now.set(key, `${f.service}|${eps}`);
      if (this.#appliedForwards.get(key) === now.get(key)) continue;
      this.#log.info(
        {
          service: f.service,
          ip: f.ip,
          protocol: f.protocol,
          port: f.port,
          endpoints: f.endpoints.length,
          ...(f.endpoints.length === 0 ? { action: "reject" } : {}),
        },
        "forwarding updated",
      );
    }
    for (const [key, v] of this.#appliedForwards) {
      if (now.has(key)) continue;
      const [ip, protocol, port] = key.split("|");
      this.#log.info({ service: v.split("|")[0], ip, protocol, port }, "forwarding removed");
    }
    this.#appliedForwards = now;
    if (first) this.#log.info({ ms: Math.round(ms) }, "forwarding table built");
  }
}
