// The speaker: on every node, decides for each assigned Service IP whether this node is
// the one to announce it (same deterministic answer on every node, no coordination), and
// drives the ARP/NDP announcer accordingly. Kubernetes objects come in through informers;
// the decision itself is the pure eligibility + election code next to this file.
import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import type { KubernetesObject, V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";
import { group, version } from "../api/group.ts";
import type { IPAddressPool } from "../api/ipaddresspool.ts";
import type { L2Advertisement } from "../api/l2advertisement.ts";
import { ANNOTATIONS, type ClassFilter, isOurs, statusIPs } from "../api/service.ts";
import type { Announcer, ConflictEvent } from "../arp/announcer.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError } from "../k8s/errors.ts";
import { EventRecorder, serviceTarget } from "../k8s/events.ts";
import { Informer } from "../k8s/informer.ts";
import { parseIP } from "../net/address.ts";
import { parseAddressEntry } from "../net/range.ts";
import type { Logger } from "../observability/log.ts";
import { chooseOwner } from "./election.ts";
import {
  countReadyEndpoints,
  eligibleNodes,
  type L2AdvertisementInfo,
  type NodeInfo,
} from "./eligibility.ts";
import { fromOsNetworkInterfaces, type HostInterface, resolveInterfaces } from "./interfaces.ts";
import type { Membership } from "./membership.ts";
import type { SpeakerMetrics } from "./metrics.ts";

/** Annotation the announcing speaker puts on a Service: which node answers for its IPs. */
export const ANNOUNCING_NODE_ANNOTATION = "ironlb.dev/announcing-node";

export interface SpeakerOptions extends ClassFilter {
  node: string;
  /** How long to probe an IP nobody announced before (RFC 5227), ms; 0 = no probe. */
  probeMs: number;
  /** After a conflict, wait this long before probing the IP again, ms. */
  conflictRetryMs: number;
}

interface Desired {
  /** Interfaces this node announces the IP on. */
  interfaces: string[];
  /** Services using the IP (shared IPs have several). */
  services: V1Service[];
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
  /** What this node announces now: ip -> interfaces. */
  readonly #current = new Map<string, string[]>();
  /** IPs being probed before their first announcement. */
  readonly #probing = new Set<string>();
  /** IPs found in use by another host: not announced before this time. */
  readonly #conflictUntil = new Map<string, number>();
  /** Last reason logged per Service for not being announced by anyone (avoid log floods). */
  readonly #lastReason = new Map<string, string>();
  /** Called after every reconcile with what the informers hold (the forwarder listens). */
  onReconciled?: (services: readonly V1Service[], slices: readonly V1EndpointSlice[]) => void;
  #scheduled = false;
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
    const poke = {
      add: () => this.#schedule(),
      update: () => this.#schedule(),
      delete: () => this.#schedule(),
    };
    this.#services = new Informer(api, "/api/v1/services", poke, log);
    this.#slices = new Informer(api, "/apis/discovery.k8s.io/v1/endpointslices", poke, log);
    this.#nodes = new Informer(api, "/api/v1/nodes", poke, log);
    this.#pools = new Informer(api, `/apis/${group}/${version}/ipaddresspools`, poke, log);
    this.#ads = new Informer(api, `/apis/${group}/${version}/l2advertisements`, poke, log);
    membership.onChange = () => this.#schedule();
    announcer.on("conflict", (ev: ConflictEvent) => this.#conflict(ev));
    announcer.on("error", (err: Error, ifname: string) =>
      this.#log.warn({ err: err.message, interface: ifname }, "packet I/O error"),
    );
  }

  get ready(): boolean {
    return this.#synced;
  }

  async start(): Promise<void> {
    const all = [this.#services, this.#slices, this.#nodes, this.#pools, this.#ads];
    await Promise.all(all.map((i) => i.start()));
    await Promise.all(all.map((i) => i.synced()));
    this.#synced = true;
    this.#schedule();
    // Lease expiry produces no event: re-evaluate now and then even when nothing changes.
    this.#retryTimer = setInterval(() => this.#schedule(), 1000);
    this.#retryTimer.unref();
  }

  /** Withdraws everything (no gratuitous "goodbye": the next owner's burst replaces us). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#retryTimer);
    for (const ip of this.#current.keys()) this.#announcer.withdraw(ip);
    this.#current.clear();
    await Promise.all(
      [this.#services, this.#slices, this.#nodes, this.#pools, this.#ads].map((i) => i.stop()),
    );
  }

  /** Coalesces bursts of events into one evaluation on the next turn of the event loop. */
  #schedule(): void {
    if (this.#scheduled || !this.#synced || this.#stopped) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      try {
        this.#reconcile();
      } catch (err) {
        this.#log.error({ err }, "announcement reconcile failed");
      }
    });
  }

  /** Computes what this node should announce and makes the announcer do exactly that. */
  #reconcile(): void {
    const desired = this.#desired();
    for (const [ip, ifaces] of this.#current) {
      const want = desired.get(ip);
      for (const ifname of ifaces) {
        if (!want?.interfaces.includes(ifname)) this.#announcer.withdraw(ip, ifname);
      }
      if (!want) {
        this.#current.delete(ip);
        this.#log.info({ ip }, "stopped announcing");
      }
    }
    const now = Date.now();
    for (const [ip, want] of desired) {
      if (this.#probing.has(ip)) continue;
      const until = this.#conflictUntil.get(ip);
      if (until !== undefined && until > now) continue;
      const cur = this.#current.get(ip) ?? [];
      const missing = want.interfaces.filter((i) => !cur.includes(i));
      if (missing.length === 0) continue;
      // An IP some ironlb node has announced before is a takeover: announce at once (the
      // failover budget has no room for a probe). A brand-new IP is probed first.
      const known = want.services.some(
        (s) => s.metadata?.annotations?.[ANNOUNCING_NODE_ANNOTATION],
      );
      if (cur.length === 0 && !known && this.#o.probeMs > 0)
        void this.#probeThenAnnounce(ip, want, missing);
      else this.#announce(ip, want, missing);
    }
    this.#metrics.announced.set(this.#current.size);
    this.#metrics.liveSpeakers.set(this.#membership.live().size);
    this.onReconciled?.(this.#services.list(), this.#slices.list());
  }

  #desired(): Map<string, Desired> {
    const out = new Map<string, Desired>();
    // Peers no longer count this node (see Membership.selfHealthy): they have taken over.
    if (!this.#membership.selfHealthy()) return out;
    const live = this.#membership.live();
    const nodes: NodeInfo[] = this.#nodes.list().map(nodeInfo);
    const ads: L2AdvertisementInfo[] = this.#ads
      .list()
      .map((a) => ({ name: a.metadata?.name ?? "", ...(a.spec ?? {}) }));
    const pools = this.#pools.list();
    const slicesBySvc = new Map<string, V1EndpointSlice[]>();
    for (const s of this.#slices.list()) {
      const svc = s.metadata?.labels?.["kubernetes.io/service-name"];
      if (!svc) continue;
      const key = `${s.metadata?.namespace}/${svc}`;
      const list = slicesBySvc.get(key) ?? [];
      list.push(s);
      slicesBySvc.set(key, list);
    }
    let host: HostInterface[] | undefined;
    for (const svc of this.#services.list()) {
      if (!isOurs(svc, this.#o)) continue;
      const key = `${svc.metadata?.namespace}/${svc.metadata?.name}`;
      for (const ip of statusIPs(svc)) {
        const pool = poolFor(svc, ip, pools);
        if (!pool) continue;
        const family = ip.includes(":") ? "IPv6" : "IPv4";
        const result = eligibleNodes({
          nodes,
          liveSpeakers: live,
          l2Advertisements: ads,
          pool: { name: pool.metadata?.name ?? "", labels: pool.metadata?.labels ?? {} },
          service: {
            externalTrafficPolicy:
              svc.spec?.externalTrafficPolicy === "Local" ? "Local" : "Cluster",
            endpoints: countReadyEndpoints(slicesBySvc.get(key) ?? [], family),
          },
        });
        if (result.reason) {
          if (this.#lastReason.get(`${key}|${ip}`) !== result.reason) {
            this.#lastReason.set(`${key}|${ip}`, result.reason);
            this.#log.info(
              { service: key, ip, reason: result.reason },
              "IP not announced by any node",
            );
          }
          continue;
        }
        this.#lastReason.delete(`${key}|${ip}`);
        const owner = chooseOwner(
          ip,
          result.nodes.map((n) => n.name),
        );
        if (owner !== this.#o.node) continue;
        const me = result.nodes.find((n) => n.name === this.#o.node)!;
        host ??= hostInterfaces();
        const resolved = resolveInterfaces(me.interfaces, host, ip);
        if (resolved.unavailable.length > 0) {
          this.#log.warn(
            { service: key, ip, interfaces: resolved.unavailable },
            "configured interfaces are missing or down",
          );
        }
        const names = resolved.use.map((i) => i.name);
        if (names.length === 0) continue;
        const d = out.get(ip) ?? { interfaces: [], services: [] };
        d.interfaces = [...new Set([...d.interfaces, ...names])].sort();
        d.services.push(svc);
        out.set(ip, d);
      }
    }
    return out;
  }

  #announce(ip: string, want: Desired, ifaces: string[]): void {
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
    this.#current.set(ip, cur);
    if (!first) return;
    this.#log.info({ ip, interfaces: cur, services: want.services.map(keyOf) }, "announcing");
    for (const svc of want.services) {
      void this.#events.emit(
        serviceTarget(svc),
        "Normal",
        "NodeAnnouncing",
        `Node ${this.#o.node} announces ${ip} on ${cur.join(", ")}`,
      );
      if (svc.metadata?.annotations?.[ANNOUNCING_NODE_ANNOTATION] !== this.#o.node) {
        this.#api
          .mergePatch(
            `/api/v1/namespaces/${svc.metadata!.namespace}/services/${svc.metadata!.name}`,
            {
              metadata: { annotations: { [ANNOUNCING_NODE_ANNOTATION]: this.#o.node } },
            },
          )
          .catch((err: unknown) =>
            this.#log.warn(
              { service: keyOf(svc), err: describeError(err) },
              "could not annotate service",
            ),
          );
      }
    }
  }

  async #probeThenAnnounce(ip: string, want: Desired, ifaces: string[]): Promise<void> {
    this.#probing.add(ip);
    try {
      const answers = await Promise.all(
        ifaces.map((i) => this.#announcer.probe(ip, i, this.#o.probeMs)),
      );
      const mac = answers.find((a) => a !== null);
      if (mac) {
        this.#conflict(
          { ip, ifname: ifaces[answers.indexOf(mac)]!, mac, during: "probe" },
          want.services,
        );
        return;
      }
    } catch (err) {
      this.#log.warn({ ip, err: (err as Error).message }, "probe failed; announcing anyway");
    } finally {
      this.#probing.delete(ip);
    }
    if (this.#stopped) return;
    // The world may have moved on during the probe: only announce if still wanted.
    const still = this.#desired().get(ip);
    if (still)
      this.#announce(
        ip,
        still,
        still.interfaces.filter((i) => ifaces.includes(i)),
      );
    this.#schedule();
  }

  #conflict(ev: ConflictEvent, services?: V1Service[]): void {
    this.#metrics.conflicts.inc();
    const svcs = services ?? this.#servicesWithIP(ev.ip);
    this.#log.warn(
      {
        ip: ev.ip,
        interface: ev.ifname,
        mac: ev.mac,
        during: ev.during,
        services: svcs.map(keyOf),
      },
      "address conflict",
    );
    if (ev.during !== "probe") return; // a claim on an announced IP: logged and counted; we keep answering
    this.#conflictUntil.set(ev.ip, Date.now() + this.#o.conflictRetryMs);
    for (const svc of svcs) {
      void this.#events.emit(
        serviceTarget(svc),
        "Warning",
        "IPConflict",
        `Node ${this.#o.node} did not announce ${ev.ip}: host ${ev.mac} on ${ev.ifname} already uses it; retrying in ${Math.round(this.#o.conflictRetryMs / 1000)} s`,
      );
    }
    setTimeout(() => this.#schedule(), this.#o.conflictRetryMs).unref();
  }

  #servicesWithIP(ip: string): V1Service[] {
    return this.#services.list().filter((s) => statusIPs(s).includes(ip));
  }
}

function nodeInfo(n: V1Node): NodeInfo {
  const cond = (type: string) =>
    n.status?.conditions?.find((c) => c.type === type)?.status as NodeInfo["ready"];
  const info: NodeInfo = { name: n.metadata?.name ?? "", labels: n.metadata?.labels ?? {} };
  const ready = cond("Ready");
  const netUnavailable = cond("NetworkUnavailable");
  if (ready) info.ready = ready;
  if (netUnavailable) info.networkUnavailable = netUnavailable;
  return info;
}

/** The pool an IP came from: the controller's annotation, else the pool whose range holds it. */
function poolFor(svc: V1Service, ip: string, pools: readonly (IPAddressPool & KubernetesObject)[]) {
  const named = svc.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool];
  if (named) {
    const p = pools.find((x) => x.metadata?.name === named);
    if (p) return p;
  }
  const addr = parseIP(ip);
  if (!addr) return undefined;
  return pools.find((p) =>
    (p.spec?.addresses ?? []).some((e) => {
      const entry = parseAddressEntry(e);
      return (
        entry !== undefined &&
        entry.family === addr.family &&
        entry.first <= addr.value &&
        addr.value <= entry.last
      );
    }),
  );
}

/** This host's interfaces with link state (os.networkInterfaces() has addresses only). */
function hostInterfaces(): HostInterface[] {
  const os = networkInterfaces();
  const up = new Set<string>();
  for (const name of Object.keys(os)) {
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

function keyOf(svc: V1Service): string {
  return `${svc.metadata?.namespace}/${svc.metadata?.name}`;
}
