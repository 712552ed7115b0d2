// The speaker: on every node, decides for each assigned Service IP whether this node is
// the one to announce it, and drives the ARP/NDP announcer accordingly. Kubernetes objects
// and membership come in through informers and heartbeats; the decision itself is the pure
// function in decision.ts (the same answer on every node, no coordination). Who announces
// what is recorded in IPAnnouncement objects of our own (never on users' Services); every
// speaker reads them, and the recorded owner keeps its IPs while it stays eligible.
import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import type { KubernetesObject, V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";
import { apiVersion } from "../api/group.ts";
import { type IPAddressPool, parseIPAddressPool, salvagedAddresses } from "../api/ipaddresspool.ts";
import {
  type IPAnnouncement,
  type IPAnnouncementStatus,
  ipAnnouncementName,
  parseIPAnnouncement,
} from "../api/ipannouncement.ts";
import { type L2Advertisement, parseL2Advertisement } from "../api/l2advertisement.ts";
import { type ClassFilter, isOurs, statusIPs } from "../api/service.ts";
import { keyOf, PATHS, SERVICE_NAME_LABEL } from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import { EventRecorder, serviceTarget } from "../k8s/events.ts";
import { Informer } from "../k8s/informer.ts";
import type { Announcer, ConflictEvent } from "../layer2/announcer.ts";
import type { Logger } from "../observability/log.ts";
import type { BgpSessionFactory } from "./bgp-backend.ts";
import type { BfdRunnerFactory } from "./bgp-bfd.ts";
import { BgpMode } from "./bgp-mode.ts";
import { Checked } from "./checked.ts";
import {
  type Announcement,
  type Decision,
  decide,
  type IpDecision,
  type MembershipView,
  reactToLinks,
} from "./decision.ts";
import type { DrainMode } from "./eligibility.ts";
import {
  fromOsNetworkInterfaces,
  type HostInterface,
  isVirtualInterface,
  resolveInterfaces,
} from "./interfaces.ts";
import { formatLinks, usableLinks } from "./links.ts";
import type { Membership, RejoinReason } from "./membership.ts";
import type { SpeakerMetrics } from "./metrics.ts";
import { ServicesWithIPs } from "./service-events.ts";
import { slimEndpointSlice, slimNode, slimService } from "./slim.ts";
import { type ClusterSnapshot, clusterSnapshot } from "./snapshot.ts";

export { ipAnnouncementName };

export interface SpeakerOptions extends ClassFilter {
  node: string;
  /** This node's address (status.hostIP); BGP's default router ID when IPv4. */
  nodeAddress?: string;
  /** BGP sessions (src/bgp); absent: BGP mode off (in-process tests of Layer 2). */
  bgpSessions?: BgpSessionFactory;
  /** Makes the BFD runner (src/bfd), started on the first BGPPeer with a bfdProfile. */
  bfdRunner?: BfdRunnerFactory;
  /** The speaker's namespace: BGPPeers' passwordSecrets are read there. */
  namespace?: string;
  /** Drained node: how long BGP routes carry 65535:0 before being withdrawn, ms (bgp-mode.ts). */
  bgpDrainDelayMs?: number;
  /** How long to probe an IP nobody announced before (RFC 5227), ms; 0 = no probe. */
  probeMs: number;
  /** After a conflict, wait this long before probing the IP again, ms. */
  conflictRetryMs: number;
  /**
   * This host's interfaces, given the last link events; default: os.networkInterfaces()
   * and /sys. In-process tests give a host of their own (several speakers in one process).
   */
  hostInterfaces?: (links?: ReadonlyMap<string, boolean>) => HostInterface[];
}

/**
 * Another host's claim on an IP we announce is logged, and re-announces the IP, at most
 * this often per IP: two claimants never duel, and a LAN host flooding claims costs a map
 * lookup per frame, not a log line or a walk over the Services.
 */
const CONTEST_REANNOUNCE_MS = 3000;
/** Our own record write not yet seen by the informer counts as the record this long. */
const CLAIM_OVERLAY_MS = 10_000;
/** After a stall, requests read within this time are the backlog: not answered, ms. */
const STALE_REQUESTS_MS = 30;
/**
 * For this long after a rejoin, an IP is claimed only after asking the LAN whether another
 * node answers it, for REJOIN_PROBE_MS: a peer that declared us dead just before it heard
 * us again may have taken the IP over while its IPAnnouncement was still on its way, and a
 * claim from the stale record would pull clients to us, then strand them when we let go.
 */
const REJOIN_PROBE_WINDOW_MS = 5000;
const REJOIN_PROBE_MS = 100;
/** Another node answered such a probe: ask again after this long (records converge). */
const REJOIN_DEFER_MS = 1000;
/**
 * A drained node hands an IP over make-before-break: it answers until it has evidence that
 * the new owner does (its IPAnnouncement, or its gratuitous ARP/NA claiming the IP), at most
 * this long, ms: a new owner that never shows up (its speaker stuck, the API server away
 * from it) must not keep the drained node's maintenance waiting for ever.
 */
const HANDOVER_MAX_MS = 10_000;
/** Without link events (onLinks never called), interfaces are re-read this often, ms. */
const INTERFACE_RECHECK_MS = 10_000;

/** An IP this node announces, with its interfaces resolved on this host. */
interface Resolved {
  interfaces: string[];
  services: string[];
  gratuitous: boolean;
  gratuitousIntervalMs: number | undefined;
}
/**
 * Changes of Kubernetes objects (Services, EndpointSlices, Nodes, pools, advertisements)
 * cause at most one evaluation per this many ms: a lone change is evaluated at once, the
 * changes that follow within the window are gathered into one. Each evaluation walks every Service: at
 * 1,000 Services one allocates ~4 MiB, and evaluating on every watch event of a burst
 * promoted enough of that to grow the old generation to 4x the live data, memory V8 then
 * keeps. Membership changes, records and conflicts (failover) are evaluated at once.
 */
const OBJECT_BATCH_MS = 100;

type Record_ = IPAnnouncement & KubernetesObject;

interface RecordWrite {
  inFlight: boolean;
  /** Failed writes in a row. */
  failures: number;
  /** After a failure, not written again before this (performance.now()). */
  notBefore: number;
  /**
   * The last record written, and the resourceVersion the cache showed before: until the
   * cache shows a change (or CLAIM_OVERLAY_MS passes), the write is on its way, not lost.
   */
  written?: { want: string; seenRv: string | undefined; at: number };
  /** `since` of our last record written while the IP stayed held (the cache may lag). */
  since?: string;
}

const RECORD_RETRY_FIRST_MS = 500;
const RECORD_RETRY_MAX_MS = 30_000;

/**
 * How long to wait before writing a record again after `failures` failed writes in a row:
 * doubling from 500 ms to 30 s, each a random 50-100% of that (`random` in [0, 1)) so that
 * the speakers do not retry in step against a recovering API server.
 */
export function recordRetryDelayMs(failures: number, random: number): number {
  const ceiling = Math.min(
    RECORD_RETRY_MAX_MS,
    RECORD_RETRY_FIRST_MS * 2 ** Math.min(Math.max(failures - 1, 0), 16),
  );
  return ceiling * (0.5 + random / 2);
}

/** Reconciles announcements for one node. */
export class Speaker {
  readonly #o: SpeakerOptions;
  readonly #log: Logger;
  readonly #announcer: Announcer;
  readonly #membership: Membership;
  readonly #metrics: SpeakerMetrics;
  readonly #api: KubeClient;
  readonly #events: EventRecorder;
  readonly #services: Informer<V1Service>;
  readonly #slices: Informer<V1EndpointSlice>;
  readonly #nodes: Informer<V1Node>;
  readonly #pools: Informer<IPAddressPool & KubernetesObject>;
  readonly #ads: Informer<L2Advertisement & KubernetesObject>;
  readonly #records: Informer<Record_>;
  /** BGP mode, beside Layer 2, from the same snapshot (bgp-mode.ts). */
  readonly #bgp: BgpMode | undefined;
  /** Its sessions ending (withdrawAll). */
  #bgpStopped: Promise<void> | undefined;
  /** What the speaker reads of those three kinds: through the checkers of src/api. */
  readonly #checkedPools: Checked<IPAddressPool>;
  readonly #checkedAds: Checked<L2Advertisement>;
  readonly #checkedRecords: Checked<IPAnnouncement>;
  /** What this node announces now: ip -> interfaces. */
  readonly #current = new Map<string, string[]>();
  /** IPs being probed before their first announcement. */
  readonly #probing = new Set<string>();
  /** IPs whose probe found nobody, with the interfaces probed: announced by the next evaluation. */
  readonly #probed = new Map<string, string[]>();
  /**
   * IPs found in use by another host: not announced before this time (performance.now()).
   * Every deadline here is on the monotonic clock: a backward step of the wall clock (NTP,
   * often right after the stall that made us rejoin) must not silence this node.
   */
  readonly #conflictUntil = new Map<string, number>();
  /** Held IPs another node may have claimed since our last gratuitous burst. */
  readonly #contested = new Set<string>();
  /**
   * Per IP we announce, the last claim by another host that was acted on (logged,
   * re-announced; performance.now()) and the claims dropped since by the rate limit.
   */
  readonly #claimWindow = new Map<string, { at: number; dropped: number }>();
  /**
   * The last decision's IPs (IP -> its Services, ...), replaced by every evaluation: what a
   * conflict needs to know about an IP, without walking the Services per frame.
   */
  #decided: ReadonlyMap<string, IpDecision> = new Map();
  /** Per IP held, the state of writing its record (#syncRecords). */
  readonly #recordWrites = new Map<string, RecordWrite>();
  /** Our record writes the informer may not show yet: ip -> when written (performance.now()). */
  readonly #claims = new Map<string, number>();
  /** Records from a fresh list after a rejoin, until the informer shows newer: ip -> node. */
  readonly #listed = new Map<string, string>();
  /** Last reason logged per IP for not being announced (avoid log floods). */
  readonly #lastReason = new Map<string, string>();
  /** "service|ip|pool" of status IPs outside their pool, already reported. */
  readonly #outsideReported = new Set<string>();
  /**
   * After a rejoin, IPs another node answered when we probed: not claimed, and if held not
   * re-announced, before this time (performance.now()). That node took them over while we were
   * away, and its record is on its way. Dropped when a peer dies: it may be that node.
   */
  readonly #rejoinDeferred = new Map<string, number>();
  /**
   * IPs this drained node still answers while their new owner takes them (make-before-break):
   * ip -> when the handover started (performance.now()) and whether the new owner's claim
   * was heard on the LAN.
   */
  readonly #handover = new Map<string, { since: number; to: string; heard: boolean }>();
  /** This node's drain as last evaluated (DRAIN_ANNOTATION), to log its changes. */
  #drainMode: DrainMode | undefined;
  /** The live speakers at the last evaluation, to notice a peer's death. */
  #lastLive: ReadonlySet<string> = new Set<string>();
  /** When this speaker last rejoined (performance.now()), for REJOIN_PROBE_WINDOW_MS. */
  #rejoinedAt = Number.NEGATIVE_INFINITY;
  /** Interface name -> usable, as the last link event said (undefined before the first). */
  #links: ReadonlyMap<string, boolean> | undefined;
  /** Called after every reconcile with what the informers hold (the forwarder listens). */
  onReconciled?: (services: readonly V1Service[], slices: readonly V1EndpointSlice[]) => void;
  #recordsFresh = true;
  #scheduled = false;
  #batchTimer: NodeJS.Timeout | undefined;
  /** performance.now() of the last evaluation's start (OBJECT_BATCH_MS window). */
  #lastEvaluation = Number.NEGATIVE_INFINITY;
  #synced = false;
  #stopped = false;
  #retryTimer: NodeJS.Timeout | undefined;

  constructor(
    api: KubeClient,
    opts: SpeakerOptions,
    announcer: Announcer,
    membership: Membership,
    metrics: SpeakerMetrics,
    log: Logger,
  ) {
    this.#o = opts;
    this.#log = log;
    this.#announcer = announcer;
    this.#membership = membership;
    this.#metrics = metrics;
    this.#api = api;
    this.#events = new EventRecorder(api, "speaker", opts.node, log);
    // An object that fails its checks: a pool or an advertisement keeps its last good
    // version (a pool, else the addresses that can be read: the controller keeps its IPs
    // assigned, so they stay announced); a record is skipped (it only informs stickiness).
    this.#checkedPools = new Checked(
      { kind: "IPAddressPool", parse: parseIPAddressPool, freeze: true, salvage: salvagePool },
      log,
    );
    this.#checkedAds = new Checked(
      { kind: "L2Advertisement", parse: parseL2Advertisement, freeze: true },
      log,
    );
    this.#checkedRecords = new Checked(
      { kind: "IPAnnouncement", parse: parseIPAnnouncement, freeze: false },
      log,
    );
    // Services without an IP before and after an event change nothing (service-events.ts).
    const withIPs = new ServicesWithIPs();
    const pokeService = (svc: V1Service, deleted = false) => {
      if (withIPs.seen(keyOf(svc), !deleted && statusIPs(svc).length > 0)) this.#scheduleBatched();
    };
    const pokeServices = {
      add: (svc: V1Service) => pokeService(svc),
      update: (svc: V1Service) => pokeService(svc),
      delete: (svc: V1Service) => pokeService(svc, true),
    };
    const poke = {
      add: () => this.#scheduleBatched(),
      update: () => this.#scheduleBatched(),
      delete: () => this.#scheduleBatched(),
    };
    // Most EndpointSlices of a cluster belong to Services that are not ours, or that have no
    // IP yet: their churn (pods coming and going) changes nothing here. Nor does a slice of a
    // Service not cached yet: the Service's own event, when it comes with an IP, evaluates
    // with every slice then cached.
    const pokeSlice = (s: V1EndpointSlice) => {
      const name = s.metadata?.labels?.[SERVICE_NAME_LABEL];
      const svc = name ? this.#services.get(name, s.metadata?.namespace) : undefined;
      if (!svc || !isOurs(svc, this.#o) || statusIPs(svc).length === 0) return;
      this.#scheduleBatched();
    };
    // Every Service, EndpointSlice and Node of the cluster is cached: only what is read.
    this.#services = new Informer(
      api,
      PATHS.services,
      pokeServices,
      log,
      {},
      {
        transform: slimService,
      },
    );
    this.#slices = new Informer(
      api,
      PATHS.endpointSlices,
      { add: pokeSlice, update: pokeSlice, delete: pokeSlice },
      log,
      {},
      { transform: slimEndpointSlice },
    );
    this.#nodes = new Informer(api, PATHS.nodes, poke, log, {}, { transform: slimNode });
    this.#pools = new Informer(api, PATHS.ipAddressPools, poke, log);
    this.#ads = new Informer(api, PATHS.l2Advertisements, poke, log);
    const onRecord = (r: Record_) => this.#recordSeen(r);
    this.#records = new Informer<Record_>(
      api,
      PATHS.ipAnnouncements,
      { add: onRecord, update: onRecord, delete: onRecord },
      log,
    );
    if (opts.bgpSessions)
      this.#bgp = new BgpMode(
        api,
        {
          node: opts.node,
          nodeAddress: opts.nodeAddress,
          sessions: opts.bgpSessions,
          ...(opts.bfdRunner ? { bfd: opts.bfdRunner } : {}),
          ...(opts.namespace ? { namespace: opts.namespace } : {}),
          records: () => this.#checkedRecords.list(this.#records.list()),
          ...(opts.bgpDrainDelayMs === undefined ? {} : { drainDelayMs: opts.bgpDrainDelayMs }),
        },
        this.#events,
        metrics,
        log,
        () => this.#scheduleBatched(),
      );
    membership.onChange = () => this.#schedule();
    // Peers decide from it which IPs this node may announce (eligibility.ts).
    membership.publishLinks = () =>
      formatLinks(usableLinks((opts.hostInterfaces ?? hostInterfaces)(this.#links)));
    membership.onRejoin = (reason, ms) => this.#rejoin(reason, ms);
    // A probe's answer goes to the prober (#probeThenAnnounce, #probeThenReannounce), which
    // knows whether it is a conflict: after a rejoin it is the peer that took the IP over.
    announcer.on("conflict", (ev: ConflictEvent) => {
      if (ev.during !== "probe") this.#conflict(ev);
    });
    announcer.on("error", (err: Error, ifname: string) =>
      this.#log.warn({ err: err.message, interface: ifname }, "packet I/O error"),
    );
  }

  get ready(): boolean {
    return this.#synced;
  }

  async start(): Promise<void> {
    const all = [this.#services, this.#slices, this.#nodes, this.#pools, this.#ads, this.#records];
    await Promise.all(all.map((i) => i.start()));
    await Promise.all([...all.map((i) => i.synced()), this.#bgp?.start()]);
    this.#synced = true;
    this.#schedule();
    // Membership arms timers for Lease expiry and settling; only link state has no event.
    this.#retryTimer = setInterval(() => this.#schedule(), INTERFACE_RECHECK_MS);
    this.#retryTimer.unref();
  }

  /**
   * Stops answering for everything at once and announces nothing more, and ends the BGP
   * sessions; returns the IPs it held. No gratuitous "goodbye": the next owner's burst
   * replaces us.
   */
  withdrawAll(opts: { keepBgp?: boolean } = {}): string[] {
    this.#stopped = true;
    clearInterval(this.#retryTimer);
    clearTimeout(this.#batchTimer);
    const ips = [...this.#current.keys()].sort();
    for (const ip of ips) this.#announcer.withdraw(ip);
    this.#current.clear();
    // BGP in the same turn: a Cease to every peer, whose routers withdraw this node's routes.
    // keepBgp: the caller ends the sessions with stopBgp once it knows whether this is a
    // restart (the sessions keep running meanwhile, their routes unchanged).
    if (!opts.keepBgp) this.#bgpStopped ??= this.#bgp?.stop();
    return ips;
  }

  /** Some BGP session is Established with graceful restart negotiated. */
  bgpGracefulRestart(): boolean {
    return this.#bgp?.gracefulRestartNegotiated() ?? false;
  }

  /**
   * Ends the BGP sessions (after withdrawAll with keepBgp). `restarting`: sessions with
   * graceful restart negotiated close without a Cease, and the routers keep the routes.
   */
  stopBgp(opts: { restarting?: boolean } = {}): Promise<void> {
    this.#bgpStopped ??= this.#bgp?.stop(opts);
    return this.#bgpStopped ?? Promise.resolve();
  }

  /** Withdraws everything (BGP: a Cease to every peer) and stops watching. */
  async stop(): Promise<void> {
    this.withdrawAll();
    await this.#bgpStopped;
    await Promise.all(
      [this.#services, this.#slices, this.#nodes, this.#pools, this.#ads, this.#records].map((i) =>
        i.stop(),
      ),
    );
  }

  /**
   * The host's links changed (LinkMonitor). Carrier lost: stop answering there at once.
   * Carrier back on a LAN link: rejoin (decision.ts: reactToLinks).
   */
  onLinks(links: ReadonlyMap<string, boolean>): void {
    const before = this.#links;
    this.#links = new Map(links);
    if (before === undefined || this.#stopped) return;
    const r = reactToLinks({
      before,
      after: links,
      announced: this.#current,
      isVirtual: (name) => isVirtualInterface({ name }),
    });
    if (r.lost.length > 0) {
      const ips = [...new Set(r.withdraw.map((w) => w.ip))].sort();
      this.#log.warn({ interfaces: r.lost, ips }, "link down: not answering there");
    }
    for (const { ip, ifname } of r.withdraw) {
      this.#announcer.withdraw(ip, ifname);
      const left = (this.#current.get(ip) ?? []).filter((i) => i !== ifname);
      if (left.length > 0) this.#current.set(ip, left);
      else {
        this.#current.delete(ip);
        this.#contested.delete(ip);
      }
    }
    if (r.rejoin.length > 0) {
      this.#log.info({ interfaces: r.rejoin }, "link up: rejoining");
      this.#membership.linkRejoin();
    }
    this.#schedule();
  }

  /**
   * An object changed: evaluate now if the last evaluation is OBJECT_BATCH_MS old (no delay
   * for a lone change, e.g. an endpoint turning ready), else at the end of that window with
   * whatever else changes meanwhile.
   */
  #scheduleBatched(): void {
    if (this.#scheduled || this.#batchTimer || !this.#synced || this.#stopped) return;
    const wait = this.#lastEvaluation + OBJECT_BATCH_MS - performance.now();
    if (wait <= 0) {
      this.#schedule();
      return;
    }
    this.#batchTimer = setTimeout(() => {
      this.#batchTimer = undefined;
      this.#schedule();
    }, wait);
  }

  /** Coalesces bursts of events into one evaluation on the next turn of the event loop. */
  #schedule(): void {
    if (this.#scheduled || !this.#synced || this.#stopped) return;
    this.#scheduled = true;
    // This evaluation covers any batched object change too.
    clearTimeout(this.#batchTimer);
    this.#batchTimer = undefined;
    setImmediate(() => {
      this.#scheduled = false;
      this.#lastEvaluation = performance.now();
      try {
        this.#reconcile();
      } catch (err) {
        this.#log.error({ err }, "announcement reconcile failed");
      }
    });
  }

  /**
   * Back from a long stall or an isolation: peers may have declared us dead and taken our
   * IPs over (their records then say so, and the decision lets go of those at once). Read
   * the records afresh, claim nothing new until membership has settled, and send
   * gratuitous ARP again for what is still ours: clients may have followed another node.
   */
  #rejoin(reason: RejoinReason, stalledMs: number): void {
    const ips = [...this.#current.keys()];
    for (const ip of ips) this.#contested.add(ip);
    // Requests queued while we did not run are stale (see Announcer.holdReplies), and so
    // are the rest of our gratuitous bursts: a peer may own those IPs now. What is still
    // ours gets a new burst once the rejoin probe finds nobody else answering.
    if (reason === "stall") this.#announcer.holdReplies(STALE_REQUESTS_MS);
    this.#announcer.cancelBursts();
    // Cut off (link down, no peer heard), our watches may hold what changed meanwhile behind
    // TCP's retransmission backoff, seconds after the link is back: our cache would then say
    // we own what a peer took over, and a record write skipped as "unchanged" would leave
    // the peer's record standing. New watches bring it in a round trip.
    if (reason !== "stall")
      for (const i of [
        this.#records,
        this.#services,
        this.#slices,
        this.#nodes,
        this.#pools,
        this.#ads,
      ])
        i.reconnect();
    this.#log.info({ reason, stalledMs: Math.round(stalledMs), held: ips }, "rejoining");
    this.#rejoinedAt = performance.now();
    this.#recordsFresh = false;
    void this.#relistRecords();
  }

  async #relistRecords(): Promise<void> {
    for (let attempt = 0; !this.#stopped; attempt++) {
      try {
        const list = await this.#api.get<{ items?: Record_[] }>(PATHS.ipAnnouncements);
        this.#listed.clear();
        for (const r of list.items ?? []) {
          const c = this.#checkedRecords.get(r);
          if (c?.status?.node) this.#listed.set(c.status.ip, c.status.node);
        }
        setTimeout(() => this.#listed.clear(), CLAIM_OVERLAY_MS).unref();
        break;
      } catch (err) {
        // The API server may be the thing we were cut off from: after a few tries, go on
        // with what the informer knows rather than announce nothing for a long time.
        this.#log.warn({ err: describeError(err), attempt }, "cannot list IP announcements");
        if (attempt >= 2) break;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    this.#recordsFresh = true;
    this.#schedule();
  }

  #recordSeen(r: Record_): void {
    const c = this.#checkedRecords.get(r);
    const ip = c?.status?.ip;
    const node = c?.status?.node;
    if (ip) {
      this.#listed.delete(ip);
      if (node === this.#o.node) this.#claims.delete(ip);
      else if (node && this.#current.has(ip)) {
        // Another node says it announces an IP we answer for: if we stay the owner, our
        // gratuitous ARP must win the clients back. Evaluated at once (two answerers).
        this.#contested.add(ip);
        this.#schedule();
        return;
      }
    }
    // Any other record only informs later choices.
    this.#scheduleBatched();
  }

  /** IP -> recorded owner: the records, a fresh list after a rejoin, our own claims. */
  #currentOwners(): Map<string, string> {
    const owners = new Map<string, string>();
    for (const r of this.#checkedRecords.list(this.#records.list())) {
      if (r.status?.node) owners.set(r.status.ip, r.status.node);
    }
    for (const [ip, node] of this.#listed) owners.set(ip, node);
    const now = performance.now();
    for (const [ip, at] of this.#claims) {
      if (now - at > CLAIM_OVERLAY_MS) this.#claims.delete(ip);
      else owners.set(ip, this.#o.node);
    }
    return owners;
  }

  /** The objects both modes decide from (Layer 2 and BGP), read once per evaluation. */
  #objects(): ClusterSnapshot {
    return clusterSnapshot({
      services: this.#services.list().filter((svc) => isOurs(svc, this.#o)),
      slices: this.#slices.list(),
      nodes: this.#nodes.list(),
      pools: this.#checkedPools.list(this.#pools.list()),
      ads: this.#checkedAds.list(this.#ads.list()),
      links: this.#membership.publishedLinks(),
    });
  }

  #decide(view: MembershipView, objects: ClusterSnapshot): Decision {
    if (!this.#recordsFresh) view.settled = false;
    return decide({
      ...objects,
      membership: view,
      currentOwners: this.#currentOwners(),
      held: new Set(this.#current.keys()),
      contested: this.#contested,
    });
  }

  /** Computes what this node should announce and makes the announcer do exactly that. */
  #reconcile(): void {
    // Input that waited while this process was stopped (a record, a conflict) can bring us
    // here before the stall timer runs: notice the stall first, so that we decide as a
    // rejoining speaker, not as an owner with nothing to fear.
    this.#membership.noticeStall();
    const view = this.#membership.view();
    const objects = this.#objects();
    const decision = this.#decide(view, objects);
    // BGP has no election: this node's own plan, from the same objects.
    this.#bgp?.reconcile(objects);
    this.#decided = decision.ips;
    this.#logReasons(decision);
    this.#reportOutsidePool(decision);
    const desired = this.#resolve(decision.mine);
    const handingOver = this.#handOver(objects, decision, desired);
    for (const [ip, ifaces] of this.#current) {
      if (handingOver.has(ip)) continue;
      const want = desired.get(ip);
      for (const ifname of ifaces) {
        if (!want?.interfaces.includes(ifname)) this.#announcer.withdraw(ip, ifname);
      }
      if (!want) {
        this.#current.delete(ip);
        this.#contested.delete(ip);
        this.#rejoinDeferred.delete(ip);
        this.#claimWindow.delete(ip);
        const owner = decision.ips.get(ip)?.owner;
        this.#log.info({ ip, owner }, "stopped announcing");
      } else {
        this.#current.set(
          ip,
          ifaces.filter((i) => want.interfaces.includes(i)),
        );
      }
    }
    // A peer died: whichever node answered our post-rejoin probes may be it, so what waited
    // for it is looked at again now (probed again) instead of after REJOIN_DEFER_MS.
    const live = view.live;
    if ([...this.#lastLive].some((n) => !live.has(n))) this.#rejoinDeferred.clear();
    this.#lastLive = live;
    const now = performance.now();
    for (const [ip, want] of desired) {
      if (this.#probing.has(ip)) continue;
      const until = this.#conflictUntil.get(ip);
      if (until !== undefined && until > now) continue;
      const deferred = (this.#rejoinDeferred.get(ip) ?? 0) > now;
      const cur = this.#current.get(ip) ?? [];
      const missing = want.interfaces.filter((i) => !cur.includes(i));
      const rejoined = performance.now() - this.#rejoinedAt < REJOIN_PROBE_WINDOW_MS;
      if (cur.length > 0 && want.gratuitous) {
        // After a rejoin our record may be the stale one: win clients back only if no other
        // node answers the IP now.
        if (!rejoined) this.#reannounce(ip, cur);
        else if (!deferred) void this.#probeThenReannounce(ip, cur);
      }
      if (missing.length === 0 || (cur.length === 0 && deferred)) continue;
      // An IP some ironlb node has announced before is a takeover: announce at once (the
      // failover budget has no room for a probe). A brand-new IP is probed first.
      // (A record with BGP advertisers only says nothing about Layer 2.)
      const known =
        decision.ips.get(ip)?.by === "current" || this.#recordFor(ip)?.status?.node !== undefined;
      const probed = this.#probed.get(ip);
      if (probed) {
        // Its probe found nobody: announce where it probed (the rest on the next pass).
        const on = missing.filter((i) => probed.includes(i));
        if (on.length > 0) this.#announce(ip, want, on);
      } else if (cur.length === 0 && !known && this.#o.probeMs > 0)
        void this.#probeThenAnnounce(ip, missing, this.#o.probeMs, false);
      else if (cur.length === 0 && rejoined)
        void this.#probeThenAnnounce(ip, missing, REJOIN_PROBE_MS, true);
      else this.#announce(ip, want, missing);
    }
    // Periodic gratuitous rounds where an L2Advertisement asks for them; the announcer
    // keeps the pace of an unchanged interval and forgets withdrawn IPs by itself.
    for (const [ip, ifaces] of this.#current) {
      const every = desired.get(ip)?.gratuitousIntervalMs;
      for (const ifname of ifaces) {
        try {
          this.#announcer.refreshEvery(ip, ifname, every);
        } catch (err) {
          this.#log.warn(
            { ip, interface: ifname, err: (err as Error).message },
            "cannot schedule periodic gratuitous ARP/NA",
          );
        }
      }
    }
    // A probe result is for the evaluation right after it: the world may move on.
    this.#probed.clear();
    this.#syncRecords(desired);
    this.#deleteStaleRecords(decision);
    this.#metrics.announced.set(this.#current.size);
    this.#metrics.liveSpeakers.set(this.#membership.live().size);
    this.onReconciled?.(this.#services.list(), this.#slices.list());
  }

  /**
   * Planned handover (DRAIN_ANNOTATION on this node): the IPs this node announces whose
   * decision now names another node are kept, answered as before (no gratuitous ARP, no
   * record write), until the new owner has them: its IPAnnouncement names it, or its
   * gratuitous ARP/NA claiming the IP was heard (#conflict), or HANDOVER_MAX_MS passed.
   * Clients therefore always have an answerer: both nodes for a moment, then the new owner
   * only; a drained node answers nothing after that. Other moves (a node dying, a
   * re-balance) are break-before-make as before: the old owner cannot help, or was asked to.
   */
  #handOver(
    objects: ClusterSnapshot,
    decision: Decision,
    desired: ReadonlyMap<string, Resolved>,
  ): Set<string> {
    const keep = new Set<string>();
    const mode = objects.nodes.find((n) => n.name === this.#o.node)?.drain;
    const drained = mode !== undefined;
    if (mode !== this.#drainMode) {
      // Said once per change: operators follow a drain in the speaker's log too.
      if (mode) this.#log.info({ mode }, "drained: handing over every IP another node can take");
      else this.#log.info("undrained: may announce again");
      this.#drainMode = mode;
    }
    const now = performance.now();
    for (const ip of this.#current.keys()) {
      const to = decision.ips.get(ip)?.owner;
      const h = this.#handover.get(ip);
      if (!drained || desired.has(ip) || to === undefined || to === this.#o.node) {
        this.#handover.delete(ip);
        continue;
      }
      const started = h?.to === to ? h : { since: now, to, heard: false };
      if (started !== h) {
        this.#handover.set(ip, started);
        this.#log.info({ ip, to, services: this.#servicesOf(ip) }, "drained: handing over");
        setTimeout(() => this.#schedule(), HANDOVER_MAX_MS + 5).unref();
      }
      const recorded = this.#listed.get(ip) ?? this.#recordFor(ip)?.status?.node;
      const evidence = recorded === to ? "record" : started.heard ? "claim heard" : undefined;
      const waited = now - started.since;
      if (evidence === undefined && waited < HANDOVER_MAX_MS) {
        keep.add(ip);
        continue;
      }
      this.#handover.delete(ip);
      const fields = { ip, to, evidence: evidence ?? "none", waitedMs: Math.round(waited) };
      if (evidence) this.#log.info(fields, "drained: handed over");
      else this.#log.warn(fields, "drained: new owner not seen in time, letting go anyway");
    }
    for (const ip of this.#handover.keys()) if (!this.#current.has(ip)) this.#handover.delete(ip);
    return keep;
  }

  /** Interfaces per IP on this host (explicit names or "auto" resolved against the host). */
  #resolve(mine: ReadonlyMap<string, Announcement>): Map<string, Resolved> {
    const out = new Map<string, Resolved>();
    if (mine.size === 0) return out;
    const host = (this.#o.hostInterfaces ?? hostInterfaces)(this.#links);
    for (const [ip, a] of mine) {
      const resolved = resolveInterfaces(a.interfaces, host, ip);
      if (resolved.unavailable.length > 0) {
        this.#log.warn(
          { services: a.services, ip, interfaces: resolved.unavailable },
          "configured interfaces are missing or down",
        );
      }
      const names = resolved.use.map((i) => i.name).sort();
      if (names.length > 0)
        out.set(ip, {
          interfaces: names,
          services: a.services,
          gratuitous: a.gratuitous,
          gratuitousIntervalMs: a.gratuitousIntervalMs,
        });
    }
    return out;
  }

  #logReasons(d: Decision): void {
    const seen = new Set<string>();
    for (const [ip, x] of d.ips) {
      seen.add(ip);
      // A drained node that keeps an IP says so (the owner only: one line, where it is).
      const kept = x.owner === this.#o.node ? x.drainKept : undefined;
      const why =
        x.reason ?? (d.deferred.has(ip) ? `not claimed yet: ${d.deferred.get(ip)}` : (kept ?? ""));
      const was = this.#lastReason.get(ip);
      if (was === why) continue;
      this.#lastReason.set(ip, why);
      // A reason that cleared is said too: otherwise the last line about this IP in the log
      // is why it was not announced, long after it is.
      if (was && !why)
        this.#log.info({ services: x.services, ip, was, owner: x.owner }, "IP announceable again");
      else if (x.reason)
        this.#log.info(
          { services: x.services, ip, reason: x.reason },
          "IP not announced by any node",
        );
      else if (d.deferred.has(ip))
        this.#log.info(
          { services: x.services, ip, reason: d.deferred.get(ip) },
          "not claiming yet",
        );
      else if (kept)
        this.#log.warn(
          { services: x.services, ip, reason: kept },
          "drained, but no other node can take this IP: still announcing it",
        );
    }
    for (const ip of this.#lastReason.keys()) if (!seen.has(ip)) this.#lastReason.delete(ip);
  }

  /**
   * Says once per (Service, IP, pool) that a status IP lies outside the pool the Service is
   * attributed to: a log line and the metric on every node, a Warning Event from the one
   * node the decision names (not one per node). Said again if it goes away and comes back.
   */
  #reportOutsidePool(d: Decision): void {
    const now = new Set<string>();
    for (const [ip, x] of d.ips) {
      for (const r of x.refused ?? []) {
        const key = `${r.service}|${ip}|${r.pool}`;
        now.add(key);
        if (this.#outsideReported.has(key)) continue;
        this.#outsideReported.add(key);
        this.#metrics.outsidePool.inc();
        this.#log.warn(
          { service: r.service, ip, pool: r.pool },
          "IP is outside the pool its Service names: not announced for that Service",
        );
        if (x.reportedBy !== this.#o.node) continue;
        const [ns, name] = r.service.split("/");
        const svc = this.#services.get(name ?? "", ns);
        if (!svc) continue;
        void this.#events.emit(
          serviceTarget(svc),
          "Warning",
          "IPNotInPool",
          `Not announced for this Service: ${r.reason}. ironlb's controller writes the status and this annotation together: one of them was written by someone else`,
        );
      }
    }
    for (const key of this.#outsideReported) if (!now.has(key)) this.#outsideReported.delete(key);
  }

  /** The record of `ip`, if there is one that passes the checks. */
  #recordFor(ip: string): IPAnnouncement | undefined {
    return this.#checkedRecords.get(this.#records.get(ipAnnouncementName(ip)));
  }

  #reannounce(ip: string, ifaces: string[]): void {
    for (const ifname of ifaces) {
      try {
        this.#announcer.reannounce(ip, ifname);
      } catch (err) {
        this.#log.warn(
          { ip, interface: ifname, err: (err as Error).message },
          "cannot re-announce",
        );
      }
    }
    this.#contested.delete(ip);
    this.#log.info({ ip, interfaces: ifaces }, "re-announcing: another node may have claimed it");
    // The record (ours again, if another node wrote its own) follows in #syncRecords.
  }

  /**
   * After a rejoin: the gratuitous burst for a held, contested IP goes out only if a short
   * probe finds no other node answering it. One that does answer took the IP over while we
   * were away, and its record is on its way; pulling clients back to us now would strand
   * them when we let go. Still contested, the IP is looked at again later.
   */
  async #probeThenReannounce(ip: string, ifaces: string[]): Promise<void> {
    if (this.#probing.has(ip)) return;
    this.#probing.add(ip);
    let other: string | null = null;
    try {
      const answers = await Promise.all(
        ifaces.map((i) => this.#announcer.probe(ip, i, REJOIN_PROBE_MS)),
      );
      other = answers.find((a) => a !== null) ?? null;
    } catch (err) {
      this.#log.warn({ ip, err: (err as Error).message }, "probe failed; re-announcing anyway");
    } finally {
      this.#probing.delete(ip);
    }
    if (this.#stopped) return;
    if (other !== null) {
      this.#log.info(
        { ip, mac: other, services: this.#servicesOf(ip) },
        "rejoined: another host answers this IP, not re-announcing it yet",
      );
      this.#rejoinDeferred.set(ip, performance.now() + REJOIN_DEFER_MS);
      setTimeout(() => this.#schedule(), REJOIN_DEFER_MS + 5).unref();
      return;
    }
    this.#rejoinDeferred.delete(ip);
    const still = this.#current.get(ip);
    if (still && this.#contested.has(ip)) {
      this.#reannounce(ip, still);
      this.#schedule(); // the evaluation writes our record back
    }
  }

  #announce(ip: string, want: { services: string[] }, ifaces: string[]): void {
    const cur = this.#current.get(ip) ?? [];
    for (const ifname of ifaces) {
      try {
        this.#announcer.announce(ip, ifname);
        cur.push(ifname);
      } catch (err) {
        this.#log.error({ ip, interface: ifname, err: (err as Error).message }, "cannot announce");
      }
    }
    if (cur.length === 0) return;
    const first = !this.#current.has(ip);
    this.#current.set(ip, cur.sort());
    this.#contested.delete(ip);
    if (!first) return;
    this.#log.info({ ip, interfaces: cur, services: want.services }, "announcing");
    for (const key of want.services) {
      const svc = this.#services.get(key.split("/")[1]!, key.split("/")[0]);
      if (!svc) continue;
      void this.#events.emit(
        serviceTarget(svc),
        "Normal",
        "NodeAnnouncing",
        `Node ${this.#o.node} announces ${ip} on ${cur.join(", ")}`,
      );
    }
  }

  /**
   * Level-triggered records: for every IP this node announces, the IPAnnouncement it wants
   * (this node, these interfaces, these Services) is compared with the one the informer
   * shows, and written when they differ. So a write that failed is tried again (with
   * backoff) while the IP stays held, and the Service list follows the Services that share
   * the IP: peers' stickiness and `ironlb status` read these records.
   */
  #syncRecords(desired: ReadonlyMap<string, { services: string[] }>): void {
    for (const ip of this.#recordWrites.keys())
      if (!this.#current.has(ip) && !this.#recordWrites.get(ip)?.inFlight)
        this.#recordWrites.delete(ip);
    // Being handed over: the new owner writes the record, ours must not overwrite it.
    for (const [ip, interfaces] of this.#current)
      if (!this.#handover.has(ip))
        this.#syncRecord(ip, interfaces, [...(desired.get(ip)?.services ?? [])].sort());
  }

  #syncRecord(ip: string, interfaces: string[], services: string[]): void {
    const prev = this.#recordFor(ip);
    const want = JSON.stringify([interfaces, services]);
    // As observed: the cache, unless the fresh list of a rejoin says another owner.
    const listed = this.#listed.get(ip);
    const ours =
      (listed === undefined || listed === this.#o.node) && prev?.status?.node === this.#o.node;
    const st = this.#recordWrites.get(ip) ?? { inFlight: false, failures: 0, notBefore: 0 };
    this.#recordWrites.set(ip, st);
    if (
      ours &&
      JSON.stringify([prev.status?.interfaces ?? [], prev.status?.services ?? []]) === want
    ) {
      st.written = undefined;
      return;
    }
    if (st.inFlight) return; // its end evaluates again
    // Another node's record on an IP still contested (after a rejoin: until a probe finds
    // no other node answering it): ours follows our gratuitous burst (#reannounce), never
    // precedes it, or that node would let go while clients still go to it.
    const other = listed ?? prev?.status?.node;
    if (other !== undefined && other !== this.#o.node && this.#contested.has(ip)) return;
    const now = performance.now();
    if (now < st.notBefore) return; // backing off: its timer evaluates again
    // Written, and the informer shows no change of the record since: on its way.
    const seenRv = prev?.metadata?.resourceVersion;
    if (
      st.written?.want === want &&
      st.written.seenRv === seenRv &&
      now - st.written.at < CLAIM_OVERLAY_MS
    )
      return;
    st.inFlight = true;
    this.#claims.set(ip, now);
    const name = ipAnnouncementName(ip);
    const status = {
      ip,
      node: this.#o.node,
      interfaces,
      services,
      since:
        (ours ? prev?.status?.since : undefined) ??
        st.since ??
        new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    };
    this.#putRecord(name, status).then(
      () => {
        st.inFlight = false;
        st.failures = 0;
        st.notBefore = 0;
        st.written = { want, seenRv, at: performance.now() };
        st.since = status.since;
        // What changed while the write was under way is written by the next evaluation.
        this.#scheduleBatched();
      },
      (err: unknown) => {
        st.inFlight = false;
        st.failures++;
        const delay = recordRetryDelayMs(st.failures, Math.random());
        st.notBefore = performance.now() + delay;
        // Without the record, peers go by the previous one: our claim must not outlive it.
        this.#claims.delete(ip);
        this.#log.warn(
          {
            ip,
            services,
            attempt: st.failures,
            retryInMs: Math.round(delay),
            err: describeError(err),
          },
          "could not record the announcement",
        );
        this.#schedule();
        setTimeout(() => this.#schedule(), delay + 1).unref();
      },
    );
  }

  /**
   * Writes a record of ours (merge patch, else create; one writer of these fields: the
   * owner). A merge patch leaves status.bgp, the BGP advertisers' entries, as it is.
   */
  async #putRecord(name: string, status: IPAnnouncementStatus): Promise<void> {
    try {
      await this.#api.mergePatch(`${PATHS.ipAnnouncements}/${name}`, { status });
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
      try {
        await this.#api.create(PATHS.ipAnnouncements, {
          apiVersion,
          kind: "IPAnnouncement",
          metadata: { name, labels: { "app.kubernetes.io/managed-by": "ironlb-speaker" } },
          status,
        });
      } catch (e) {
        // Made meanwhile (a node recording its BGP advertisement of the IP): ours goes in.
        if (httpStatus(e) !== 409) throw e;
        await this.#api.mergePatch(`${PATHS.ipAnnouncements}/${name}`, { status });
      }
    }
  }

  /** Records of ours for IPs no Service uses any more. */
  #deleteStaleRecords(d: Decision): void {
    for (const r of this.#checkedRecords.list(this.#records.list())) {
      const ip = r.status?.ip;
      if (!ip || r.status?.node !== this.#o.node || d.ips.has(ip)) continue;
      const name = r.metadata?.name;
      if (!name || this.#claims.has(ip)) continue;
      this.#claims.set(ip, performance.now()); // one delete in flight
      this.#api
        .delete(`${PATHS.ipAnnouncements}/${name}`)
        .catch((err: unknown) => {
          if (httpStatus(err) !== 404)
            this.#log.warn({ ip, err: describeError(err) }, "could not delete announcement record");
        })
        .finally(() => this.#claims.delete(ip));
    }
  }

  /**
   * Probes `ip` before announcing it. `rejoin`: after a rejoin, where an answer is most
   * likely the peer that took the IP over meanwhile: no conflict Event, just wait for the
   * records to say so (REJOIN_DEFER_MS) and decide again.
   */
  async #probeThenAnnounce(
    ip: string,
    ifaces: string[],
    probeMs: number,
    rejoin: boolean,
  ): Promise<void> {
    this.#probing.add(ip);
    try {
      const answers = await Promise.all(ifaces.map((i) => this.#announcer.probe(ip, i, probeMs)));
      const mac = answers.find((a) => a !== null);
      if (mac && rejoin) {
        this.#log.info(
          { ip, mac, services: this.#servicesOf(ip) },
          "rejoined: another host answers this IP, not claiming it yet",
        );
        this.#rejoinDeferred.set(ip, performance.now() + REJOIN_DEFER_MS);
        setTimeout(() => this.#schedule(), REJOIN_DEFER_MS + 5).unref();
        return;
      }
      if (mac) {
        this.#conflict({ ip, ifname: ifaces[answers.indexOf(mac)]!, mac, during: "probe" });
        return;
      }
    } catch (err) {
      this.#log.warn({ ip, err: (err as Error).message }, "probe failed; announcing anyway");
    } finally {
      this.#probing.delete(ip);
    }
    if (this.#stopped) return;
    // The world may have moved on during the probe: the next evaluation announces the IP
    // if it still wants it (one evaluation for all the probes that end together, not one
    // each: at 1,000 Services an evaluation is milliseconds and megabytes).
    this.#probed.set(ip, ifaces);
    this.#schedule();
  }

  #conflict(ev: ConflictEvent): void {
    const handover = this.#handover.get(ev.ip);
    if (ev.during !== "probe" && handover !== undefined) {
      // The new owner's takeover burst during a planned handover: expected, and the
      // evidence that lets this drained node go quiet (#handOver).
      handover.heard = true;
      this.#schedule();
      return;
    }
    this.#metrics.conflicts.inc();
    if (ev.during !== "probe") {
      // A claim on an IP we announce (another node's takeover we did not agree to, or a
      // stranger). Any LAN host can send these as fast as it likes: the rate limit comes
      // before anything that costs (formatting, logging, an evaluation).
      const now = performance.now();
      const win = this.#claimWindow.get(ev.ip);
      if (win !== undefined && now - win.at < CONTEST_REANNOUNCE_MS) {
        win.dropped++;
        return;
      }
      this.#claimWindow.set(ev.ip, { at: now, dropped: 0 });
      this.#log.warn(
        {
          ip: ev.ip,
          interface: ev.ifname,
          mac: ev.mac,
          during: ev.during,
          services: this.#servicesOf(ev.ip),
          // Claims on this IP the previous window dropped (neither logged nor answered).
          claimsNotLogged: win?.dropped ?? 0,
        },
        "address conflict",
      );
      // If we stay the owner, answer it once with gratuitous ARP (the evaluation does), so
      // that clients come back; two claimants cannot duel while their views converge.
      this.#contested.add(ev.ip);
      this.#schedule();
      return;
    }
    // Our own probe found the IP in use: once per probe, which conflictRetryMs spaces out.
    const services = this.#servicesOf(ev.ip);
    this.#log.warn(
      { ip: ev.ip, interface: ev.ifname, mac: ev.mac, during: ev.during, services },
      "address conflict",
    );
    this.#conflictUntil.set(ev.ip, performance.now() + this.#o.conflictRetryMs);
    for (const key of services) {
      const [ns, name] = key.split("/") as [string, string];
      const svc = this.#services.get(name, ns);
      if (!svc) continue;
      void this.#events.emit(
        serviceTarget(svc),
        "Warning",
        "IPConflict",
        `Node ${this.#o.node} did not announce ${ev.ip}: host ${ev.mac} on ${ev.ifname} already uses it; retrying in ${Math.round(this.#o.conflictRetryMs / 1000)} s`,
      );
    }
    setTimeout(() => this.#schedule(), this.#o.conflictRetryMs).unref();
  }

  /** The Services ("ns/name") using `ip` at the last evaluation: a lookup, not a walk. */
  #servicesOf(ip: string): readonly string[] {
    return this.#decided.get(ip)?.services ?? [];
  }
}

/** The addresses of a pool that fails its checks, when they are strings: still its IPs. */
function salvagePool(obj: KubernetesObject): IPAddressPool | undefined {
  const addresses = salvagedAddresses(obj);
  if (addresses.length === 0 || !obj.metadata?.name) return undefined;
  return {
    apiVersion,
    kind: "IPAddressPool",
    metadata: { name: obj.metadata.name, labels: obj.metadata.labels ?? {} },
    spec: { addresses },
  } as IPAddressPool;
}

/**
 * This host's interfaces with link state (os.networkInterfaces() has addresses only): from
 * the link events when there are any, else from /sys.
 */
function hostInterfaces(links?: ReadonlyMap<string, boolean>): HostInterface[] {
  const os = networkInterfaces();
  const up = new Set<string>();
  for (const name of Object.keys(os)) {
    const known = links?.get(name);
    if (known !== undefined) {
      if (known) up.add(name);
      continue;
    }
    try {
      const state = readFileSync(`/sys/class/net/${name}/operstate`, "utf8").trim();
      // veth and many virtual links report "unknown" while passing traffic.
      if (state === "up" || state === "unknown") up.add(name);
    } catch {
      // interface vanished meanwhile
    }
  }
  return fromOsNetworkInterfaces(os, up);
}
