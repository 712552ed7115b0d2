// Speaker figures, measured in a lab of network namespaces (3 nodes, a client) with the
// real control plane, real kernel ARP and real processes:
//   - failover after SIGKILL and after SIGTERM of the owner's speaker (p50/p99 over
//     BENCH_FAILOVER_RUNS >= 20 runs each): time until the client's neighbour entry for
//     the Service IP shows another node's MAC;
//   - ARP reply latency (p50/p99) as the client measures it, for the speaker's IP and, as
//     the anchor, for the owner node's own address (answered by its kernel);
//   - ARP request floods from the client (trafgen at full speed where installed, else the
//     Node fixture's sendmmsg batches at BENCH_FLOOD_RATE, default 200k/s):
//     for an IP nobody owns (the kernel filter should drop it before the speaker) and for
//     the owned IP from one forged requester (replies rate-limited): speakers' CPU, both
//     IPs answered (p50/p99), the owner's /healthz latency;
//   - part "claims": the same figures under a flood of frames from a forged MAC claiming
//     the owned IP (sender = the IP: another host says it has it), which the kernel filter
//     passes to the owner speaker's conflict handling (logged, answered at most once per
//     IP per window);
//   - part "hbflood": UDP datagrams shaped like heartbeats (right magic, version and
//     length, garbage MAC) at full speed to a speaker's heartbeat port, from a LAN host
//     that is no peer and with a peer's address and port as source (spoofed);
//   - in every flood part, the judges of the fault figures: an ARP watcher in the client
//     (test/lab/arp-watch.ts, every 20 ms) gives ownership changes, the longest
//     unanswered and stranded windows; the speakers' logs give peers declared dead and
//     stalls; the flooded speaker's metrics give heartbeats dropped by reason;
//   - speaker memory (RSS, V8 heap) with 1,000 announced Services (250 shared IPv6 IPs),
//     shortly after the burst and after BENCH_RSS_IDLE_S (60) s idle; the speakers run as
//     the image runs them (compiled JS, the Dockerfile's node flags and ENV);
//     BENCH_SPEAKER_VARIANTS="|MALLOC_ARENA_MAX=2|--optimize-for-size" gives each node its
//     own extra flags/env, to compare levers in one run;
//   - API requests per second per speaker, idle;
//   - the fault figures of issue 9 (speaker-faults.ts), part "faults".
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KubeClient } from "../src/k8s/client.ts";
import { arpRequest } from "../src/layer2/codec.ts";
import { POOL_CIDR, POOL6_CIDR } from "../test/lab/addresses.ts";
import { figures, watchArp } from "../test/lab/faults.ts";
import { heartbeatFrame as hbFrame } from "../test/lab/heartbeat-flood.ts";
import { Lab, randomPrefix } from "../test/lab/lab.ts";
import { sleep, waitFor } from "../test/support/kube.ts";
import { compileToJs, imageRuntime } from "./compile.ts";
import { startLabControlPlane } from "./lab-control-plane.ts";
import { speakerFaults } from "./speaker-faults.ts";
import { percentile, rssMiB } from "./stats.ts";

const SUBNET = process.env.BENCH_SUBNET ?? "203.0.113.128/25";
const RUNS = Math.max(20, Number(process.env.BENCH_FAILOVER_RUNS ?? 20));
const FLOOD_S = 12;
const TRAFGEN = "/usr/sbin/trafgen";
// BENCH_FLOOD_GEN=node uses the Node fixture (sendmmsg batches) even where trafgen exists.
const useTrafgen = process.env.BENCH_FLOOD_GEN !== "node" && existsSync(TRAFGEN);
// Requests per second; 0 = as fast as the generator goes (trafgen's default here: its rate
// limit sleeps between frames, far too coarse for 5 µs gaps; its ring at full speed is what
// reaches 200k/s and more).
const FLOOD_RATE = Number(process.env.BENCH_FLOOD_RATE ?? (useTrafgen ? 0 : 200_000));
/** Log messages that tell whether a flood moved an IP (membership, announcements). */
const MEMBERSHIP_MESSAGES = [
  "peer silent: dead",
  "live speakers changed",
  "rejoining",
  "no peer heard",
  "stopped announcing",
  "announcing",
  "address conflict",
  "heartbeats dropped",
  "judging it by its Lease",
  "heartbeat socket full",
];
/** Idle time before the steady-state memory figure, s. */
const RSS_IDLE_S = Number(process.env.BENCH_RSS_IDLE_S ?? 60);
// The speakers (and the controller) run as the image runs them: compiled JavaScript, the
// Dockerfile's node flags and ENV, log level info (the chart's default).
// BENCH_FROM_SOURCE=1 runs the TypeScript sources with Node's defaults instead.
const fromSource = process.env.BENCH_FROM_SOURCE === "1";
const image = fromSource ? { nodeArgs: [], env: {} } : imageRuntime();
const compiled = fromSource ? undefined : compileToJs();
process.on("exit", () => compiled && rmSync(compiled, { recursive: true, force: true }));
const runAs = compiled
  ? `compiled JavaScript, node ${image.nodeArgs.join(" ")}${
      Object.keys(image.env).length > 0
        ? `, ${Object.entries(image.env)
            .map(([k, v]) => `${k}=${v}`)
            .join(" ")}`
        : ""
    }, LOG_LEVEL=info`
  : "TypeScript sources (type stripping), Node defaults, LOG_LEVEL=info";
// BENCH_SPEAKER_PARTS=flood,latency runs only those parts (default: all).
const PARTS = new Set(
  (process.env.BENCH_SPEAKER_PARTS ?? "faults,failover,latency,flood,claims,hbflood,api,rss").split(
    ",",
  ),
);

/** Deletes the fault benchmark's Services, advertisement and pool. */
async function removeFaultObjects(L: Lab): Promise<void> {
  const api = KubeClient.load(L.opts.kubeconfig);
  for (let i = 0; i < 6; i++)
    await api.delete(`/api/v1/namespaces/default/services/flt${i}`).catch(() => {});
  await api.delete("/apis/ironlb.dev/v1beta1/l2advertisements/faults").catch(() => {});
  await api.delete("/apis/ironlb.dev/v1beta1/ipaddresspools/faults").catch(() => {});
}
const root = join(import.meta.dirname, "..");

const fmt = (xs: number[]) =>
  `p50 ${percentile(xs, 50).toFixed(1)} ms, p99 ${percentile(xs, 99).toFixed(1)} ms (n=${xs.length})`;
const cpuTicks = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (100/s)
};

const cp = await startLabControlPlane(SUBNET, "speaker");
const { dir, state } = cp;
let lab: Lab | undefined;
try {
  lab = await Lab.create({
    prefix: randomPrefix("ilbb"),
    subnet: SUBNET,
    poolCIDR: POOL_CIDR,
    nodes: 3,
    // IPv6 for the 1,000 Services of the memory part: the lab's IPv4 ClusterIP range and
    // pool are /26s (the address plan), too small for them.
    ipv6: true,
    kubeconfig: state.kubeconfig,
    workDir: join(dir, "work"),
    binDir: state.binDir,
    log: () => {},
    nodeArgs: image.nodeArgs,
    env: image.env,
    logLevel: "info",
    ...(compiled ? { entry: join(compiled, "ironlb.js") } : {}),
  });
  const L = lab;
  const controller = L.startController();
  // BENCH_SPEAKER_VARIANTS="A|B|C": per node, extra node flags (--x) and environment
  // (K=V) on top of the image's, to compare process-level levers in one run (experiments).
  const variants = (process.env.BENCH_SPEAKER_VARIANTS ?? "").split("|");
  const baseArgs = [...L.opts.nodeArgs];
  const baseEnv = { ...L.opts.env };
  L.nodes.forEach((n, i) => {
    const v = (variants[i] ?? "").split(" ").filter((x) => x !== "");
    L.opts.nodeArgs = [...baseArgs, ...v.filter((x) => x.startsWith("--"))];
    L.opts.env = {
      ...baseEnv,
      ...Object.fromEntries(v.filter((x) => !x.startsWith("--")).map((x) => x.split("="))),
    };
    L.startSpeaker(n.name);
  });
  if (variants.some((v) => v !== ""))
    console.log(`per-node variants: ${variants.map((v) => v || "(none)").join(" | ")}`);
  L.opts.nodeArgs = baseArgs;
  L.opts.env = baseEnv;
  await L.waitSpeakersReady(60_000);
  // Faults (issue 9) first, in their own pool, removed afterwards (it overlaps "bench").
  if (PARTS.has("faults")) {
    console.log("-- faults");
    await speakerFaults(L, RUNS);
    await removeFaultObjects(L);
  }
  await L.createPool("bench", [POOL_CIDR]);
  await L.createL2Advertisement("bench");
  const svc = await L.createService("web", { port: 80 });
  const ip = await L.waitForIP(svc, 30_000);

  /** The node answering the client now (waits until someone does). */
  const owner = () => waitFor("an owner answering", () => L.tryEntryNode(ip, 80, 300), 30_000, 50);

  // --- failover
  const failover: Record<string, number[]> = { SIGKILL: [], SIGTERM: [] };
  for (const signal of ["SIGKILL", "SIGTERM"] as const) {
    for (let i = 0; i < (PARTS.has("failover") ? RUNS : 0); i++) {
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
  const probe = (target: string, count: number, intervalMs: number) =>
    inClientAsync([
      "latency",
      "eth0",
      L.client.ip,
      target,
      String(count),
      String(intervalMs),
    ]) as Promise<{
      ms: number[];
      lost: number;
    }>;
  type Probe = { ms: number[]; lost: number };
  const anchorOf = async () => L.node(await owner()).ip;
  let lat: Probe | undefined;
  let latAnchor: Probe | undefined;
  if (PARTS.has("latency")) {
    const anchor = await anchorOf();
    // 50 ms apart: one requester asking faster than 20/s is rate-limited by design.
    lat = await probe(ip, 300, 50);
    latAnchor = await probe(anchor, 300, 50);
  }

  /** The client's eth0 transmit counters (the kernel's count of what the generator sent). */
  const clientTx = async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile("ip", ["-n", L.client.ns, "-s", "-j", "link", "show", "dev", "eth0"], (err, o) =>
        err ? reject(err) : resolve(o),
      ),
    );
    const [l] = JSON.parse(out) as { stats64: { tx: { packets: number; dropped: number } } }[];
    return l!.stats64.tx;
  };
  const clientMac = (
    JSON.parse(
      await new Promise<string>((resolve, reject) =>
        execFile("ip", ["-n", L.client.ns, "-j", "link", "show", "dev", "eth0"], (err, o) =>
          err ? reject(err) : resolve(o),
        ),
      ),
    ) as { address: string }[]
  )[0]!.address;
  /**
   * FLOOD_S seconds of ARP requests for `target` from the client (sender MAC `floodMac`,
   * default the client's; sender IP `senderIp`, default the client's: the Service IP makes
   * each frame a claim on it; to `dest`, default broadcast), at FLOOD_RATE/s (0: as fast as the
   * generator goes). With trafgen (netsniff-ng: a packet mmap ring, one CPU, no sysctl or
   * IRQ changes: --no-sock-mem --notouch-irq), else the Node fixture's sendmmsg batches. The rate is the client
   * kernel's transmit count over the wall time.
   */
  const floodFrom = async (
    target: string,
    floodMac: string,
    dest: string,
    senderIp = L.client.ip,
  ): Promise<{ sent: number; dropped: number; rate: number }> => {
    if (!useTrafgen) {
      return (await inClientAsync([
        "flood",
        "eth0",
        senderIp,
        target,
        String(FLOOD_RATE || 1_000_000),
        String(FLOOD_S),
        floodMac,
        dest,
      ])) as { sent: number; dropped: number; rate: number };
    }
    const frame = arpRequest(floodMac || clientMac, senderIp, target);
    if (dest) Buffer.from(dest.split(":").map((x) => Number.parseInt(x, 16))).copy(frame, 0);
    return trafgen(frame);
  };
  /** FLOOD_S seconds of one frame, repeated by trafgen as fast as it goes (or FLOOD_RATE). */
  const trafgen = async (frame: Uint8Array) => {
    if (!useTrafgen) throw new Error(`this flood needs trafgen (${TRAFGEN})`);
    const cfg = join(dir, "flood.cfg");
    writeFileSync(
      cfg,
      `{ ${[...frame].map((b) => `0x${b.toString(16).padStart(2, "0")}`).join(", ")} }\n`,
    );
    const tx0 = await clientTx();
    const t0 = performance.now();
    const args = ["-o", "eth0", "-i", cfg, "-P", "1", "--no-sock-mem", "--notouch-irq", "-C"];
    if (FLOOD_RATE > 0) args.push("-b", `${FLOOD_RATE}pps`);
    await new Promise<void>((resolve, reject) => {
      const p = spawn(
        "ip",
        ["netns", "exec", L.client.ns, "timeout", "-s", "INT", `${FLOOD_S}s`, TRAFGEN, ...args],
        { stdio: ["ignore", "ignore", "pipe"] },
      );
      let err = "";
      p.stderr.on("data", (d: Buffer) => {
        err += d.toString();
      });
      // timeout exits 124 when it had to stop trafgen (the normal end here).
      p.on("exit", (code) =>
        code === 0 || code === 124
          ? resolve()
          : reject(new Error(`trafgen exited ${code}: ${err.slice(-500)}`)),
      );
    });
    const secs = (performance.now() - t0) / 1000;
    const tx1 = await clientTx();
    const sent = tx1.packets - tx0.packets;
    return { sent, dropped: tx1.dropped - tx0.dropped, rate: sent / secs };
  };

  /** Counters of one speaker's metrics: packets by kind, heartbeats dropped by reason. */
  const speakerCounts = async (nodeIp: string) => {
    const text = await (await fetch(`http://${nodeIp}:7473/metrics`)).text();
    const packets: Record<string, number> = {};
    for (const m of text.matchAll(
      /^ironlb_speaker_packets_total\{[^}]*kind="(\w+)"[^}]*\} (\S+)$/gm,
    ))
      packets[m[1]!] = (packets[m[1]!] ?? 0) + Number(m[2]);
    const dropped: Record<string, number> = {};
    for (const m of text.matchAll(
      /^ironlb_speaker_heartbeats_dropped_total\{reason="([\w-]+)"\} (\S+)$/gm,
    ))
      dropped[m[1]!] = Number(m[2]);
    const counter = (name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
    return {
      packets,
      dropped,
      socketDrops: counter("ironlb_speaker_heartbeat_socket_drops_total"),
      doubted: counter("ironlb_speaker_silent_peers_doubted_total"),
    };
  };
  /** The kernel's UDP counters in a node's namespace (datagrams in, dropped at the socket). */
  const udpCounters = async (ns: string) => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile("ip", ["netns", "exec", ns, "cat", "/proc/net/snmp"], (err, o) =>
        err ? reject(err) : resolve(o),
      ),
    );
    const [head, vals] = out.split("\n").filter((l) => l.startsWith("Udp:"));
    const names = head!.split(/\s+/);
    const v = vals!.split(/\s+/).map(Number);
    const get = (k: string) => v[names.indexOf(k)] ?? Number.NaN;
    return {
      inDatagrams: get("InDatagrams"),
      rcvbufErrors: get("RcvbufErrors"),
      inErrors: get("InErrors"),
    };
  };

  /**
   * One flood for FLOOD_S seconds (`send`, given the owner of the Service IP), while two
   * other processes ask for the owned IP and for the flooded node's own address every
   * 60 ms, an ARP watcher asks for the owned IP every 20 ms (ownership changes, unanswered
   * and stranded windows), and the bench asks the flooded speaker's /healthz every 100 ms.
   * `flooded` picks the node the flood is aimed at: the owner, or another node.
   */
  const floodRun = async (
    send: (
      ownerNode: string,
      floodedNode: string,
    ) => Promise<{ sent: number; dropped: number; rate: number }>,
    flooded: "owner" | "other" = "owner",
  ) => {
    const ownerNode = await owner();
    const floodedNode =
      flooded === "owner" ? ownerNode : L.nodes.find((n) => n.name !== ownerNode)!.name;
    const anchor = L.node(floodedNode).ip;
    const pids = L.nodes.map((n) => L.speaker(n.name)!.proc.pid!);
    const floodedIdx = L.nodes.findIndex((n) => n.name === floodedNode);
    const watch = watchArp(L, [ip]);
    await watch.ready;
    const sc0 = await speakerCounts(anchor);
    const udp0 = await udpCounters(L.node(floodedNode).ns);
    const cpu0 = pids.map(cpuTicks);
    const w0 = performance.now();
    const floodWall = Date.now();
    let flooding = true;
    const health: number[] = [];
    const logMarks = L.nodes.map((n) => L.speaker(n.name)!.logs().length);
    const [flood, owned, kernel] = await Promise.all([
      send(ownerNode, floodedNode).finally(() => {
        flooding = false;
      }),
      sleep(1000).then(() => probe(ip, 150, 60)),
      sleep(1000).then(() => probe(anchor, 150, 60)),
      (async () => {
        await sleep(1000);
        while (flooding) {
          const t0 = performance.now();
          const r = await fetch(`http://${anchor}:7473/healthz`, {
            signal: AbortSignal.timeout(2000),
          }).catch(() => undefined);
          if (r?.ok) health.push(performance.now() - t0);
          await sleep(100);
        }
      })(),
    ]);
    const secs = (performance.now() - w0) / 1000;
    const cpu = pids.map((p, i) => ((cpuTicks(p) - cpu0[i]!) / 100 / secs) * 100);
    const sc1 = await speakerCounts(anchor);
    const udp1 = await udpCounters(L.node(floodedNode).ns);
    const d = (k: string) => (sc1.packets[k] ?? 0) - (sc0.packets[k] ?? 0);
    const dropped = Object.fromEntries(
      Object.keys(sc1.dropped)
        .map((k) => [k, sc1.dropped[k]! - (sc0.dropped[k] ?? 0)] as const)
        .filter(([, v]) => v > 0),
    );
    // 2 s after the flood: a peer declared dead late, or an IP that moves after it, counts.
    await sleep(2000);
    const w = await watch.stop();
    const fig = figures(w, ip);
    // Where the longest unanswered window lies, in ms since the flood began.
    const floodAt = floodWall - w.wallStartMs;
    let silentAt = Number.NaN;
    const answers = w.answers[ip] ?? [];
    for (let i = 0; i < answers.length; i++) {
      const until = answers[i + 1]?.[0] ?? w.endMs + w.intervalMs;
      if (answers[i]![1].length === 0 && until - answers[i]![0] === fig.maxSilentMs)
        silentAt = answers[i]![0] - floodAt;
    }
    const macs = new Map<string, string>();
    for (const n of L.nodes) macs.set(await L.macOf(n.name), n.name);
    // Did the flood move the IP? Membership and announcement events of each speaker.
    const ownerAfter = await owner();
    let deaths = 0;
    const stalls: string[] = [];
    const lines = L.nodes.map((n, i) => L.speaker(n.name)!.logs().slice(logMarks[i]));
    const events = L.nodes
      .map((n, i) => {
        const counts = new Map<string, number>();
        for (const line of lines[i]!) {
          const msg = String(line.msg);
          if (msg === "peer silent: dead") deaths++;
          if (msg.includes("stalled longer")) stalls.push(`${n.name} ${line.stalledMs} ms`);
          // "stopped announcing" names the owner this node now sees (why it yielded), "peer
          // silent: dead" the peer.
          const key =
            line.owner !== undefined
              ? `${msg} (owner ${line.owner})`
              : line.peer !== undefined
                ? `${msg} (${line.peer})`
                : msg;
          if (MEMBERSHIP_MESSAGES.some((m) => msg.includes(m)))
            counts.set(key, (counts.get(key) ?? 0) + 1);
        }
        return counts.size === 0
          ? ""
          : `${n.name}: ${[...counts].map(([m, c]) => `${c}× "${m}"`).join(", ")}`;
      })
      .filter((x) => x !== "");
    return {
      ownerBefore: ownerNode,
      ownerAfter,
      flooded: floodedNode,
      events,
      deaths,
      stalls,
      logLines: lines[floodedIdx]!.length,
      moves: fig.moves,
      owners: fig.owners.map((m) => macs.get(m) ?? m),
      silentMs: fig.maxSilentMs,
      silentAt,
      strandedMs: fig.maxStrandedMs,
      dualMs: fig.maxDualMs,
      flood,
      owned: owned as Probe,
      kernel: kernel as Probe,
      health,
      floodedCpu: cpu[floodedIdx]!,
      cpuSeconds: (cpu[floodedIdx]! / 100) * secs,
      otherCpu: cpu.filter((_, i) => i !== floodedIdx),
      requests: d("requests_received"),
      replies: d("replies_sent"),
      limited: d("replies_rate_limited"),
      conflicts: d("conflicts"),
      dropped,
      udpIn: udp1.inDatagrams - udp0.inDatagrams,
      udpBufErrors: udp1.rcvbufErrors - udp0.rcvbufErrors,
      // InErrors counts full sockets too: the rest is what socket filters dropped.
      udpFiltered: udp1.inErrors - udp0.inErrors - (udp1.rcvbufErrors - udp0.rcvbufErrors),
      socketDrops: sc1.socketDrops - sc0.socketDrops,
      doubted: sc1.doubted - sc0.doubted,
    };
  };
  /**
   * A heartbeat-shaped frame with a garbage MAC (test/lab/heartbeat-flood.ts) to `toNode`'s
   * heartbeat port (7947, as the lab runs the speakers) from `srcIp`:`srcPort`, naming `name`.
   */
  const heartbeatFrame = async (toNode: string, srcIp: string, srcPort: number, name: string) =>
    hbFrame({
      dstMac: await L.macOf(toNode),
      srcMac: clientMac,
      srcIp,
      dstIp: L.node(toNode).ip,
      srcPort,
      dstPort: 7947,
      name,
    });
  const answered = (p: Probe) =>
    `answered ${p.ms.length}/${p.ms.length + p.lost}${p.ms.length > 0 ? `, ${fmt(p.ms)}` : ""}`;
  /** Prints one flood's figures as soon as it is over (a later failure keeps them). */
  const printFlood = (what: string, f: Awaited<ReturnType<typeof floodRun>>) => {
    // The frames of this flood that the speaker handled: heartbeats dropped, claims
    // (conflicts) or requests, whichever this flood is made of.
    const perFrame = Math.max(
      Object.values(f.dropped).reduce((a, b) => a + b, 0),
      f.requests,
      f.conflicts,
    );
    console.log(
      `${what}: ${Math.round(f.flood.rate).toLocaleString("en")} frames/s sent for ${FLOOD_S} s by ${useTrafgen ? "trafgen" : "the Node fixture"} (${f.flood.dropped} dropped by the sender's kernel)`,
    );
    console.log(
      `  owner ${f.ownerBefore} before, ${f.ownerAfter} after${f.ownerAfter !== f.ownerBefore ? " (THE IP MOVED)" : ""}; flooded ${f.flooded}; ARP watcher: ${f.moves} ownership changes (answerers ${f.owners.join(" -> ") || "none"}), longest unanswered ${f.silentMs} ms (from ${Math.round(f.silentAt)} ms after the flood began), stranded ${f.strandedMs} ms, two answerers ${f.dualMs} ms`,
    );
    console.log(
      `  peers declared dead ${f.deaths}, stalls ${f.stalls.length}${f.stalls.length > 0 ? ` (${f.stalls.join(", ")})` : ""}; speaker events: ${f.events.length > 0 ? f.events.join("; ") : "none"}`,
    );
    console.log(
      `  flooded speaker CPU ${f.floodedCpu.toFixed(1)}% of one core (${f.cpuSeconds.toFixed(2)} s); other speakers ${f.otherCpu.map((c) => c.toFixed(1)).join(" / ")}%; its log lines ${f.logLines}`,
    );
    console.log(`  owned IP (speaker) under the flood: ${answered(f.owned)}`);
    console.log(`  flooded node's own address (its kernel) under the flood: ${answered(f.kernel)}`);
    console.log(
      `  flooded speaker: ARP requests received ${f.requests}, replies sent ${f.replies}, rate-limited ${f.limited}, conflicts ${f.conflicts}; heartbeats dropped ${JSON.stringify(f.dropped)}; /healthz ${f.health.length > 0 ? fmt(f.health) : "never answered"}`,
    );
    console.log(
      `  flooded node's kernel: UDP datagrams delivered ${f.udpIn}, dropped at a full socket ${f.udpBufErrors}, by the socket filter ${f.udpFiltered} (the speaker read ${f.socketDrops} from its socket's counter; silent peers judged by their Lease ${f.doubted} times); µs of speaker CPU per frame it handled ${perFrame >= 10_000 ? ((f.cpuSeconds * 1e6) / perFrame).toFixed(1) : "- (the flood did not reach it)"}`,
    );
  };
  const arpFlood =
    (target: string, floodMac: string, unicast: boolean, senderIp?: string) =>
    async (ownerNode: string) =>
      floodFrom(target, floodMac, unicast ? await L.macOf(ownerNode) : "", senderIp);
  if (PARTS.has("flood") || PARTS.has("claims")) {
    // Broadcast floods reach all three nodes through the bridge, which costs the sender's
    // CPU three deliveries per frame; unicast to the owner's MAC reaches its node only
    // (hosts do send unicast requests to refresh an entry) and goes twice as fast here.
    for (const unicast of [false, true]) {
      const how = unicast ? "unicast to the owner" : "broadcast";
      if (PARTS.has("flood")) {
        printFlood(
          `ARP flood for an IP nobody owns (198.51.100.63, the broadcast address of the lab's ClusterIP range), ${how}`,
          await floodRun(arpFlood("198.51.100.63", "", unicast)),
        );
        await sleep(2000);
        printFlood(
          `ARP flood for the owned IP ${ip} from one requester (forged MAC), ${how}`,
          await floodRun(arpFlood(ip, "02:00:00:00:be:ef", unicast)),
        );
        await sleep(2000);
      }
      if (!PARTS.has("claims")) continue;
      // Another host claiming the owned IP (sender IP = the IP, a forged MAC), asking for the
      // client's address: each frame is a conflict for the owner speaker.
      printFlood(
        `ARP flood claiming the owned IP ${ip} (sender ${ip}, forged MAC), ${how}`,
        await floodRun(arpFlood(L.client.ip, "02:00:00:00:c1:a1", unicast, ip)),
      );
      await sleep(2000);
    }
  }
  if (PARTS.has("hbflood")) {
    // (a) A LAN host that is no peer (the client's own address), datagrams shaped like a
    // peer's beats: dropped as unknown-source before the MAC.
    printFlood(
      "heartbeat flood from a LAN host that is no peer (the client's address), to the owner",
      await floodRun(async (_o, flooded) => {
        const peer = L.nodes.find((n) => n.name !== flooded)!;
        return trafgen(await heartbeatFrame(flooded, L.client.ip, 7947, peer.name));
      }),
    );
    await sleep(2000);
    // (b) The same with a real peer's published address and port as source (spoofed): each
    // datagram takes a token of that peer's budget (10x the beat rate); the real beats
    // compete with the flood for it. First at the owner, spoofing another node; then at
    // another node, spoofing the owner (the case where the flooded node could take over).
    printFlood(
      "heartbeat flood with a peer's address as source (spoofed), to the owner, as another node",
      await floodRun(async (_o, flooded) => {
        const peer = L.nodes.find((n) => n.name !== flooded)!;
        return trafgen(await heartbeatFrame(flooded, peer.ip, 7947, peer.name));
      }),
    );
    await sleep(3000);
    printFlood(
      "heartbeat flood with a peer's address as source (spoofed), to another node, as the owner",
      await floodRun(async (ownerNode, flooded) => {
        const peer = L.node(ownerNode);
        return trafgen(await heartbeatFrame(flooded, peer.ip, 7947, peer.name));
      }, "other"),
    );
    // Does an IP moved by a spoofed flood come back once the real beats are heard again?
    await sleep(10_000);
    console.log(`owner 10 s after the last heartbeat flood: ${await owner()}`);
  }

  // --- API requests per speaker, idle (controller stopped: only speakers talk)
  let perSpeaker = Number.NaN;
  const api = KubeClient.load(state.kubeconfig);
  if (PARTS.has("api")) {
    await controller.stop("SIGTERM");
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
    perSpeaker = (r1 - r0 - 1) / ((performance.now() - t0) / 1000) / L.nodes.length;
    L.startController();
  }

  // --- RSS with 1,000 announced Services (4 Services share each IP on distinct ports)
  type Mem = { rss: number; heapUsed: number; heapTotal: number; external: number };
  const memOf = async (n: (typeof L.nodes)[number]): Promise<Mem> => {
    const rss = rssMiB(L.speaker(n.name)!.proc.pid!);
    const text = await (await fetch(`http://${n.ip}:7473/metrics`)).text().catch(() => "");
    const g = (name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN) / 2 ** 20;
    return {
      rss,
      heapUsed: g("nodejs_heap_size_used_bytes"),
      heapTotal: g("nodejs_heap_size_total_bytes"),
      external: g("nodejs_external_memory_bytes"),
    };
  };
  let memStart: Mem[] = [];
  let memBurst: Mem[] = [];
  let memIdle: Mem[] = [];
  let peak: number[] = [];
  let burstS = Number.NaN;
  if (PARTS.has("rss")) {
    memStart = await Promise.all(L.nodes.map(memOf));
    const ns = "default";
    const nodes = L.nodes.map((n) => n.name);
    const pending: Promise<unknown>[] = [];
    peak = L.nodes.map(() => 0);
    const pidsNow = L.nodes.map((n) => L.speaker(n.name)!.proc.pid!);
    await L.createPool("many", [POOL6_CIDR]);
    const sampler = setInterval(() => {
      pidsNow.forEach((pid, i) => {
        try {
          peak[i] = Math.max(peak[i]!, rssMiB(pid));
        } catch {
          // exited: the wait below says so
        }
      });
    }, 100);
    const b0 = performance.now();
    for (let i = 0; i < 1000; i++) {
      const name = `many-${i}`;
      pending.push(
        api.create(`/api/v1/namespaces/${ns}/services`, {
          metadata: {
            name,
            annotations: { "ironlb.dev/allow-shared-ip": `g${Math.floor(i / 4)}` },
          },
          spec: {
            type: "LoadBalancer",
            ipFamilies: ["IPv6"],
            ipFamilyPolicy: "SingleStack",
            allocateLoadBalancerNodePorts: false,
            selector: { app: name },
            ports: [{ port: 1000 + (i % 4), protocol: "TCP" }],
          },
        }),
        api.create(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
          metadata: { name: `${name}-1`, labels: { "kubernetes.io/service-name": name } },
          addressType: "IPv6",
          endpoints: nodes.map((n, j) => ({
            addresses: [`2001:db8:2:10${j + 1}::20`],
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
    await waitFor(
      "251 IPs announced",
      async () => {
        for (const n of L.nodes) {
          const p = L.speaker(n.name)!;
          if (!p.running())
            throw new Error(
              `the speaker of ${n.name} exited (${await p.exited}): see ${p.logFile}`,
            );
        }
        return (await announced()) === 251;
      },
      120_000,
      500,
    );
    burstS = (performance.now() - b0) / 1000;
    await sleep(3000); // the last record writes and events
    clearInterval(sampler);
    memBurst = await Promise.all(L.nodes.map(memOf));
    await sleep(RSS_IDLE_S * 1000); // idle: heartbeats, Lease renewals, watch bookmarks only
    memIdle = await Promise.all(L.nodes.map(memOf));
    // A clean stop, so that variants like --cpu-prof write their profiles.
    if (variants.some((v) => v !== ""))
      await Promise.all(L.nodes.map((n) => L.stopSpeaker(n.name, "SIGTERM")));
  }

  if (PARTS.has("failover")) {
    console.log(`failover after SIGKILL of the owner's speaker: ${fmt(failover.SIGKILL!)}`);
    console.log(`failover after SIGTERM of the owner's speaker: ${fmt(failover.SIGTERM!)}`);
  }
  if (lat && latAnchor) {
    console.log(`ARP reply latency at the client, speaker: ${fmt(lat.ms)}, lost ${lat.lost}`);
    console.log(
      `ARP reply latency at the client, anchor (owner node's kernel, own address): ${fmt(latAnchor.ms)}, lost ${latAnchor.lost}`,
    );
  }
  if (PARTS.has("api"))
    console.log(`API requests per second per speaker, idle: ${perSpeaker.toFixed(2)}`);
  const memFmt = (m: Mem[]) =>
    `RSS ${m.map((x) => x.rss.toFixed(1)).join(" / ")} MiB; V8 heap used ${m.map((x) => x.heapUsed.toFixed(1)).join(" / ")} of ${m.map((x) => x.heapTotal.toFixed(1)).join(" / ")} MiB; external ${m.map((x) => x.external.toFixed(1)).join(" / ")} MiB`;
  if (PARTS.has("rss")) {
    console.log(`speakers run as: ${runAs}`);
    console.log(`speaker memory before the Services (nodes 1-3): ${memFmt(memStart)}`);
    console.log(
      `1,000 Services + 1,000 EndpointSlices created, 251 IPs announced after ${burstS.toFixed(1)} s; peak RSS during it ${peak.map((r) => r.toFixed(1)).join(" / ")} MiB`,
    );
    console.log(`speaker memory 3 s after the burst: ${memFmt(memBurst)}`);
    console.log(`speaker memory after ${RSS_IDLE_S} s idle: ${memFmt(memIdle)}`);
  }
} finally {
  await lab?.destroy();
  await cp.stop();
}
process.exit(0);
