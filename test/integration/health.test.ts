// /healthz tells the truth about the API edge, against the real apiserver: a controller
// whose connection to the apiserver freezes (a TCP proxy that stops forwarding without
// closing anything: keepalive and connection errors see nothing) reports unhealthy within
// a bounded time, recovers when the connection thaws, and a leader that cannot renew
// steps down and exits within its renew deadline.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import {
  applyCRDs,
  type Component,
  healthPortOf,
  startComponent,
  waitFor,
} from "../support/cluster.ts";

/** A TCP proxy to the apiserver that can freeze: every byte stops, every socket stays open. */
class FreezableProxy {
  readonly #server: Server;
  readonly #pairs: [Socket, Socket][] = [];
  readonly #waiting: Socket[] = [];
  #frozen = false;
  #target: { host: string; port: number };

  constructor(target: URL) {
    this.#target = { host: target.hostname, port: Number(target.port) };
    this.#server = createServer((client) => {
      client.on("error", () => {});
      if (this.#frozen) {
        client.pause();
        this.#waiting.push(client);
      } else this.#forward(client);
    });
  }

  #forward(client: Socket): void {
    const upstream = connect(this.#target);
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => client.write(d));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    this.#pairs.push([client, upstream]);
    if (this.#frozen) {
      client.pause();
      upstream.pause();
    }
  }

  async start(): Promise<number> {
    await new Promise<void>((r) => this.#server.listen(0, "127.0.0.1", r));
    return (this.#server.address() as { port: number }).port;
  }

  freeze(): void {
    this.#frozen = true;
    for (const [a, b] of this.#pairs) {
      a.pause();
      b.pause();
    }
  }

  thaw(): void {
    this.#frozen = false;
    for (const [a, b] of this.#pairs) {
      a.resume();
      b.resume();
    }
    for (const c of this.#waiting.splice(0)) {
      this.#forward(c);
      c.resume();
    }
  }

  async close(): Promise<void> {
    for (const [a, b] of this.#pairs) {
      a.destroy();
      b.destroy();
    }
    for (const c of this.#waiting) c.destroy();
    await new Promise((r) => this.#server.close(r));
  }
}

let proxy: FreezableProxy;
let dir: string;
let kubeconfig: string;
const running: Component[] = [];

beforeAll(async () => {
  await applyCRDs();
  proxy = new FreezableProxy(new URL(inject("server")));
  const port = await proxy.start();
  dir = mkdtempSync(join(tmpdir(), "ironlb-health-"));
  kubeconfig = join(dir, "kubeconfig");
  const text = readFileSync(inject("kubeconfig"), "utf8");
  writeFileSync(
    kubeconfig,
    text.replace(/server: https:\/\/[^\s]+/, `server: https://127.0.0.1:${port}`),
  );
  expect(readFileSync(kubeconfig, "utf8")).toContain(`127.0.0.1:${port}`);
});

afterEach(async () => {
  proxy.thaw();
  await Promise.all(running.splice(0).map((c) => c.stop("SIGKILL")));
});

afterAll(async () => {
  await proxy?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function controller(extra: string[]): Component {
  const c = startComponent([
    "controller",
    "--kubeconfig",
    kubeconfig,
    "--health-port",
    "0",
    "--health-address",
    "127.0.0.1",
    "--namespace",
    "default",
    "--instance",
    `health-${process.pid}-${running.length}`,
    ...extra,
  ]);
  running.push(c);
  return c;
}

async function probe(port: number, path: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    signal: AbortSignal.timeout(2_000),
  });
  return res.status;
}

describe("health of the API edge", () => {
  it("a frozen apiserver connection makes /healthz fail within twice the silence timeout, and thawing heals it", async () => {
    const silenceS = 2;
    const c = controller(["--no-leader-elect", "--watch-silence-timeout", String(silenceS)]);
    const port = await healthPortOf(c, 20_000);
    await waitFor("readyz", async () => (await probe(port, "/readyz")) === 200, 30_000);
    // Healthy while the connection works, also after quiet watches were restarted for
    // their silence (no Service changes here, and bookmarks come only once a minute).
    const silentRestarts = () =>
      c.logs().filter((l) => /no event and no bookmark/.test(String(l.err))).length;
    await waitFor("two silence restarts", () => silentRestarts() >= 2, 30_000);
    expect(await probe(port, "/healthz")).toBe(200);
    proxy.freeze();
    const frozenAt = performance.now();
    await waitFor("healthz to fail", async () => (await probe(port, "/healthz")) === 503, 30_000);
    const failedAfterS = (performance.now() - frozenAt) / 1000;
    // Progress stops at the freeze at the latest; /healthz fails 2 × silence after the last.
    expect(failedAfterS, `healthz failed ${failedAfterS} s after the freeze`).toBeLessThanOrEqual(
      2 * silenceS + 2,
    );
    const body = await (await fetch(`http://127.0.0.1:${port}/healthz`)).text();
    // Whichever watch is named first (services, namespaces, pools...), it says why.
    expect(body).toMatch(/watch \/\S+: no progress for \d+ s/);
    proxy.thaw();
    await waitFor(
      "healthz to recover",
      async () => (await probe(port, "/healthz")) === 200,
      30_000,
    );
    expect(c.proc.exitCode).toBeNull();
  });

  it("a leader whose connection freezes steps down and exits within its renew deadline", async () => {
    const c = controller([
      "--lease-duration",
      "8",
      "--renew-deadline",
      "4",
      "--retry-period",
      "1",
      "--watch-silence-timeout",
      "60",
    ]);
    const port = await healthPortOf(c, 20_000);
    await waitFor("leadership", () => c.logs().some((l) => l.msg === "became leader"), 30_000);
    await waitFor("readyz", async () => (await probe(port, "/readyz")) === 200, 30_000);
    expect(await probe(port, "/healthz")).toBe(200);
    const exited = new Promise<number | null>((r) => c.proc.once("exit", (code) => r(code)));
    proxy.freeze();
    const frozenAt = performance.now();
    const code = await exited;
    const afterS = (performance.now() - frozenAt) / 1000;
    expect(code).toBe(1);
    // The last renewal started at most one retry period before the freeze: the step-down
    // comes at most renew deadline (4 s) after it, well before the lease (8 s) expires.
    expect(afterS, `exited ${afterS} s after the freeze`).toBeLessThan(4 + 0.5);
    const lost = c.logs().find((l) => l.msg === "lost leadership");
    expect(lost?.reason).toBe("could not renew the lease in time");
  });
});
