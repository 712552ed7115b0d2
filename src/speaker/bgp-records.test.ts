import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { IPAnnouncement, IPAnnouncementStatus } from "../api/ipannouncement.ts";
import { KubeClient } from "../k8s/client.ts";
import { FakeApiServer } from "../k8s/fake-apiserver.ts";
import { advertisedPeers, BgpRecords, bgpFieldManager, bgpRecordChanges } from "./bgp-records.ts";

let server: FakeApiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const rec = (status: IPAnnouncementStatus): IPAnnouncement => ({
  apiVersion: "ironlb.dev/v1beta1",
  kind: "IPAnnouncement",
  metadata: { name: status.ip.replace(/[.:]/g, "-") },
  status,
});

describe("bgpRecordChanges: this node's BGP entries against the plan", () => {
  const since = "2026-12-01T10:00:00Z";
  const cases: Array<{
    name: string;
    desired: [string, string[]][];
    records: IPAnnouncementStatus[];
    apply: [string, string[]][];
    remove: string[];
    empty?: string[];
  }> = [
    {
      name: "a new IP: its entry is written",
      desired: [["192.0.2.1", ["r2", "r1"]]],
      records: [],
      apply: [["192.0.2.1", ["r1", "r2"]]],
      remove: [],
    },
    {
      name: "an entry as wanted (peers in any order): nothing to write",
      desired: [["192.0.2.1", ["r1", "r2"]]],
      records: [{ ip: "192.0.2.1", bgp: [{ node: "a", peers: ["r2", "r1"], since }] }],
      apply: [],
      remove: [],
    },
    {
      name: "another node's entry, or the Layer 2 owner, is not ours: ours is still written",
      desired: [["192.0.2.1", ["r1"]]],
      records: [{ ip: "192.0.2.1", node: "a", bgp: [{ node: "b", peers: ["r1"] }] }],
      apply: [["192.0.2.1", ["r1"]]],
      remove: [],
    },
    {
      name: "a peer added: rewritten",
      desired: [["192.0.2.1", ["r1", "r2"]]],
      records: [{ ip: "192.0.2.1", bgp: [{ node: "a", peers: ["r1"] }] }],
      apply: [["192.0.2.1", ["r1", "r2"]]],
      remove: [],
    },
    {
      name: "no longer advertised: our entry goes, others' are not touched",
      desired: [],
      records: [
        { ip: "192.0.2.1", bgp: [{ node: "a", peers: ["r1"] }] },
        { ip: "192.0.2.2", bgp: [{ node: "b", peers: ["r1"] }] },
        { ip: "192.0.2.3", node: "a" },
      ],
      apply: [],
      remove: ["192.0.2.1"],
    },
    {
      name: "a record nobody announces or advertises is left over: deleted",
      desired: [["192.0.2.5", ["r1"]]],
      records: [{ ip: "192.0.2.4", bgp: [] }, { ip: "192.0.2.5" }, { ip: "192.0.2.6", node: "b" }],
      apply: [["192.0.2.5", ["r1"]]],
      remove: [],
      empty: ["192.0.2.4"],
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      const got = bgpRecordChanges("a", new Map(c.desired), c.records.map(rec));
      expect([...got.apply]).toEqual(c.apply);
      expect(got.remove).toEqual(c.remove);
      expect(got.empty).toEqual(c.empty ?? []);
    });
});

describe("bgpFieldManager", () => {
  it("is one per node, within the API server's 128 characters even for long node names", () => {
    expect(bgpFieldManager("node-1")).toBe("ironlb-bgp-node-1");
    const long = "n".repeat(200);
    const m = bgpFieldManager(long);
    expect(m.length).toBeLessThanOrEqual(128);
    // Two long names that differ only at the end do not share a manager (one would
    // otherwise remove the other's entry).
    expect(bgpFieldManager(`${long}-x`)).not.toBe(bgpFieldManager(`${long}-y`));
  });
});

describe("advertisedPeers", () => {
  it("lists, per IP the plan advertises, its peers sorted; an IP advertised to none is left out", () => {
    const ips = new Map([
      [
        "192.0.2.1",
        {
          services: ["a/b"],
          advertised: new Map([
            ["r2", ["192.0.2.1/32"]],
            ["r1", ["192.0.2.0/24"]],
          ]),
        },
      ],
      ["192.0.2.2", { services: ["a/c"], advertised: new Map(), reason: "no ready endpoint" }],
    ]);
    expect([...advertisedPeers({ ips })]).toEqual([["192.0.2.1", ["r1", "r2"]]]);
  });
});

describe("BgpRecords", () => {
  it("applies only its own entry, under its own field manager, a few writes at a time", async () => {
    server = new FakeApiServer();
    const bodies: unknown[] = [];
    server.onRequest = (_method, _path, _query, body) => {
      bodies.push(JSON.parse(body));
      return "hang"; // under way until the test ends
    };
    const api = new KubeClient({ server: await server.start() });
    const records = new BgpRecords(
      api,
      { node: "node-a", records: () => [], onChange: () => {} },
      pino({ level: "silent" }),
    );
    const desired = new Map(
      Array.from({ length: 20 }, (_, i) => [`192.0.2.${i + 1}`, ["tor"]] as const),
    );
    records.sync(desired);
    records.sync(desired); // nothing more while those are under way
    await expect.poll(() => server!.requests.length).toBe(8);
    await new Promise((r) => setTimeout(r, 50));
    expect(server.requests).toHaveLength(8);
    const first = server.requests[0]!;
    expect(first.method).toBe("PATCH");
    expect(first.path).toBe("/apis/ironlb.dev/v1beta1/ipannouncements/192-0-2-1");
    expect(first.query.get("fieldManager")).toBe("ironlb-bgp-node-a");
    expect(first.query.get("force")).toBe("true");
    expect(bodies[0]).toMatchObject({
      apiVersion: "ironlb.dev/v1beta1",
      kind: "IPAnnouncement",
      metadata: { name: "192-0-2-1" },
      status: { ip: "192.0.2.1", bgp: [{ node: "node-a", peers: ["tor"] }] },
    });
    // Nothing but its own entry: no Layer 2 field, no other node.
    expect(Object.keys((bodies[0] as { status: object }).status).sort()).toEqual(["bgp", "ip"]);
    records.stop();
  });
});
