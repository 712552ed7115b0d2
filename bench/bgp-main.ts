// BGP mode figures (issue 18), measured in a lab of network namespaces (3 nodes) with the
// real control plane, the real controller and speakers (as the image runs them), and FRR
// (zebra + bgpd) as the router in a namespace on the LAN, judged by its KERNEL routes:
//   - part "withdraw": per sample a selector-less Cluster Service whose EndpointSlice (written
//     by the bench, so the trigger is one API write) holds one ready endpoint on node1, so
//     that all 3 nodes advertise it. Figures:
//       * assignment -> route: from the controller's status write (the bench's watch sees
//         the ingress IP; the speakers' own watches see the same write) to the router's
//         first kernel route event for the /32 (first next hop), and to the route with all
//         3 next hops (polled, 10 ms); split at each speaker's "IP advertised over BGP" log
//         (its evaluation done, UPDATE written) and at bgpd's log of the first received
//         UPDATE for the /32 (`debug bgp updates in`): the speaker's part and FRR's part;
//       * withdraw after (a) the Service deleted, (b) its endpoint made not ready, (c) its
//         endpoint removed from the slice: from just before the API write to the kernel's
//         "Deleted" event for the /32 (the last of 3 nodes withdrew: the worst case of 3);
//       * (d) a node's speaker SIGKILLed: from just before the kill to the router's first
//         kernel route event for the /32 (3 -> 2 next hops), checked to leave 2.
//     Kernel events come from `ip -ts monitor route` in the router namespace: timestamps of
//     the same wall clock as the bench's (performance.timeOrigin + now), microseconds.
//   - part "anchor": a BIRD 2 in a namespace of its own on the LAN (a 4th peer of the same
//     FRR, same ASN and policies as the nodes) enables one disabled static protocol with a
//     /32 (`enable` on its control socket, already connected): t0 -> bgpd logs the UPDATE
//     (BIRD's part) -> the kernel route (FRR's part, against the same figure for ironlb's
//     UPDATEs); then `disable`, the same for the withdraw.
//   - part "scale": BENCH_BGP_SERVICES (10,000) IPv6 Services, assigned, each with a ready
//     endpoint, advertised by 3 nodes over IPv6 sessions. Full table = each node's
//     prefixes received at the router (bgpd) = N, and N kernel routes with 3 next hops
//     (polled every 250 ms). Timed from (1) the BGPAdvertisement created, speakers up with
//     sessions established, and (2) the 3 speakers started (cold: list + sessions + table).
//     Anchor: 3 BIRD 2 daemons in the node namespaces announcing the same N /128s (static
//     blackhole routes exported over the same sessions), from their start. Speakers' and
//     BIRD's CPU (utime+stime) over the window and RSS at full table.
// The lab starts no kube-proxy (BENCH_BGP_KUBE_PROXY=1 starts it): nothing here uses the
// Service data path. Run under the e2e lock: `flock /tmp/ironlb-e2e.lock npm run bench -- bgp`.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { loadavg } from "node:os";
import { join } from "node:path";
import { KubeClient } from "../src/k8s/client.ts";
import { Bird, Frr, kernelRoute, nextHops } from "../test/e2e/fixtures/routers.ts";
import { POOL_CIDR } from "../test/lab/addresses.ts";
import { Lab, randomPrefix } from "../test/lab/lab.ts";
import { run } from "../test/lab/net.ts";
import { sleep, waitFor } from "../test/support/kube.ts";
import { compileToJs, imageRuntime } from "./compile.ts";
import { startLabControlPlane } from "./lab-control-plane.ts";
import { percentile, rssMiB } from "./stats.ts";

const SUBNET = process.env.BENCH_SUBNET ?? "203.0.113.128/25";
// Samples per figure (withdraw: this many per trigger); fewer only for a smoke run.
const RUNS = Number(process.env.BENCH_BGP_RUNS ?? 30);
/**
 * A pause before each withdraw/assignment sample (ms). 0 (default): back to back, the worst
 * case, where a new Service's assignment can land in the speakers' 100 ms batch window that
 * the previous sample's withdrawal opened; 200: each assignment on its own.
 */
const GAP_MS = Number(process.env.BENCH_BGP_GAP_MS ?? 0);
const SCALE = Number(process.env.BENCH_BGP_SERVICES ?? 10_000);
const PARTS = new Set((process.env.BENCH_BGP_PARTS ?? "withdraw,anchor,kill,scale").split(","));
// BGP advertisement needs no Service data path: without kube-proxy (the default) no node
// forks `nft` per Service change, which at 10,000 Services took most of the 2 cores.
const KUBE_PROXY = process.env.BENCH_BGP_KUBE_PROXY === "1";
// Concurrent API writers creating the scale part's Services and slices.
const WRITERS = Number(process.env.BENCH_BGP_WRITERS ?? 32);
const ROUTER_IP = "203.0.113.208";
const ROUTER_IP6 = "2001:db8:2::d0";
// The anchor BIRD: a namespace of its own on the LAN, announcing /32s of ANCHOR_BASE.
const ANCHOR_IP = "203.0.113.209";
const ANCHOR_BASE = "198.51.100.96"; // .96-.127: inside POOL_CIDR, outside V4_POOL
const NODE_ASN = 64512;
const ROUTER_ASN = 64500;
const V4_POOL = "198.51.100.64/27"; // inside the lab's POOL_CIDR
const V6_POOL = "2001:db8:bb::/114"; // 16,384 addresses, only ever routed in the router
const G = "/apis/ironlb.dev/v1beta1";
/** dpkg-query's format for a package's version. */
const VERSION_FMT = ["$", "{Version}"].join("");

const fromSource = process.env.BENCH_FROM_SOURCE === "1";
const image = fromSource ? { nodeArgs: [], env: {} } : imageRuntime();
const compiled = fromSource ? undefined : compileToJs();
process.on("exit", () => compiled && rmSync(compiled, { recursive: true, force: true }));

const now = () => performance.timeOrigin + performance.now();
const fmt = (xs: number[]) =>
  xs.length === 0
    ? "no samples"
    : `p50 ${percentile(xs, 50).toFixed(1)} ms, p99 ${percentile(xs, 99).toFixed(1)} ms, max ${Math.max(...xs).toFixed(1)} ms (n=${xs.length})`;
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(" ");
const cpuTicks = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks (100/s)
};

/** Kernel route events in a namespace (`ip -ts monitor route`), with their timestamps. */
class RouteMonitor {
  readonly events: { t: number; text: string }[] = [];
  #proc: ChildProcess;
  #buf = "";
  #waiters: (() => void)[] = [];
  constructor(ns: string) {
    this.#proc = spawn("ip", ["-n", ns, "-ts", "monitor", "route"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    this.#proc.stdout!.on("data", (d: Buffer) => {
      this.#buf += d.toString();
      const lines = this.#buf.split("\n");
      this.#buf = lines.pop()!;
      for (const line of lines) {
        // "[2026-12-07T17:24:01.123456] Deleted 198.51.100.90 nhid 25 proto bgp ..."
        const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{6})\]\s*(.*)$/.exec(line);
        if (m) {
          const t = new Date(m[1]!).getTime() + Number(m[2]) / 1000;
          this.events.push({ t, text: m[3]! });
        } else if (this.events.length > 0) this.events.at(-1)!.text += ` ${line.trim()}`;
      }
      for (const w of this.#waiters.splice(0)) w();
    });
  }
  /** The first event after `after` (epoch ms) for exactly `dst` that `pred` accepts. */
  async first(
    dst: string,
    after: number,
    pred: (text: string) => boolean = () => true,
    timeoutMs = 20_000,
  ): Promise<{ t: number; text: string }> {
    const bare = dst.replace(/\/(32|128)$/, "");
    const matches = (text: string) => {
      const words = text.split(" ");
      const i = words[0] === "Deleted" ? 1 : 0;
      return (words[i] === bare || words[i] === dst) && pred(text);
    };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = this.events.find((x) => x.t >= after && matches(x.text));
      if (e) return e;
      if (Date.now() > deadline)
        throw new Error(`no kernel route event for ${dst} after ${after} in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }
  stop(): void {
    this.#proc.kill("SIGKILL");
  }
}

/**
 * BIRD's control socket, connected once: `send` writes one command and resolves with its
 * reply's last line (a 4-digit code and a space); an error code (8xxx, 9xxx) rejects.
 */
async function birdControl(path: string) {
  const sock = connect(path);
  let buf = "";
  const waiters: { resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  const hello = new Promise<string>((resolve, reject) => waiters.push({ resolve, reject }));
  sock.on("data", (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const line of lines) {
      if (!/^\d{4} /.test(line)) continue;
      const w = waiters.shift();
      if (/^[89]\d{3} /.test(line)) w?.reject(new Error(`birdc: ${line}`));
      else w?.resolve(line);
    }
  });
  sock.on("error", (err) => {
    for (const w of waiters.splice(0)) w.reject(err);
  });
  await hello;
  return {
    send(cmd: string): Promise<string> {
      const p = new Promise<string>((resolve, reject) => waiters.push({ resolve, reject }));
      sock.write(`${cmd}\n`);
      return p;
    },
    close: () => sock.destroy(),
  };
}

const frrConf = (nodes: { ip: string; ip6?: string }[]) => `hostname bench-router
log file DIR/bgpd.log
log timestamp precision 3
ip prefix-list SVC seq 5 permit ${POOL_CIDR} ge 32
ipv6 prefix-list SVC6 seq 5 permit ${V6_POOL} ge 128
route-map FROM-NODES permit 10
 match ip address prefix-list SVC
exit
route-map FROM-NODES6 permit 10
 match ipv6 address prefix-list SVC6
exit
route-map TO-NODES deny 10
exit
router bgp ${ROUTER_ASN}
 bgp router-id ${ROUTER_IP}
 bgp log-neighbor-changes
 no bgp default ipv4-unicast
 neighbor NODES peer-group
 neighbor NODES remote-as ${NODE_ASN}
 neighbor NODES passive
 neighbor NODES timers 3 9
 neighbor NODES6 peer-group
 neighbor NODES6 remote-as ${NODE_ASN}
 neighbor NODES6 passive
 neighbor NODES6 timers 3 9
${nodes.map((n) => ` neighbor ${n.ip} peer-group NODES\n neighbor ${n.ip6} peer-group NODES6`).join("\n")}
 neighbor ${ANCHOR_IP} peer-group NODES
 address-family ipv4 unicast
  neighbor NODES activate
  neighbor NODES route-map FROM-NODES in
  neighbor NODES route-map TO-NODES out
  maximum-paths 8
 exit-address-family
 address-family ipv6 unicast
  neighbor NODES6 activate
  neighbor NODES6 route-map FROM-NODES6 in
  neighbor NODES6 route-map TO-NODES out
  maximum-paths 8
 exit-address-family
exit
`;

const cp = await startLabControlPlane(SUBNET, "bgp");
const { dir, state } = cp;
let lab: Lab | undefined;
let router: Frr | undefined;
let monitor: RouteMonitor | undefined;
const birds: Bird[] = [];
const routerNs = `${randomPrefix("ilbgb")}r`;
const anchorNs = `${randomPrefix("ilbgb")}b`;
try {
  lab = await Lab.create({
    prefix: randomPrefix("ilbgb"),
    subnet: SUBNET,
    poolCIDR: POOL_CIDR,
    nodes: 3,
    ipv6: true,
    kubeconfig: state.kubeconfig,
    workDir: join(dir, "work"),
    binDir: state.binDir,
    log: () => {},
    nodeArgs: image.nodeArgs,
    env: image.env,
    logLevel: "info",
    kubeProxy: KUBE_PROXY,
    ...(compiled ? { entry: join(compiled, "ironlb.js") } : {}),
  });
  const L = lab;
  const api = KubeClient.load(L.opts.kubeconfig);
  console.log(
    `speakers and controller: ${compiled ? `compiled JavaScript, node ${image.nodeArgs.join(" ")}` : "TypeScript sources"}, LOG_LEVEL=info; kube-proxy ${KUBE_PROXY ? "in every node" : "not started"}; router FRR ${await run("dpkg-query", ["-W", "-f", VERSION_FMT, "frr"])}, anchor BIRD ${await run("dpkg-query", ["-W", "-f", VERSION_FMT, "bird2"])}`,
  );
  // The router: a port of the lab's bridge.
  await run("ip", ["netns", "add", routerNs]);
  await run("ip", ["-n", routerNs, "link", "set", "lo", "up"]);
  await run("ip", [
    ...["-n", L.switchNs, "link", "add", "rtr0", "type", "veth"],
    ...["peer", "name", "eth0", "netns", routerNs],
  ]);
  await run("ip", ["-n", L.switchNs, "link", "set", "rtr0", "master", "br0", "up"]);
  await run("ip", ["-n", routerNs, "addr", "add", `${ROUTER_IP}/25`, "dev", "eth0"]);
  await run("ip", ["-n", routerNs, "addr", "add", `${ROUTER_IP6}/64`, "dev", "eth0", "nodad"]);
  await run("ip", ["-n", routerNs, "link", "set", "eth0", "up"]);
  const conf = frrConf(L.nodes);
  router = await Frr.start(routerNs, (dir) => conf.replaceAll("DIR", dir));
  const R = router;
  monitor = new RouteMonitor(routerNs);
  const M = monitor;
  /**
   * When bgpd logged a line after `after` (epoch ms) that `pred` accepts ("2026/12/07
   * 17:24:13.123 BGP: ..."), or undefined: splits a withdraw into the speaker's part (up to
   * bgpd's receipt) and the router's (bgpd's processing, zebra, the kernel).
   */
  const bgpdLogged = (after: number, pred: (line: string) => boolean): number | undefined => {
    for (const line of readFileSync(join(R.dir, "bgpd.log"), "utf8").split("\n")) {
      const m = /^(\d{4})\/(\d\d)\/(\d\d) (\d\d:\d\d:\d\d\.\d{3}) /.exec(line);
      if (!m || !pred(line)) continue;
      const t = new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}`).getTime();
      if (t >= Math.floor(after)) return t;
    }
    return undefined;
  };
  const split: Record<string, number[]> = { speaker: [], router: [], kspeaker: [], krouter: [] };
  /** bgpd's line for a received announcement of `dst` ("... rcvd 198.51.100.70/32 ..."). */
  const rcvdLine = (dst: string) => (l: string) =>
    l.includes(" rcvd ") &&
    !l.includes("withdrawn") &&
    !l.includes("DENIED") &&
    l.split(/[\s,]+/).includes(dst);
  let shownRcvd = false;
  /** A sample of bgpd's line, once: what the split's regex matched. */
  const showRcvd = (dst: string, after: number) => {
    if (shownRcvd) return;
    const line = readFileSync(join(R.dir, "bgpd.log"), "utf8")
      .split("\n")
      .find((l) => rcvdLine(dst)(l));
    if (line === undefined) return;
    shownRcvd = true;
    console.log(
      `  (bgpd's log of a received announcement, e.g.: ${line.trim()}; t0 ${new Date(after).toISOString()})`,
    );
  };
  /** When a lab process first logged a line `pred` accepts, at or after `after` (ms resolution). */
  const loggedAt = (
    p: { logs(): Record<string, unknown>[] } | undefined,
    pred: (l: Record<string, unknown>) => boolean,
    after: number,
  ): number | undefined => {
    for (const l of p?.logs() ?? []) {
      if (!pred(l)) continue;
      const t = typeof l.time === "number" ? l.time : Date.parse(String(l.time));
      if (t >= Math.floor(after)) return t;
    }
    return undefined;
  };
  /** When node's speaker logged "IP advertised over BGP" for `ip` at or after `after`. */
  const advertisedAt = (node: string, ip: string, after: number) =>
    loggedAt(L.speaker(node), (l) => l.msg === "IP advertised over BGP" && l.ip === ip, after);

  L.startController();
  for (const n of L.nodes) L.startSpeaker(n.name);
  await L.waitSpeakersReady(60_000);
  await L.createPool("bgp", [V4_POOL], { autoAssign: false });
  const peer = (name: string, addr: string) =>
    api.create(`${G}/bgppeers`, {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "BGPPeer",
      metadata: { name },
      spec: {
        myASN: NODE_ASN,
        peerASN: ROUTER_ASN,
        peerAddress: addr,
        holdTime: "9s",
        keepaliveTime: "3s",
        connectTime: "2s",
      },
    });
  const advertise = (name: string, pool: string) =>
    api.create(`${G}/bgpadvertisements`, {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "BGPAdvertisement",
      metadata: { name },
      spec: { ipAddressPools: [pool] },
    });
  await peer("tor", ROUTER_IP);
  await advertise("bgp", "bgp");
  const established = (addrs: string[]) =>
    waitFor(
      `sessions from ${addrs.join(", ")} established`,
      async () => {
        const all = await Promise.all(
          addrs.map(async (a) => {
            const r = await R.json<Record<string, { bgpState?: string }>>(
              `show bgp neighbors ${a} json`,
            );
            return r[a]?.bgpState === "Established";
          }),
        );
        return all.every(Boolean);
      },
      60_000,
      100,
    );
  await established(L.nodes.map((n) => n.ip));

  // --- the bench's Services: selector-less, the bench writes their EndpointSlices
  const NS = "default";
  const svcPath = (name: string) => `/api/v1/namespaces/${NS}/services/${name}`;
  const slicePath = (name: string) =>
    `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices/${name}`;
  const createService = (name: string, pool: string, family: "IPv4" | "IPv6") =>
    api.create(`/api/v1/namespaces/${NS}/services`, {
      metadata: { name, annotations: { "ironlb.dev/address-pool": pool } },
      spec: {
        type: "LoadBalancer",
        externalTrafficPolicy: "Cluster",
        // No NodePorts: the default range (2,768) is far smaller than the scale part.
        allocateLoadBalancerNodePorts: false,
        ipFamilies: [family],
        ipFamilyPolicy: "SingleStack",
        ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: 8080 }],
      },
    });
  const slice = (svc: string, family: "IPv4" | "IPv6", ready: boolean | null) => ({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: `${svc}-1`, labels: { "kubernetes.io/service-name": svc } },
    addressType: family,
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    endpoints:
      ready === null
        ? []
        : [
            {
              addresses: [family === "IPv4" ? "198.51.100.130" : "2001:db8:2:101::10"],
              nodeName: "node1",
              conditions: { ready },
            },
          ],
  });
  /** Services' first ingress IP as the bench's watch saw it written, with the time. */
  const assigned = new Map<string, { ip: string; t: number }>();
  type Svc = {
    metadata: { name: string };
    status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
  };
  const watchServices = async () => {
    // List, then watch from its version: an event's arrival time is the assignment time.
    const list = await api.get<{ metadata: { resourceVersion: string } }>(
      `/api/v1/namespaces/${NS}/services`,
    );
    return api.watch<Svc>(
      `/api/v1/namespaces/${NS}/services`,
      { resourceVersion: list.metadata.resourceVersion },
      (ev) => {
        const t = now();
        const ip = ev.object.status?.loadBalancer?.ingress?.[0]?.ip;
        const name = ev.object.metadata?.name;
        if (ev.type !== "DELETED" && ip && name && !assigned.has(name))
          assigned.set(name, { ip, t });
      },
      (err) => err && console.error(`Service watch ended: ${err.message}`),
    );
  };
  const svcWatch = await watchServices();
  const hops = async (dst: string) => nextHops(await kernelRoute(routerNs, dst));
  const all3 = L.nodes.map((n) => n.ip).sort();

  if (PARTS.has("withdraw")) {
    console.log(`-- withdraw and assignment (load ${load()}, ${GAP_MS} ms between samples)`);
    await R.vtysh("debug bgp updates in");
    const assignFirst: number[] = [];
    const assignAll: number[] = [];
    const createToRoute: number[] = [];
    const wd: Record<"delete" | "notready" | "removed", number[]> = {
      delete: [],
      notready: [],
      removed: [],
    };
    /** The first of the 3 nodes' withdrawals (3 -> 2 next hops), all triggers. */
    const wdFirst: number[] = [];
    /**
     * Assignment -> route split: assignment -> the first (and each) speaker's "IP advertised
     * over BGP" log; assignment -> bgpd logs the first received UPDATE for the /32 (the
     * speaker's part, plus TCP over a veth); that -> the kernel's first route (FRR's part).
     */
    const asplit = {
      controller: [] as number[],
      firstSpeaker: [] as number[],
      eachSpeaker: [] as number[],
      speaker: [] as number[],
      router: [] as number[],
    };
    const kinds = ["delete", "notready", "removed"] as const;
    for (let i = 0; i < RUNS * 3; i++) {
      const name = `bgpb-${i}`;
      const kind = kinds[i % 3]!;
      if (GAP_MS > 0) await sleep(GAP_MS); // pacing between samples, not synchronisation
      const tCreate = now();
      await api.create(
        `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`,
        slice(name, "IPv4", true),
      );
      await createService(name, "bgp", "IPv4");
      const a = await waitFor(`${name} assigned`, () => assigned.get(name), 20_000, 5);
      const dst = `${a.ip}/32`;
      const first = await M.first(dst, tCreate);
      assignFirst.push(first.t - a.t);
      createToRoute.push(first.t - tCreate);
      await waitFor(
        `${dst} with 3 next hops`,
        async () => JSON.stringify(await hops(dst)) === JSON.stringify(all3),
        20_000,
        10,
      );
      assignAll.push(now() - a.t);
      // The split: the controller's log of its write, each speaker's log (decision made,
      // UPDATE written), bgpd's receipt; read once all 3 nodes have advertised.
      const allocated = loggedAt(
        L.controller,
        (l) => l.msg === "IP allocated" && l.service === `${NS}/${name}`,
        tCreate,
      );
      if (allocated !== undefined) asplit.controller.push(a.t - allocated);
      const logged = L.nodes
        .map((n) => advertisedAt(n.name, a.ip, tCreate))
        .filter((t): t is number => t !== undefined);
      for (const t of logged) asplit.eachSpeaker.push(t - a.t);
      if (logged.length > 0) asplit.firstSpeaker.push(Math.min(...logged) - a.t);
      const rcvd = bgpdLogged(tCreate, rcvdLine(dst));
      showRcvd(dst, tCreate);
      if (rcvd !== undefined) {
        asplit.speaker.push(rcvd - a.t);
        asplit.router.push(first.t - rcvd);
      }
      await sleep(200); // the route settled; no event of its own in flight
      const t0 = now();
      if (kind === "delete") await api.delete(svcPath(name));
      else
        await api.replace(slicePath(`${name}-1`), {
          ...slice(name, "IPv4", kind === "notready" ? false : null),
          metadata: {
            ...slice(name, "IPv4", null).metadata,
            resourceVersion: (
              (await api.get(slicePath(`${name}-1`))) as { metadata: { resourceVersion: string } }
            ).metadata.resourceVersion,
          },
        });
      const gone = await M.first(dst, t0, (x) => x.startsWith("Deleted"));
      wd[kind].push(gone.t - t0);
      wdFirst.push((await M.first(dst, t0)).t - t0);
      const heard = bgpdLogged(t0, (l) => l.includes(` ${dst} `) && l.includes("withdrawn"));
      if (heard !== undefined) {
        split.speaker!.push(heard - t0);
        split.router!.push(gone.t - heard);
      }
      if (kind !== "delete") await api.delete(svcPath(name));
      await api.delete(slicePath(`${name}-1`)).catch(() => {});
      assigned.delete(name);
    }
    console.log(`assignment (controller's status write) -> first next hop: ${fmt(assignFirst)}`);
    console.log(`assignment -> all 3 next hops (polled 10 ms): ${fmt(assignAll)}`);
    console.log(`Service create -> first next hop: ${fmt(createToRoute)}`);
    console.log(
      `  assignment -> the first speaker's log, every sample (ms, sorted): ${[
        ...asplit.firstSpeaker,
      ]
        .sort((x, y) => x - y)
        .map((x) => x.toFixed(0))
        .join(" ")}`,
    );
    console.log(
      `  the controller logs "IP allocated" (after its write returned) -> the bench's watch delivers the IP: ${fmt(asplit.controller)}`,
    );
    console.log(
      `  of which assignment -> the first speaker logs "IP advertised over BGP" (evaluated, UPDATE written; ms resolution): ${fmt(asplit.firstSpeaker)}; each of the 3 speakers: ${fmt(asplit.eachSpeaker)}`,
    );
    console.log(
      `  of which assignment -> bgpd logs the first received UPDATE (ms resolution): ${fmt(asplit.speaker)}; bgpd's log -> kernel route (first next hop): ${fmt(asplit.router)}`,
    );
    console.log(`withdraw, Service deleted: ${fmt(wd.delete)}`);
    console.log(`withdraw, endpoint made not ready: ${fmt(wd.notready)}`);
    console.log(`withdraw, endpoint removed: ${fmt(wd.removed)}`);
    console.log(`withdraw, first of 3 nodes (any trigger): ${fmt(wdFirst)}`);
    console.log(
      `  of which trigger -> bgpd logs the first withdrawal (ms resolution): ${fmt(split.speaker!)}; bgpd's log -> kernel route deleted: ${fmt(split.router!)}`,
    );
    await R.vtysh("no debug bgp updates in");
    console.log(`load average after: ${load()}`);
  }

  if (PARTS.has("anchor")) {
    console.log(
      `-- anchor: BIRD announcing a newly enabled static /32 to the same FRR (load ${load()})`,
    );
    await run("ip", ["netns", "add", anchorNs]);
    await run("ip", ["-n", anchorNs, "link", "set", "lo", "up"]);
    await run("ip", [
      ...["-n", L.switchNs, "link", "add", "anc0", "type", "veth"],
      ...["peer", "name", "eth0", "netns", anchorNs],
    ]);
    await run("ip", ["-n", L.switchNs, "link", "set", "anc0", "master", "br0", "up"]);
    await run("ip", ["-n", anchorNs, "addr", "add", `${ANCHOR_IP}/25`, "dev", "eth0"]);
    await run("ip", ["-n", anchorNs, "link", "set", "eth0", "up"]);
    // One disabled static protocol per /32 (32 of them, reused beyond that): `enable aN`
    // makes BIRD export a route it did not have, as a new Service IP is one the speaker
    // did not have.
    const base = Number(ANCHOR_BASE.split(".")[3]);
    const count = 32;
    const ipOf = (i: number) =>
      `${ANCHOR_BASE.split(".").slice(0, 3).join(".")}.${base + (i % count)}`;
    const statics = Array.from(
      { length: count },
      (_, i) =>
        `protocol static a${i} {\n  disabled;\n  ipv4;\n  route ${ipOf(i)}/32 blackhole;\n}`,
    ).join("\n");
    const bird = await Bird.start(
      anchorNs,
      (d) => `log "${d}/bird.log" { warning, error, fatal };
router id ${ANCHOR_IP};
protocol device { }
${statics}
protocol bgp tor {
  local ${ANCHOR_IP} as ${NODE_ASN}; neighbor ${ROUTER_IP} as ${ROUTER_ASN};
  hold time 9; keepalive time 3; connect delay time 1; connect retry time 1; error wait time 1,5;
  ipv4 { import none; export all; };
}
`,
    );
    birds.push(bird);
    await established([ANCHOR_IP]);
    await R.vtysh("debug bgp updates in");
    const ctl = await birdControl(join(bird.dir, "bird.ctl"));
    const ann = { total: [] as number[], bird: [] as number[], router: [] as number[] };
    const wdr = { total: [] as number[], bird: [] as number[], router: [] as number[] };
    try {
      for (let i = 0; i < RUNS; i++) {
        const dst = `${ipOf(i)}/32`;
        await sleep(200);
        const t0 = now();
        const reply = ctl.send(`enable a${i % count}`);
        const first = await M.first(dst, t0);
        await reply;
        ann.total.push(first.t - t0);
        const heard = bgpdLogged(t0, rcvdLine(dst));
        if (heard !== undefined) {
          ann.bird.push(heard - t0);
          ann.router.push(first.t - heard);
        }
        await sleep(200);
        const t1 = now();
        const off = ctl.send(`disable a${i % count}`);
        const gone = await M.first(dst, t1, (x) => x.startsWith("Deleted"));
        await off;
        wdr.total.push(gone.t - t1);
        const heardW = bgpdLogged(t1, (l) => l.includes(` ${dst} `) && l.includes("withdrawn"));
        if (heardW !== undefined) {
          wdr.bird.push(heardW - t1);
          wdr.router.push(gone.t - heardW);
        }
      }
    } finally {
      ctl.close();
    }
    await R.vtysh("no debug bgp updates in");
    console.log(`BIRD enable -> kernel route: ${fmt(ann.total)}`);
    console.log(
      `  of which enable -> bgpd logs the received UPDATE: ${fmt(ann.bird)}; bgpd's log -> kernel route: ${fmt(ann.router)}`,
    );
    console.log(`BIRD disable -> kernel route deleted: ${fmt(wdr.total)}`);
    console.log(
      `  of which disable -> bgpd logs the withdrawal: ${fmt(wdr.bird)}; bgpd's log -> kernel route deleted: ${fmt(wdr.router)}`,
    );
    console.log(`load average after: ${load()}`);
  }

  if (PARTS.has("kill")) {
    console.log(`-- speaker SIGKILL (load ${load()})`);
    const name = "bgpb-kill";
    await api.create(
      `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`,
      slice(name, "IPv4", true),
    );
    await createService(name, "bgp", "IPv4");
    const a = await waitFor(`${name} assigned`, () => assigned.get(name), 20_000, 5);
    const dst = `${a.ip}/32`;
    const killed: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      await waitFor(
        `${dst} with 3 next hops`,
        async () => JSON.stringify(await hops(dst)) === JSON.stringify(all3),
        30_000,
        20,
      );
      await sleep(300);
      const node = L.nodes[i % 3]!;
      const pid = L.speaker(node.name)!.proc.pid!;
      const t0 = now();
      process.kill(pid, "SIGKILL");
      const e = await M.first(dst, t0);
      killed.push(e.t - t0);
      const down = bgpdLogged(t0, (l) => l.includes(`neighbor ${node.ip}`) && l.includes("Down"));
      if (down !== undefined) {
        split.kspeaker!.push(down - t0);
        split.krouter!.push(e.t - down);
      }
      await L.speaker(node.name)!.exited;
      const left = await hops(dst);
      if (left.length !== 2 || left.includes(node.ip))
        throw new Error(`after killing ${node.name}'s speaker the router has [${left}]`);
      L.startSpeaker(node.name);
      await L.waitSpeakersReady(60_000);
    }
    console.log(`withdraw, speaker SIGKILL (3 -> 2 next hops): ${fmt(killed)}`);
    console.log(
      `  of which kill -> bgpd logs the neighbor Down: ${fmt(split.kspeaker!)}; -> kernel route changed: ${fmt(split.krouter!)}`,
    );
    await api.delete(svcPath(name));
    await api.delete(slicePath(`${name}-1`)).catch(() => {});
    console.log(`load average after: ${load()}`);
  }

  if (PARTS.has("scale")) {
    console.log(`-- ${SCALE} Services, 3 nodes (load ${load()})`);
    await L.createPool("scale", [V6_POOL], { autoAssign: false });
    await peer("tor6", ROUTER_IP6);
    await established(L.nodes.map((n) => n.ip6!));
    const t = now();
    const names = Array.from({ length: SCALE }, (_, i) => `bgps-${i}`);
    let next = 0;
    await Promise.all(
      Array.from({ length: WRITERS }, async () => {
        while (next < names.length) {
          const name = names[next++]!;
          await Promise.all([
            api.create(
              `/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`,
              slice(name, "IPv6", true),
            ),
            createService(name, "scale", "IPv6"),
          ]);
        }
      }),
    );
    console.log(
      `created ${SCALE} Services and slices in ${((now() - t) / 1000).toFixed(1)} s (${WRITERS} writers, load ${load()})`,
    );
    await waitFor(
      `${SCALE} Services assigned`,
      () => names.every((n) => assigned.has(n)),
      600_000,
      500,
    );
    console.log(`all assigned after ${((now() - t) / 1000).toFixed(1)} s (load ${load()})`);
    const ips6 = L.nodes.map((n) => n.ip6!);
    /** Prefixes each node's session gave the router (bgpd), and complete kernel routes. */
    const table = async () => {
      // `show bgp ipv6 unicast summary json`: the peers at the top (FRR 8.4), or under the
      // family's key (other versions).
      type Peers = Record<string, { pfxRcd?: number; state?: string }>;
      const s = await R.json<{ peers?: Peers; ipv6Unicast?: { peers?: Peers } }>(
        "show bgp ipv6 unicast summary json",
      );
      const peers = s.peers ?? s.ipv6Unicast?.peers ?? {};
      const rcvd = ips6.map((a) => peers[a]?.pfxRcd ?? 0);
      const up = ips6.every((a) => peers[a]?.state === "Established");
      const out = await run("ip", ["-n", routerNs, "-6", "-j", "route", "show", "proto", "bgp"]);
      const routes = JSON.parse(out || "[]") as { nexthops?: unknown[] }[];
      const kernel3 = routes.filter((r) => (r.nexthops?.length ?? 0) === 3).length;
      return { rcvd, up, kernel: routes.length, kernel3 };
    };
    /**
     * Polls the router every 250 ms from t0 until bgpd has SCALE prefixes from each of the
     * 3 nodes and the kernel SCALE routes with 3 next hops; samples pids' CPU and RSS.
     */
    const untilFull = async (what: string, t0: number, pids: () => number[]) => {
      const cpu0 = pids().map(cpuTicks);
      let bgpFull: number | undefined;
      let upAt: number | undefined;
      let kernelFull: number | undefined;
      let last = await table();
      const peak = pids().map(rssMiB);
      while (kernelFull === undefined) {
        if (now() - t0 > 600_000)
          throw new Error(`${what}: no full table after 600 s: ${JSON.stringify(last)}`);
        await sleep(250);
        last = await table();
        pids().forEach((p, i) => {
          peak[i] = Math.max(peak[i] ?? 0, rssMiB(p));
        });
        if (upAt === undefined && last.up) upAt = now() - t0;
        if (bgpFull === undefined && last.rcvd.every((x) => x === SCALE)) bgpFull = now() - t0;
        if (last.kernel3 === SCALE) kernelFull = now() - t0;
      }
      const ps = pids();
      const cpu = ps.map((p, i) => (cpuTicks(p) - (cpu0[i] ?? 0)) * 10);
      const rss = ps.map(rssMiB);
      console.log(
        `${what}: 3 sessions up ${((upAt ?? 0) / 1000).toFixed(2)} s, full BGP table ${((bgpFull ?? kernelFull) / 1000).toFixed(2)} s, full kernel table (${SCALE} x 3 next hops) ${(kernelFull / 1000).toFixed(2)} s; CPU ms per process ${cpu.join(", ")} (${cpu.map((c) => ((100 * c) / kernelFull).toFixed(0)).join(", ")} % of one core); RSS MiB at full ${rss.map((r) => r.toFixed(1)).join(", ")}, peak polled ${peak.map((r) => r.toFixed(1)).join(", ")}; load ${load()}`,
      );
      return { bgpFull: bgpFull ?? kernelFull, kernelFull, upAt: upAt ?? 0, cpu, rss };
    };
    const speakerPids = () => L.nodes.map((n) => L.speaker(n.name)!.proc.pid!);
    const empty = () =>
      waitFor(
        "the router's IPv6 table empty",
        async () => (await table()).kernel === 0,
        120_000,
        250,
      );
    // (1) The advertisement created, speakers running with sessions up.
    let t0 = now();
    await advertise("scale", "scale");
    const adv = await untilFull("speakers, BGPAdvertisement created", t0, speakerPids);
    // (2) Cold start: the speakers stopped (Cease: the router drops their routes) and started.
    for (const n of L.nodes) await L.stopSpeaker(n.name, "SIGTERM");
    await empty();
    t0 = now();
    for (const n of L.nodes) L.startSpeaker(n.name);
    const cold = await untilFull("speakers, cold start", t0, speakerPids);
    const idle0 = speakerPids().map(cpuTicks);
    await sleep(10_000);
    console.log(
      `speakers 10 s later: RSS ${speakerPids()
        .map((p) => rssMiB(p).toFixed(1))
        .join(", ")} MiB, CPU over those 10 s ${speakerPids()
        .map((p, i) => (cpuTicks(p) - (idle0[i] ?? 0)) * 10)
        .join(", ")} ms`,
    );
    // (3) Anchor: BIRD in the node namespaces announcing the same prefixes.
    const prefixes = [...assigned.entries()]
      .filter(([n]) => n.startsWith("bgps-"))
      .map(([, a]) => a.ip);
    for (const n of L.nodes) await L.stopSpeaker(n.name, "SIGTERM");
    await empty();
    const routes = prefixes.map((ip) => `  route ${ip}/128 blackhole;`).join("\n");
    t0 = now();
    const started = await Promise.all(
      L.nodes.map((n) =>
        Bird.start(
          n.ns,
          (d) => `log "${d}/bird.log" { warning, error, fatal };
router id ${n.ip};
protocol device { }
protocol static svc6 {
  ipv6;
${routes}
}
protocol bgp tor6 {
  local ${n.ip6} as ${NODE_ASN}; neighbor ${ROUTER_IP6} as ${ROUTER_ASN};
  hold time 9; keepalive time 3; connect delay time 1; connect retry time 1; error wait time 1,5;
  ipv6 { import none; export all; };
}
`,
        ),
      ),
    );
    birds.push(...started);
    const birdPids = () =>
      birds.map((b) => Number(readFileSync(join(b.dir, "bird.pid"), "utf8").trim()));
    const anchor = await untilFull("BIRD anchor, cold start", t0, birdPids);
    console.log(
      `ratio speakers / BIRD (cold start, full kernel table): ${(cold.kernelFull / anchor.kernelFull).toFixed(2)}; BGP table: ${(cold.bgpFull / anchor.bgpFull).toFixed(2)}; advertisement-created vs BIRD cold: ${(adv.kernelFull / anchor.kernelFull).toFixed(2)}; sessions up -> full kernel table, speakers ${((cold.kernelFull - cold.upAt) / 1000).toFixed(2)} s vs BIRD ${((anchor.kernelFull - anchor.upAt) / 1000).toFixed(2)} s (ratio ${((cold.kernelFull - cold.upAt) / (anchor.kernelFull - anchor.upAt)).toFixed(2)})`,
    );
  }
  svcWatch.abort();
} finally {
  monitor?.stop();
  for (const b of birds) b.stop();
  router?.stop();
  await run("ip", ["netns", "del", routerNs]).catch(() => undefined);
  await run("ip", ["netns", "del", anchorNs]).catch(() => undefined);
  await lab?.destroy();
  await cp.stop();
}
