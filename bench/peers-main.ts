// `npm run bench -- peers` (issue 20): the cost curve of today's all-to-all heartbeat
// membership. A netns lab with BENCH_PEERS_REAL (1) real speakers, the real controller and
// control plane; the peer simulator (bench/peer-sim.ts) plays N more speakers from a
// namespace of its own on the same LAN. For each N in BENCH_PEERS_N (10,50,100,250):
//   - after the real speaker counts the N simulated peers live and BENCH_PEERS_SETTLE_S (15)
//     s more, over BENCH_PEERS_WINDOW_S (30) s: the real speaker's CPU (% of one core, from
//     /proc/PID/stat), the UDP datagrams per second its namespace sent and received (its
//     /proc/net/snmp), its RSS at the end, and peers it declared dead in the window (none
//     was: any is a false failure detection);
//   - failover, BENCH_PEERS_RUNS (20) times: a simulated peer owns a Service IP (it has the
//     IP on its interface, so its kernel answers the client's ARP, and the IP's
//     IPAnnouncement names it, as a real owner's would); it dies (stops beating and renewing,
//     the IP leaves its interface); the time until the LAN client's neighbour entry for the
//     IP shows the real speaker's MAC. The Service has externalTrafficPolicy Local and
//     endpoints on that peer and the real node(s) only, so that the real speaker is next in
//     line while all N peers stay members;
//   - one simulated peer stalls 200 ms (below the 350 ms dead time: no death expected), then
//     flaps (3 silences of 800 ms): the deaths the real speaker declares.
// Before the first N, the same idle figures of the real speaker alone (N = 0, the baseline).
// Figures are merged by N into bench/peers-results.json (so that N values measured in
// separate runs form one curve) and drawn into bench/peers.png (bench/plot.ts).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { PATHS } from "../src/api/vocabulary.ts";
import { KubeClient } from "../src/k8s/client.ts";
import { rendezvousWeight } from "../src/speaker/election.ts";
import { ipAnnouncementName } from "../src/speaker/speaker.ts";
import { LAN6_BITS, LAN6_PREFIX, POD_CIDR, POOL_CIDR } from "../test/lab/addresses.ts";
import { Lab, randomPrefix } from "../test/lab/lab.ts";
import { formatIPv4, hostAddress, ipJson, parseCIDR, run } from "../test/lab/net.ts";
import { sleep, waitFor } from "../test/support/kube.ts";
import { compileToJs, imageRuntime } from "./compile.ts";
import { startLabControlPlane } from "./lab-control-plane.ts";
import type { PeerSimConfig } from "./peer-sim.ts";
import { type PeerFigures, peersPlot } from "./plot.ts";
import { percentile, rssMiB } from "./stats.ts";

const SUBNET = process.env.BENCH_SUBNET ?? "203.0.113.128/25";
/**
 * The simulated peers' addresses: on the lab's IPv6 LAN (LAN6_PREFIX, a /64; nodes hold ::11
 * on, the client ::100), so that the real speakers beat them over IPv6, on-link, each peer
 * a neighbour of its own. The lab's IPv4 LAN (a /25, uplink in the root namespace) cannot
 * hold 250 peers, and the other documentation ranges are the lab's pool, Service and pod
 * ranges or this host's own network.
 */
/** The address of the simulated owner's endpoint: data only, never contacted. */
const PEER_POD_IP = hostAddress(parseCIDR(POD_CIDR), 126);
const peerAddr = (i: number) => `${LAN6_PREFIX}1:${i.toString(16)}`;
const NS = (process.env.BENCH_PEERS_N ?? "10,50,100,250").split(",").map(Number);
const REAL = Number(process.env.BENCH_PEERS_REAL ?? 1);
const RUNS = Number(process.env.BENCH_PEERS_RUNS ?? 20);
/** BENCH_PEERS_BASELINE=0 skips the figures of the real speaker alone (N = 0). */
const BASELINE = process.env.BENCH_PEERS_BASELINE !== "0";
const SETTLE_S = Number(process.env.BENCH_PEERS_SETTLE_S ?? 15);
const WINDOW_S = Number(process.env.BENCH_PEERS_WINDOW_S ?? 30);
/**
 * BENCH_PEERS_CPU_PROF=DIR: the real speaker runs with `--cpu-prof` into DIR and is stopped
 * (SIGTERM, which writes the profile) after the idle window of the last N; no failover or
 * fault runs then, and no figure is merged (profiling slows the process it measures).
 * `node bench/profile-summary.ts DIR/FILE.cpuprofile` summarises one.
 */
const CPU_PROF = process.env.BENCH_PEERS_CPU_PROF;
/**
 * BENCH_PEERS_PAIRED=0: the simulated peers publish no heartbeat key, so the real speaker
 * MACs one beat per interval under the shared secret (an older speaker's peers). By default
 * they publish one, as every speaker does, and beats both ways use pair keys.
 */
const PAIRED = process.env.BENCH_PEERS_PAIRED !== "0";
/**
 * BENCH_PEERS_NICE=-10: the real speaker and the simulator run at that nice level, so that
 * on a machine others load (other labs' VMs, test runs) the simulator still sends its N
 * peers' beats on time and the speaker's CPU is its own work, not its waiting. Said in the
 * output; unset on a quiet machine.
 */
const NICE = process.env.BENCH_PEERS_NICE;
/** Faults of one simulated peer: a stall below the dead time, and silences above it. */
const STALL_SHORT_MS = 200;
const FLAP_MS = 800;
const FLAPS = 3;
/** The real speaker's warning when its own stall outlasted the dead time (membership.ts). */
const STALL_MSG = "this speaker was stalled longer than peers wait: rejoining";
/** Its warning when a silent peer is judged by its Lease since it lost datagrams itself. */
const DOUBT_MSG =
  "peer silent while this node's heartbeat socket lost datagrams (a flood?): judging it by its Lease";
const HEARTBEAT_PORT = 7947; // the lab's (Lab.startSpeaker)
const INTERVAL_MS = 100; // the speaker's defaults (src/cli/main.ts)
const LEASE_S = 6;
const RENEW_MS = 2000;
const RESULTS = join(import.meta.dirname, "peers-results.json");
const PLOT = join(import.meta.dirname, "peers.png");
for (const n of NS)
  if (!(n >= 1 && n <= 250)) throw new Error(`BENCH_PEERS_N: ${n} is not in 1..250`);

const fromSource = process.env.BENCH_FROM_SOURCE === "1";
const image = fromSource ? { nodeArgs: [], env: {} } : imageRuntime();
const compiled = fromSource ? undefined : compileToJs();
process.on("exit", () => compiled && rmSync(compiled, { recursive: true, force: true }));

const statFields = (pid: number) =>
  readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
const cpuTicks = (pid: number) => {
  const f = statFields(pid);
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100/s)
};
/** The kernel's part (stime), in clock ticks. */
const sysTicks = (pid: number) => Number(statFields(pid)[12]);
/**
 * UDP datagrams in and out of the namespace a process runs in, IPv4 (/proc/net/snmp) and
 * IPv6 (/proc/net/snmp6) together, and those dropped at a full socket buffer.
 */
const udpCounters = (pid: number) => {
  const lines = readFileSync(`/proc/${pid}/net/snmp`, "utf8")
    .split("\n")
    .filter((l) => l.startsWith("Udp:"));
  const head = lines[0]!.split(/\s+/);
  const vals = lines[1]!.split(/\s+/).map(Number);
  const v4 = (k: string) => vals[head.indexOf(k)]!;
  const v6 = new Map(
    readFileSync(`/proc/${pid}/net/snmp6`, "utf8")
      .split("\n")
      .map((l) => l.split(/\s+/))
      .map(([k, v]) => [k, Number(v)] as const),
  );
  const both = (k: string) => v4(k) + (v6.get(`Udp6${k}`) ?? 0);
  return { in: both("InDatagrams"), out: both("OutDatagrams"), errors: both("RcvbufErrors") };
};
const loadavg = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
const peerName = (i: number) => `sim-${String(i + 1).padStart(3, "0")}`;

/** The simulator process and its line protocol (peer-sim.ts). */
class Sim {
  readonly proc: ChildProcess;
  readonly #waiting: {
    op: string;
    resolve: (v: Record<string, unknown>) => void;
    fail: (err: Error) => void;
  }[] = [];
  readonly ready: Promise<Record<string, unknown>>;
  #exited = false;

  constructor(ns: string, configFile: string) {
    this.proc = spawn(
      "ip",
      ["netns", "exec", ns, process.execPath, join(import.meta.dirname, "peer-sim.ts"), configFile],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    createInterface({ input: this.proc.stdout! }).on("line", (line) => {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      if (msg.op === "error") console.error(`peer simulator: ${String(msg.error)}`);
      const i = this.#waiting.findIndex((w) => w.op === msg.op);
      if (i >= 0) this.#waiting.splice(i, 1)[0]!.resolve(msg);
    });
    this.proc.once("exit", () => {
      this.#exited = true;
      for (const w of this.#waiting.splice(0))
        w.fail(new Error(`peer simulator exited before "${w.op}"`));
    });
    this.ready = this.#next("ready", 60_000);
  }

  #next(op: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      if (this.#exited) return reject(new Error(`peer simulator exited before "${op}"`));
      const timer = setTimeout(
        () => reject(new Error(`peer simulator: no "${op}" in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#waiting.push({
        op,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        fail: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
    });
  }

  send(cmd: Record<string, unknown>, answer: string): Promise<Record<string, unknown>> {
    const p = this.#next(answer);
    this.proc.stdin!.write(`${JSON.stringify(cmd)}\n`);
    return p;
  }

  async exit(): Promise<void> {
    if (this.proc.exitCode !== null) return;
    const gone = new Promise((r) => this.proc.once("exit", r));
    this.proc.stdin!.write('{"op":"exit"}\n');
    await Promise.race([gone, sleep(3000)]);
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

const cp = await startLabControlPlane(SUBNET, "peers");
const { dir, state } = cp;
let lab: Lab | undefined;
let sim: Sim | undefined;
try {
  lab = await Lab.create({
    prefix: randomPrefix("ilbps"),
    subnet: SUBNET,
    poolCIDR: POOL_CIDR,
    nodes: REAL,
    ipv6: true, // the heartbeats go over IPv6 (peerAddr)
    kubeProxy: false, // no Service data path is measured here
    kubeconfig: state.kubeconfig,
    workDir: join(dir, "work"),
    binDir: state.binDir,
    log: () => {},
    // The controller gets the flags too, but only the speaker is stopped cleanly (below).
    nodeArgs: [
      ...image.nodeArgs,
      ...(CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${CPU_PROF}`] : []),
    ],
    env: image.env,
    logLevel: "info",
    ...(compiled ? { entry: join(compiled, "ironlb.js") } : {}),
  });
  const L = lab;
  const api = KubeClient.load(L.opts.kubeconfig);
  L.startController();
  // Heartbeats from the node's IPv6 address (the last --node-address wins).
  for (const n of L.nodes) L.startSpeaker(n.name, ["--node-address", n.ip6!]);
  await L.waitSpeakersReady(60_000);
  await L.createPool("peers", [POOL_CIDR]);
  await L.createL2Advertisement("peers");
  const real = L.nodes[0]!;
  const realPid = L.speaker(real.name)!.proc.pid!;
  const realMacs = new Set(await Promise.all(L.nodes.map((n) => L.macOf(n.name))));

  // The simulator's namespace: a LAN port on the lab's bridge with an IPv4 address (for the
  // Service IPs its peers own) and the peers' IPv6 addresses (static, no DAD, as the lab's).
  const simNs = `${L.prefix}sim`;
  const simIP = hostAddress(parseCIDR(SUBNET), 90);
  await run("ip", ["netns", "add", simNs]);
  await run("ip", [
    "netns",
    "exec",
    simNs,
    "sysctl",
    "-qw",
    ...["all", "default"].flatMap((k) =>
      ["accept_dad=0", "autoconf=0", "accept_ra=0"].map((x) => `net.ipv6.conf.${k}.${x}`),
    ),
  ]);
  await run("ip", [
    "-n",
    L.switchNs,
    "link",
    "add",
    "psim0",
    "type",
    "veth",
    "peer",
    "name",
    "eth0",
    "netns",
    simNs,
  ]);
  await run("ip", ["-n", L.switchNs, "link", "set", "psim0", "master", "br0", "up"]);
  await run("ip", ["-n", simNs, "addr", "add", `${simIP}/${L.subnetBits}`, "dev", "eth0"]);
  await run("ip", ["-n", simNs, "link", "set", "eth0", "up"]);
  await run("ip", ["-n", simNs, "link", "set", "lo", "up"]);
  const maxN = Math.max(...NS);
  await run("ip", ["-n", simNs, "-batch", "-"], {
    input: Array.from(
      { length: maxN },
      (_, i) => `addr add ${peerAddr(i)}/${LAN6_BITS} dev eth0 nodad\n`,
    ).join(""),
  });
  const [simLink] = await ipJson<{ address?: string }>(simNs, ["link", "show", "dev", "eth0"]);
  const simMac = simLink!.address!;

  /** The real speaker's log entries with this message. */
  const logged = (msg: string) =>
    L.speaker(real.name)!
      .logs()
      .filter((l) => l.msg === msg);
  /** Waits until the real speaker's last live set has `n` members. */
  const waitLive = (n: number, timeoutMs = 60_000) =>
    waitFor(
      `the real speaker to count ${n} live speakers`,
      () => (logged("live speakers changed").at(-1)?.live as string[] | undefined)?.length === n,
      timeoutMs,
      200,
    );

  // Node objects of the simulated peers (Ready, as the lab's kubelet-less nodes are).
  let nodesMade = 0;
  const makeNodes = async (n: number) => {
    for (; nodesMade < n; nodesMade++) {
      const name = peerName(nodesMade);
      await api
        .create("/api/v1/nodes", { metadata: { name, labels: { "kubernetes.io/hostname": name } } })
        .catch(() => {});
      const now = new Date().toISOString();
      await api.mergePatch(`/api/v1/nodes/${name}/status`, {
        status: {
          addresses: [{ type: "InternalIP", address: peerAddr(nodesMade) }],
          conditions: [
            {
              type: "Ready",
              status: "True",
              reason: "KubeletReady",
              lastHeartbeatTime: now,
              lastTransitionTime: now,
            },
          ],
        },
      });
    }
  };

  const results: PeerFigures[] = [];
  let ipIndex = 0;
  const poolBase = parseCIDR(POOL_CIDR).base;

  // The baseline (N = 0): the real speaker with no simulated peer, over the same window.
  if (BASELINE) {
    await sleep(SETTLE_S * 1000);
    const load0 = loadavg();
    const c0 = { real: cpuTicks(realPid), udp: udpCounters(realPid), t: performance.now() };
    await sleep(WINDOW_S * 1000);
    const c1 = { real: cpuTicks(realPid), udp: udpCounters(realPid), t: performance.now() };
    const secs = (c1.t - c0.t) / 1000;
    const base: PeerFigures = {
      n: 0,
      real: REAL,
      cpuPct: (c1.real - c0.real) / secs,
      simCpuPct: 0,
      udpInPerS: (c1.udp.in - c0.udp.in) / secs,
      udpOutPerS: (c1.udp.out - c0.udp.out) / secs,
      rcvbufErrors: c1.udp.errors - c0.udp.errors,
      rssMiB: rssMiB(realPid),
      falseDeaths: 0,
      liveAfterMs: 0,
      load: `${load0} → ${loadavg()}`,
      failoverMs: [],
      at: new Date().toISOString(),
    };
    console.log(
      `-- N = 0 (no simulated peer): real speaker CPU ${base.cpuPct.toFixed(1)} % of a core, UDP in ${base.udpInPerS.toFixed(0)}/s out ${base.udpOutPerS.toFixed(0)}/s, RSS ${base.rssMiB.toFixed(0)} MiB; load ${base.load}`,
    );
    results.push(base);
  }
  for (const n of NS) {
    console.log(
      `-- N = ${n} simulated peers${PAIRED ? " (pair keys)" : " (shared key)"}, ${REAL} real speaker(s); load ${loadavg()}`,
    );
    await makeNodes(n);
    const cfg: PeerSimConfig = {
      kubeconfig: L.nodeKubeconfig,
      namespace: L.opts.systemNamespace,
      secretFile: L.heartbeatSecretFile,
      port: HEARTBEAT_PORT,
      peers: Array.from({ length: n }, (_, i) => ({
        name: peerName(i),
        address: peerAddr(i),
        bits: LAN6_BITS,
      })),
      targets: L.nodes.map((x) => x.ip6!),
      ifname: "eth0",
      intervalMs: INTERVAL_MS,
      leaseDurationS: LEASE_S,
      renewMs: RENEW_MS,
      paired: PAIRED,
    };
    const cfgFile = join(dir, `peer-sim-${n}.json`);
    writeFileSync(cfgFile, JSON.stringify(cfg));
    sim = new Sim(simNs, cfgFile);
    await sim.ready;
    if (NICE) {
      await run("renice", ["-n", NICE, "-p", String(realPid), String(sim.proc.pid!)]);
      console.log(`real speaker and simulator at nice ${NICE}`);
    }
    const t0 = performance.now();
    await waitLive(n + REAL, 120_000);
    const liveAfterMs = performance.now() - t0;
    await sleep(SETTLE_S * 1000);

    // --- idle cost
    const deadBefore = logged("peer silent: dead").length;
    const stallsBefore = logged(STALL_MSG).length;
    const simPid = sim.proc.pid!;
    const c0 = {
      real: cpuTicks(realPid),
      realSys: sysTicks(realPid),
      sim: cpuTicks(simPid),
      udp: udpCounters(realPid),
      t: performance.now(),
    };
    const load0 = loadavg();
    await sleep(WINDOW_S * 1000);
    const c1 = {
      real: cpuTicks(realPid),
      realSys: sysTicks(realPid),
      sim: cpuTicks(simPid),
      udp: udpCounters(realPid),
      t: performance.now(),
    };
    const secs = (c1.t - c0.t) / 1000;
    const falseDeaths = logged("peer silent: dead").length - deadBefore;
    const stalls = logged(STALL_MSG).length - stallsBefore;
    const fig: PeerFigures = {
      n,
      real: REAL,
      paired: PAIRED,
      cpuPct: (c1.real - c0.real) / secs,
      sysPct: (c1.realSys - c0.realSys) / secs,
      simCpuPct: (c1.sim - c0.sim) / secs,
      udpInPerS: (c1.udp.in - c0.udp.in) / secs,
      udpOutPerS: (c1.udp.out - c0.udp.out) / secs,
      rcvbufErrors: c1.udp.errors - c0.udp.errors,
      rssMiB: rssMiB(realPid),
      falseDeaths,
      stalls,
      liveAfterMs,
      load: `${load0} → ${loadavg()}`,
      failoverMs: [],
      at: new Date().toISOString(),
    };
    console.log(
      `idle ${secs.toFixed(0)} s${CPU_PROF ? " (profiled)" : ""}: real speaker CPU ${fig.cpuPct.toFixed(1)} % of a core (kernel ${fig.sysPct!.toFixed(1)}), UDP in ${fig.udpInPerS.toFixed(0)}/s out ${fig.udpOutPerS.toFixed(0)}/s (socket buffer drops ${fig.rcvbufErrors}), RSS ${fig.rssMiB.toFixed(0)} MiB, peers declared dead ${falseDeaths}, own stalls past the dead time ${stalls}; simulator CPU ${fig.simCpuPct.toFixed(0)} %; all live ${(liveAfterMs / 1000).toFixed(1)} s after the simulator was ready`,
    );

    if (CPU_PROF) {
      if (n !== NS.at(-1)) {
        await sim.exit();
        sim = undefined;
        continue;
      }
      const stopped = await L.stopSpeaker(real.name, "SIGTERM");
      console.log(`real speaker stopped (${String(stopped.exit)}): its profile is in ${CPU_PROF}`);
      break;
    }

    // --- failover from a simulated owner to the real speaker
    for (let run_ = 0; run_ < RUNS; run_++) {
      const ip = formatIPv4(poolBase + 1 + (ipIndex++ % 60));
      const best = Math.max(...L.nodes.map((x) => rendezvousWeight(x.name, ip)));
      const above = cfg.peers.filter((p) => rendezvousWeight(p.name, ip) > best);
      if (above.length === 0) continue; // the real speaker owns it anyway: no failover to see
      const owner = above[Math.floor(Math.random() * above.length)]!.name;
      const svc = `pf-${n}-${run_}`;
      await api.create("/api/v1/namespaces/default/services", {
        metadata: { name: svc, annotations: { "ironlb.dev/loadBalancerIPs": ip } },
        spec: {
          type: "LoadBalancer",
          externalTrafficPolicy: "Local",
          ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }],
        },
      });
      await api.create("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", {
        metadata: {
          name: `${svc}-1`,
          labels: {
            "kubernetes.io/service-name": svc,
            "endpointslice.kubernetes.io/managed-by": "peer-sim.ironlb.dev",
          },
        },
        addressType: "IPv4",
        ports: [{ name: "", port: 8080, protocol: "TCP" }],
        endpoints: [
          ...L.nodes.map((x) => ({
            addresses: [x.podGateway],
            nodeName: x.name,
            conditions: { ready: true },
          })),
          {
            addresses: [PEER_POD_IP],
            nodeName: owner,
            conditions: { ready: true },
          },
        ],
      });
      // What a real owner has: the IP's record naming it, and the IP answered on the LAN.
      const record = `${PATHS.ipAnnouncements}/${ipAnnouncementName(ip)}`;
      await api.delete(record).catch(() => {});
      await api.create(PATHS.ipAnnouncements, {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "IPAnnouncement",
        metadata: {
          name: ipAnnouncementName(ip),
          labels: { "app.kubernetes.io/managed-by": "ironlb-speaker" },
        },
        status: {
          ip,
          node: owner,
          interfaces: ["eth0"],
          services: [`default/${svc}`],
          since: new Date().toISOString(),
        },
      });
      await run("ip", ["-n", simNs, "addr", "add", `${ip}/32`, "dev", "eth0"]);
      await waitFor(
        `${svc} to get ${ip}`,
        async () =>
          (
            await api.get<{ status?: { loadBalancer?: { ingress?: { ip?: string }[] } } }>(
              `/api/v1/namespaces/default/services/${svc}`,
            )
          ).status?.loadBalancer?.ingress?.[0]?.ip === ip,
        30_000,
        50,
      );
      await run("ip", ["netns", "exec", L.client.ns, "ping", "-c", "1", "-W", "1", ip]).catch(
        () => {},
      );
      await waitFor(
        "the client's entry on the simulated owner",
        async () => (await L.clientNeighbour(ip))?.mac === simMac,
        10_000,
        20,
      );
      // Past the neighbour entry's locktime (1 s): an update within it would be ignored.
      await sleep(1100);
      if ((await L.clientNeighbour(ip))?.mac !== simMac) {
        console.log(
          `run ${run_}: ${ip} moved before the fault (a real speaker answered it): skipped`,
        );
      } else {
        const doubtedBefore = logged(DOUBT_MSG).filter((l) => l.peer === owner).length;
        const t = performance.now();
        await sim.send({ op: "kill", peer: owner }, "killed");
        await run("ip", ["-n", simNs, "addr", "del", `${ip}/32`, "dev", "eth0"]);
        await waitFor(
          "the client's entry to move to a real speaker",
          async () => realMacs.has((await L.clientNeighbour(ip))?.mac ?? ""),
          30_000,
          2,
        );
        fig.failoverMs.push(Math.round((performance.now() - t) * 10) / 10);
        // Judged by its Lease: the speaker lost datagrams since the owner's last beat.
        if (logged(DOUBT_MSG).filter((l) => l.peer === owner).length > doubtedBefore)
          fig.failoverByLease = (fig.failoverByLease ?? 0) + 1;
      }
      await run("ip", ["-n", simNs, "addr", "del", `${ip}/32`, "dev", "eth0"]).catch(() => {});
      await sim.send({ op: "revive", peer: owner }, "revived");
      await api.delete(`/api/v1/namespaces/default/services/${svc}`).catch(() => {});
      await api
        .delete(`/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/${svc}-1`)
        .catch(() => {});
      await api.delete(record).catch(() => {});
      await waitLive(n + REAL);
    }
    const f = fig.failoverMs;
    if (f.length > 0)
      console.log(
        `failover (simulated owner dies → client's entry on the real speaker): p50 ${percentile(f, 50).toFixed(0)} ms, p99 ${percentile(f, 99).toFixed(0)} ms, max ${Math.max(...f).toFixed(0)} ms (n=${f.length}); ${fig.failoverByLease ?? 0} of them judged by the Lease (the speaker had lost datagrams)`,
      );

    // --- stalls and flaps of one simulated peer: how the real speaker judges them
    const deathsOf = (peer: string) =>
      logged("peer silent: dead").filter((l) => l.peer === peer).length;
    const victim = peerName(0);
    const d0 = deathsOf(victim);
    await sim.send({ op: "stall", peer: victim, ms: STALL_SHORT_MS }, "stalled");
    await sleep(STALL_SHORT_MS + 1000);
    const d1 = deathsOf(victim);
    await sim.send({ op: "flap", peer: victim, ms: FLAP_MS, times: FLAPS }, "flapped");
    await waitLive(n + REAL);
    fig.faults = {
      shortStallMs: STALL_SHORT_MS,
      deathsAfterShortStall: d1 - d0,
      flapMs: FLAP_MS,
      flaps: FLAPS,
      deathsAfterFlaps: deathsOf(victim) - d1,
    };
    console.log(
      `faults: a ${STALL_SHORT_MS} ms stall of ${victim} made ${d1 - d0} death(s) (below the 350 ms dead time: 0 expected); ${FLAPS} silences of ${FLAP_MS} ms made ${fig.faults.deathsAfterFlaps} (${FLAPS} expected)`,
    );
    const stats = await sim.send({ op: "stats" }, "stats");
    console.log(`simulator: ${JSON.stringify(stats)}`);
    results.push(fig);
    await sim.exit();
    sim = undefined;
  }

  // Merge with figures of other runs (other N values), newest per N, and draw the curve.
  if (!CPU_PROF) {
    const previous: PeerFigures[] = existsSync(RESULTS)
      ? JSON.parse(readFileSync(RESULTS, "utf8"))
      : [];
    const merged = [...previous.filter((p) => !results.some((r) => r.n === p.n)), ...results].sort(
      (a, b) => a.n - b.n,
    );
    // Written by the bench, not formatted by biome (biome.json leaves this file out).
    writeFileSync(RESULTS, `${JSON.stringify(merged, null, 2)}\n`);
    writeFileSync(PLOT, peersPlot(merged));
    console.log(`figures: ${RESULTS}; plot: ${PLOT}`);
  }
} finally {
  if (sim) sim.proc.kill("SIGKILL");
  await lab?.destroy().catch((err: unknown) => console.error(`lab teardown: ${String(err)}`));
  await cp.stop().catch((err: unknown) => console.error(`control plane teardown: ${String(err)}`));
}
