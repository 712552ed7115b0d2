// The health and metrics endpoint every component serves: /healthz (the process works),
// /readyz (it has synced and can do its job) and /metrics (Prometheus text format).
import type { Server, ServerResponse } from "node:http";
import type { Logger } from "./log.ts";
import type { Registry } from "./metrics.ts";

// Not `import { createServer } from "node:http"`: that ES module import reads node:http's
// lazy exports (WebSocket, EventSource...) and so loads undici: +13 MiB RSS (k8s/client.ts).
const { createServer } = process.getBuiltinModule("node:http");

/** true (or no problems) when fine; false, or one line per problem, when not. */
export type CheckResult = boolean | string[];

export interface HealthChecks {
  /**
   * Liveness: failing means the process is stuck and should be restarted (informers make
   * no progress, the leader cannot renew in time).
   */
  healthy(): CheckResult;
  /** Readiness: failing until the component has synced its caches. */
  ready(): CheckResult;
}

/**
 * Decides whether a request may read /metrics, from its Authorization header (src/k8s
 * metrics-auth.ts asks the API server). Health probes never need it: the kubelet sends none.
 */
export type MetricsGate = (
  authorization: string | undefined,
) => Promise<{ allowed: true } | { allowed: false; status: number; reason: string }>;

/** Starts the HTTP server; `port` 0 picks a free one (see the returned server's address). */
export async function startHealthServer(
  host: string,
  port: number,
  checks: HealthChecks,
  registry: Registry,
  log: Logger,
  metricsGate?: MetricsGate,
): Promise<Server> {
  // Denials are logged once per reason and minute: a scanner must not flood the log.
  const denialsSaid = new Map<string, number>();
  // Per check: the kubelet probes liveness and readiness in turn, and one passing must not
  // make the other's unchanged failure be logged again.
  const lastProblems = new Map<string, string>();
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const answer = (result: CheckResult, what: string) => {
      const problems = result === true ? [] : result === false ? [`not ${what}`] : result;
      const ok = problems.length === 0;
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
      res.end(ok ? "ok\n" : `${problems.join("\n")}\n`);
      // Say once in the log why a probe fails (the kubelet only records the status).
      const key = problems.join("|");
      if (!ok && key !== lastProblems.get(what))
        log.warn({ check: what, problems }, "health check failing");
      lastProblems.set(what, key);
    };
    if (path === "/healthz" || path === "/livez") return answer(safe(checks.healthy), "healthy");
    if (path === "/readyz") return answer(safe(checks.ready), "ready");
    if (path === "/metrics") {
      const serve = () => serveMetrics(res, registry, log);
      if (!metricsGate) return serve();
      metricsGate(req.headers.authorization).then(
        (r) => {
          if (r.allowed) return serve();
          const now = performance.now();
          if (now - (denialsSaid.get(r.reason) ?? -Infinity) > 60_000) {
            if (denialsSaid.size > 100) denialsSaid.clear();
            denialsSaid.set(r.reason, now);
            log.warn(
              { status: r.status, reason: r.reason, remote: req.socket.remoteAddress },
              "metrics request refused",
            );
          }
          const headers: Record<string, string> = { "content-type": "text/plain" };
          if (r.status === 401) headers["www-authenticate"] = 'Bearer realm="ironlb metrics"';
          res.writeHead(r.status, headers).end(`${r.reason}\n`);
        },
        (err: unknown) => {
          log.error({ err }, "checking a metrics request failed");
          res.writeHead(500).end();
        },
      );
      return;
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

function serveMetrics(res: ServerResponse, registry: Registry, log: Logger): void {
  registry.metrics().then(
    (text) => {
      res.writeHead(200, { "content-type": registry.contentType });
      res.end(text);
    },
    (err: unknown) => {
      log.error({ err }, "rendering metrics failed");
      res.writeHead(500).end();
    },
  );
}

/** A check that throws is a failing check, never a crashed server. */
function safe(check: () => CheckResult): CheckResult {
  try {
    return check();
  } catch (err) {
    return [`check failed: ${(err as Error).message}`];
  }
}
