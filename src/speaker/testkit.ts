// Pieces for in-process tests of the speaker: a frame socket in memory and a membership of
// one live node; a LAN in memory, a shared membership and a cluster of real Speakers on the
// stateful fake API server (SpeakerCluster). Not in the production build
// (tsconfig.build.json excludes testkit.ts).
import type { V1Service } from "@kubernetes/client-node";
import pino from "pino";
import { apiVersion } from "../api/group.ts";
import { ANNOTATIONS } from "../api/service.ts";
import { PATHS, SERVICE_NAME_LABEL } from "../api/vocabulary.ts";
import { KubeClient } from "../k8s/client.ts";
import { FakeCluster, waitUntil } from "../k8s/fake-cluster.ts";

export { waitUntil };

import { Announcer } from "../layer2/announcer.ts";
import type { FrameSocket, PacketSocketKind } from "../layer2/packet-socket.ts";
import { PACKET_BROADCAST } from "../layer2/packet-socket.ts";
import type { MembershipView } from "./decision.ts";
import { type Membership, Membership as RealMembership, type RejoinReason } from "./membership.ts";
import { speakerMetrics } from "./metrics.ts";
import { ipAnnouncementName, Speaker } from "./speaker.ts";

/** A packet socket in memory: frames sent are kept in `sent`, `deliver` plays one received. */
export class MemorySocket implements FrameSocket {
  readonly listeners = new Set<(f: Buffer, t: number) => void>();
  readonly ifname: string;
  readonly kind: PacketSocketKind;
  readonly mac: string;
  readonly sent: Buffer[];
  constructor(
    ifname: string,
    kind: PacketSocketKind,
    sent: Buffer[] = [],
    mac = "02:00:00:00:01:00",
  ) {
    this.ifname = ifname;
    this.kind = kind;
    this.sent = sent;
    this.mac = mac;
  }
  send(frame: Buffer): void {
    this.sent.push(frame);
  }
  onFrame(l: (f: Buffer, t: number) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  close(): void {}
  deliver(frame: Buffer): void {
    for (const l of this.listeners) l(frame, PACKET_BROADCAST);
  }
}

/** Membership stubbed to `node` alone, live, settled, with quorum: no peers, no heartbeats. */
export function soloMembership(node: string): Membership {
  const view: MembershipView = { self: node, live: new Set([node]), settled: true, quorum: true };
  return {
    onChange: () => {},
    onRejoin: () => {},
    noticeStall: () => {},
    linkRejoin: () => {},
    view: () => ({ ...view }),
    live: () => view.live,
    publishLinks: () => undefined,
    publishedLinks: () => new Map<string, string>(),
  } as unknown as Membership;
}

/**
 * One Ethernet segment in memory: a frame sent by one node's socket reaches every other
 * socket of the same kind (ARP or NDP) on the segment, on a later turn of the event loop
 * (as a real LAN does: never inside the sender's call). `hosts` play other machines.
 */
export class Lan {
  readonly #sockets = new Set<LanSocket>();
  readonly #unplugged = new Set<string>();
  /** Every frame that went on the wire, with the sender's MAC. */
  readonly wire: { from: string; frame: Buffer }[] = [];
  /** Other hosts on the segment: see every frame, may answer with `inject`. */
  readonly hosts: ((frame: Buffer, kind: PacketSocketKind) => void)[] = [];

  socket(ifname: string, kind: PacketSocketKind, mac: string): MemorySocket {
    const s = new LanSocket(this, ifname, kind, mac);
    this.#sockets.add(s);
    return s;
  }

  /** The cable of the node with this MAC out (true) or back in (false). */
  unplug(mac: string, out = true): void {
    if (out) this.#unplugged.add(mac);
    else this.#unplugged.delete(mac);
  }

  /** A frame from a host that is not a node (a stranger, a router). */
  inject(frame: Buffer, kind: PacketSocketKind): void {
    this.#carry(undefined, frame, kind);
  }

  /** @internal */
  send(from: LanSocket, frame: Buffer): void {
    if (this.#unplugged.has(from.mac)) return;
    this.#carry(from, frame, from.kind);
  }

  /** @internal */
  closed(s: LanSocket): void {
    this.#sockets.delete(s);
  }

  #carry(from: LanSocket | undefined, frame: Buffer, kind: PacketSocketKind): void {
    this.wire.push({ from: from?.mac ?? "stranger", frame });
    setImmediate(() => {
      for (const s of this.#sockets)
        if (s !== from && s.kind === kind && !this.#unplugged.has(s.mac)) s.deliver(frame);
      if (from) for (const h of this.hosts) h(frame, kind);
    });
  }
}

class LanSocket extends MemorySocket {
  readonly #lan: Lan;
  constructor(lan: Lan, ifname: string, kind: PacketSocketKind, mac: string) {
    super(ifname, kind, [], mac);
    this.#lan = lan;
  }
  override send(frame: Buffer): void {
    super.send(frame);
    this.#lan.send(this, frame);
  }
  override close(): void {
    this.#lan.closed(this);
  }
}

/**
 * The membership of several speakers in one process, as the test says: who is live, and
 * a rejoin when the test plays one (a stall, a link back). Every member sees the same
 * live set (heartbeats converged), settled and with quorum.
 */
export class MembershipGroup {
  readonly #members = new Map<string, { m: Membership; live: Set<string> }>();

  member(node: string): Membership {
    for (const x of this.#members.values()) x.live.add(node);
    const live = new Set([...this.#members.keys(), node]);
    const m = {
      onChange: () => {},
      onRejoin: () => {},
      noticeStall: () => {},
      linkRejoin: () => {},
      view: (): MembershipView => ({
        self: node,
        live: new Set(live),
        settled: true,
        quorum: true,
      }),
      live: () => new Set(live),
      // What each member's Speaker publishes of its links (links.ts), as peers read it.
      publishLinks: () => undefined,
      publishedLinks: () => this.#links(),
    } as unknown as Membership;
    this.#members.set(node, { m, live });
    return m;
  }

  /** Each member's published links (its Speaker sets `publishLinks`), as Leases carry them. */
  #links(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [name, { m }] of this.#members) {
      const text = m.publishLinks();
      if (text !== undefined) out.set(name, text);
    }
    return out;
  }

  /**
   * Sets the live nodes as `members` (default: every member) see them; they hear of it.
   * A member left out keeps its view: a stalled node has not noticed anything yet.
   */
  setLive(nodes: readonly string[], members?: readonly string[]): void {
    for (const [name, x] of this.#members) {
      if (members && !members.includes(name)) continue;
      x.live.clear();
      for (const n of nodes) x.live.add(n);
      x.m.onChange();
    }
  }

  /** `node` comes back from a stall or an isolation (what Membership.#rejoin calls). */
  rejoin(node: string, reason: RejoinReason, ms = 2000): void {
    const x = this.#members.get(node);
    x?.m.onRejoin(reason, ms);
    x?.m.onChange();
  }
}

/** One speaker of a SpeakerCluster, with what the test looks at. */
export interface SpeakerNode {
  name: string;
  mac: string;
  speaker: Speaker;
  announcer: Announcer;
  /** The real Membership when started with `leaseMs`. */
  membership?: Membership;
  /** Link state of its one interface, eth0 (what its host reports and onLinks said). */
  links: Map<string, boolean>;
  /** Its log, one object per line. */
  lines: Record<string, unknown>[];
  /** The Services its informer held at each evaluation (the canary barrier reads it). */
  lastServices: readonly V1Service[];
  stopped: boolean;
}

export interface SpeakerNodeOptions {
  probeMs?: number;
  conflictRetryMs?: number;
  /**
   * The real Membership by Leases (no UDP heartbeats) with this Lease duration, ms,
   * instead of the MembershipGroup: who is live is then what the Leases say.
   */
  leaseMs?: number;
}

/**
 * Several real Speakers in one process: their informers on one stateful fake API server,
 * their announcers on one LAN in memory, membership as the test sets it. Nothing but the
 * packet sockets, the host's interface list and the heartbeats is replaced.
 */
export class SpeakerCluster {
  readonly api = new FakeCluster();
  readonly lan = new Lan();
  readonly group = new MembershipGroup();
  readonly nodes = new Map<string, SpeakerNode>();
  #canaries = 0;

  async start(): Promise<void> {}

  /** Puts a Ready Node object (a node exists before its speaker runs). */
  putNode(
    name: string,
    labels: Record<string, string> = {},
    annotations: Record<string, string> = {},
  ): void {
    this.api.put(PATHS.nodes, {
      metadata: { name, labels: { "kubernetes.io/hostname": name, ...labels }, annotations },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    });
  }

  /** Starts the speaker of `name` (its Node object must exist for it to be eligible). */
  async startSpeaker(name: string, o: SpeakerNodeOptions = {}): Promise<SpeakerNode> {
    const i = this.nodes.size + 1;
    const mac = `02:00:00:00:00:${i.toString(16).padStart(2, "0")}`;
    const links = new Map([["eth0", true]]);
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s)) });
    const announcer = new Announcer({
      openSocket: (ifname, kind) => this.lan.socket(ifname, kind, mac),
      kernelFilter: false,
      replyLimits: false,
    });
    const api = new KubeClient({ server: await this.api.endpoint(name) });
    const real =
      o.leaseMs === undefined
        ? undefined
        : new RealMembership(
            api,
            {
              node: name,
              namespace: "ironlb",
              leaseDurationMs: o.leaseMs,
              renewIntervalMs: Math.round(o.leaseMs / 5),
            },
            log,
          );
    await real?.start();
    const speaker = new Speaker(
      api,
      {
        node: name,
        probeMs: o.probeMs ?? 0,
        conflictRetryMs: o.conflictRetryMs ?? 60_000,
        lbClass: "ironlb.dev/lb",
        handleUnclassed: true,
        hostInterfaces: () => [
          {
            name: "eth0",
            up: links.get("eth0") ?? true,
            virtual: false,
            mac,
            addresses: [
              {
                address: `192.0.2.${200 + i}`,
                family: "IPv4",
                internal: false,
                cidr: `192.0.2.${200 + i}/24`,
              },
            ],
          },
        ],
      },
      announcer,
      real ?? this.group.member(name),
      speakerMetrics(),
      log,
    );
    const node: SpeakerNode = {
      name,
      mac,
      speaker,
      announcer,
      ...(real ? { membership: real } : {}),
      links,
      lines,
      lastServices: [],
      stopped: false,
    };
    speaker.onReconciled = (services) => {
      node.lastServices = services;
    };
    this.nodes.set(name, node);
    await speaker.start();
    return node;
  }

  /** The speaker dies (its process ends): it answers nothing more. */
  async kill(name: string): Promise<void> {
    const n = this.nodes.get(name);
    if (!n || n.stopped) return;
    n.stopped = true;
    await n.speaker.stop();
    await n.membership?.stop();
    n.announcer.close();
  }

  async close(): Promise<void> {
    for (const n of this.nodes.keys()) await this.kill(n);
    await this.api.close();
  }

  /** The nodes whose announcer answers for `ip` now, sorted. */
  announcing(ip: string): string[] {
    return [...this.nodes.values()]
      .filter((n) => !n.stopped && n.announcer.isAnnounced(ip))
      .map((n) => n.name)
      .sort();
  }

  /** The node the IPAnnouncement of `ip` names, if there is one. */
  recordOf(ip: string): string | undefined {
    const r = this.api.get<{ status?: { node?: string } }>(
      PATHS.ipAnnouncements,
      ipAnnouncementName(ip),
    );
    return r?.status?.node;
  }

  /** Events written, as "reason object: message" (the object's namespace/name). */
  events(reason?: string): { reason: string; object: string; message: string; host: string }[] {
    return this.api
      .list<{
        reason: string;
        message: string;
        involvedObject: { namespace?: string; name: string };
        source: { host: string };
      }>("/api/v1/events")
      .filter((e) => reason === undefined || e.reason === reason)
      .map((e) => ({
        reason: e.reason,
        object: `${e.involvedObject.namespace}/${e.involvedObject.name}`,
        message: e.message,
        host: e.source.host,
      }));
  }

  /**
   * A barrier instead of a sleep: a canary Service (not ours, with an IP) is written, and this returns
   * once every running speaker has evaluated with it in its cache, so every change of the
   * Services written before has been evaluated too. Twice, so that what the first evaluation
   * started (a record written, a probe of 0 ms) has been seen by the second.
   */
  async settle(rounds = 2): Promise<void> {
    for (let round = 0; round < rounds; round++) {
      const name = `canary-${++this.#canaries}`;
      // Another implementation's LoadBalancer, with an IP in its status: speakers skip the
      // events of Services without one.
      this.api.put(PATHS.services, {
        metadata: { name, namespace: "barrier" },
        spec: { type: "LoadBalancer", loadBalancerClass: "example.com/other" },
        status: { loadBalancer: { ingress: [{ ip: "203.0.113.254" }] } },
      });
      await waitUntil(() =>
        [...this.nodes.values()].every(
          (n) => n.stopped || n.lastServices.some((s) => s.metadata?.name === name),
        ),
      );
    }
  }
}

// Objects of the scenarios: pool "lan", its advertisement, Services in namespace "shop".
export const pool = (addresses = ["192.0.2.0/28"]) => ({
  apiVersion,
  kind: "IPAddressPool",
  metadata: { name: "lan" },
  spec: { addresses },
});
export const advertisement = (nodeSelectors?: unknown[]) => ({
  apiVersion,
  kind: "L2Advertisement",
  metadata: { name: "lan" },
  spec: { ipAddressPools: ["lan"], ...(nodeSelectors ? { nodeSelectors } : {}) },
});
export const service = (name: string, ip: string, policy: "Cluster" | "Local" = "Cluster") => ({
  metadata: {
    name,
    namespace: "shop",
    annotations: { [ANNOTATIONS.allocatedFromPool]: "lan" },
  },
  spec: {
    type: "LoadBalancer",
    externalTrafficPolicy: policy,
    ports: [{ port: 80, protocol: "TCP" }],
  },
  status: { loadBalancer: { ingress: [{ ip }] } },
});
/** The EndpointSlice of `svc` with one ready endpoint on each of `nodes`. */
export const slice = (svc: string, nodes: string[]) => ({
  metadata: { name: `${svc}-1`, namespace: "shop", labels: { [SERVICE_NAME_LABEL]: svc } },
  addressType: "IPv4",
  endpoints: nodes.map((n, i) => ({
    addresses: [`10.0.0.${i + 1}`],
    conditions: { ready: true },
    nodeName: n,
  })),
});
