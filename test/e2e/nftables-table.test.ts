// The speaker's forwarding table against the real kernel: the Forwarder applies its nft
// transactions inside a network namespace made for this test, and `nft` reads back what the
// kernel holds. Other tables are never touched. Traffic through the table is tested in
// dataplane.test.ts.
import { Writable } from "node:stream";
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { desiredForwarding } from "../../src/dataplane/desired.ts";
import { Forwarder } from "../../src/dataplane/forwarder.ts";
import { NftMissingError, runNft } from "../../src/dataplane/nft.ts";
import { buildTable } from "../../src/dataplane/nftables.ts";
import { randomPrefix } from "../lab/lab.ts";
import { run, tryRun } from "../lab/net.ts";

if (process.platform !== "linux" || process.getuid?.() !== 0) {
  throw new Error("the e2e tier needs Linux and root (network namespaces): run it as root");
}

const filter = { lbClass: "ironlb.dev/lb", handleUnclassed: true };
const ns = `${randomPrefix("ilbnft")}t`;
const inNs = ["ip", "netns", "exec", ns, "nft"];
const nft = (args: string[]) => run("ip", ["netns", "exec", ns, "nft", ...args]);

function logger() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: pino({ level: "debug" }, stream), lines };
}

function service(name: string, ip: string, o: Partial<V1Service["spec"]> = {}): V1Service {
  return {
    metadata: { name, namespace: "default" },
    spec: {
      type: "LoadBalancer",
      externalTrafficPolicy: "Cluster",
      ports: [{ name: "http", port: 80, protocol: "TCP" }],
      ...o,
    },
    status: { loadBalancer: { ingress: [{ ip, ipMode: "Proxy" }] } },
  };
}

function slice(name: string, addrs: string[], family = "IPv4"): V1EndpointSlice {
  return {
    addressType: family,
    metadata: { name, namespace: "default", labels: { "kubernetes.io/service-name": name } },
    endpoints: addrs.map((a) => ({ addresses: [a], nodeName: "node1" })),
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  };
}

/** Chain and set names of the kernel's inet ironlb table (sorted), or undefined if absent. */
async function kernelTable(): Promise<{ chains: string[]; sets: string[] } | undefined> {
  const out = await tryRun("ip", [
    "netns",
    "exec",
    ns,
    "nft",
    "-j",
    "list",
    "table",
    "inet",
    "ironlb",
  ]);
  if (out === undefined) return undefined;
  const items = (JSON.parse(out) as { nftables: Record<string, { name: string }>[] }).nftables;
  return {
    chains: items.flatMap((i) => (i.chain ? [i.chain.name] : [])).sort(),
    sets: items.flatMap((i) => (i.set ? [i.set.name] : [])).sort(),
  };
}

/** Chain and set names the renderer wants for these objects. */
/** The table's chain and set names for these objects; none without a Proxy-mode IP. */
function expected(services: V1Service[], slices: V1EndpointSlice[]) {
  const forwards = desiredForwarding({ ...filter, node: "node1", services, slices });
  if (forwards.length === 0) return undefined;
  const table = buildTable(forwards);
  return { chains: [...table.chains.keys()].sort(), sets: [...table.sets.keys()].sort() };
}

describe("the forwarding table in a real kernel", () => {
  beforeAll(async () => {
    await run("ip", ["netns", "add", ns]);
    // Someone else's table, which must survive everything below.
    await run("ip", ["netns", "exec", ns, "nft", "-f", "-"], {
      input:
        "table ip other {\n chain c {\n type filter hook input priority 0; policy accept;\n counter\n }\n}\n",
    });
  });
  afterAll(async () => {
    await tryRun("ip", ["netns", "del", ns]);
  });

  it("start keeps an earlier run's table (forwarding survives a restart); the first update replaces it whole", async () => {
    await nft(["add", "table", "inet", "ironlb"]);
    await nft(["add", "chain", "inet", "ironlb", "stale-leftover"]);
    const { log } = logger();
    const f = new Forwarder({ node: "node1", ...filter, nft: (s) => runNft(s, inNs) }, log);
    await f.start();
    expect(await kernelTable()).toEqual({ chains: ["stale-leftover"], sets: [] });
    f.update([service("web", "198.51.100.10")], [slice("web", ["198.51.100.131"])]);
    await f.settled();
    const built = await kernelTable();
    expect(built?.chains).not.toContain("stale-leftover");
    expect(built?.chains).toEqual(
      expect.arrayContaining(["no-endpoints", "output", "postrouting", "prerouting", "services"]),
    );
    await f.stop();
    expect(await kernelTable()).toBeUndefined();
  });

  it("with no ipMode Proxy Service the node has no table: an earlier run's goes, none is made", async () => {
    await nft(["add", "table", "inet", "ironlb"]);
    await nft(["add", "chain", "inet", "ironlb", "stale-leftover"]);
    const { log } = logger();
    const f = new Forwarder({ node: "node1", ...filter, nft: (s) => runNft(s, inNs) }, log);
    await f.start();
    f.update([], []);
    await f.settled();
    expect(await kernelTable()).toBeUndefined();
    // Updates without Proxy Services, and the stop, leave the node without a table.
    const vip = service("api", "198.51.100.11");
    vip.status!.loadBalancer!.ingress![0]!.ipMode = "VIP";
    f.update([vip], []);
    await f.settled();
    await f.stop();
    expect(await kernelTable()).toBeUndefined();
  });

  it("follows updates incrementally, keeps other tables, and removes its table on stop", async () => {
    const { log, lines } = logger();
    const f = new Forwarder({ node: "node1", ...filter, nft: (s) => runNft(s, inNs) }, log);
    await f.start();
    const dual = service("dual", "198.51.100.10", { sessionAffinity: "ClientIP" });
    dual.status!.loadBalancer!.ingress!.push({ ip: "2001:db8:2:100::10", ipMode: "Proxy" });
    const steps: [V1Service[], V1EndpointSlice[]][] = [
      [
        [dual],
        [
          slice("dual", ["198.51.100.131", "198.51.100.146"]),
          {
            ...slice("dual", ["2001:db8:2:1::5"], "IPv6"),
            metadata: {
              name: "dual-v6",
              namespace: "default",
              labels: { "kubernetes.io/service-name": "dual" },
            },
          },
        ],
      ],
      [[dual], [slice("dual", ["198.51.100.131"])]],
      [
        [dual, service("none", "198.51.100.11", { externalTrafficPolicy: "Local" })],
        [slice("dual", ["198.51.100.131"])],
      ],
      [[], []],
    ];
    for (const [svcs, slices] of steps) {
      f.update(svcs, slices);
      await f.settled();
      expect(await kernelTable()).toEqual(expected(svcs, slices));
    }
    // The rules themselves, once: a DNAT per endpoint and the reject for the Local Service.
    f.update(steps[2]![0], steps[2]![1]);
    await f.settled();
    const text = await nft(["list", "table", "inet", "ironlb"]);
    expect(text).toContain("dnat ip to 198.51.100.131:8080");
    expect(text).toContain("ip daddr 198.51.100.11 tcp dport 80 reject with tcp reset");
    expect(text).toContain("ip6 daddr 2001:db8:2:100::10 tcp dport 80 reject with tcp reset");
    expect(lines.filter((l) => l.level === 50)).toEqual([]);
    expect(lines.some((l) => l.msg === "forwarding updated" && l.service === "default/none")).toBe(
      true,
    );
    await f.stop();
    expect(await kernelTable()).toBeUndefined();
    expect(await nft(["list", "table", "ip", "other"])).toContain("counter");
  });

  it("a failed transaction changes nothing, is logged once, and the next update rebuilds", async () => {
    const { log, lines } = logger();
    let fail = true;
    const f = new Forwarder(
      {
        node: "node1",
        ...filter,
        // A transaction the kernel refuses part-way: nft applies all of it or nothing.
        nft: (s) => runNft(fail ? `${s}add rule inet ironlb nosuchchain accept\n` : s, inNs),
      },
      log,
    );
    await f.start();
    expect(await kernelTable()).toBeUndefined();
    f.update([service("web", "198.51.100.12")], [slice("web", ["198.51.100.131"])]);
    await f.settled();
    expect(lines.filter((l) => l.msg === "applying the forwarding table failed")).toHaveLength(1);
    fail = false;
    f.update([service("web", "198.51.100.12")], [slice("web", ["198.51.100.131"])]);
    await f.settled();
    expect((await kernelTable())?.chains).toHaveLength(7);
    await f.stop();
  });

  it("a missing nft binary is a clear error, not a crash", async () => {
    await expect(runNft("", ["/nonexistent/nft"])).rejects.toBeInstanceOf(NftMissingError);
    const { log, lines } = logger();
    const f = new Forwarder(
      { node: "node1", ...filter, nft: (s) => runNft(s, ["/nonexistent/nft"]) },
      log,
    );
    await f.start();
    f.update([service("web", "198.51.100.12")], []);
    await f.settled();
    await f.stop();
    const errors = lines.filter((l) => l.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toBe("cannot forward ipMode Proxy Services: nft is missing");
    expect(String(errors[0]!.err)).toContain("install nftables in the speaker image");
  });
});
