import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KubeClient, stalledWatches } from "./client.ts";
import { FakeApiServer } from "./fake-apiserver.ts";
import { FakeClock } from "./fake-clock.ts";
import { Informer, type InformerOptions } from "./informer.ts";

const log = pino({ level: "silent" });
const PATH = "/api/v1/configmaps";

interface Obj {
  metadata: { name: string; namespace?: string; resourceVersion: string };
  data?: Record<string, string>;
}
const obj = (name: string, rv: string, data: Record<string, string> = {}): Obj => ({
  metadata: { name, namespace: "ns", resourceVersion: rv },
  data,
});
const list = (rv: string, items: Obj[]) => ({
  status: 200,
  body: { kind: "List", metadata: { resourceVersion: rv }, items },
});

let server: FakeApiServer;
let client: KubeClient;
let clock: FakeClock;
let seen: string[];
let informer: Informer<Obj>;

function start(opts: InformerOptions<Obj> = {}) {
  informer = new Informer<Obj>(
    client,
    PATH,
    {
      add: (o) => seen.push(`add ${o.metadata.name}@${o.metadata.resourceVersion}`),
      update: (o) => seen.push(`update ${o.metadata.name}@${o.metadata.resourceVersion}`),
      delete: (o) => seen.push(`delete ${o.metadata.name}`),
    },
    log,
    {},
    { clock, random: () => 0.5, silenceTimeoutMs: 10_000, ...opts },
  );
  void informer.start();
  return informer;
}

/** Waits for the n-th watch request to be open (counting from 1). */
async function watchOpen(n: number) {
  await vi.waitFor(() => expect(server.watches.length).toBeGreaterThanOrEqual(n));
  return server.watches[n - 1]!;
}

const lists = () => server.requests.filter((r) => r.query.get("watch") !== "true");

beforeEach(async () => {
  server = new FakeApiServer();
  client = new KubeClient({ server: await server.start() });
  clock = new FakeClock();
  seen = [];
});

afterEach(async () => {
  await informer?.stop();
  await server.close();
});

describe("Informer", () => {
  it("lists, syncs, then watches from the list's version with bookmarks and a 5-10 min timeout", async () => {
    server.onRequest = () => list("10", [obj("a", "5")]);
    start();
    await informer.synced();
    const w = await watchOpen(1);
    expect(w.query.get("resourceVersion")).toBe("10");
    expect(w.query.get("allowWatchBookmarks")).toBe("true");
    const t = Number(w.query.get("timeoutSeconds"));
    expect(t).toBeGreaterThanOrEqual(300);
    expect(t).toBeLessThan(600);
    w.send("ADDED", obj("b", "11"));
    w.send("MODIFIED", obj("a", "12", { k: "v" }));
    w.send("DELETED", obj("b", "13"));
    await vi.waitFor(() => expect(seen).toHaveLength(4));
    expect(seen).toEqual(["add a@5", "add b@11", "update a@12", "delete b"]);
    expect(informer.get("a", "ns")?.data).toEqual({ k: "v" });
    expect(informer.list().map((o) => o.metadata.name)).toEqual(["a"]);
    expect(informer.resourceVersion).toBe("13");
  });

  it("draws the server-side timeout at random, so replicas do not reconnect in step", async () => {
    server.onRequest = () => list("1", []);
    start({ random: () => 0 });
    expect(Number((await watchOpen(1)).query.get("timeoutSeconds"))).toBe(300);
    await informer.stop();
    start({ random: () => 0.999 });
    expect(Number((await watchOpen(2)).query.get("timeoutSeconds"))).toBe(599);
  });

  it("skips updates whose resourceVersion did not change", async () => {
    server.onRequest = () => list("10", [obj("a", "5")]);
    start();
    const w = await watchOpen(1);
    w.send("MODIFIED", obj("a", "5"));
    w.send("MODIFIED", obj("a", "6"));
    await vi.waitFor(() => expect(seen).toContain("update a@6"));
    expect(seen).toEqual(["add a@5", "update a@6"]);
  });

  it("re-lists on 410 Gone: vanished objects are deleted, unchanged ones not reported", async () => {
    let n = 0;
    server.onRequest = () =>
      ++n === 1
        ? list("10", [obj("a", "5"), obj("b", "6")])
        : list("20", [obj("a", "5"), obj("c", "15")]);
    start();
    const w = await watchOpen(1);
    w.send("ERROR", { kind: "Status", code: 410, reason: "Expired", message: "too old" });
    // Re-list after the backoff.
    await vi.waitFor(() => {
      clock.advance(1_000);
      expect(lists()).toHaveLength(2);
    });
    const w2 = await watchOpen(2);
    expect(w2.query.get("resourceVersion")).toBe("20");
    expect(seen).toEqual(["add a@5", "add b@6", "add c@15", "delete b"]);
  });

  it.each([
    ["a text page", "<html>proxy login</html>"],
    ["an object without items", { kind: "Status", metadata: {} }],
  ])(
    "a list answered with %s is a failure, not an empty list that deletes everything",
    async (_what, body) => {
      let n = 0;
      server.onRequest = () => {
        n++;
        if (n === 1) return list("10", [obj("a", "5"), obj("b", "6")]);
        if (n === 2) return { status: 200, body };
        return list("20", [obj("a", "5"), obj("b", "6")]);
      };
      start();
      const w = await watchOpen(1);
      w.send("ERROR", { kind: "Status", code: 410, reason: "Expired", message: "too old" });
      await vi.waitFor(() => {
        clock.advance(1_000);
        expect(lists()).toHaveLength(3);
      });
      const w2 = await watchOpen(2);
      expect(w2.query.get("resourceVersion")).toBe("20");
      expect(seen).toEqual(["add a@5", "add b@6"]);
      expect(informer.list()).toHaveLength(2);
    },
  );

  it("re-lists on a 410 answered as an HTTP status too", async () => {
    let n = 0;
    server.onRequest = () => list(String(++n * 10), [obj("a", "5")]);
    server.onWatch = (q) =>
      q.get("resourceVersion") === "10"
        ? { status: 410, body: { code: 410, message: "gone" } }
        : "open";
    start();
    await vi.waitFor(() => {
      clock.advance(1_000);
      expect(server.watches.length).toBe(1);
    });
    expect(lists()).toHaveLength(2);
    expect(server.watches[0]!.query.get("resourceVersion")).toBe("20");
  });

  it("backs off with jitter, doubling up to 30 s, and resets after an event", async () => {
    server.onRequest = () => list("10", []);
    let fail = true;
    server.onWatch = () => (fail ? { status: 500, body: { message: "boom" } } : "open");
    start(); // random 0.5: each delay is 1.5 × the base
    const expected = [375, 750, 1500, 3000, 6000, 12000, 24000, 45000, 45000];
    for (const [i, delay] of expected.entries()) {
      await vi.waitFor(() => expect(clock.pending()).toEqual([delay]));
      if (i === expected.length - 1) fail = false;
      clock.advance(delay);
    }
    const w = await watchOpen(1);
    w.send("BOOKMARK", { metadata: { resourceVersion: "11" } });
    await vi.waitFor(() => expect(informer.resourceVersion).toBe("11"));
    fail = true;
    w.end(); // normal end: re-watch at once; that fails and backs off from the start again
    await vi.waitFor(() => expect(clock.pending()).toEqual([375]));
  });

  it("backs off when watches end at once without an event, instead of spinning", async () => {
    server.onRequest = () => list("10", []);
    start();
    (await watchOpen(1)).end();
    await vi.waitFor(() => expect(clock.pending()).toEqual([375]));
    clock.advance(375);
    (await watchOpen(2)).end();
    await vi.waitFor(() => expect(clock.pending()).toEqual([750]));
    // One that lived its time is re-opened at once.
    clock.advance(750);
    const w3 = await watchOpen(3);
    clock.advance(5_000);
    w3.end();
    await watchOpen(4);
  });

  it("jitter spreads the delay over [d, 2d)", async () => {
    server.onRequest = () => ({ status: 500, body: { message: "down" } });
    start({ random: () => 0 });
    await vi.waitFor(() => expect(clock.pending()).toEqual([250]));
    await informer.stop();
    start({ random: () => 0.999 });
    await vi.waitFor(() => expect(clock.pending()).toEqual([500]));
  });

  it("restarts a watch that brings no event and no bookmark for the silence timeout", async () => {
    server.onRequest = () => list("10", [obj("a", "5")]);
    start();
    const w = await watchOpen(1);
    w.send("BOOKMARK", { metadata: { resourceVersion: "30" } });
    await vi.waitFor(() => expect(informer.resourceVersion).toBe("30"));
    clock.advance(9_000);
    w.send("BOOKMARK", { metadata: { resourceVersion: "31" } }); // resets the silence timer
    await vi.waitFor(() => expect(informer.resourceVersion).toBe("31"));
    clock.advance(9_000);
    expect(w.closed).toBe(false);
    clock.advance(1_001); // 10 s of silence since the last bookmark
    await vi.waitFor(() => expect(w.closed).toBe(true));
    clock.advance(375); // the backoff
    const w2 = await watchOpen(2);
    expect(w2.query.get("resourceVersion")).toBe("31"); // no re-list needed
    expect(lists()).toHaveLength(1);
  });

  it("reconnect() drops the open watch and watches again at once from the last version seen", async () => {
    server.onRequest = () => list("10", [obj("a", "5")]);
    start();
    const w = await watchOpen(1);
    w.send("MODIFIED", obj("a", "12"));
    await vi.waitFor(() => expect(seen).toContain("update a@12"));
    informer.reconnect();
    await vi.waitFor(() => expect(w.closed).toBe(true));
    const w2 = await watchOpen(2); // no backoff: the clock did not move
    expect(w2.query.get("resourceVersion")).toBe("12");
    expect(lists()).toHaveLength(1);
    // An event the old connection still held is not handled twice when the new one has it.
    w.send("MODIFIED", obj("a", "13"));
    w2.send("MODIFIED", obj("a", "13"));
    await vi.waitFor(() => expect(seen).toContain("update a@13"));
    expect(seen.filter((x) => x === "update a@13")).toHaveLength(1);
  });

  it("reports itself stalled when no watch makes progress for twice the silence timeout", async () => {
    server.onRequest = () => list("10", []);
    let freeze = false;
    server.onWatch = () => (freeze ? "hang" : "open");
    start();
    const w = await watchOpen(1);
    expect(stalledWatches(client)).toEqual([]);
    freeze = true; // new watches get no answer at all, the open one falls silent
    for (let i = 0; i < 20; i++) {
      clock.advance(1_000);
      await new Promise((r) => setImmediate(r));
    }
    expect(w.closed).toBe(true);
    expect(informer.stalled()).toBeUndefined(); // 20 s: exactly at the bound
    clock.advance(1_000);
    expect(informer.stalled()).toMatch(/no progress for 21 s/);
    expect(stalledWatches(client)).toHaveLength(1);
    // The speaker's rule: a stalled watch counts only while the API answers otherwise
    // (the list answered moments ago); through a whole outage it does not.
    expect(stalledWatches(client, { onlyWhileApiAnswersMs: 60_000 })).toHaveLength(1);
    const later = performance.now() + 120_000;
    expect(stalledWatches(client, { onlyWhileApiAnswersMs: 60_000, now: later })).toEqual([]);
    // The API answers again: progress, healthy.
    freeze = false;
    await vi.waitFor(
      () => {
        clock.advance(1_000);
        expect(server.openWatches().length).toBe(1);
      },
      { timeout: 5_000 },
    );
    expect(informer.stalled()).toBeUndefined();
    await informer.stop();
    expect(stalledWatches(client)).toEqual([]);
  });

  it("caches what transform returns and hands that to the handlers", async () => {
    server.onRequest = () => list("10", [obj("a", "5", { big: "x".repeat(1000), keep: "1" })]);
    const got: Obj[] = [];
    informer = new Informer<Obj>(
      client,
      PATH,
      { add: (o) => got.push(o), update: (o) => got.push(o) },
      log,
      {},
      {
        clock,
        transform: (o) => ({ metadata: o.metadata, data: { keep: o.data?.keep ?? "" } }),
      },
    );
    void informer.start();
    await informer.synced();
    const w = await watchOpen(1);
    w.send("MODIFIED", obj("a", "6", { big: "y", keep: "2" }));
    await vi.waitFor(() => expect(got).toHaveLength(2));
    expect(got.map((o) => o.data)).toEqual([{ keep: "1" }, { keep: "2" }]);
    expect(informer.get("a", "ns")).toEqual({
      metadata: { name: "a", namespace: "ns", resourceVersion: "6" },
      data: { keep: "2" },
    });
  });

  it("asks for smaller pages when a list page is larger than the client reads", async () => {
    client = new KubeClient({ server: client.config.server }, { maxBodyBytes: 64 << 10 });
    const big = (name: string) => obj(name, "5", { blob: "x".repeat(20 << 10) });
    const all = ["a", "b", "c", "d", "e"].map(big);
    server.onRequest = (_m, _p, q) => {
      const limit = Number(q.get("limit"));
      const from = Number(q.get("continue") || 0);
      const items = all.slice(from, from + limit);
      const next = from + limit < all.length ? String(from + limit) : undefined;
      return {
        status: 200,
        body: { metadata: { resourceVersion: "10", continue: next }, items },
      };
    };
    start();
    await informer.synced();
    expect(informer.list().map((o) => o.metadata.name)).toEqual(["a", "b", "c", "d", "e"]);
    // 500, 250, ... each too large (5 × 20 KiB > 64 KiB) until 3 fit; then pages of 3.
    const limits = lists().map((r) => `${r.query.get("limit")}@${r.query.get("continue") ?? ""}`);
    expect(limits).toEqual(["500@", "250@", "125@", "62@", "31@", "15@", "7@", "3@", "3@3"]);
  });

  it("a list that fails at one object per page is retried later, like any failure", async () => {
    client = new KubeClient({ server: client.config.server }, { maxBodyBytes: 16 << 10 });
    server.onRequest = () => list("10", [obj("a", "5", { blob: "x".repeat(20 << 10) })]);
    start();
    await vi.waitFor(() => expect(clock.pending()).toEqual([375]));
    expect(lists().at(-1)?.query.get("limit")).toBe("1");
    expect(informer.list()).toEqual([]);
  });

  it("an event longer than the cap makes the informer list again, and the watch goes on after it", async () => {
    client = new KubeClient({ server: client.config.server }, { maxBodyBytes: 64 << 10 });
    let n = 0;
    server.onRequest = () =>
      ++n === 1 ? list("10", [obj("a", "5")]) : list("30", [obj("a", "5"), obj("b", "25")]);
    start();
    const w = await watchOpen(1);
    w.send("ADDED", obj("b", "20", { blob: "x".repeat(100 << 10) }));
    await vi.waitFor(() => expect(w.closed).toBe(true));
    await vi.waitFor(() => {
      clock.advance(1_000);
      expect(lists()).toHaveLength(2);
    });
    const w2 = await watchOpen(2);
    expect(w2.query.get("resourceVersion")).toBe("30");
    expect(seen).toEqual(["add a@5", "add b@25"]);
  });

  it("waits at least the server's Retry-After before watching again after a 429", async () => {
    server.onRequest = () => list("10", []);
    let fail = true;
    server.onWatch = () =>
      fail
        ? { status: 429, body: { message: "slow down" }, headers: { "retry-after": "4" } }
        : "open";
    start(); // the backoff alone would be 375 ms
    await vi.waitFor(() => expect(clock.pending()).toEqual([4_000]));
    fail = false;
    clock.advance(4_000);
    await watchOpen(1);
  });

  it("contains exceptions of handlers: logged with the object's key, counted, the informer carries on", async () => {
    const lines: Record<string, unknown>[] = [];
    const capture = pino(
      { level: "info" },
      { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) },
    );
    server.onRequest = () => list("10", [obj("bad", "5"), obj("good", "6")]);
    informer = new Informer<Obj>(
      client,
      PATH,
      {
        add: (o) => {
          if (o.metadata.name === "bad") throw new Error("boom");
          seen.push(`add ${o.metadata.name}`);
        },
        update: (o) => {
          if (o.data?.throw) throw new TypeError("cannot read");
          seen.push(`update ${o.metadata.name}@${o.metadata.resourceVersion}`);
        },
        delete: () => {
          throw new Error("on delete");
        },
      },
      capture,
      {},
      { clock, random: () => 0.5 },
    );
    void informer.start();
    await informer.synced();
    const w = await watchOpen(1);
    w.send("MODIFIED", obj("good", "7", { throw: "1" }));
    w.send("MODIFIED", obj("good", "8"));
    w.send("DELETED", obj("bad", "9"));
    await vi.waitFor(() => expect(informer.resourceVersion).toBe("9"));
    expect(seen).toEqual(["add good", "update good@8"]);
    // The cache is right whatever the handlers did, and the watch was never restarted.
    expect(informer.list().map((o) => o.metadata.resourceVersion)).toEqual(["8"]);
    expect(server.watches).toHaveLength(1);
    expect(client.stats.informerErrors).toBe(3);
    const errors = lines.filter((l) => l.msg === "informer handler failed; carrying on");
    expect(errors.map((l) => [l.object, l.in])).toEqual([
      ["ns/bad", "add"],
      ["ns/good", "update"],
      ["ns/bad", "delete"],
    ]);
    expect(String(errors[0]!.err)).toContain("boom");
  });

  it("a transform that throws is contained: the object is cached whole and handed over", async () => {
    server.onRequest = () => list("10", [obj("a", "5", { k: "1" }), obj("b", "6", { k: "2" })]);
    start({
      transform: (o) => {
        if (o.metadata.name === "a") throw new Error("transform bug");
        return { metadata: o.metadata };
      },
    });
    await informer.synced();
    expect(seen).toEqual(["add a@5", "add b@6"]);
    expect(informer.get("a", "ns")?.data).toEqual({ k: "1" });
    expect(informer.get("b", "ns")?.data).toBeUndefined();
    expect(client.stats.informerErrors).toBe(1);
  });
});
