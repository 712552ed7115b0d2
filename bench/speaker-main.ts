// Speaker figures, measured in a lab of network namespaces (3 nodes, a client) with the
// real control plane, real kernel ARP and real processes:
//   - failover after SIGKILL and after SIGTERM of the owner's speaker (p50/p99 over
//     BENCH_FAILOVER_RUNS >= 20 runs each): time until the client's neighbour entry for
//     the Service IP shows another node's MAC;
//   - ARP reply latency (p50/p99) as the client measures it;
//   - an ARP request flood of 100k/s: speaker CPU, and whether the owned IP is still answered;
//   - speaker RSS with 1,000 announced Services (250 shared IPs);
//   - API requests per second per speaker, idle.
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeClient } from "../src/k8s/client.ts";
import { startControlPlane, stopControlPlane } from "../test/controlplane/controlplane.ts";
import { LAB_SERVICE_CIDRS, POOL_CIDR } from "../test/lab/addresses.ts";
import { Lab, randomPrefix, rootNamespaceClash, uplinkAddress } from "../test/lab/lab.ts";
import { sleep, waitFor } from "../test/support/kube.ts";
import { percentile, rssMiB } from "./stats.ts";

const SUBNET = process.env.BENCH_SUBNET ?? "203.0.113.128/25";
const RUNS = Math.max(20, Number(process.env.BENCH_FAILOVER_RUNS ?? 20));
const root = join(import.meta.dirname, "..");

const fmt = (xs: number[]) =>
  `p50 ${percentile(xs, 50).toFixed(1)} ms, p99 ${percentile(xs, 99).toFixed(1)} ms (n=${xs.length})`;
const cpuTicks = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100/s)
};

const clash = await rootNamespaceClash(SUBNET);
if (clash) throw new Error(`${SUBNET} is in use on this host (${clash}); set BENCH_SUBNET`);
const dir = mkdtempSync(join(tmpdir(), "ironlb-bench-speaker-"));
const state = await startControlPlane({
  dir: join(dir, "cp"),
  bindAddress: "0.0.0.0",
  advertiseAddress: uplinkAddress(SUBNET),
  log: () => {},
  serviceCIDRs: LAB_SERVICE_CIDRS,
});
let lab: Lab | undefined;
try {
  lab = await Lab.create({
    prefix: randomPrefix("ilbb"),
    subnet: SUBNET,
    poolCIDR: POOL_CIDR,
    nodes: 3,
    kubeconfig: state.kubeconfig,
    workDir: join(dir, "work"),
    binDir: state.binDir,
    log: () => {},
  });
  const L = lab;
  const controller = L.startController();
  for (const n of L.nodes) L.startSpeaker(n.name);
  await L.waitSpeakersReady(60_000);
  await L.createPool("bench", [POOL_CIDR]);
  await L.createL2Advertisement("bench");
  const svc = await L.createService("web", { port: 80 });
  const ip = await L.waitForIP(svc, 30_000);

  /** The node answering the client now (waits until someone does). */
  const owner = () => waitFor("an owner answering", () => L.tryEntryNode(ip, 80, 300), 30_000, 50);

  // --- failover
  const failover: Record<string, number[]> = { SIGKILL: [], SIGTERM: [] };
  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    for (let i = 0; i < RUNS; i++) {
      const node = await owner();
      const mac = await L.macOf(node);
      await waitFor(
        "client entry on the owner",
        async () => (await L.clientNeighbour(ip))?.mac === mac,
        10_000,
        10,
      );
      const t0 = performance.now();
      const stopped = L.stopSpeaker(node, signal);
      await waitFor(
        "the client's entry to move",
        async () => {
          const n = await L.clientNeighbour(ip);
          return n?.mac !== undefined && n.mac !== mac;
        },
        30_000,
        2,
      );
      failover[signal]!.push(performance.now() - t0);
      await stopped;
      L.startSpeaker(node);
      await L.waitSpeakersReady(30_000);
      await sleep(1500); // peers hear the new incarnation; the IP may move back
    }
  }

  // --- ARP reply latency, as the client sees it
  const fixture = join(root, "bench/fixtures/arp-client.ts");
  const clientArgs = (args: string[]) => [
    "netns",
    "exec",
    L.client.ns,
    process.execPath,
    fixture,
    ...args,
  ];
  const lastJson = (out: string) =>
    JSON.parse(out.trim().split("\n").pop()!) as Record<string, unknown>;
  const inClient = (args: string[]) => {
    const r = spawnSync("ip", clientArgs(args), { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`arp-client failed: ${r.stderr}`);
    return lastJson(r.stdout);
  };
  const inClientAsync = (args: string[]) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const p = spawn("ip", clientArgs(args), { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      p.stdout.on("data", (d: Buffer) => {
        out += d.toString();
      });
      p.on("exit", (code) =>
        code === 0 ? resolve(lastJson(out)) : reject(new Error(`arp-client exited ${code}`)),
      );
    });
  const lat = inClient(["latency", "eth0", L.client.ip, ip, "500", "5"]) as {
    ms: number[];
    lost: number;
  };

  // --- a flood of ARP requests for an address nobody owns, while another process asks
  // for the owned IP every 20 ms
  const ownerNode = await owner();
  const pid = L.speaker(ownerNode)!.proc.pid!;
  const cpu0 = cpuTicks(pid);
  const w0 = performance.now();
  const [flood, underFlood] = (await Promise.all([
    inClientAsync(["flood", "eth0", L.client.ip, "198.51.100.126", "100000", "5"]),
    (async () => {
      await sleep(500); // the flood is under way
      return inClientAsync(["latency", "eth0", L.client.ip, ip, "150", "20"]);
    })(),
  ])) as [{ sent: number; dropped: number; rate: number }, { ms: number[]; lost: number }];
  const cpuPct = ((cpuTicks(pid) - cpu0) / 100 / ((performance.now() - w0) / 1000)) * 100;

  // --- API requests per speaker, idle (controller stopped: only speakers talk)
  await controller.stop("SIGTERM");
  const api = KubeClient.load(state.kubeconfig);
  const requests = async () => {
    const text = await api.request<string>("GET", "/metrics");
    let sum = 0;
    for (const m of String(text).matchAll(/^apiserver_request_total\{[^}]*\} (\S+)$/gm))
      sum += Number(m[1]);
    return sum;
  };
  const r0 = await requests();
  const t0 = performance.now();
  await sleep(30_000);
  const r1 = await requests();
  const perSpeaker = (r1 - r0 - 1) / ((performance.now() - t0) / 1000) / L.nodes.length;

  // --- RSS with 1,000 announced Services (4 Services share each IP on distinct ports)
  L.startController();
  const ns = "default";
  const nodes = L.nodes.map((n) => n.name);
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < 1000; i++) {
    const name = `many-${i}`;
    pending.push(
      api.create(`/api/v1/namespaces/${ns}/services`, {
        metadata: { name, annotations: { "ironlb.dev/allow-shared-ip": `g${Math.floor(i / 4)}` } },
        spec: {
          type: "LoadBalancer",
          allocateLoadBalancerNodePorts: false,
          selector: { app: name },
          ports: [{ port: 1000 + (i % 4), protocol: "TCP" }],
        },
      }),
      api.create(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
        metadata: { name: `${name}-1`, labels: { "kubernetes.io/service-name": name } },
        addressType: "IPv4",
        endpoints: nodes.map((n, j) => ({
          addresses: [`203.0.113.${20 + j}`],
          nodeName: n,
          conditions: { ready: true },
        })),
        ports: [{ port: 8080, protocol: "TCP" }],
      }),
    );
    if (pending.length >= 32) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  const announced = async () => {
    let total = 0;
    for (const n of L.nodes) {
      const text = await (await fetch(`http://${n.ip}:7473/metrics`)).text();
      total += Number(/^ironlb_speaker_announced_ips (\S+)$/m.exec(text)?.[1] ?? 0);
    }
    return total;
  };
  await waitFor("251 IPs announced", async () => (await announced()) === 251, 120_000, 500);
  await sleep(3000); // idle
  const rss = L.nodes.map((n) => rssMiB(L.speaker(n.name)!.proc.pid!));

  console.log(`failover after SIGKILL of the owner's speaker: ${fmt(failover.SIGKILL!)}`);
  console.log(`failover after SIGTERM of the owner's speaker: ${fmt(failover.SIGTERM!)}`);
  console.log(`ARP reply latency at the client: ${fmt(lat.ms)}, lost ${lat.lost}`);
  console.log(
    `ARP flood: ${Math.round(flood.rate).toLocaleString("en")} requests/s sent for 5 s (${flood.dropped} refused by the sender's kernel); owner speaker CPU ${cpuPct.toFixed(0)}% of one core`,
  );
  console.log(
    `  owned IP under the flood: answered ${underFlood.ms.length}/${underFlood.ms.length + underFlood.lost}, ${underFlood.ms.length > 0 ? fmt(underFlood.ms) : "no answers"}`,
  );
  console.log(`API requests per second per speaker, idle: ${perSpeaker.toFixed(2)}`);
  console.log(
    `speaker RSS, idle, 1,000 Services on 251 IPs announced: ${rss.map((r) => r.toFixed(0)).join(" / ")} MiB (nodes 1-3)`,
  );
} finally {
  await lab?.destroy();
  await stopControlPlane(state);
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
