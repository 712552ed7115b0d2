// Data-path figures, measured in a lab of network namespaces (3 nodes with real kube-proxy
// in nftables mode, pods as namespaces, a client) with the real control plane and ironlb:
//   - single-stream TCP throughput (iperf3) and new-connection rate, as ratios to the
//     client → pod path measured in the same run: client → nodeIP:NodePort (kube-proxy),
//     client → Service IP via kube-proxy (ipMode VIP), client → Service IP via the
//     speaker's own nftables table (ipMode Proxy). Every path crosses the same node (the
//     one announcing the Service IP, where the pod runs).
//   - time from an endpoint change (the Pod's Ready condition written) to the forwarding
//     updated on the announcing node: the speaker's table (Proxy), kube-proxy's (VIP).
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { POOL_CIDR } from "../test/lab/addresses.ts";
import { Lab, type LabPod, POD_PORT, randomPrefix } from "../test/lab/lab.ts";
import { run } from "../test/lab/net.ts";
import { waitFor } from "../test/support/kube.ts";
import { startLabControlPlane } from "./lab-control-plane.ts";
import { percentile } from "./stats.ts";

const SUBNET = process.env.BENCH_SUBNET ?? "203.0.113.128/25";
const SECONDS = Number(process.env.BENCH_DATAPLANE_SECONDS ?? 5);
const CHANGES = Math.max(20, Number(process.env.BENCH_DATAPLANE_CHANGES ?? 20));
const root = join(import.meta.dirname, "..");

const cp = await startLabControlPlane(SUBNET, "dataplane");
const { dir, state } = cp;
let lab: Lab | undefined;
let server: ChildProcess | undefined;
try {
  lab = await Lab.create({
    prefix: randomPrefix("ilbd"),
    subnet: SUBNET,
    poolCIDR: POOL_CIDR,
    nodes: 3,
    kubeconfig: state.kubeconfig,
    workDir: join(dir, "work"),
    binDir: state.binDir,
    log: () => {},
  });
  const L = lab;
  L.startController(["--ip-mode", "VIP"]);
  for (const n of L.nodes) L.startSpeaker(n.name);
  await L.waitSpeakersReady(60_000);
  await L.createPool("bench", ["198.51.100.65-198.51.100.126"]);
  await L.createL2Advertisement("bench");
  const [n1, n2] = L.nodes.map((n) => n.name) as [string, string];
  const svc = await L.createService("bench", {
    port: 80,
    endpoints: [n1, { node: n2, ready: false }],
  });
  const ip = await L.waitForIP(svc, 30_000);
  // The pod goes where the IP is announced: every path then crosses the same one node.
  const via = await waitFor("an answer", () => L.tryEntryNode(ip, 80, 500), 30_000, 50);
  const other = L.nodes.find((n) => n.name !== via)!.name;
  if (via !== n1) await L.setEndpoints(svc, [via, { node: other, ready: false }]);
  const pod = svc.pods[0]!;
  const spare = svc.pods[1]!;
  const node = L.node(via);
  const inClient = (args: string[]) => run("ip", ["netns", "exec", L.client.ns, ...args]);

  /** Replaces the pod's server (iperf3, or a connection-rate server) on its port. */
  async function serve(kind: "iperf3" | "accept", p: LabPod): Promise<void> {
    await p.server.stop("SIGKILL");
    if (server) {
      server.kill("SIGKILL");
      await new Promise((r) => server!.once("exit", r));
    }
    const argv =
      kind === "iperf3"
        ? ["iperf3", "-s", "-p", String(POD_PORT)]
        : [process.execPath, join(root, "bench/fixtures/accept-server.ts"), String(POD_PORT)];
    server = spawn("ip", ["netns", "exec", p.ns, ...argv], { stdio: "ignore" });
    await waitFor(`${kind} listening`, async () => {
      const out = await run("ip", ["netns", "exec", p.ns, "ss", "-Hltn", `sport = :${POD_PORT}`]);
      return out.trim() !== "";
    });
  }

  async function throughput(host: string, port: number): Promise<number> {
    const out = await inClient([
      "iperf3",
      "-c",
      host,
      "-p",
      String(port),
      "-t",
      String(SECONDS),
      "-J",
    ]);
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e9;
  }

  async function connRate(host: string, port: number): Promise<number> {
    const out = await inClient([
      process.execPath,
      join(root, "bench/fixtures/connect-rate.ts"),
      host,
      String(port),
      String(Math.min(SECONDS, 3)),
      "8",
    ]);
    const r = JSON.parse(out) as { connections: number; failed: number; seconds: number };
    if (r.failed > 0) console.log(`  (${r.failed} failed connections to ${host}:${port})`);
    return r.connections / r.seconds;
  }

  const paths = {
    direct: [pod.ip, POD_PORT] as const,
    nodePort: [node.ip, svc.nodePort] as const,
    ip: [ip, 80] as const,
  };
  const results: Record<string, { gbps: number[]; cps: number[] }> = {};
  const add = (name: string, k: "gbps" | "cps", v: number) => {
    results[name] ??= { gbps: [], cps: [] };
    results[name][k].push(v);
  };

  /**
   * Time from a readiness write (the spare pod: 2 endpoints or 1) to the table on the
   * announcing node picking among 2 endpoints or 1, ms. (Both tables keep a random pick per
   * Service; kube-proxy keeps chains of unready endpoints, so their addresses tell nothing.)
   */
  async function changeLatency(list: () => Promise<string>): Promise<number[]> {
    const ms: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const ready = !spare.ready;
      const t0 = performance.now();
      await L.setPodReady(spare, ready);
      await waitFor(
        "the forwarding to follow",
        async () => (await list()).includes("numgen random mod 2") === ready,
        5000,
        1,
      );
      ms.push(performance.now() - t0);
    }
    if (spare.ready) await L.setPodReady(spare, false);
    await L.waitEndpoints(svc);
    return ms;
  }

  // --- ipMode VIP: kube-proxy serves the Service IP
  await serve("iperf3", pod);
  for (let round = 0; round < 2; round++) {
    add("direct", "gbps", await throughput(...paths.direct));
    add("nodePort", "gbps", await throughput(...paths.nodePort));
    add("kube-proxy", "gbps", await throughput(...paths.ip));
  }
  await serve("accept", pod);
  for (let round = 0; round < 2; round++) {
    add("direct", "cps", await connRate(...paths.direct));
    add("nodePort", "cps", await connRate(...paths.nodePort));
    add("kube-proxy", "cps", await connRate(...paths.ip));
  }
  const kubeProxy = await changeLatency(() =>
    L.inNode(via, ["nft", "list", "table", "ip", "kube-proxy"]),
  );

  // --- ipMode Proxy: the speaker's own table serves it
  await L.controller!.stop("SIGTERM");
  L.startController(["--ip-mode", "Proxy"]);
  await waitFor(
    "ipMode Proxy in the status",
    async () =>
      (await L.getService("bench")).status?.loadBalancer?.ingress?.[0]?.ipMode === "Proxy",
    30_000,
    100,
  );
  await waitFor("the speaker's table to forward", async () =>
    ((await L.nodeTable(via)) ?? "").includes(pod.ip),
  );
  await waitFor(
    "kube-proxy to leave the IP",
    async () => !(await L.inNode(via, ["nft", "list", "table", "ip", "kube-proxy"])).includes(ip),
  );
  await serve("iperf3", pod);
  for (let round = 0; round < 2; round++) {
    add("direct", "gbps", await throughput(...paths.direct));
    add("speaker", "gbps", await throughput(...paths.ip));
  }
  await serve("accept", pod);
  for (let round = 0; round < 2; round++) {
    add("direct", "cps", await connRate(...paths.direct));
    add("speaker", "cps", await connRate(...paths.ip));
  }
  const speaker = await changeLatency(async () => (await L.nodeTable(via)) ?? "");

  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const base = results.direct!;
  console.log(
    `single stream (iperf3, ${SECONDS} s, 2 runs per path; direct ran in both phases) and new connections (8 at a time):`,
  );
  for (const [name, r] of Object.entries(results)) {
    console.log(
      `  ${name.padEnd(10)} ${mean(r.gbps).toFixed(2)} Gbit/s (${(mean(r.gbps) / mean(base.gbps)).toFixed(2)})   ${Math.round(mean(r.cps))} conn/s (${(mean(r.cps) / mean(base.cps)).toFixed(2)})   runs: ${r.gbps.map((x) => x.toFixed(2)).join(", ")} Gbit/s; ${r.cps.map((x) => Math.round(x)).join(", ")} conn/s`,
    );
  }
  const fmt = (xs: number[]) =>
    `p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${percentile(xs, 99).toFixed(0)} ms (n=${xs.length})`;
  console.log(`endpoint change → speaker's table updated (Proxy): ${fmt(speaker)}`);
  console.log(`endpoint change → kube-proxy's table updated (VIP): ${fmt(kubeProxy)}`);
} finally {
  server?.kill("SIGKILL");
  await lab?.destroy();
  await cp.stop();
}
process.exit(0);
