import type { AddressInfo } from "node:net";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { Registry } from "./metrics.ts";
import { type CheckResult, startHealthServer } from "./server.ts";

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) s.close();
});

async function serve(
  healthy: () => CheckResult,
  ready: () => CheckResult,
  log = pino({ level: "silent" }),
) {
  const s = await startHealthServer("127.0.0.1", 0, { healthy, ready }, new Registry(), log);
  servers.push(s);
  const port = (s.address() as AddressInfo).port;
  return async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return [res.status, await res.text()] as const;
  };
}

describe("health server", () => {
  it("answers 200 when the checks pass, 503 with the problems when not", async () => {
    let problems: string[] = [];
    let ready: CheckResult = false;
    const get = await serve(
      () => problems,
      () => ready,
    );
    expect(await get("/healthz")).toEqual([200, "ok\n"]);
    expect(await get("/readyz")).toEqual([503, "not ready\n"]);
    problems = ["watch /api/v1/services: no progress for 400 s", "lease: stuck"];
    expect(await get("/healthz")).toEqual([
      503,
      "watch /api/v1/services: no progress for 400 s\nlease: stuck\n",
    ]);
    expect((await get("/livez"))[0]).toBe(503);
    ready = true;
    expect(await get("/readyz")).toEqual([200, "ok\n"]);
  });

  it("a check that throws fails the probe instead of crashing the server", async () => {
    const get = await serve(
      () => {
        throw new Error("boom");
      },
      () => true,
    );
    expect(await get("/healthz")).toEqual([503, "check failed: boom\n"]);
    expect((await get("/metrics"))[0]).toBe(200);
    expect((await get("/nope"))[0]).toBe(404);
  });

  it("logs a failing check once, even while the other probe passes in between", async () => {
    const lines: { check?: string; msg?: string }[] = [];
    const log = pino(
      { level: "warn" },
      { write: (line: string) => void lines.push(JSON.parse(line)) },
    );
    const get = await serve(
      () => true,
      () => ["informers not synced"],
      log,
    );
    // The kubelet probes liveness and readiness independently, interleaved.
    for (let i = 0; i < 3; i++) {
      expect((await get("/readyz"))[0]).toBe(503);
      expect((await get("/healthz"))[0]).toBe(200);
    }
    expect(lines.filter((l) => l.msg === "health check failing")).toEqual([
      expect.objectContaining({ check: "ready" }),
    ]);
  });
});

describe("metrics gate", () => {
  it("serves /metrics only when the gate allows; probes never ask it", async () => {
    const seen: (string | undefined)[] = [];
    const s = await startHealthServer(
      "127.0.0.1",
      0,
      { healthy: () => true, ready: () => true },
      new Registry(),
      pino({ level: "silent" }),
      async (authorization) => {
        seen.push(authorization);
        return authorization === "Bearer ok"
          ? { allowed: true }
          : { allowed: false, status: authorization ? 403 : 401, reason: "no" };
      },
    );
    servers.push(s);
    const url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    const none = await fetch(`${url}/metrics`);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await fetch(`${url}/metrics`, { headers: { authorization: "Bearer x" } })).status).toBe(
      403,
    );
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: "Bearer ok" } });
    expect(ok.status).toBe(200);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    expect(seen).toEqual([undefined, "Bearer x", "Bearer ok"]);
  });
});
