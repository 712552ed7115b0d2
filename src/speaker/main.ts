// `ironlb speaker`: membership (Lease + UDP heartbeats), the ARP/NDP announcer, BGP
// sessions, the health/metrics server and the Speaker.
import { BfdRunner } from "../bfd/worker-client.ts";
import { BgpSession } from "../bgp/session.ts";
import { Forwarder } from "../dataplane/forwarder.ts";
import { KubeClient, stalledWatches } from "../k8s/client.ts";
import { kubeMetricsAuthorizer } from "../k8s/metrics-auth.ts";
import { Announcer } from "../layer2/announcer.ts";
import { LinkMonitor } from "../layer2/packet-socket.ts";
import { createLogger } from "../observability/log.ts";
import { apiClientMetrics } from "../observability/metrics.ts";
import { startHealthServer } from "../observability/server.ts";
import { HeartbeatKeyFiles } from "./heartbeat-keys.ts";
import { Membership } from "./membership.ts";
import { speakerMetrics } from "./metrics.ts";
import { readShutdownEvidence } from "./shutdown-evidence.ts";
import { shutdownIntent } from "./shutdown-intent.ts";
import { Speaker, type SpeakerOptions } from "./speaker.ts";

export interface RunSpeakerOptions extends SpeakerOptions {
  kubeconfig?: string;
  namespace: string;
  leaseDurationMs: number;
  renewIntervalMs: number;
  /** This node's address for heartbeats (from the Downward API: status.hostIP). */
  nodeAddress?: string;
  heartbeatPort: number;
  heartbeatSecretFile?: string;
  heartbeatIntervalMs: number;
  heartbeatDeadAfterMs: number;
  healthAddress: string;
  healthPort: number;
  /** "kubernetes": /metrics needs a token the API server authorises (src/k8s/metrics-auth.ts). */
  metricsAuth?: "none" | "kubernetes";
  /** Watches silent this long are restarted (default: the client's). */
  watchSilenceTimeoutMs?: number;
  /** Client-side rate limit of API requests (0: none); Lease requests are not limited. */
  apiQps: number;
  apiBurst: number;
  /**
   * The speaker's DaemonSet in `namespace`: at SIGTERM, present (and this node staying)
   * means a restart, and BGP sessions with graceful restart keep their routes
   * (shutdown-intent.ts). Not given: every stop is a departure (Cease).
   */
  daemonSet?: string;
}

/** Runs the speaker until SIGTERM/SIGINT, then withdraws and deletes its Lease. */
export async function runSpeaker(opts: RunSpeakerOptions): Promise<void> {
  const log = createLogger("speaker").child({ node: opts.node });
  const api = KubeClient.load(opts.kubeconfig);
  if (opts.watchSilenceTimeoutMs) api.watchSettings.silenceTimeoutMs = opts.watchSilenceTimeoutMs;
  api.setRateLimit(opts.apiQps, opts.apiBurst);
  const metrics = speakerMetrics();
  apiClientMetrics(metrics.registry, api.stats);
  let heartbeat: ConstructorParameters<typeof Membership>[1]["heartbeat"];
  // Read again while running: a key rotation needs no restart (heartbeat-keys.ts).
  let keyFiles: HeartbeatKeyFiles | undefined;
  if (opts.heartbeatPort > 0) {
    if (!opts.heartbeatSecretFile || !opts.nodeAddress) {
      throw new Error(
        "--heartbeat-port needs --heartbeat-secret-file and --node-address (or --heartbeat-port 0 to rely on Leases alone)",
      );
    }
    keyFiles = new HeartbeatKeyFiles(opts.heartbeatSecretFile, log);
    const files = keyFiles;
    heartbeat = {
      address: opts.nodeAddress,
      port: opts.heartbeatPort,
      keys: () => files.keys(),
      intervalMs: opts.heartbeatIntervalMs,
      deadAfterMs: opts.heartbeatDeadAfterMs,
    };
  } else {
    log.warn("UDP heartbeats are off: a crashed speaker is noticed only when its Lease expires");
  }
  const membership = new Membership(
    api,
    {
      node: opts.node,
      namespace: opts.namespace,
      leaseDurationMs: opts.leaseDurationMs,
      renewIntervalMs: opts.renewIntervalMs,
      heartbeat,
    },
    log,
  );
  membership.onDroppedBeat = (reason) => metrics.heartbeatsDropped.inc({ reason });
  membership.onSocketDrops = (count) => metrics.heartbeatSocketDrops.inc(count);
  membership.onDoubted = () => metrics.silentPeersDoubted.inc();
  keyFiles?.start();
  // SIGHUP reads the key files at once (after a rotation step), instead of within 10 s.
  if (keyFiles) process.on("SIGHUP", () => keyFiles.reload());
  const announcer = new Announcer({
    onCount: (name, ifname) => metrics.count(name, ifname),
    // Back from a stall, the frames that waited for us come first: notice the stall (and
    // rejoin, holding replies) before answering any of them.
    beforeFrame: () => membership.noticeStall(),
  });
  // BGP sessions are opened only for BGPPeers that select this node: none, no socket.
  const bgpSessions = (cfg: ConstructorParameters<typeof BgpSession>[0]) =>
    new BgpSession(cfg, { log });
  // One BFD worker thread per speaker, started by the first BGPPeer with a bfdProfile.
  const bfdRunner = () =>
    new BfdRunner({
      log,
      onDrop: (reason, count) => metrics.bfdPacketsDropped.inc({ reason }, count),
    });
  const speaker = new Speaker(
    api,
    { ...opts, bgpSessions, bfdRunner },
    announcer,
    membership,
    metrics,
    log,
  );
  // Link down/up as the kernel reports it: a short outage is over before a peer's silence
  // would tell this node it was cut off.
  let links: LinkMonitor | undefined;
  try {
    links = LinkMonitor.open();
    links.on("change", (m: ReadonlyMap<string, boolean>) => speaker.onLinks(m));
    links.on("error", (err: Error) => log.warn({ err: err.message }, "link monitor error"));
  } catch (err) {
    log.warn(
      { err: (err as Error).message },
      "cannot watch link changes: interfaces are re-read every 10 s only",
    );
  }
  // ipMode Proxy: the speaker's own kernel forwarding (its nftables table); an earlier run's
  // table keeps forwarding until the first reconcile replaces it in one transaction.
  const forwarder = new Forwarder(opts, log);
  await forwarder.start();
  speaker.onReconciled = (services, slices) => forwarder.update(services, slices);
  const server = await startHealthServer(
    opts.healthAddress,
    opts.healthPort,
    {
      // Stuck watches while the API server answers: a restart helps. Through an API outage
      // the speaker keeps announcing from its cache (restarting it would stop that).
      healthy: () =>
        stalledWatches(api, { onlyWhileApiAnswersMs: 2 * api.watchSettings.silenceTimeoutMs }),
      ready: () => speaker.ready && membership.selfHealthy(),
    },
    metrics.registry,
    log,
    opts.metricsAuth === "kubernetes" ? kubeMetricsAuthorizer(api) : undefined,
  );
  const addr = server.address();
  log.info(
    {
      healthPort: typeof addr === "object" && addr ? addr.port : opts.healthPort,
      heartbeatPort: opts.heartbeatPort,
    },
    "starting",
  );

  /**
   * At SIGTERM: true when BGP graceful restart is negotiated with some router and the
   * API server says this is a restart, not a departure. Logged either way.
   */
  const restartOrDeparture = async (): Promise<boolean> => {
    if (!speaker.bgpGracefulRestart()) return false;
    const evidence = await readShutdownEvidence(api, {
      namespace: opts.namespace,
      node: opts.node,
      daemonSet: opts.daemonSet,
    });
    const intent = shutdownIntent(evidence);
    if (intent.restart)
      log.info(
        { reason: intent.reason },
        "restart: BGP sessions with graceful restart close without a Cease, the routers keep this node's routes",
      );
    else
      log[evidence.error === undefined ? "info" : "warn"](
        { reason: intent.reason },
        "departure: BGP sessions end with a Cease, the routers withdraw this node's routes",
      );
    return intent.restart;
  };

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    // Tell the peers and stop answering in the same turn. A peer takes over as soon as the
    // leaving heartbeat arrives; an answer from us after that (we used to answer until our
    // Lease was deleted) pulls a client that re-resolves back here, where it stays until
    // the next owner's burst repeats 1-2 s later.
    membership.leave();
    keyFiles?.stop();
    // BGP waits (its sessions running, routes unchanged) until we know whether this is a
    // restart: only then may a session close without a Cease (graceful restart).
    const ips = speaker.withdrawAll({ keepBgp: true });
    log.info({ ips }, "left: peers told, announcements withdrawn");
    const restarting = restartOrDeparture();
    await membership.stop();
    const restart = await restarting;
    await speaker.stopBgp({ restarting: restart });
    await speaker.stop();
    links?.close();
    await forwarder.stop({ keepTable: restart });
    announcer.close();
    server.close();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));

  await membership.start();
  await speaker.start();
  log.info("speaker ready");
}
