import { Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KubeClient, ResponseTooLargeError, retryAfterMs, type WriteFence } from "./client.ts";
import { FakeApiServer } from "./fake-apiserver.ts";
import { FakeClock } from "./fake-clock.ts";

let server: FakeApiServer;
let client: KubeClient;

beforeEach(async () => {
  server = new FakeApiServer();
  client = new KubeClient({ server: await server.start() });
});
afterEach(() => server.close());

/** A fence a test opens and closes by hand. */
class Fence implements WriteFence {
  open = true;
  term = new AbortController();
  writeSignal(): AbortSignal {
    if (!this.open) throw new Error("fenced off");
    return this.term.signal;
  }
}

describe("KubeClient", () => {
  it("answers with the parsed body, and an ApiError carrying the server's message", async () => {
    server.onRequest = (_m, path) =>
      path === "/ok"
        ? { status: 200, body: { a: 1 } }
        : { status: 403, body: { kind: "Status", message: "forbidden here" } };
    await expect(client.get("/ok")).resolves.toEqual({ a: 1 });
    await expect(client.get("/no")).rejects.toMatchObject({
      code: 403,
      message: "GET /no: HTTP 403: forbidden here",
    });
  });

  it("aborts a request when its signal aborts", async () => {
    server.onRequest = () => "hang";
    const ctl = new AbortController();
    const p = client.get("/slow", undefined, ctl.signal);
    await vi.waitFor(() => expect(server.requests).toHaveLength(1));
    ctl.abort(new Error("deadline"));
    await expect(p).rejects.toThrow();
  });

  it("a fenced view refuses writes when the fence is closed, and lets reads through", async () => {
    server.onRequest = () => ({ status: 200, body: {} });
    const fence = new Fence();
    const fenced = client.fenced(fence);
    await expect(fenced.mergePatch("/x", { a: 1 })).resolves.toEqual({});
    fence.open = false;
    await expect(fenced.mergePatch("/x", { a: 1 })).rejects.toThrow("fenced off");
    await expect(fenced.create("/x", {})).rejects.toThrow("fenced off");
    await expect(fenced.get("/x")).resolves.toEqual({});
    expect(server.requests.map((r) => r.method)).toEqual(["PATCH", "GET"]);
    // The unfenced client is unaffected and shares the watch registry.
    await expect(client.mergePatch("/x", {})).resolves.toEqual({});
    expect(fenced.watches).toBe(client.watches);
  });

  it("a fenced write in flight is cut off when the term ends", async () => {
    server.onRequest = () => "hang";
    const fence = new Fence();
    const p = client.fenced(fence).replace("/x", { a: 1 });
    await vi.waitFor(() => expect(server.requests).toHaveLength(1));
    fence.term.abort(new Error("stepped down"));
    await expect(p).rejects.toThrow();
  });

  it("watch: calls onOpen when the server accepts, streams events, ends normally", async () => {
    const events: string[] = [];
    let opened = 0;
    const done = new Promise<Error | undefined>((resolve) =>
      client.watch<{ metadata: { name: string } }>(
        "/api/v1/pods",
        { resourceVersion: "5" },
        (ev) => events.push(`${ev.type} ${ev.object.metadata.name}`),
        resolve,
        () => opened++,
      ),
    );
    await vi.waitFor(() => expect(server.watches).toHaveLength(1));
    await vi.waitFor(() => expect(opened).toBe(1));
    const w = server.watches[0]!;
    expect(w.query.get("allowWatchBookmarks")).toBe("true");
    w.send("ADDED", { metadata: { name: "p" } });
    w.res.write('{"type":"DELETED","object":{"metadata":'); // split across chunks
    w.res.write('{"name":"p"}}}\n');
    w.end();
    expect(await done).toBeUndefined();
    expect(events).toEqual(["ADDED p", "DELETED p"]);
  });

  it("watch: the connection has TCP keepalive, so the kernel notices a vanished peer", async () => {
    const spy = vi.spyOn(Socket.prototype, "setKeepAlive");
    try {
      const h = client.watch(
        "/api/v1/pods",
        {},
        () => {},
        () => {},
      );
      await vi.waitFor(() => expect(server.watches).toHaveLength(1));
      expect(spy).toHaveBeenCalledWith(true, 30_000);
      h.abort();
    } finally {
      spy.mockRestore();
    }
  });

  it("watch: an ERROR event ends the watch with its status code", async () => {
    const done = new Promise<Error | undefined>((resolve) =>
      client.watch("/api/v1/pods", {}, () => {}, resolve),
    );
    await vi.waitFor(() => expect(server.watches).toHaveLength(1));
    server.watches[0]!.send("ERROR", { kind: "Status", code: 410, message: "too old" });
    expect(await done).toMatchObject({ code: 410 });
  });

  it.each([
    ["null", "null"],
    ["an event without an object", '{"type":"ADDED"}'],
    ["an event whose object is not one", '{"type":"ADDED","object":"p"}'],
    ["an event without a type", '{"object":{"metadata":{"name":"p"}}}'],
  ])("watch: %s ends the watch as malformed, never reaching onEvent", async (_what, line) => {
    const seen: unknown[] = [];
    const done = new Promise<Error | undefined>((resolve) =>
      client.watch("/api/v1/pods", {}, (ev) => seen.push(ev), resolve),
    );
    await vi.waitFor(() => expect(server.watches).toHaveLength(1));
    server.watches[0]!.res.write(`${line}\n`);
    expect(await done).toMatchObject({ message: "watch /api/v1/pods: malformed event" });
    expect(seen).toEqual([]);
  });

  it("refuses a response body larger than the cap, naming the request and the cap", async () => {
    const capped = new KubeClient({ server: client.config.server }, { maxBodyBytes: 1 << 20 });
    server.onRequest = (_m, path) => ({
      status: 200,
      body: { data: "x".repeat(path === "/big" ? 1 << 20 : 1000) },
    });
    await expect(capped.get("/small")).resolves.toMatchObject({ data: "x".repeat(1000) });
    const err = await capped.get("/big").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ResponseTooLargeError);
    expect((err as Error).message).toBe(
      "GET /big: the answer is larger than the 1 MiB cap; not read",
    );
    // The connection it came on is gone; the next request works.
    await expect(capped.get("/small")).resolves.toBeDefined();
  });

  it("refuses a body larger than the cap without a content-length too (chunked)", async () => {
    const capped = new KubeClient({ server: client.config.server }, { maxBodyBytes: 1 << 20 });
    server.onRequest = () => ({
      status: 200,
      body: { data: "y".repeat(2 << 20) },
      headers: { "transfer-encoding": "chunked" },
    });
    await expect(capped.get("/big")).rejects.toBeInstanceOf(ResponseTooLargeError);
  });

  it("watch: an event line longer than the cap ends the watch with a clear error", async () => {
    const capped = new KubeClient({ server: client.config.server }, { maxBodyBytes: 64 << 10 });
    const seen: string[] = [];
    const done = new Promise<Error | undefined>((resolve) =>
      capped.watch<{ metadata: { name: string } }>(
        "/api/v1/services",
        {},
        (ev) => seen.push(ev.object.metadata.name),
        resolve,
      ),
    );
    await vi.waitFor(() => expect(server.watches).toHaveLength(1));
    const w = server.watches[0]!;
    w.send("ADDED", { metadata: { name: "small", annotations: { a: "x".repeat(60 << 10) } } });
    // A line split over many chunks, none of them alone over the cap.
    const big = JSON.stringify({
      type: "ADDED",
      object: { metadata: { name: "big", annotations: { a: "x".repeat(200 << 10) } } },
    });
    for (let i = 0; i < big.length; i += 16 << 10) w.res.write(big.slice(i, (i + 16) << 10));
    const err = await done;
    expect(err).toBeInstanceOf(ResponseTooLargeError);
    expect(err?.message).toBe(
      "watch /api/v1/services: an event: the answer is larger than the 65536 bytes cap; not read",
    );
    expect(seen).toEqual(["small"]);
  });

  it("retries a 429 after the server's Retry-After, on the client's clock", async () => {
    const clock = new FakeClock();
    const c = new KubeClient({ server: client.config.server }, { clock });
    let n = 0;
    server.onRequest = () =>
      ++n <= 2
        ? { status: 429, body: { message: "slow down" }, headers: { "retry-after": "3" } }
        : { status: 200, body: { ok: true } };
    const p = c.mergePatch("/x", { a: 1 });
    await vi.waitFor(() => expect(clock.pending()).toEqual([3_000]));
    expect(server.requests).toHaveLength(1);
    clock.advance(2_999);
    expect(server.requests).toHaveLength(1); // not before the server said
    clock.advance(1);
    await vi.waitFor(() => expect(clock.pending()).toEqual([3_000]));
    expect(server.requests).toHaveLength(2);
    clock.advance(3_000);
    await expect(p).resolves.toEqual({ ok: true });
    expect(server.requests.map((r) => r.method)).toEqual(["PATCH", "PATCH", "PATCH"]);
    expect(c.stats.throttledByServer).toBe(2);
  });

  it("gives up on 429 after a few retries, with the server's error", async () => {
    const clock = new FakeClock();
    const c = new KubeClient({ server: client.config.server }, { clock });
    server.onRequest = () => ({
      status: 429,
      body: { message: "too many requests" },
      headers: { "retry-after": "1" },
    });
    const p = c.get("/x").catch((e: unknown) => e);
    for (let i = 0; i < 5; i++) {
      await vi.waitFor(() => expect(clock.pending()).toEqual([1_000]));
      clock.advance(1_000);
    }
    expect(await p).toMatchObject({ code: 429, message: "GET /x: HTTP 429: too many requests" });
    expect(server.requests).toHaveLength(6);
  });

  it("a 429 wait ends when the request's signal aborts", async () => {
    const clock = new FakeClock();
    const c = new KubeClient({ server: client.config.server }, { clock });
    server.onRequest = () => ({ status: 429, body: {}, headers: { "retry-after": "5" } });
    const ctl = new AbortController();
    const p = c.get("/x", undefined, ctl.signal);
    await vi.waitFor(() => expect(clock.pending()).toEqual([5_000]));
    ctl.abort(new Error("deadline"));
    await expect(p).rejects.toThrow("deadline");
    expect(clock.pending()).toEqual([]);
  });

  it.each([
    ["seconds", "7", 7_000],
    ["zero", "0", 0],
    ["beyond the bound", "3600", 10_000],
    ["missing", undefined, 1_000],
    ["garbage", "soon", 1_000],
    ["an HTTP date", "Thu, 01 Jan 1970 00:00:04 GMT", 4_000],
    ["a date in the past", "Thu, 01 Jan 1970 00:00:00 GMT", 0],
  ])("Retry-After %s", (_what, header, ms) => {
    expect(retryAfterMs(header, 0)).toBe(ms);
  });

  it("a token bucket paces requests beyond the burst; Lease requests do not wait", async () => {
    const clock = new FakeClock();
    const c = new KubeClient({ server: client.config.server }, { clock, qps: 10, burst: 2 });
    server.onRequest = () => ({ status: 200, body: {} });
    const done: string[] = [];
    const send = (path: string) => c.get(path).then(() => done.push(path));
    const all = [send("/1"), send("/2"), send("/3"), send("/4")];
    await vi.waitFor(() => expect(done).toEqual(["/1", "/2"]));
    expect(clock.pending()).toEqual([100, 200]); // 10 per second: one each 100 ms
    await c.get("/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"); // not queued
    clock.advance(100);
    await vi.waitFor(() => expect(done).toEqual(["/1", "/2", "/3"]));
    clock.advance(100);
    await Promise.all(all);
    expect(done).toEqual(["/1", "/2", "/3", "/4"]);
    // Idle time refills the bucket, up to the burst.
    clock.advance(10_000);
    await Promise.all([c.get("/5"), c.get("/6")]);
    expect(clock.pending()).toEqual([]);
  });

  it("setRateLimit applies to the client and its fenced views", async () => {
    const clock = new FakeClock();
    const c = new KubeClient({ server: client.config.server }, { clock });
    server.onRequest = () => ({ status: 200, body: {} });
    await Promise.all([c.get("/a"), c.get("/b"), c.get("/c")]); // no limit by default
    c.setRateLimit(1, 1);
    const fenced = c.fenced(new Fence());
    await fenced.mergePatch("/x", {});
    const p = fenced.mergePatch("/y", {});
    await vi.waitFor(() => expect(clock.pending()).toEqual([1_000]));
    clock.advance(1_000);
    await p;
  });
});
