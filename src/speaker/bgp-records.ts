// Who advertises what over BGP, for users to read: this node's entry in the IPAnnouncement
// of every IP it advertises (status.bgp, a list-map keyed by node: {node, peers, since}).
// Every eligible node advertises an IP, so many speakers write one object: each writes
// only its own entry, with server-side apply under a field manager of its own, so that the
// API server merges the entries and no speaker ever overwrites another's (nor the Layer 2
// fields, which the Layer 2 owner writes with merge patches). Level-triggered like the
// Layer 2 records: each evaluation compares the plan with the entries the informer shows
// and writes the difference, retrying failed writes with backoff. The node that removes the
// last entry of a record nobody announces in Layer 2 deletes it (on the resourceVersion it
// saw, so that an entry added meanwhile stays).

import { apiVersion } from "../api/group.ts";
import {
  type BgpAdvertiser,
  type IPAnnouncement,
  ipAnnouncementKind,
  ipAnnouncementName,
} from "../api/ipannouncement.ts";
import { PATHS } from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import type { Logger } from "../observability/log.ts";
import type { BgpPlan } from "./bgp-plan.ts";
import { fnv1a64Hex } from "./election.ts";

/** What to write: per IP this node's peers (sorted), and the IPs whose entry goes. */
export interface BgpRecordChanges {
  apply: Map<string, string[]>;
  remove: string[];
  /** Records with neither a Layer 2 owner nor a BGP entry: left over, to delete. */
  empty: string[];
}

/**
 * The difference between what this node advertises (IP -> its BGPPeers) and its entries
 * in the records (pure).
 */
export function bgpRecordChanges(
  node: string,
  desired: ReadonlyMap<string, readonly string[]>,
  records: readonly IPAnnouncement[],
): BgpRecordChanges {
  const mine = new Map<string, BgpAdvertiser>();
  const empty: string[] = [];
  for (const r of records) {
    const st = r.status;
    if (!st) continue;
    const e = st.bgp?.find((x) => x.node === node);
    if (e) mine.set(st.ip, e);
    else if (st.node === undefined && (st.bgp ?? []).length === 0 && !desired.has(st.ip))
      empty.push(st.ip);
  }
  const apply = new Map<string, string[]>();
  for (const [ip, peers] of desired) {
    const want = [...peers].sort();
    const have = mine.get(ip);
    if (have === undefined || JSON.stringify([...have.peers].sort()) !== JSON.stringify(want))
      apply.set(ip, want);
  }
  const remove = [...mine.keys()].filter((ip) => !desired.has(ip)).sort();
  return { apply, remove, empty: empty.sort() };
}

/** IP -> the BGPPeers this node advertises it to (IPs advertised to none left out). */
export function advertisedPeers(plan: Pick<BgpPlan, "ips">): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [ip, p] of plan.ips)
    if (p.advertised.size > 0) out.set(ip, [...p.advertised.keys()].sort());
  return out;
}

/** The field manager of a node's BGP entries: one per node, at most 128 characters. */
export function bgpFieldManager(node: string): string {
  const m = `ironlb-bgp-${node}`;
  return m.length <= 128 ? m : `${m.slice(0, 110)}-${fnv1a64Hex(node)}`;
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 30_000;
/** A write the informer does not show yet counts as on its way this long, ms. */
const ON_ITS_WAY_MS = 10_000;
/**
 * Writes of entries under way at once. The speaker's API client paces all its requests
 * with one token bucket: at 10,000 Services a node has 10,000 entries to write after a
 * start, and sent at once they would queue ahead of its BGPSessionState and Layer 2 record
 * writes for minutes. The rest are written as these end (each end evaluates again).
 */
const MAX_IN_FLIGHT = 8;

interface EntryWrite {
  inFlight: boolean;
  failures: number;
  notBefore: number;
  /** What was last written ("-" for a removal) and the resourceVersion seen before. */
  written?: { what: string; seenRv: string | undefined; at: number };
  /** `since` of this node's entry while it keeps advertising the IP. */
  since?: string;
}

export interface BgpRecordsOptions {
  node: string;
  /** The IPAnnouncements as the speaker's informer shows them, checked. */
  records: () => readonly IPAnnouncement[];
  /** Ask for another evaluation (a write ended, a backoff passed). */
  onChange: () => void;
}

type Obj = IPAnnouncement & { metadata: { resourceVersion?: string } };

export class BgpRecords {
  readonly #api: KubeClient;
  readonly #o: BgpRecordsOptions;
  readonly #log: Logger;
  readonly #writes = new Map<string, EntryWrite>();
  readonly #deleting = new Set<string>();
  #inFlight = 0;
  #stopped = false;

  constructor(api: KubeClient, opts: BgpRecordsOptions, log: Logger) {
    this.#api = api;
    this.#o = opts;
    this.#log = log;
  }

  /** Makes this node's entries follow `desired` (IP -> BGPPeers it is advertised to). */
  sync(desired: ReadonlyMap<string, readonly string[]>): void {
    if (this.#stopped) return;
    const records = this.#o.records();
    const byIp = new Map(records.flatMap((r) => (r.status ? [[r.status.ip, r] as const] : [])));
    const c = bgpRecordChanges(this.#o.node, desired, records);
    for (const [ip, st] of this.#writes)
      if (!desired.has(ip) && !c.remove.includes(ip) && !st.inFlight) this.#writes.delete(ip);
    for (const [ip, peers] of c.apply) this.#write(ip, peers, byIp.get(ip));
    for (const ip of c.remove) this.#write(ip, undefined, byIp.get(ip));
    for (const ip of c.empty) {
      const rv = (byIp.get(ip) as Obj | undefined)?.metadata.resourceVersion;
      if (rv !== undefined) void this.#deleteIfEmpty(ip, rv);
    }
  }

  stop(): void {
    this.#stopped = true;
  }

  /** Applies this node's entry for `ip` (`peers` undefined: removes it). */
  #write(ip: string, peers: string[] | undefined, prev: IPAnnouncement | undefined): void {
    const st = this.#writes.get(ip) ?? { inFlight: false, failures: 0, notBefore: 0 };
    this.#writes.set(ip, st);
    if (st.inFlight) return; // its end evaluates again
    if (this.#inFlight >= MAX_IN_FLIGHT) return; // so does the end of any other write
    const now = performance.now();
    if (now < st.notBefore) return; // backing off: its timer evaluates again
    const what = peers === undefined ? "-" : peers.join(",");
    const seenRv = (prev as Obj | undefined)?.metadata.resourceVersion;
    if (
      st.written?.what === what &&
      st.written.seenRv === seenRv &&
      now - st.written.at < ON_ITS_WAY_MS
    )
      return;
    const old = prev?.status?.bgp?.find((e) => e.node === this.#o.node);
    let entry: BgpAdvertiser | undefined;
    if (peers !== undefined) {
      st.since ??= old?.since ?? new Date().toISOString().replace(/\.\d+Z$/, "Z");
      entry = { node: this.#o.node, peers, since: st.since };
    } else st.since = undefined;
    st.inFlight = true;
    this.#inFlight++;
    this.#apply(ip, entry).then(
      (after) => {
        this.#inFlight--;
        st.inFlight = false;
        st.failures = 0;
        st.notBefore = 0;
        st.written = { what, seenRv, at: performance.now() };
        if (peers === undefined) {
          this.#log.info({ ip }, "BGP advertisement record removed");
          const s = after.status;
          const rv = after.metadata.resourceVersion;
          if (s?.node === undefined && (s?.bgp ?? []).length === 0 && rv !== undefined)
            void this.#deleteIfEmpty(ip, rv);
        }
        this.#o.onChange();
      },
      (err: unknown) => {
        this.#inFlight--;
        st.inFlight = false;
        st.failures++;
        const ceiling = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** Math.min(st.failures - 1, 16));
        const delay = ceiling * (0.5 + Math.random() / 2);
        st.notBefore = performance.now() + delay;
        this.#log.warn(
          {
            ip,
            peers,
            attempt: st.failures,
            retryInMs: Math.round(delay),
            err: describeError(err),
          },
          "could not record the BGP advertisement",
        );
        // Others may go on meanwhile; this one after its backoff.
        this.#o.onChange();
        setTimeout(() => this.#o.onChange(), delay + 1).unref();
      },
    );
  }

  /**
   * Server-side apply of this node's part of the record: the IP and its own entry (none:
   * the entry it owned goes). Forced: these fields are this node's alone; `ip` has one value.
   */
  #apply(ip: string, entry: BgpAdvertiser | undefined): Promise<Obj> {
    const body = {
      apiVersion,
      kind: ipAnnouncementKind,
      metadata: {
        name: ipAnnouncementName(ip),
        labels: { "app.kubernetes.io/managed-by": "ironlb-speaker" },
      },
      status: { ip, ...(entry ? { bgp: [entry] } : {}) },
    };
    return this.#api.request<Obj>("PATCH", `${PATHS.ipAnnouncements}/${ipAnnouncementName(ip)}`, {
      body,
      contentType: "application/apply-patch+yaml",
      query: { fieldManager: bgpFieldManager(this.#o.node), force: true },
    });
  }

  /** Deletes a record nobody announces, unless it changed since `rv` (an entry was added). */
  async #deleteIfEmpty(ip: string, rv: string): Promise<void> {
    if (this.#deleting.has(ip) || this.#stopped) return;
    this.#deleting.add(ip);
    try {
      await this.#api.request("DELETE", `${PATHS.ipAnnouncements}/${ipAnnouncementName(ip)}`, {
        body: { preconditions: { resourceVersion: rv } },
      });
    } catch (err) {
      const code = httpStatus(err);
      if (code !== 404 && code !== 409)
        this.#log.warn({ ip, err: describeError(err) }, "could not delete announcement record");
    } finally {
      this.#deleting.delete(ip);
    }
  }
}
