// End-to-end data path: client → ARP/NDP → announcing node → Service → pod, on a LAN of
// network namespaces with real kube-proxy (nftables mode) on every node, real pods
// (namespaces answering HTTP with their name and the client address they saw), Pod status
// turned into EndpointSlices by the real kube-controller-manager, and ironlb's controller
// and speakers. Both modes: ipMode VIP (kube-proxy serves the IP) and ipMode Proxy (the
// speaker's own nftables table), with the same Services switched from one to the other.
//
// Addresses (test/lab/addresses.ts): LAN 203.0.113.0/25 and 2001:db8:2::/64, pods
// 198.51.100.128/25 and 2001:db8:2:100::/56, ClusterIPs 198.51.100.0/26, Service IPs
// 198.51.100.65-73 and 2001:db8:2:ff::10-1f. Only the uplink exists in the root namespace.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { E2E_SUBNET, POOL_CIDR } from "../lab/addresses.ts";
import { destroyStale, Lab, type LabService, type PodAnswer, randomPrefix } from "../lab/lab.ts";
import { listNetns, run } from "../lab/net.ts";
import { ensureNamespace, waitFor } from "../support/kube.ts";

if (process.platform !== "linux" || process.getuid?.() !== 0) {
  throw new Error("the e2e tier needs Linux and root (network namespaces): run it as root");
}

const NS = "dataplane";

/** The root namespace's firewall and sysctls, minus counters that move on their own. */
async function rootState(): Promise<{ ruleset: string; sysctls: string }> {
  const ruleset = await run("nft", ["list", "ruleset"]);
  const volatile =
    /^(fs\.|kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|net\.netfilter\.nf_conntrack_count|kernel\.tainted|vm\.stat_refresh)/;
  // Per-interface keys of links that come and go (the lab's own uplink among them).
  const ifaceKey = /^net\.(ipv4|ipv6)\.(conf|neigh)\.([^.]+)\./;
  const sysctls = (await run("sysctl", ["-a"]))
    .split("\n")
    .filter((l) => {
      const key = l.split(" = ")[0] ?? "";
      if (volatile.test(key)) return false;
      const m = ifaceKey.exec(key);
      return !m || ["all", "default", "lo", "eth0"].includes(m[3]!);
    })
    .join("\n");
  return { ruleset, sysctls };
}

/**
 * A table listing as configuration: blocks (chains, sets) sorted by name, rules in order,
 * dynamic set contents (affinity entries: state, not configuration) left out.
 */
function tableShape(listing: string): string {
  const blocks: string[] = [];
  let cur: string[] = [];
  for (const line of listing.replace(/elements = \{[^}]*\}/g, "").split("\n")) {
    const l = line.trim();
    if (/^(chain|set) /.test(l)) cur = [l];
    else if (l === "}" && cur.length > 0) {
      blocks.push(cur.join(" | "));
      cur = [];
    } else if (l !== "" && cur.length > 0) cur.push(l);
  }
  return blocks.sort().join("\n");
}

describe("data path: client → Service IP → pod", () => {
  const prefix = randomPrefix("ilbdp");
  let lab: Lab;
  let workDir = "";
  let before: { ruleset: string; sysctls: string };
  const svcs: Record<string, LabService> = {};
  const ips: Record<string, string[]> = {};

  /** Many requests from the client (each a new connection); fails when one is unanswered. */
  async function requests(ip: string, port: number, n: number): Promise<PodAnswer[]> {
    const out: PodAnswer[] = [];
    for (let i = 0; i < n; i++) out.push(await lab.clientRequest(ip, port, 2000));
    return out;
  }

  /** Waits until the Services' status says `mode` for every IP, then until the IP answers. */
  async function useMode(mode: "VIP" | "Proxy"): Promise<void> {
    if (lab.controller?.running()) await lab.controller.stop("SIGTERM");
    lab.startController(["--ip-mode", mode]);
    for (const s of Object.values(svcs)) {
      await waitFor(
        `${s.name}: ipMode ${mode} in status`,
        async () => {
          const ing = (await lab.getService(s.name, NS)).status?.loadBalancer?.ingress ?? [];
          return ing.length > 0 && ing.every((i) => i.ipMode === mode);
        },
        30_000,
        100,
      );
    }
    for (const [name, list] of Object.entries(ips))
      for (const ip of list)
        await waitFor(
          `${name} answering on ${ip} (${mode})`,
          // clientRequest: a timeout reports the last failure.
          () => lab.clientRequest(ip, svcs[name]!.port, 500),
          15_000,
          50,
        ).catch(async (err: Error) => {
          throw new Error(`${err.message}\n${await explain(ip)}`);
        });
  }

  /** What the client and the speakers say about an IP (for failure messages). */
  async function explain(ip: string): Promise<string> {
    const lines = [
      `client neighbour entry: ${JSON.stringify(await lab.clientNeighbour(ip))}`,
      `ARP/NDP answers: ${JSON.stringify(ip.includes(":") ? "n/a" : await lab.arpingFromClient(ip, { count: 2 }))}`,
    ];
    for (const n of lab.nodes) {
      const logs = (lab.speaker(n.name)?.logs() ?? []).filter(
        (l) => (typeof l.level === "number" && l.level >= 40) || l.ip === ip,
      );
      for (const l of logs.slice(-8))
        lines.push(
          `  ${n.name}: ${l.msg} ${JSON.stringify({ ...l, msg: undefined, time: undefined, pid: undefined, hostname: undefined })}`,
        );
    }
    return lines.join("\n");
  }

  async function ipsOf(s: LabService, count: number): Promise<string[]> {
    return waitFor(
      `${count} IP(s) on ${s.name}`,
      async () => {
        const ing = (await lab.getService(s.name, NS)).status?.loadBalancer?.ingress ?? [];
        return ing.length === count ? ing.map((i) => i.ip!) : undefined;
      },
      20_000,
      100,
    );
  }

  beforeAll(async () => {
    await destroyStale("ilbdp");
    before = await rootState();
    workDir = mkdtempSync(join(tmpdir(), "ironlb-e2e-dataplane-"));
    lab = await Lab.create({
      prefix,
      subnet: E2E_SUBNET,
      poolCIDR: POOL_CIDR,
      ipv6: true,
      nodes: 3,
      kubeconfig: inject("kubeconfig"),
      binDir: inject("binDir"),
      workDir,
    });
    await ensureNamespace(lab.kc, NS);
    lab.startController(["--ip-mode", "VIP"]);
    for (const n of lab.nodes) lab.startSpeaker(n.name);
    await lab.waitSpeakersReady(60_000);
    // Its own pool (other e2e files may leave theirs on the shared control plane).
    await lab.createPool(
      "dp",
      ["198.51.100.65-198.51.100.73", "2001:db8:2:ff::10-2001:db8:2:ff::1f"],
      {
        autoAssign: false,
      },
    );
    await lab.createL2Advertisement("dp", { ipAddressPools: ["dp"] });
    const [n1, n2, n3] = lab.nodes.map((n) => n.name) as [string, string, string];
    const mk = async (name: string, o: Parameters<Lab["createService"]>[1], count = 1) => {
      svcs[name] = await lab.createService(`dp-${name}`, { namespace: NS, pool: "dp", ...o });
      ips[name] = await ipsOf(svcs[name]!, count);
    };
    // Side by side: independent Services, their pods and IPs (the tests read each IP back).
    await Promise.all([
      mk("cluster", { port: 80 }),
      // Two pods on n1, one on n2: wherever it is announced, Local must stay on that node.
      mk("local", { port: 81, externalTrafficPolicy: "Local", endpoints: [n1, n1, n2] }),
      mk("affinity", { port: 82, affinitySeconds: 600 }),
      mk("flip", { port: 83, endpoints: [n1, { node: n3, ready: false }] }),
      mk("dual", { port: 84, dualStack: true }, 2),
    ]);
  });

  afterAll(async () => {
    try {
      await lab?.destroy();
    } finally {
      if (workDir && !process.env.IRONLB_KEEP_LOGS)
        rmSync(workDir, { recursive: true, force: true });
    }
    expect((await listNetns()).filter((n) => n.startsWith(prefix))).toEqual([]);
    // Nothing of the lab remains in the root namespace: same firewall, same sysctls.
    const after = await rootState();
    expect(after.ruleset).toBe(before.ruleset);
    expect(after.sysctls).toBe(before.sysctls);
  });

  for (const mode of ["VIP", "Proxy"] as const) {
    describe(`ipMode ${mode}`, () => {
      beforeAll(async () => {
        await useMode(mode);
      });

      it("the speaker's table has forwarding for Proxy-mode IPs only", async () => {
        for (const n of lab.nodes) {
          const table = await lab.nodeTable(n.name);
          // Without a Proxy-mode IP the node has no ironlb table at all.
          if (mode === "VIP") {
            expect(table).toBeUndefined();
            continue;
          }
          expect(table).toContain("table inet ironlb");
          for (const ip of Object.values(ips).flat()) expect(table).toContain(ip);
        }
      });

      it("Cluster: the client reaches pods on every node, through the announcing node", async () => {
        const [ip] = ips.cluster!;
        const answers = await requests(ip!, 80, 30);
        // Three pods, one per node, a random pick per connection: all three answer.
        expect(new Set(answers.map((a) => a.node))).toEqual(new Set(lab.nodes.map((n) => n.name)));
        // Masqueraded: every pod saw the one announcing node, never the client.
        expect(new Set(answers.map((a) => a.via)).size).toBe(1);
        expect(answers.map((a) => a.client)).not.toContain(lab.client.ip);
      });

      it("Local: only pods on the announcing node answer, and they see the client", async () => {
        const [ip] = ips.local!;
        const answers = await requests(ip!, 81, 20);
        const nodes = new Set(answers.map((a) => a.node));
        expect(nodes.size).toBe(1);
        const [node] = [...nodes];
        // It is the announcing node (its MAC answers ARP for the IP).
        await lab.clientForget(ip!);
        await lab.clientRequest(ip!, 81);
        expect((await lab.clientNeighbour(ip!))?.mac).toBe(await lab.macOf(node!));
        expect(new Set(answers.map((a) => a.client))).toEqual(new Set([lab.client.ip]));
        // Both of node1's pods share the traffic when node1 announces.
        const pods = svcs.local!.pods.filter((p) => p.node === node).map((p) => p.name);
        expect(new Set(answers.map((a) => a.pod))).toEqual(new Set(pods));
      });

      it("sessionAffinity ClientIP keeps the client on one pod", async () => {
        const [ip] = ips.affinity!;
        const answers = await requests(ip!, 82, 12);
        expect(new Set(answers.map((a) => a.pod)).size).toBe(1);
      });

      it("dual-stack: the client reaches a pod on both families (ARP and NDP)", async () => {
        const v6 = ips.dual!.find((i) => i.includes(":"))!;
        const v4 = ips.dual!.find((i) => !i.includes(":"))!;
        expect(v6).toMatch(/^2001:db8:2:ff::/);
        const a4 = await lab.clientRequest(v4, 84);
        const a6 = await lab.clientRequest(v6, 84);
        expect(a4.client).not.toContain(":");
        expect(a6.client).toContain(":");
        // The client learnt the IPv6 address's MAC by NDP: an announcing node's eth0.
        const n = await lab.clientNeighbour(v6);
        expect(n?.mac).toBe(await lab.macOf(a6.via));
      });

      it("endpoint readiness changes are followed within a second", async () => {
        const [ip] = ips.flip!;
        const s = svcs.flip!;
        /** Moves the traffic from pod `from` to pod `to`; the two follow-up times, ms. */
        const measure = async (from: number, to: number): Promise<[number, number]> => {
          const [a, b] = [s.pods[from]!, s.pods[to]!];
          expect((await requests(ip!, 83, 3)).map((x) => x.pod)).toEqual([a.name, a.name, a.name]);
          // b becomes ready: the first connection that reaches it.
          let t0 = performance.now();
          await lab.setPodReady(b, true);
          const up = await waitFor(
            `${b.name} answering`,
            async () => {
              const r = await lab.tryClientRequest(ip!, 83, 500);
              return r?.pod === b.name ? performance.now() - t0 : undefined;
            },
            5000,
            10,
          );
          // a stops being ready: from when on do connections avoid it? Each probe is a run
          // of 8 connections (with both ready, 8 all to b has a chance of 1 in 256).
          t0 = performance.now();
          await lab.setPodReady(a, false);
          const down = await waitFor(
            `${a.name} out of the path`,
            async () => {
              const start = performance.now() - t0;
              const r = await requests(ip!, 83, 8);
              return r.every((x) => x.pod === b.name) ? start : undefined;
            },
            5000,
            10,
          );
          await lab.waitEndpoints(s);
          expect((await requests(ip!, 83, 8)).map((x) => x.pod)).toEqual(Array(8).fill(b.name));
          return [up, down];
        };
        const ms = [...(await measure(0, 1)), ...(await measure(1, 0))];
        console.info(
          `ipMode ${mode}: readiness changes followed after ${ms.map((x) => x.toFixed(0)).join(", ")} ms (ready, not ready, ready, not ready)`,
        );
        // ironlb's own forwarding (Proxy): within a second. kube-proxy (VIP) batches its
        // syncs (--min-sync-period, default 1 s), which may add up to a second to that.
        const bound = mode === "Proxy" ? 1000 : 2000;
        for (const x of ms) expect(x).toBeLessThan(bound);
      });

      it("after SIGKILL of the announcing speaker, traffic flows through another node", async () => {
        const [ip] = ips.cluster!;
        const owner = (await lab.clientRequest(ip!, 80)).via;
        const t0 = performance.now();
        await lab.stopSpeaker(owner, "SIGKILL");
        const moved = await waitFor(
          "another node to carry the traffic",
          async () => {
            const r = await lab.tryClientRequest(ip!, 80, 300);
            return r && r.via !== owner ? { r, ms: performance.now() - t0 } : undefined;
          },
          15_000,
          20,
        );
        console.info(
          `ipMode ${mode}: SIGKILL of ${owner}'s speaker: ${moved.r.via} carries traffic after ${moved.ms.toFixed(0)} ms`,
        );
        expect(moved.r.via).not.toBe(owner);
        lab.startSpeaker(owner);
        await lab.waitSpeakersReady();
      });
    });
  }

  describe("the speaker's own table (ipMode Proxy)", () => {
    it("no eligible endpoint: the node rejects new connections instead of black-holing them", async () => {
      const [ip] = ips.local!;
      // Local endpoints are on node1 and node2 only; make the client send to node3 anyway.
      const n3 = lab.nodes[2]!.name;
      await run("ip", [
        "-n",
        lab.client.ns,
        "neigh",
        "replace",
        ip!,
        "lladdr",
        await lab.macOf(n3),
        "dev",
        "eth0",
        "nud",
        "permanent",
      ]);
      try {
        const t0 = performance.now();
        const err = await lab.clientRequest(ip!, 81, 3000).then(
          () => undefined,
          (e: Error) => e.message,
        );
        const ms = performance.now() - t0;
        // curl exit 7: could not connect (refused by the RST).
        expect(err).toMatch(/\(7\)|refused|reset/i);
        // An answer (RST), not a timeout.
        expect(ms).toBeLessThan(1000);
        expect(await lab.nodeTable(n3)).toMatch(/reject with tcp reset/);
      } finally {
        await run("ip", ["-n", lab.client.ns, "neigh", "del", ip!, "dev", "eth0"]);
      }
    });

    it("SIGTERM removes the table; after SIGKILL a restarted speaker rebuilds it from scratch", async () => {
      const node = lab.nodes[0]!.name;
      const normal = (t: string | undefined) => tableShape(t ?? "");
      const ref = normal(await lab.nodeTable(node));
      expect(ref).toContain("dnat ip to");
      await lab.stopSpeaker(node, "SIGTERM");
      expect(await lab.nodeTable(node)).toBeUndefined();
      lab.startSpeaker(node);
      await lab.waitSpeakersReady();
      await waitFor(
        "the table rebuilt",
        async () => normal(await lab.nodeTable(node)) === ref,
        10_000,
      );
      // A crash leaves the table; a leftover chain there must not survive the restart.
      await lab.stopSpeaker(node, "SIGKILL");
      expect(normal(await lab.nodeTable(node))).toBe(ref);
      await lab.inNode(node, ["nft", "add", "chain", "inet", "ironlb", "leftover"]);
      lab.startSpeaker(node);
      await lab.waitSpeakersReady();
      await waitFor(
        "the table rebuilt",
        async () => normal(await lab.nodeTable(node)) === ref,
        10_000,
      );
      expect(await lab.nodeTable(node)).not.toContain("leftover");
      // kube-proxy's table is untouched throughout.
      expect(await lab.inNode(node, ["nft", "list", "tables"])).toContain("kube-proxy");
    });
  });
});
