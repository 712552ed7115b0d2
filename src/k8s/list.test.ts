import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeClient, ResponseTooLargeError } from "./client.ts";
import { FakeApiServer } from "./fake-apiserver.ts";
import { listAll } from "./list.ts";

let server: FakeApiServer;
let client: KubeClient;

beforeEach(async () => {
  server = new FakeApiServer();
  client = new KubeClient({ server: await server.start() }, { maxBodyBytes: 64 << 10 });
});
afterEach(() => server.close());

/** A collection of `n` objects of `bytes` each, paged by limit/continue as the API server does. */
function serve(n: number, bytes: number) {
  const all = Array.from({ length: n }, (_, i) => ({
    metadata: { name: `o${i}` },
    data: "x".repeat(bytes),
  }));
  server.onRequest = (_m, _p, q) => {
    const limit = Number(q.get("limit"));
    const from = Number(q.get("continue") || 0);
    const next = from + limit < n ? String(from + limit) : undefined;
    return {
      status: 200,
      body: {
        metadata: { resourceVersion: "1", continue: next },
        items: all.slice(from, from + limit),
      },
    };
  };
}

describe("listAll", () => {
  it("reads a collection larger than the body cap in pages small enough", async () => {
    serve(10, 20 << 10); // 200 KiB in all, 64 KiB read at most
    const items = await listAll<{ metadata: { name: string } }>(client, "/api/v1/services");
    expect(items.map((o) => o.metadata.name)).toEqual(
      Array.from({ length: 10 }, (_, i) => `o${i}`),
    );
    const limits = server.requests.map((r) => Number(r.query.get("limit")));
    expect(limits.slice(0, 8)).toEqual([500, 250, 125, 62, 31, 15, 7, 3]);
    expect(new Set(limits.slice(7))).toEqual(new Set([3])); // the size that fits is kept
  });

  it("fails with the cap's error when one object alone is larger", async () => {
    serve(2, 100 << 10);
    await expect(listAll(client, "/api/v1/services")).rejects.toBeInstanceOf(ResponseTooLargeError);
    expect(server.requests.at(-1)?.query.get("limit")).toBe("1");
  });

  it("keeps pages under 2 MiB, while one object alone may be as large as the client's cap", async () => {
    client = new KubeClient({ server: client.config.server }); // the default cap, 16 MiB
    serve(3, 700 << 10); // 2.1 MiB in all
    expect(await listAll(client, "/api/v1/services")).toHaveLength(3);
    expect(server.requests.map((r) => Number(r.query.get("limit")))).toEqual([
      500, 250, 125, 62, 31, 15, 7, 3, 1, 1, 1,
    ]);
    server.requests.length = 0;
    serve(2, 5 << 20); // each object 5 MiB: read one by one
    expect(await listAll(client, "/api/v1/services")).toHaveLength(2);
  });
});
