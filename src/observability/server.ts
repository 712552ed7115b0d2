// The health and metrics endpoint every component serves: /healthz (the process works),
// /readyz (it has synced and can do its job) and /metrics (Prometheus text format).
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";
import type { Logger } from "./log.ts";

export interface HealthChecks {
  /** Liveness: false means the process is stuck and should be restarted. */
  healthy(): boolean;
  /** Readiness: false until the component has synced its caches. */
  ready(): boolean;
}

/** Starts the HTTP server; `port` 0 picks a free one (see the returned server's address). */
export async function startHealthServer(
  host: string,
  port: number,
  checks: HealthChecks,
  registry: Registry,
  log: Logger,
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const answer = (ok: boolean) => {
      res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" });
      res.end(ok ? "ok\n" : "not ready\n");
    };
    if (path === "/healthz" || path === "/livez") return answer(checks.healthy());
    if (path === "/readyz") return answer(checks.ready());
    if (path === "/metrics") {
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
