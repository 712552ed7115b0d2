// BGP mode on one node: the Kubernetes edge around the pure plan (bgp-plan.ts) and the
// sessions (bgp-backend.ts). It watches BGPPeers, BGPAdvertisements and this node's
// BGPSessionStates; the Speaker calls `reconcile` on every evaluation with the Services,
// EndpointSlices, Nodes and pools it has already read, so that Layer 2 and BGP work from
// one snapshot side by side (a pool may have both kinds of advertisement). With a BFD
// runner it also watches BFDProfiles and gives each peer naming one its BFD settings.
// A peer's passwordSecret is read from this namespace's Secrets (bgp-passwords.ts).
import type { KubernetesObject } from "@kubernetes/client-node";
import { type BFDProfile, type BFDProfileSpec, parseBFDProfile } from "../api/bfdprofile.ts";
import { type BGPAdvertisement, parseBGPAdvertisement } from "../api/bgpadvertisement.ts";
import { type BGPPeer, parseBGPPeer } from "../api/bgppeer.ts";
import type { IPAnnouncement } from "../api/ipannouncement.ts";
import { PATHS } from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import type { EventRecorder } from "../k8s/events.ts";
import { Informer } from "../k8s/informer.ts";
import { parseIP } from "../net/address.ts";
import type { Logger } from "../observability/log.ts";
import { BgpBackend, type BgpSessionFactory, type DesiredPeer } from "./bgp-backend.ts";
import { type BfdRunnerFactory, resolveBfd } from "./bgp-bfd.ts";
import { PasswordSecrets } from "./bgp-passwords.ts";
import { type BgpPlan, planBgp } from "./bgp-plan.ts";
import { advertisedPeers, BgpRecords } from "./bgp-records.ts";
import { BGP_SESSION_STATES_PATH, BgpStatus, type SessionStateObject } from "./bgp-status.ts";
import { Checked } from "./checked.ts";
import type { ObjectInputs } from "./decision.ts";
import type { SpeakerMetrics } from "./metrics.ts";

const PEERS_PATH = PATHS.bgpPeers;
const ADS_PATH = PATHS.bgpAdvertisements;
const PROFILES_PATH = PATHS.bfdProfiles;

export interface BgpModeOptions {
  node: string;
  /** This node's address (status.hostIP): its router ID when IPv4 and a peer sets none. */
  nodeAddress?: string;
  sessions: BgpSessionFactory;
  /** Makes the BFD runner (src/bfd), on the first peer with a bfdProfile; absent: no BFD. */
  bfd?: BfdRunnerFactory;
  /** The speaker's namespace: where BGPPeers' passwordSecrets are read. */
  namespace?: string;
  /**
   * The IPAnnouncements (checked) as the speaker's informer shows them: this node's BGP
   * entries there follow the plan (bgp-records.ts). Absent: not recorded.
   */
  records?: () => readonly IPAnnouncement[];
  /**
   * Drained node: how long its routes carry the graceful-shutdown community before they are
   * withdrawn, ms (routers need that long to prefer the other nodes' paths). Default 5 s.
   */
  drainDelayMs?: number;
}

export const DEFAULT_BGP_DRAIN_DELAY_MS = 5000;

export class BgpMode {
  readonly #o: BgpModeOptions;
  readonly #api: KubeClient;
  readonly #log: Logger;
  readonly #peers: Informer<BGPPeer & KubernetesObject>;
  readonly #ads: Informer<BGPAdvertisement & KubernetesObject>;
  readonly #states: Informer<SessionStateObject>;
  readonly #checkedPeers: Checked<BGPPeer>;
  readonly #checkedAds: Checked<BGPAdvertisement>;
  readonly #profiles: Informer<BFDProfile & KubernetesObject> | undefined;
  readonly #checkedProfiles: Checked<BFDProfile>;
  /** Off when the cluster has no BFDProfile CRD: peers naming a profile run without BFD. */
  #profilesServed = true;
  readonly #backend: BgpBackend;
  readonly #status: BgpStatus;
  readonly #records: BgpRecords | undefined;
  readonly #passwords: PasswordSecrets | undefined;
  /** Off when the cluster has no BGP CRDs (an older install): Layer 2 goes on alone. */
  #enabled = true;
  /** Last reason logged per IP, and per skipped peer (one line per change). */
  readonly #lastReason = new Map<string, string>();
  readonly #lastSkipped = new Map<string, string>();
  #nodeIPv4: string | undefined;
  /** When this node was first seen drained (performance.now()); undefined when it is not. */
  #drainedAt: number | undefined;
  #drainTimer: NodeJS.Timeout | undefined;
  readonly #onChange: () => void;

  constructor(
    api: KubeClient,
    opts: BgpModeOptions,
    events: EventRecorder,
    metrics: SpeakerMetrics,
    log: Logger,
    onChange: () => void,
  ) {
    this.#o = opts;
    this.#api = api;
    this.#log = log.child({ mode: "bgp" });
    this.#onChange = onChange;
    const ip = opts.nodeAddress ? parseIP(opts.nodeAddress) : undefined;
    if (ip?.family === "IPv4") this.#nodeIPv4 = opts.nodeAddress;
    const poke = { add: onChange, update: onChange, delete: onChange };
    this.#peers = new Informer(api, PEERS_PATH, poke, log);
    this.#ads = new Informer(api, ADS_PATH, poke, log);
    // Only their existence matters here (stale ones are deleted): no evaluation on change.
    this.#states = new Informer<SessionStateObject>(api, BGP_SESSION_STATES_PATH, {}, log);
    // An unreadable peer or advertisement keeps its last good version: a typo in an edit
    // must not end sessions or withdraw routes.
    this.#checkedPeers = new Checked({ kind: "BGPPeer", parse: parseBGPPeer, freeze: true }, log);
    this.#checkedAds = new Checked(
      { kind: "BGPAdvertisement", parse: parseBGPAdvertisement, freeze: true },
      log,
    );
    this.#profiles = opts.bfd ? new Informer(api, PROFILES_PATH, poke, log) : undefined;
    this.#checkedProfiles = new Checked(
      { kind: "BFDProfile", parse: parseBFDProfile, freeze: true },
      log,
    );
    this.#passwords =
      opts.namespace === undefined
        ? undefined
        : new PasswordSecrets(api, opts.namespace, this.#log, onChange);
    this.#status = new BgpStatus(api, events, metrics, this.#log, {
      node: opts.node,
      peerObject: (name) => this.#peers.get(name),
      ownObjects: () => this.#states.list().filter((o) => o.status?.node === opts.node),
    });
    this.#records = opts.records
      ? new BgpRecords(
          api,
          { node: opts.node, records: opts.records, onChange },
          this.#log.child({ component: "bgp-records" }),
        )
      : undefined;
    this.#backend = new BgpBackend(
      opts.sessions,
      {
        onStatus: (s, cfg) => this.#status.onStatus(s, cfg),
        onRemoved: (peer) => this.#status.onRemoved(peer),
        onBfd: (peer, state) => this.#status.onBfd(peer, state),
      },
      this.#log,
      opts.bfd,
    );
  }

  /** Starts watching; resolves once the caches are filled (or BGP is found not installed). */
  async start(): Promise<void> {
    try {
      await this.#api.get(PEERS_PATH, { limit: 1 });
    } catch (err) {
      if (httpStatus(err) === 404) {
        this.#enabled = false;
        this.#log.warn(
          "BGP mode is off: the cluster has no BGPPeer CRD (apply this release's CRDs from config/crd, then restart the speakers)",
        );
        return;
      }
      this.#log.warn({ err: describeError(err) }, "cannot check for the BGP CRDs; watching anyway");
    }
    const all: Array<{ start(): Promise<void>; synced(): Promise<void> }> = [
      this.#peers,
      this.#ads,
      this.#states,
    ];
    if (this.#profiles) {
      try {
        await this.#api.get(PROFILES_PATH, { limit: 1 });
        all.push(this.#profiles);
      } catch (err) {
        if (httpStatus(err) !== 404) throw err;
        this.#profilesServed = false;
        this.#log.warn(
          "BFD is off: the cluster has no BFDProfile CRD (apply this release's CRDs from config/crd, then restart the speakers)",
        );
      }
    }
    await Promise.all(all.map((i) => i.start()));
    await Promise.all(all.map((i) => i.synced()));
  }

  /** Plans from the snapshot and makes the sessions and routes follow. */
  reconcile(inputs: ObjectInputs): BgpPlan | undefined {
    if (!this.#enabled) return undefined;
    const peers = this.#checkedPeers.list(this.#peers.list());
    const ads = this.#checkedAds.list(this.#ads.list());
    const node = inputs.nodes.find((n) => n.name === this.#o.node);
    const plan = planBgp({
      self: this.#o.node,
      node,
      drainWithdraw: this.#drainPhase(node?.drain !== undefined),
      ...(this.#nodeIPv4 ? { nodeIPv4: this.#nodeIPv4 } : {}),
      services: inputs.services,
      slices: inputs.slices,
      pools: inputs.pools,
      advertisements: ads.map((a) => ({ name: a.metadata.name ?? "", ...a.spec })),
      peers: peers.map((p) => ({ name: p.metadata.name ?? "", spec: p.spec })),
    });
    this.#backend.apply(this.#withPasswords(this.#withBfd(plan, peers), peers));
    this.#status.deleteStale(new Set(plan.peers.keys()));
    this.#records?.sync(advertisedPeers(plan));
    this.#logPlan(plan, peers.length > 0);
    return plan;
  }

  /**
   * Graceful shutdown's clock: false while the drained node's routes carry 65535:0 (the
   * first drain delay), true after; an undrain resets it (routes go back to normal at once).
   */
  #drainPhase(drained: boolean): boolean {
    if (!drained) {
      if (this.#drainedAt !== undefined)
        this.#log.info("undrained: routes advertised normally again");
      this.#drainedAt = undefined;
      clearTimeout(this.#drainTimer);
      this.#drainTimer = undefined;
      return false;
    }
    const delay = this.#o.drainDelayMs ?? DEFAULT_BGP_DRAIN_DELAY_MS;
    if (this.#drainedAt === undefined) {
      this.#drainedAt = performance.now();
      this.#log.info(
        { delayMs: delay },
        "drained: routes sent with the graceful-shutdown community 65535:0, withdrawn after the delay",
      );
      this.#drainTimer = setTimeout(() => this.#onChange(), delay + 5);
      this.#drainTimer.unref();
    }
    return performance.now() - this.#drainedAt >= delay;
  }

  /** The plan's peers with the BFD settings of their bfdProfile; a missing one is reported. */
  #withBfd(plan: BgpPlan, peers: readonly BGPPeer[]): Map<string, DesiredPeer> {
    if (this.#profiles === undefined) return plan.peers;
    let profiles: Map<string, BFDProfileSpec> | undefined;
    if (this.#profilesServed)
      profiles = new Map(
        this.#checkedProfiles
          .list(this.#profiles.list())
          .map((p) => [p.metadata.name ?? "", p.spec] as const),
      );
    const wanted = new Map(peers.map((p) => [p.metadata.name ?? "", p.spec.bfdProfile]));
    const out = new Map<string, DesiredPeer>();
    for (const [name, pp] of plan.peers) {
      const r = resolveBfd(wanted.get(name), profiles);
      this.#status.setBfdError(name, r.error);
      out.set(name, r.settings ? { ...pp, bfd: r.settings } : pp);
    }
    return out;
  }

  /**
   * The peers with their TCP-MD5 password. A passwordSecret that cannot be read becomes the
   * config's passwordError: that session does not connect, its status says why, and an
   * Event tells the BGPPeer's reader; a fixed Secret changes the config, so a new session
   * starts.
   */
  #withPasswords(
    desired: Map<string, DesiredPeer>,
    peers: readonly BGPPeer[],
  ): Map<string, DesiredPeer> {
    const refs = new Map(peers.map((p) => [p.metadata.name ?? "", p.spec.passwordSecret]));
    const out = new Map<string, DesiredPeer>();
    for (const [name, want] of desired) {
      const ref = refs.get(name);
      if (ref === undefined) {
        this.#status.setPasswordError(name, undefined);
        out.set(name, want);
        continue;
      }
      const r = this.#passwords?.resolve(ref) ?? {
        error: "passwordSecret: this speaker was started without --namespace",
      };
      if (!r.pending) this.#status.setPasswordError(name, r.error);
      const config = { ...want.config };
      if (r.error !== undefined) config.passwordError = r.error;
      else if (r.password !== undefined) config.password = r.password;
      out.set(name, { ...want, config });
    }
    return out;
  }

  /** Some session is Established with graceful restart negotiated. */
  gracefulRestartNegotiated(): boolean {
    return this.#backend.statuses().some((s) => s.gracefulRestart === true);
  }

  /**
   * Ends every session with a Cease (shutdown text) and stops watching. `restarting`:
   * sessions with graceful restart negotiated close without the Cease (bgp-backend.ts).
   */
  async stop(opts: { restarting?: boolean } = {}): Promise<void> {
    clearTimeout(this.#drainTimer);
    this.#status.stop();
    this.#records?.stop();
    await this.#passwords?.stop();
    await this.#backend.stopAll(undefined, opts);
    await Promise.all([this.#peers, this.#ads, this.#states, this.#profiles].map((i) => i?.stop()));
  }

  /** One line per change: an IP's reason for not being advertised, a skipped peer. */
  #logPlan(plan: BgpPlan, anyPeer: boolean): void {
    for (const [name, why] of plan.skippedPeers) {
      if (this.#lastSkipped.get(name) === why) continue;
      this.#lastSkipped.set(name, why);
      this.#log.warn({ peer: name, reason: why }, "BGPPeer not used on this node");
    }
    for (const name of this.#lastSkipped.keys())
      if (!plan.skippedPeers.has(name)) this.#lastSkipped.delete(name);
    // Without any BGPPeer, BGP mode is simply not in use: no line per IP.
    if (!anyPeer) {
      this.#lastReason.clear();
      return;
    }
    for (const [ip, p] of plan.ips) {
      const kept = p.reason === undefined ? p.drainKept : undefined;
      const why = p.reason ?? (kept ? `kept: ${kept}` : "");
      const was = this.#lastReason.get(ip);
      if (was === why) continue;
      this.#lastReason.set(ip, why);
      if (kept)
        this.#log.warn(
          { ip, services: p.services, reason: kept },
          "drained, but no other node can take this IP: still advertising it",
        );
      else if (why)
        this.#log.info(
          { ip, services: p.services, reason: why },
          "IP not advertised over BGP by this node",
        );
      else
        this.#log.info(
          { ip, services: p.services, peers: Object.fromEntries(p.advertised) },
          "IP advertised over BGP",
        );
    }
    for (const [ip, was] of this.#lastReason) {
      if (plan.ips.has(ip)) continue;
      this.#lastReason.delete(ip);
      if (was === "") this.#log.info({ ip }, "IP withdrawn from BGP: no Service uses it now");
    }
  }
}
