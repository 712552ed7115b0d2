import { Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KubeClient, type WriteFence } from "./client.ts";
import { FakeApiServer } from "./fake-apiserver.ts";

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
});
