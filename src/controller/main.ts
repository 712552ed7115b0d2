// `ironlb controller`: leader election, the health/metrics server and the Controller.
import { hostname } from "node:os";
import { KubeClient } from "../k8s/client.ts";
import { LeaderElector } from "../k8s/leader-election.ts";
import { createLogger } from "../observability/log.ts";
import { startHealthServer } from "../observability/server.ts";
import { Controller, type ControllerOptions } from "./controller.ts";
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
}

/** Runs the controller until SIGTERM/SIGINT; exits non-zero if leadership is lost. */
export async function runController(opts: RunControllerOptions): Promise<void> {
  const log = createLogger("controller");
  const api = KubeClient.load(opts.kubeconfig);
  const metrics = controllerMetrics();
  const controller = new Controller(api, opts, log, metrics);
  let leading = !opts.leaderElection;
  const server = await startHealthServer(
    opts.healthAddress,
    opts.healthPort,
    // A standby replica is ready: it is healthy and waiting for the lease.
    { healthy: () => true, ready: () => !leading || controller.ready },
    metrics.registry,
    log,
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

  const startController = () => {
    leading = true;
    metrics.leader.set(1);
    controller.start().catch((err: unknown) => {
      log.fatal({ err }, "controller failed to start");
      process.exit(1);
    });
  };
  let elector: LeaderElector | undefined;
  if (opts.leaderElection) {
    elector = new LeaderElector(
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
    );
    elector.run(startController, () => {
      // Another replica may already be writing: stop at once and let the pod restart.
      log.error("leadership lost; exiting");
      process.exit(1);
    });
  } else {
    startController();
  }

  const shutdown = async (signal: string) => {
    log.info({ signal }, "shutting down");
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
