// The Service condition `ironlb.dev/Announceable` and its Events: whether some node may
// announce each of a Service's IPs, and when none may, why. The controller writes it, not
// the speakers: it is one leader-elected writer (speakers with different membership views
// would overwrite each other), and it still speaks when no speaker runs at all. The verdict
// is the speakers' own decision, handed in as `judge` (src/speaker/announceable.ts, wired
// by the `ironlb controller` command: the controller never imports the speaker).
//
// It cannot flap: the verdict changes only when the objects do, speakers count as gone
// only once their Lease has been silent for twice its duration (a late renewal changes
// nothing), and a Service is said to be unannounceable only after that has held for
// NOT_ANNOUNCEABLE_AFTER_MS (a Service created with its pods is not reported for the
// seconds they take to become ready). It goes back to True at once. The condition is added
// only to a Service that has had a problem: a healthy cluster costs no writes.
//
// Judging is incremental: a change of a Service or of its EndpointSlices re-judges that
// Service (with the Services sharing its IPs: a shared IP's election reads them all), soon
// and cheaply; only a cluster-wide input (Nodes, pools, advertisements, which speakers run
// and what they publish) re-judges every Service, in a pass throttled by its own cost.
import type {
  KubernetesObject,
  V1EndpointSlice,
  V1Lease,
  V1Node,
  V1Service,
} from "@kubernetes/client-node";
import type { IPAddressPool } from "../api/ipaddresspool.ts";
import type { L2Advertisement } from "../api/l2advertisement.ts";
import { statusIPs } from "../api/service.ts";
import {
  ANNOUNCEABLE_CONDITION,
  keyOf,
  leasesPath,
  PATHS,
  SERVICE_NAME_LABEL,
  SPEAKER_LEASE_LABEL,
  servicePath,
} from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import { type EventRecorder, serviceTarget } from "../k8s/events.ts";
import { Informer } from "../k8s/informer.ts";
import type { Logger } from "../observability/log.ts";

/**
 * What the judge reads: the cluster's objects and the nodes whose speaker runs. The shape
 * of src/speaker/announceable.ts's AnnounceInput, spelled out because the controller never
 * imports the speaker; src/cli/main.ts, handing announceVerdicts in as `judge`, is where
 * the compiler checks that the two agree.
 */
export interface AnnounceJudgeInput {
  services: V1Service[];
  slices: V1EndpointSlice[];
  nodes: V1Node[];
  pools: (IPAddressPool & KubernetesObject)[];
  ads: (L2Advertisement & KubernetesObject)[];
  /** The speakers' Leases (what they publish about their links is read from them). */
  leases: V1Lease[];
  /** Nodes whose speaker runs. */
  live: Set<string>;
  bgpPeers: KubernetesObject[];
  bgpAds: KubernetesObject[];
}

export type AnnounceVerdict =
  | { announceable: true }
  | { announceable: false; reason: string; message: string };

/** Per Service key with IPs, its verdict (src/speaker/announceable.ts announceVerdicts). */
export type AnnounceJudge = (input: AnnounceJudgeInput) => Map<string, AnnounceVerdict>;

export interface AnnounceOptions {
  judge: AnnounceJudge;
  /** Namespace of the speakers' Leases (the release namespace). */
  namespace: string;
  /** The message of a True condition (constant: nothing is rewritten while it holds). */
  announceableMessage: string;
}

/** How long a Service must stay unannounceable before it is said (start-up transients). */
export const NOT_ANNOUNCEABLE_AFTER_MS = 5_000;
/** A speaker counts as gone once its Lease has been silent this many durations. */
const LEASE_GRACE_FACTOR = 2;
/** Re-evaluations are coalesced over this long (a burst of events makes one pass). */
const DEBOUNCE_MS = 500;
/**
 * A pass judges synchronously: a full one, with thousands of Services, takes a noticeable
 * slice of the event loop, which the controller's IP assignments share. The next pass of
 * the same kind (full, or of changed Services) waits at least this many times the last
 * one's duration, so that judging never takes more than ~2/COST_FACTOR of the controller's
 * time (at 10,000 Services a cluster-wide change is judged seconds later; a Service's own
 * change, judged alone, after DEBOUNCE_MS).
 */
const COST_FACTOR = 50;
/** How often Lease silence is checked (no event says that a Lease expired). */
const TICK_MS = 1_000;
/** Parallel condition writes. */
const WRITES = 4;

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string | Date;
}

interface LeaseSeen {
  node: string;
  renew: string;
  /** When its renewTime last changed, on the monotonic clock (performance.now()). */
  at: number;
  durationMs: number;
  /** Its ironlb.dev/ annotations as JSON (the links it publishes). */
  published: string;
}

/** Where the Services come from (the controller's cache, ours only). */
export interface AnnounceSources {
  /** Every Service of ours. */
  services: () => V1Service[];
  /** One Service of ours by "namespace/name"; undefined when gone or not ours. */
  service: (key: string) => V1Service | undefined;
  pools: () => (IPAddressPool & KubernetesObject)[];
  events: EventRecorder;
}

export class AnnounceConditions {
  readonly #api: KubeClient;
  readonly #o: AnnounceOptions;
  readonly #services: () => V1Service[];
  readonly #service: (key: string) => V1Service | undefined;
  readonly #pools: () => (IPAddressPool & KubernetesObject)[];
  readonly #events: EventRecorder;
  readonly #log: Logger;
  readonly #nodes: Informer<V1Node>;
  readonly #leases: Informer<V1Lease>;
  readonly #slices: Informer<V1EndpointSlice>;
  readonly #ads: Informer<L2Advertisement & KubernetesObject>;
  #bgpPeers: Informer<KubernetesObject> | undefined;
  #bgpAds: Informer<KubernetesObject> | undefined;
  readonly #seen = new Map<string, LeaseSeen>();
  /** What the verdict read of each Node and advertisement last (JSON, by kind and key). */
  readonly #inputs = new Map<string, string>();
  #poolsPrint = "";
  /** Since when (monotonic ms) each Service has been judged unannounceable. */
  readonly #badSince = new Map<string, number>();
  /** Service key -> its IPs, and IP -> the Services holding it (shared IPs: several). */
  readonly #ipsOf = new Map<string, string[]>();
  readonly #keysOf = new Map<string, Set<string>>();
  /** Service key -> its EndpointSlices by slice key; slice key -> its Service key. */
  readonly #slicesOf = new Map<string, Map<string, V1EndpointSlice>>();
  readonly #sliceService = new Map<string, string>();
  /** Services to judge in the next partial pass. */
  readonly #dirty = new Set<string>();
  /** When a full / partial pass is wanted (monotonic ms), if one is. */
  #fullDue: number | undefined;
  #partDue: number | undefined;
  /** The throttle: the earliest a full / partial pass may start (monotonic ms). */
  #fullAllowed = 0;
  #partAllowed = 0;
  #live = "";
  #links = "";
  #started = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #tick: NodeJS.Timeout | undefined;
  #running = false;

  constructor(api: KubeClient, opts: AnnounceOptions, from: AnnounceSources, log: Logger) {
    this.#api = api;
    this.#o = opts;
    this.#services = from.services;
    this.#service = from.service;
    this.#pools = from.pools;
    this.#events = from.events;
    this.#log = log.child({ part: "announceable" });
    // What the verdict reads of a Node (slimNode keeps only that) and of an advertisement.
    const node = this.#onInput("node", (n: V1Node) => [n.metadata, n.status]);
    this.#nodes = new Informer<V1Node>(api, PATHS.nodes, node, log, {}, { transform: slimNode });
    this.#leases = new Informer<V1Lease>(
      api,
      leasesPath(opts.namespace),
      {
        add: (l) => this.#leaseSeen(l),
        update: (l) => this.#leaseSeen(l),
        delete: (l) => {
          this.#seen.delete(keyOf(l));
          this.#checkLeases();
        },
      },
      log,
      { labelSelector: SPEAKER_LEASE_LABEL },
      { transform: slimLease },
    );
    this.#slices = new Informer<V1EndpointSlice>(
      api,
      PATHS.endpointSlices,
      {
        add: (sl) => this.#sliceSeen(sl, false),
        update: (sl) => this.#sliceSeen(sl, false),
        delete: (sl) => this.#sliceSeen(sl, true),
      },
      log,
      {},
      { transform: slimSlice },
    );
    this.#ads = new Informer<L2Advertisement & KubernetesObject>(
      api,
      PATHS.l2Advertisements,
      this.#onInput("l2ad", specOf),
      log,
    );
  }

  /**
   * Handlers for a cluster-wide input: a full pass when what `reads` returns of an object
   * changed, not on every write to it (kubelets update their Node's status every few
   * minutes; the resourceVersion is left out).
   */
  #onInput<T extends KubernetesObject>(kind: string, reads: (o: T) => unknown) {
    const seen = (o: T) => {
      const key = `${kind}|${keyOf(o)}`;
      const print = JSON.stringify(reads(o), (k, v) => (k === "resourceVersion" ? undefined : v));
      if (this.#inputs.get(key) === print) return;
      this.#inputs.set(key, print);
      this.changed();
    };
    return {
      add: seen,
      update: seen,
      delete: (o: T) => {
        this.#inputs.delete(`${kind}|${keyOf(o)}`);
        this.changed();
      },
    };
  }

  /**
   * The pools changed: a full pass if what the verdict reads of them did (names, labels,
   * addresses), not for the controller's own writes of their status.
   */
  poolsChanged(): void {
    const print = this.#poolsRead();
    if (print === this.#poolsPrint) return;
    this.#poolsPrint = print;
    this.changed();
  }

  #poolsRead(): string {
    return JSON.stringify(
      this.#pools()
        .map((p) => [p.metadata?.name ?? "", p.metadata?.labels ?? {}, p.spec?.addresses ?? []])
        .sort((a, b) => ((a[0] as string) < (b[0] as string) ? -1 : 1)),
    );
  }

  /** Lists and watches, then judges every Service; call after the controller started. */
  async start(): Promise<void> {
    const core = [this.#nodes, this.#leases, this.#slices, this.#ads];
    // BGP's CRDs may be missing (a chart upgrade without them): BGP mode is then unused.
    if (await this.#served(PATHS.bgpPeers)) {
      const peer = this.#onInput("bgppeer", specOf);
      const ad = this.#onInput("bgpad", specOf);
      this.#bgpPeers = new Informer(this.#api, PATHS.bgpPeers, peer, this.#log);
      this.#bgpAds = new Informer(this.#api, PATHS.bgpAdvertisements, ad, this.#log);
      core.push(this.#bgpPeers, this.#bgpAds);
    }
    if (this.#stopped) return;
    await Promise.all(core.map((i) => i.start()));
    await Promise.all(core.map((i) => i.synced()));
    if (this.#stopped) return;
    // The first pass reads these: only a change after it asks for another.
    this.#poolsPrint = this.#poolsRead();
    [this.#live, this.#links] = this.#leasesRead();
    this.#started = true;
    this.#tick = setInterval(() => this.#checkLeases(), TICK_MS);
    this.#tick.unref();
    this.changed();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#tick);
    await Promise.all(
      [this.#nodes, this.#leases, this.#slices, this.#ads, this.#bgpPeers, this.#bgpAds].map((i) =>
        i?.stop(),
      ),
    );
  }

  /** Something every verdict may read changed (pools, say): judge every Service again. */
  changed(): void {
    this.#want("full", performance.now() + DEBOUNCE_MS);
  }

  /**
   * A Service changed or was deleted: judge it again soon, with the Services that share
   * (or shared) an IP with it.
   */
  serviceChanged(svc: V1Service): void {
    const key = keyOf(svc);
    const before = this.#ipsOf.get(key) ?? [];
    for (const ip of before) for (const k of this.#keysOf.get(ip) ?? []) this.#dirty.add(k);
    this.#index(key, statusIPs(svc));
    this.#dirty.add(key);
    this.#want("partial", performance.now() + DEBOUNCE_MS);
  }

  #sliceSeen(sl: V1EndpointSlice, deleted: boolean): void {
    const key = keyOf(sl);
    const name = sl.metadata?.labels?.[SERVICE_NAME_LABEL];
    const svc = deleted || name === undefined ? undefined : `${sl.metadata?.namespace}/${name}`;
    const was = this.#sliceService.get(key);
    if (was !== undefined && was !== svc) {
      const of = this.#slicesOf.get(was);
      of?.delete(key);
      if (of?.size === 0) this.#slicesOf.delete(was);
      this.#sliceService.delete(key);
      this.#dirty.add(was);
    }
    if (svc !== undefined) {
      const of = this.#slicesOf.get(svc);
      if (of === undefined) this.#slicesOf.set(svc, new Map([[key, sl]]));
      else of.set(key, sl);
      this.#sliceService.set(key, svc);
      this.#dirty.add(svc);
    }
    this.#want("partial", performance.now() + DEBOUNCE_MS);
  }

  /** Records a Service's IPs (none: forgets it). */
  #index(key: string, ips: string[]): void {
    for (const ip of this.#ipsOf.get(key) ?? []) {
      const keys = this.#keysOf.get(ip);
      keys?.delete(key);
      if (keys?.size === 0) this.#keysOf.delete(ip);
    }
    if (ips.length === 0) {
      this.#ipsOf.delete(key);
      return;
    }
    this.#ipsOf.set(key, ips);
    for (const ip of ips) {
      const keys = this.#keysOf.get(ip);
      if (keys === undefined) this.#keysOf.set(ip, new Set([key]));
      else keys.add(key);
    }
  }

  /** Asks for a pass of that kind at `at` (monotonic ms) or, throttled, later. */
  #want(kind: "full" | "partial", at: number): void {
    if (kind === "full") this.#fullDue = Math.min(this.#fullDue ?? at, at);
    else this.#partDue = Math.min(this.#partDue ?? at, at);
    this.#schedule();
  }

  /** When the next pass may run: the earlier of the wanted ones, each after its throttle. */
  #nextAt(): { at: number; full: boolean } {
    const full =
      this.#fullDue === undefined
        ? Number.POSITIVE_INFINITY
        : Math.max(this.#fullDue, this.#fullAllowed);
    const part =
      this.#partDue === undefined || this.#dirty.size === 0
        ? Number.POSITIVE_INFINITY
        : Math.max(this.#partDue, this.#partAllowed);
    return full <= part ? { at: full, full: true } : { at: part, full: false };
  }

  #schedule(): void {
    if (!this.#started || this.#stopped || this.#running) return;
    const { at } = this.#nextAt();
    if (at === Number.POSITIVE_INFINITY || (this.#timer && this.#timerAt <= at)) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Number.POSITIVE_INFINITY;
        void this.#evaluate();
      },
      Math.max(0, at - performance.now()),
    );
  }

  async #served(path: string): Promise<boolean> {
    try {
      await this.#api.request("GET", path, { query: { limit: "1" } });
      return true;
    } catch (err) {
      if (httpStatus(err) !== 404)
        this.#log.warn({ err: describeError(err), path }, "cannot read BGP resources");
      return false;
    }
  }

  #leaseSeen(l: V1Lease): void {
    const node = l.spec?.holderIdentity;
    const renew = String(l.spec?.renewTime ?? "");
    if (!node) return;
    const key = keyOf(l);
    const prev = this.#seen.get(key);
    const now = performance.now();
    // First sight: as old as its renewTime says (the speaker's clock); later renewals are
    // timed on ours, so that clock skew between nodes cannot make a speaker look gone.
    const at =
      prev === undefined
        ? now - Math.max(0, Date.now() - Date.parse(renew) || 0)
        : prev.renew === renew
          ? prev.at
          : now;
    this.#seen.set(key, {
      node,
      renew,
      at,
      durationMs: (l.spec?.leaseDurationSeconds ?? 15) * 1000,
      published: JSON.stringify(l.metadata?.annotations ?? {}),
    });
    this.#checkLeases();
  }

  /** Judges again when the set of running speakers, or what they publish, changed. */
  #checkLeases(): void {
    const [liveKey, linksKey] = this.#leasesRead();
    if (liveKey === this.#live && linksKey === this.#links) return;
    this.#live = liveKey;
    this.#links = linksKey;
    this.changed();
  }

  /** Which speakers run, and what they publish, as comparable strings. */
  #leasesRead(): [string, string] {
    return [
      [...this.#liveSet()].sort().join(","),
      JSON.stringify([...this.#seen.values()].map((s) => `${s.node}=${s.published}`).sort()),
    ];
  }

  #liveSet(): Set<string> {
    const now = performance.now();
    const out = new Set<string>();
    for (const s of this.#seen.values())
      if (now - s.at < LEASE_GRACE_FACTOR * s.durationMs) out.add(s.node);
    return out;
  }

  async #evaluate(): Promise<void> {
    if (this.#running || this.#stopped) return;
    const next = this.#nextAt();
    if (next.at > performance.now()) {
      this.#schedule();
      return;
    }
    this.#running = true;
    // A full pass judges every Service: what was waiting for a partial pass too.
    const keys = next.full ? undefined : [...this.#dirty];
    if (next.full) this.#fullDue = undefined;
    this.#partDue = undefined;
    this.#dirty.clear();
    try {
      await this.#judge(keys);
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, "judging which Services can be announced failed");
      if (keys === undefined) this.changed();
      else {
        for (const k of keys) this.#dirty.add(k);
        this.#want("partial", performance.now() + DEBOUNCE_MS);
      }
    } finally {
      this.#running = false;
      this.#schedule();
    }
  }

  /** The Services of a partial pass: `keys` and those sharing an IP with them. */
  #gather(keys: string[]): { services: V1Service[]; slices: V1EndpointSlice[] } {
    const all = new Set(keys);
    for (const k of keys)
      for (const ip of this.#ipsOf.get(k) ?? [])
        for (const other of this.#keysOf.get(ip) ?? []) all.add(other);
    const services: V1Service[] = [];
    const slices: V1EndpointSlice[] = [];
    for (const k of all) {
      const svc = this.#service(k);
      if (svc === undefined) {
        // Deleted, or no longer ours: nothing to say about it any more.
        this.#badSince.delete(k);
        this.#index(k, []);
        continue;
      }
      services.push(svc);
      for (const sl of this.#slicesOf.get(k)?.values() ?? []) slices.push(sl);
    }
    return { services, slices };
  }

  /** Judges every Service (`keys` undefined) or those keys, and writes what changed. */
  async #judge(keys: string[] | undefined): Promise<void> {
    const started = performance.now();
    let services: V1Service[];
    let slices: V1EndpointSlice[];
    if (keys === undefined) {
      services = this.#services();
      slices = this.#slices.list();
      // Rebuilt from the cache now and then: what the events kept up to date meanwhile.
      this.#ipsOf.clear();
      this.#keysOf.clear();
      for (const svc of services) this.#index(keyOf(svc), statusIPs(svc));
    } else {
      ({ services, slices } = this.#gather(keys));
      if (services.length === 0) return;
    }
    const verdicts = this.#o.judge({
      services,
      slices,
      nodes: this.#nodes.list(),
      pools: this.#pools(),
      ads: this.#ads.list(),
      leases: this.#leases.list(),
      live: this.#liveSet(),
      bgpPeers: this.#bgpPeers?.list() ?? [],
      bgpAds: this.#bgpAds?.list() ?? [],
    });
    const now = performance.now();
    const cost = now - started;
    if (keys === undefined) this.#fullAllowed = now + COST_FACTOR * cost;
    else this.#partAllowed = now + COST_FACTOR * cost;
    if (cost > 100)
      this.#log.debug(
        { services: services.length, full: keys === undefined, ms: Math.round(cost) },
        "judged which Services can be announced",
      );
    let recheck: number | undefined;
    const rechecks: string[] = [];
    const writes: [string, () => Promise<void>][] = [];
    const judged = new Set<string>();
    for (const svc of services) {
      const key = keyOf(svc);
      judged.add(key);
      const cur = (svc.status?.conditions as Condition[] | undefined)?.find(
        (c) => c.type === ANNOUNCEABLE_CONDITION,
      );
      const v = verdicts.get(key);
      if (v?.announceable !== false) this.#badSince.delete(key);
      if (v === undefined) {
        // No IPs: nothing to announce, nothing to say.
        if (cur) writes.push([key, () => this.#write(svc, undefined)]);
        continue;
      }
      if (v.announceable) {
        if (cur && (cur.status !== "True" || cur.message !== this.#o.announceableMessage))
          writes.push([
            key,
            () =>
              this.#write(svc, {
                status: "True",
                reason: "Announceable",
                message: this.#o.announceableMessage,
              }),
          ]);
        continue;
      }
      const since = this.#badSince.get(key) ?? now;
      this.#badSince.set(key, since);
      const due = since + NOT_ANNOUNCEABLE_AFTER_MS;
      if (now < due) {
        recheck = Math.min(recheck ?? due, due);
        rechecks.push(key);
        continue;
      }
      if (cur?.status === "False" && cur.reason === v.reason && cur.message === v.message) continue;
      writes.push([
        key,
        () => this.#write(svc, { status: "False", reason: v.reason, message: v.message }),
      ]);
    }
    if (keys === undefined)
      for (const key of this.#badSince.keys()) if (!judged.has(key)) this.#badSince.delete(key);
    const failed: string[] = [];
    for (let i = 0; i < writes.length; i += WRITES)
      await Promise.all(
        writes.slice(i, i + WRITES).map(([key, w]) =>
          w().catch((err: unknown) => {
            failed.push(key);
            // 409: our cache is behind the server; the next pass reads the newer object.
            if (httpStatus(err) !== 409)
              this.#log.warn(
                { service: key, err: describeError(err) },
                "could not write Announceable condition",
              );
          }),
        ),
      );
    for (const key of failed) this.#dirty.add(key);
    if (failed.length > 0) this.#want("partial", performance.now() + DEBOUNCE_MS);
    // Those not reported yet are judged again once their grace is over.
    for (const key of rechecks) this.#dirty.add(key);
    if (recheck !== undefined) this.#want("partial", recheck + 10);
  }

  async #write(
    svc: V1Service,
    want: { status: "True" | "False"; reason: string; message: string } | undefined,
  ): Promise<void> {
    const conds = (svc.status?.conditions ?? []) as Condition[];
    const cur = conds.find((c) => c.type === ANNOUNCEABLE_CONDITION);
    const others = conds.filter((c) => c.type !== ANNOUNCEABLE_CONDITION);
    const next = want
      ? [
          ...others,
          {
            type: ANNOUNCEABLE_CONDITION,
            ...want,
            lastTransitionTime:
              cur?.status === want.status ? cur.lastTransitionTime : new Date().toISOString(),
            observedGeneration: svc.metadata?.generation,
          },
        ]
      : others;
    try {
      // Guarded like the controller's own status write: whichever writes second gets a
      // 409 and writes again from what the first wrote, so neither condition is lost.
      await this.#api.mergePatch(
        `${servicePath(svc.metadata?.namespace, svc.metadata?.name)}/status`,
        {
          metadata: { resourceVersion: svc.metadata?.resourceVersion },
          status: { conditions: next },
        },
      );
    } catch (err) {
      if (httpStatus(err) === 404) return;
      throw err;
    }
    const key = keyOf(svc);
    if (want?.status === "False" && (cur?.status !== "False" || cur.reason !== want.reason)) {
      this.#log.warn(
        { service: key, reason: want.reason, detail: want.message },
        "not announceable",
      );
      void this.#events.emit(serviceTarget(svc), "Warning", "NotAnnounceable", want.message);
    } else if (want?.status === "True" && cur?.status === "False") {
      this.#log.info({ service: key }, "announceable again");
      void this.#events.emit(
        serviceTarget(svc),
        "Normal",
        "Announceable",
        `A node may announce its IPs again (was ${cur.reason}: ${cur.message})`,
      );
    }
  }
}

/** What the verdict reads of an advertisement or BGPPeer: its labels and spec. */
function specOf(o: KubernetesObject & { spec?: unknown }): unknown {
  return [o.metadata?.labels, o.spec];
}

/** ironlb's annotations only (ironlb.dev/drain on Nodes, ironlb.dev/links on Leases). */
function ours(annotations: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations ?? {}))
    if (k.startsWith("ironlb.dev/")) out[k] = v;
  return out;
}

/** What the verdict reads of a Node: name, labels, ironlb's annotations, two conditions. */
function slimNode(n: V1Node): V1Node {
  return {
    metadata: {
      name: n.metadata?.name,
      resourceVersion: n.metadata?.resourceVersion,
      labels: n.metadata?.labels ?? {},
      annotations: ours(n.metadata?.annotations),
    },
    status: {
      conditions: (n.status?.conditions ?? [])
        .filter((c) => c.type === "Ready" || c.type === "NetworkUnavailable")
        .map((c) => ({ type: c.type, status: c.status })),
    },
  };
}

/** What the verdict reads of an EndpointSlice: its Service, family, endpoints' readiness and node. */
function slimSlice(s: V1EndpointSlice): V1EndpointSlice {
  const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
  return {
    metadata: {
      name: s.metadata?.name,
      namespace: s.metadata?.namespace,
      resourceVersion: s.metadata?.resourceVersion,
      ...(svc === undefined ? {} : { labels: { [SERVICE_NAME_LABEL]: svc } }),
    },
    addressType: s.addressType,
    endpoints: (s.endpoints ?? []).map((e) => ({
      addresses: [],
      ...(e.conditions?.ready === undefined || e.conditions.ready === null
        ? {}
        : { conditions: { ready: e.conditions.ready } }),
      ...(e.nodeName ? { nodeName: e.nodeName } : {}),
    })),
  };
}

/** What liveness reads of a speaker Lease: holder, renewal, duration, published links. */
function slimLease(l: V1Lease): V1Lease {
  return {
    metadata: {
      name: l.metadata?.name,
      namespace: l.metadata?.namespace,
      resourceVersion: l.metadata?.resourceVersion,
      annotations: ours(l.metadata?.annotations),
    },
    spec: {
      holderIdentity: l.spec?.holderIdentity,
      renewTime: l.spec?.renewTime,
      leaseDurationSeconds: l.spec?.leaseDurationSeconds,
    },
  };
}
