// `ironlb controller`: leader election, the health/metrics server and the Controller.
import { hostname } from "node:os";
import { KubeClient, stalledWatches } from "../k8s/client.ts";
import { LeaderElector } from "../k8s/leader-election.ts";
import { kubeMetricsAuthorizer } from "../k8s/metrics-auth.ts";
import { createLogger } from "../observability/log.ts";
import { apiClientMetrics } from "../observability/metrics.ts";
import { startHealthServer } from "../observability/server.ts";
import { Controller, type ControllerOptions } from "./controller.ts";
import { keepHeartbeatSecret } from "./heartbeat-secret.ts";
import { controllerMetrics } from "./metrics.ts";

export interface RunControllerOptions extends ControllerOptions {
  kubeconfig?: string;
  /** Namespace of the leader-election Lease (the release namespace in the chart). */
  namespace: string;
  leaderElection: boolean;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  healthAddress: string;
  healthPort: number;
  /** "kubernetes": /metrics needs a token the API server authorises (src/k8s/metrics-auth.ts). */
  metricsAuth?: "none" | "kubernetes";
  /** Watches silent this long are restarted (default: the client's). */
  watchSilenceTimeoutMs?: number;
  /** The speakers' heartbeat Secret to create in `namespace` when missing (never changed). */
  heartbeatSecret?: { name: string; key: string };
  /** Client-side rate limit of API requests (0: none). */
  apiQps: number;
  apiBurst: number;
}

/** Runs the controller until SIGTERM/SIGINT; exits non-zero if leadership is lost. */
export async function runController(opts: RunControllerOptions): Promise<void> {
  const log = createLogger("controller");
  const api = KubeClient.load(opts.kubeconfig);
  const metrics = controllerMetrics();
  if (opts.watchSilenceTimeoutMs) api.watchSettings.silenceTimeoutMs = opts.watchSilenceTimeoutMs;
  api.setRateLimit(opts.apiQps, opts.apiBurst);
  apiClientMetrics(metrics.registry, api.stats);
  const elector = opts.leaderElection
    ? new LeaderElector(
        api,
        {
          namespace: opts.namespace,
          name: "ironlb-controller",
          identity: opts.instance,
          leaseDurationMs: opts.leaseDurationMs,
          renewDeadlineMs: opts.renewDeadlineMs,
          retryPeriodMs: opts.retryPeriodMs,
        },
        log,
      )
    : undefined;
  // Every write of the controller passes the elector's fence: none leaves after the renew
  // deadline, and those in flight then are aborted, before another replica can lead.
  const controller = new Controller(elector ? api.fenced(elector) : api, opts, log, metrics);
  let leading = !opts.leaderElection;
  const server = await startHealthServer(
    opts.healthAddress,
    opts.healthPort,
    {
      // Live: the election loop works (a leader renews in time), and a leader's informers
      // make progress. A standby is ready: it is healthy and waiting for the lease.
      healthy: () => {
        const problems = leading ? stalledWatches(api) : [];
        const election = elector?.unhealthy();
        return election ? [election, ...problems] : problems;
      },
      ready: () => !leading || controller.ready,
    },
    metrics.registry,
    log,
    opts.metricsAuth === "kubernetes" ? kubeMetricsAuthorizer(api) : undefined,
  );
  const addr = server.address();
  const healthPort = typeof addr === "object" && addr ? addr.port : opts.healthPort;
  log.info(
    {
      instance: opts.instance,
      lbClass: opts.lbClass,
      handleUnclassed: opts.handleUnclassed,
      healthPort,
    },
    "starting",
  );

  const heartbeat = opts.heartbeatSecret
    ? keepHeartbeatSecret(api, { namespace: opts.namespace, ...opts.heartbeatSecret }, log)
    : undefined;

  const startController = () => {
    leading = true;
    metrics.leader.set(1);
    controller.start().catch((err: unknown) => {
      log.fatal({ err }, "controller failed to start");
      process.exit(1);
    });
  };
  if (elector) {
    elector.run(startController, () => {
      // Writes are fenced off already; another replica may lead soon: let the pod restart.
      log.error("leadership lost; exiting");
      process.exit(1);
    });
  } else {
    startController();
  }

  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down");
    heartbeat?.stop();
    await controller.stop();
    await elector?.stop();
    process.exit(0);
  };
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  process.once("SIGINT", () => void shutdown("SIGINT"));
}

/** A default identity for this replica: the pod name when run in Kubernetes. */
export function defaultInstance(): string {
  return process.env.POD_NAME ?? `${hostname()}-${process.pid}`;
}
