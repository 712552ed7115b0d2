// A real Kubernetes cluster on one Linux machine, for `npm run lab`, the cluster e2e test and
// the cluster benchmark (what it proves: README, "Quick start"; the pitfalls are noted where
// they are handled, below).
//
// Layout (every name starts with PREFIX; one such cluster at a time, the address plan is fixed):
//   ilbc-up       veth in the root namespace, 198.51.100.1/26: the control plane listens on it
//                 (the only change in the root namespace; its /26 is the only route it adds)
//   ilbc-sw       namespace with bridge br0: the LAN
//   ilbc-nodeN    one namespace per node: eth0 on the LAN, cni0 (bridge CNI) for its pods,
//                 routes to the other nodes' pod ranges, a masquerade for pod traffic leaving
//                 the pod range. A holder process keeps a private mount namespace in which
//                 per-node folders cover the paths kubelet and containerd share by default,
//                 and files cover the global sysctls kubelet would "fix"; containerd, kubelet
//                 and kube-proxy run in the holder's mount and network namespaces, under the
//                 cgroup /ilbc-nodeN of every hierarchy.
//   ilbc-client   a LAN client that routes the Service pool on-link (it ARPs for Service IPs).
// kube-apiserver, etcd, kube-controller-manager and kube-scheduler run in the root namespace.
import { type ChildProcess, spawn } from "node:child_process";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import {
  type ControlPlaneState,
  clientKubeconfig,
  issueClientCert,
  pkiPaths,
  readState,
  startControlPlane,
  stopControlPlane,
} from "../controlplane/controlplane.ts";
import { rootNamespaceClash } from "../lab/lab.ts";
import { alive, listNetns, run, tryRun } from "../lab/net.ts";
import { sleep, waitFor } from "../support/kube.ts";
import {
  CLIENT_IP,
  LAN_CIDR,
  LAN_PREFIX,
  nodeIP,
  POD_CIDR,
  POOL_CIDR,
  podCIDR,
  SERVICE_CIDR_V4,
  SERVICE_CIDRS,
  UPLINK_IP,
} from "./addresses.ts";
import { PAUSE_IMAGE } from "./images.ts";

export const PREFIX = "ilbc-";
const SW = `${PREFIX}sw`;
const UPLINK = `${PREFIX}up`;
const CLIENT = `${PREFIX}client`;
/** Where a running cluster records itself, so that `down` and the next run can clean up a crash. */
const markerFile = "/run/ironlb-cluster/cluster.json";
/** Paths kubelet and containerd use whatever their flags say: one folder per node over each. */
const PRIVATE_DIRS = [
  "/var/lib/kubelet",
  "/run/containerd",
  "/var/lib/cni",
  "/var/log/pods",
  "/var/log/containers",
  "/run/netns",
];
/** Global (not per-namespace) sysctls kubelet writes at start: each node sees a file of its own. */
const GUARDED_SYSCTLS = ["vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops"];

export interface ClusterOptions {
  /** Folder for the control plane, node state, certificates and logs (removed on destroy). */
  dir: string;
  /** Folder with kube-apiserver, etcd, kubelet, kube-proxy, kube-controller-manager, kube-scheduler, kubectl, helm. */
  binDir: string;
  nodes?: number;
  /** Image archives every node imports before its kubelet starts (the pause image at least). */
  images: string[];

  log?: (msg: string) => void;
}

export interface ClusterNode {
  /** Kubernetes node name. */
  name: string;
  /** Its network namespace (and cgroup name). */
  ns: string;
  index: number;
  ip: string;
  podCIDR: string;
  dir: string;
  holder: number;
  kubelet?: number;
  kubeProxy?: number;
  containerd?: number;
}

interface Marker {
  pid: number;
  dir: string;
  cpDir: string;
  nodes: { name: string; ns: string; holder: number; pids: number[] }[];
  pids: number[];
}

function writeMarker(m: Marker): void {
  mkdirSync(join(markerFile, ".."), { recursive: true });
  writeFileSync(markerFile, JSON.stringify(m, null, 2));
}

function readMarker(): Marker | undefined {
  try {
    return JSON.parse(readFileSync(markerFile, "utf8")) as Marker;
  } catch {
    return undefined;
  }
}

/** Runs a command inside a namespace (network only; `ip netns exec` would remount /sys). */
function inNet(ns: string, cmd: string, args: string[]): Promise<string> {
  return run("nsenter", [`--net=/run/netns/${ns}`, "--", cmd, ...args]);
}

function spawnLogged(argv: string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, "a");
  // Own session: `npm run lab` exits and leaves the cluster running; teardown kills by pid.
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", fd, fd], detached: true });
  closeSync(fd);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${argv.join(" ")}`);
  return child;
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** The v1 cgroup hierarchies (and the unified one) under which a node's cgroup lives. */
function cgroupMounts(): string[] {
  return readdirSync("/sys/fs/cgroup")
    .map((d) => join("/sys/fs/cgroup", d))
    .filter((p) => {
      try {
        return statSync(p).isDirectory() && existsSync(join(p, "cgroup.procs"));
      } catch {
        return false;
      }
    });
}

/** Every pid in a cgroup subtree (all hierarchies). */
function cgroupPids(name: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    try {
      for (const l of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n"))
        if (l.trim() !== "") pids.add(Number(l));
    } catch {
      // gone meanwhile
    }
    for (const e of entries) {
      const p = join(dir, e);
      try {
        if (statSync(p).isDirectory()) walk(p);
      } catch {
        // gone meanwhile
      }
    }
  };
  for (const m of cgroupMounts()) walk(join(m, name));
  return [...pids];
}

/** Removes a cgroup subtree depth-first (a cgroup directory goes only once it is empty). */
function removeCgroup(name: string): void {
  const rm = (dir: string) => {
    let entries: string[];
    try {
      entries = readdirSync(dir);
    } catch {
      return;
    }
    for (const e of entries) {
      const p = join(dir, e);
      try {
        if (statSync(p).isDirectory()) rm(p);
      } catch {
        // gone meanwhile
      }
    }
    try {
      // rmdir, not rm: cgroupfs only allows removing the directory itself.
      rmdirSync(dir);
    } catch {
      // still busy: reported by the caller's check
    }
  };
  for (const m of cgroupMounts()) rm(join(m, name));
}

/** Pids whose mount namespace is that of `holder` (containerd, shims, their children). */
function mountNamespacePids(holder: number): number[] {
  let ns: string;
  try {
    ns = readlinkSync(`/proc/${holder}/ns/mnt`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readlinkSync(`/proc/${e}/ns/mnt`) === ns) out.push(Number(e));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

async function killWait(
  pids: number[],
  signal: NodeJS.Signals = "SIGKILL",
  ms = 10_000,
): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + ms;
  while (pids.some((p) => alive(p) && !isZombie(p)) && Date.now() < deadline) await sleep(20);
}

function isZombie(pid: number): boolean {
  try {
    return /\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

/**
 * Removes a cluster left by an earlier run (running or crashed), in the order that leaves
 * nothing behind: kubelet and kube-proxy, the pids in the node cgroups, the pids in each
 * holder's mount namespace, the holder; then cgroups, namespaces, the uplink, the control
 * plane and the folder. Returns whether there was anything to remove.
 */
export async function destroyCluster(log: (msg: string) => void = () => {}): Promise<boolean> {
  const m = readMarker();
  const netns = (await listNetns()).filter((n) => n.startsWith(PREFIX));
  const uplink = await tryRun("ip", ["link", "show", UPLINK]);
  if (!m && netns.length === 0 && !uplink) return false;
  const t0 = performance.now();
  const step = (what: string) =>
    process.env.IRONLB_CLUSTER_DEBUG &&
    log(`teardown: ${what} at ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const nodes = m?.nodes ?? [];
  // Nodes the marker does not know (a crash before it was written): found by namespace name.
  for (const ns of netns)
    if (/node\d+$/.test(ns) && !nodes.some((n) => n.ns === ns))
      nodes.push({ name: ns.slice(PREFIX.length), ns, holder: 0, pids: [] });
  await killWait(nodes.flatMap((n) => n.pids));
  step("node agents killed");
  await killWait(nodes.flatMap((n) => cgroupPids(n.ns)));
  step("cgroup pids killed");
  for (const n of nodes) {
    const holder = n.holder || (await holderOf(n.ns));
    if (holder) await killWait(mountNamespacePids(holder).filter((p) => p !== holder));
    const rest = [...(await netnsPidsOf(n.ns)), ...cgroupPids(n.ns)];
    await killWait(rest);
    if (holder) await killWait([holder]);
  }
  step("holders killed");
  for (const n of nodes) removeCgroup(n.ns);
  // Control-plane processes of a disposable cluster: no graceful shutdown needed.
  if (m) await killWait(m.pids);
  step("control plane killed");
  for (const ns of netns) {
    await killWait(await netnsPidsOf(ns));
    await tryRun("ip", ["netns", "del", ns]);
  }
  if (uplink) await tryRun("ip", ["link", "del", UPLINK]);
  step("namespaces removed");
  if (m) {
    const cp = readState(m.cpDir);
    if (cp) await stopControlPlane(cp);
    rmSync(m.dir, { recursive: true, force: true });
  }
  rmSync(markerFile, { force: true });
  const left = nodes.filter((n) => cgroupMounts().some((c) => existsSync(join(c, n.ns))));
  if (left.length > 0)
    log(`warning: cgroups left behind: ${left.map((n) => n.ns).join(", ")} (busy)`);
  log(`removed the cluster in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return true;
}

async function netnsPidsOf(ns: string): Promise<number[]> {
  const out = await tryRun("ip", ["netns", "pids", ns]);
  return (out ?? "")
    .split("\n")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** The holder of a node namespace: the process there whose command is `sleep infinity`. */
async function holderOf(ns: string): Promise<number> {
  for (const pid of await netnsPidsOf(ns)) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8") === "sleep\0infinity\0") return pid;
    } catch {
      // gone
    }
  }
  return 0;
}

export class RealCluster {
  readonly nodes: ClusterNode[] = [];
  readonly client = { ns: CLIENT, ip: CLIENT_IP };
  cp!: ControlPlaneState;
  /** Admin kubeconfig (reaches the apiserver on the uplink address). */
  kubeconfig = "";
  private pids: number[] = [];
  private readonly log: (msg: string) => void;
  private readonly logDir: string;
  readonly opts: ClusterOptions;

  private constructor(opts: ClusterOptions) {
    this.opts = opts;
    this.log = opts.log ?? ((m) => process.stderr.write(`[cluster] ${m}\n`));
    this.logDir = join(opts.dir, "logs");
  }

  get kubectlBin(): string {
    return join(this.opts.binDir, "kubectl");
  }

  /** Builds the whole cluster and waits until every node is Ready; removes all of it on failure. */
  static async create(opts: ClusterOptions): Promise<RealCluster> {
    const c = new RealCluster(opts);
    await destroyCluster(c.log);
    rmSync(opts.dir, { recursive: true, force: true });
    mkdirSync(c.logDir, { recursive: true });
    try {
      await c.build();
      return c;
    } catch (err) {
      c.log(`start-up failed: ${(err as Error).message}`);
      await c.destroy();
      throw err;
    }
  }

  private saveMarker(): void {
    writeMarker({
      pid: process.pid,
      dir: this.opts.dir,
      cpDir: join(this.opts.dir, "controlplane"),
      nodes: this.nodes.map((n) => ({
        name: n.name,
        ns: n.ns,
        holder: n.holder,
        pids: [n.kubelet, n.kubeProxy, n.containerd].filter((p): p is number => p !== undefined),
      })),
      pids: this.pids,
    });
  }

  private async build(): Promise<void> {
    const t0 = performance.now();
    const count = this.opts.nodes ?? 3;
    const el = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    // The marker first: whatever happens next, `down` knows where to look.
    for (let i = 0; i < count; i++) {
      const name = `node${i + 1}`;
      this.nodes.push({
        name,
        ns: `${PREFIX}${name}`,
        index: i,
        ip: nodeIP(i),
        podCIDR: podCIDR(i).cidr,
        dir: join(this.opts.dir, name),
        holder: 0,
      });
    }
    this.saveMarker();
    await this.buildLan();
    this.log(`LAN ready (${el()}); starting the control plane`);
    this.cp = await startControlPlane({
      dir: join(this.opts.dir, "controlplane"),
      bindAddress: UPLINK_IP,
      advertiseAddress: UPLINK_IP,
      detached: true,
      log: this.log,
      serviceCIDRs: SERVICE_CIDRS,
      serviceAccountAdmission: true,
      authorizationModes: "Node,RBAC",
      extraArgs: [
        "--enable-admission-plugins=NodeRestriction",
        // Else the apiserver resolves node names through the host's DNS (logs, exec).
        "--kubelet-preferred-address-types=InternalIP",
        `--kubelet-client-certificate=${join(this.opts.dir, "controlplane", "pki", "admin.crt")}`,
        `--kubelet-client-key=${join(this.opts.dir, "controlplane", "pki", "admin.key")}`,
      ],
    });
    this.pids.push(...this.cp.pids);
    this.kubeconfig = this.cp.kubeconfig;
    this.saveMarker();
    this.log(
      `control plane ready (${el()}); starting controller-manager, scheduler and ${count} nodes`,
    );
    this.startControllers();
    await Promise.all(this.nodes.map((n) => this.startNode(n)));
    this.saveMarker();
    await this.waitNodesReady(60_000);
    this.log(`${count} nodes Ready (${el()})`);
  }

  private async buildLan(): Promise<void> {
    // The uplink routes the LAN in the root namespace: it must not shadow what the host uses.
    const clash = await rootNamespaceClash(LAN_CIDR);
    if (clash)
      throw new Error(
        `the lab's LAN ${LAN_CIDR} is in use on this host (${clash}); the real-cluster lab cannot run here`,
      );
    await run("ip", ["netns", "add", SW]);
    await inNet(SW, "ip", ["link", "set", "lo", "up"]);
    await inNet(SW, "ip", ["link", "add", "br0", "type", "bridge"]);
    await inNet(SW, "ip", ["link", "set", "br0", "up"]);
    // The uplink: the only object in the root namespace.
    await run("ip", ["link", "add", UPLINK, "type", "veth", "peer", "name", "upl", "netns", SW]);
    await run("ip", ["addr", "add", `${UPLINK_IP}/${LAN_PREFIX}`, "dev", UPLINK]);
    await run("ip", ["link", "set", UPLINK, "up"]);
    await inNet(SW, "ip", ["link", "set", "upl", "master", "br0", "up"]);
    const attach = async (ns: string, port: string, ip: string) => {
      await run("ip", ["netns", "add", ns]);
      await inNet(SW, "ip", [
        "link",
        "add",
        port,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        ns,
      ]);
      await inNet(SW, "ip", ["link", "set", port, "master", "br0", "up"]);
      await inNet(ns, "ip", ["link", "set", "lo", "up"]);
      await inNet(ns, "ip", ["addr", "add", `${ip}/${LAN_PREFIX}`, "dev", "eth0"]);
      await inNet(ns, "ip", ["link", "set", "eth0", "up"]);
    };
    await attach(CLIENT, "client", CLIENT_IP);
    // The client ARPs for Service IPs like any host on the LAN would.
    await inNet(CLIENT, "ip", ["route", "add", POOL_CIDR, "dev", "eth0"]);
    for (const n of this.nodes) {
      await attach(n.ns, n.name, n.ip);
      for (const o of this.nodes)
        if (o !== n) await inNet(n.ns, "ip", ["route", "add", o.podCIDR, "via", o.ip]);
      // No dummy driver here: the Service range is routed on eth0 so that host-network
      // processes can connect to ClusterIPs (kube-proxy rewrites them before they leave).
      await inNet(n.ns, "ip", ["route", "add", SERVICE_CIDR_V4, "dev", "eth0"]);
      await inNet(n.ns, "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
      await run("nsenter", [`--net=/run/netns/${n.ns}`, "--", "nft", "-f", "-"], {
        input: `table ip ilbc_node {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${POD_CIDR} ip daddr != ${POD_CIDR} oifname "eth0" masquerade
  }
}
`,
      });
    }
  }

  private startControllers(): void {
    const pki = pkiPaths(join(this.cp.dir, "pki"));
    const kcm = spawnLogged(
      [
        join(this.opts.binDir, "kube-controller-manager"),
        `--kubeconfig=${this.kubeconfig}`,
        "--leader-elect=false",
        "--secure-port=0",
        "--use-service-account-credentials=false",
        `--service-account-private-key-file=${pki.saKey}`,
        `--root-ca-file=${pki.caCert}`,
        `--service-cluster-ip-range=${SERVICE_CIDRS}`,
        `--cluster-cidr=${POD_CIDR}`,
        "--controllers=*,-csrsigning,-csrapproving,-nodeipam",
        "--node-monitor-grace-period=20s",
      ],
      join(this.logDir, "kube-controller-manager.log"),
    );
    const sched = spawnLogged(
      [
        join(this.opts.binDir, "kube-scheduler"),
        `--kubeconfig=${this.kubeconfig}`,
        "--leader-elect=false",
        "--secure-port=0",
      ],
      join(this.logDir, "kube-scheduler.log"),
    );
    this.pids.push(kcm.pid!, sched.pid!);
    this.saveMarker();
  }

  /** Network, holder, containerd (with the images), kubelet, then kube-proxy once the Node exists. */
  private async startNode(n: ClusterNode): Promise<void> {
    const d = n.dir;
    for (const sub of ["containerd", "cni/net.d", "cni/ipam", "kubelet"])
      mkdirSync(join(d, sub), { recursive: true });
    // cgroups first: kubelet's cgroupRoot must exist in every hierarchy, with cpuset filled in.
    for (const m of cgroupMounts()) {
      const p = join(m, n.ns);
      mkdirSync(p, { recursive: true });
      for (const f of ["cpuset.cpus", "cpuset.mems"])
        if (existsSync(join(m, f))) writeFileSync(join(p, f), readFileSync(join(m, f)));
    }
    n.holder = await this.startHolder(n);
    this.saveMarker();

    const server = `https://${UPLINK_IP}:${this.cp.port}`;
    const nodeCert = await issueClientCert(
      this.cp,
      `kubelet-${n.name}`,
      `/O=system:nodes/CN=system:node:${n.name}`,
    );
    writeFileSync(
      join(d, "kubelet.kubeconfig"),
      clientKubeconfig(server, nodeCert.ca, nodeCert.cert, nodeCert.key),
    );
    const proxyCert = await issueClientCert(
      this.cp,
      `kube-proxy-${n.name}`,
      "/CN=system:kube-proxy",
    );
    writeFileSync(
      join(d, "kube-proxy.kubeconfig"),
      clientKubeconfig(server, proxyCert.ca, proxyCert.cert, proxyCert.key),
    );
    writeFileSync(
      join(d, "containerd.toml"),
      `version = 2
root = "${d}/containerd/root"
state = "/run/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "/run/containerd/containerd.sock"
[ttrpc]
  address = "/run/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "${d}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  # Writing oom_score_adj -998 for sandboxes is denied here: keep what the runtime may set.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${d}/cni/net.d"
`,
    );
    const pods = podCIDR(n.index);
    writeFileSync(
      join(d, "cni/net.d/10-lab.conflist"),
      JSON.stringify(
        {
          cniVersion: "0.4.0",
          name: "ironlb-lab",
          plugins: [
            {
              type: "bridge",
              bridge: "cni0",
              isGateway: true,
              ipMasq: false,
              hairpinMode: true,
              ipam: {
                type: "host-local",
                dataDir: join(d, "cni/ipam"),
                ranges: [[{ subnet: pods.cidr, gateway: pods.gateway }]],
                routes: [{ dst: "0.0.0.0/0" }],
              },
            },
            { type: "portmap", capabilities: { portMappings: true } },
          ],
        },
        null,
        2,
      ),
    );
    writeFileSync(join(d, "resolv.conf"), "# the lab has no DNS server\noptions ndots:1\n");
    writeFileSync(
      join(d, "kubelet.yaml"),
      `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /${n.ns}
cgroupsPerQOS: true
failSwapOn: false
address: ${n.ip}
port: 10250
readOnlyPort: 0
healthzPort: 0
resolvConf: ${d}/resolv.conf
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
clusterDomain: cluster.local
maxPods: 12
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: ${nodeCert.ca}
authorization:
  mode: Webhook
`,
    );
    const enter = ["nsenter", "-t", String(n.holder), "-m", "-n", "--"];
    n.containerd = spawnLogged(
      [...enter, "containerd", "--config", join(d, "containerd.toml")],
      join(this.logDir, `${n.name}-containerd.log`),
    ).pid;
    this.saveMarker();
    await waitFor(
      `containerd on ${n.name}`,
      async () => {
        if (!alive(n.containerd!))
          throw new Error(
            `containerd exited: ${tail(join(this.logDir, `${n.name}-containerd.log`))}`,
          );
        return (await tryRun(enter[0]!, [...enter.slice(1), "ctr", "version"])) !== undefined;
      },
      20_000,
      50,
    );
    for (const img of this.opts.images) await this.importImage(n, img);
    this.startKubelet(n.name);
    // kube-proxy reads the Node's InternalIP at start and waits (30 s) when there is none yet.
    await waitFor(
      `Node ${n.name} registered with its InternalIP`,
      async () => {
        if (!alive(n.kubelet!))
          throw new Error(`kubelet exited: ${tail(join(this.logDir, `${n.name}-kubelet.log`))}`);
        const out = await tryRun(this.kubectlBin, [
          "--kubeconfig",
          this.kubeconfig,
          "get",
          "node",
          n.name,
          "-o",
          "jsonpath={.status.addresses[?(@.type=='InternalIP')].address}",
        ]);
        return out?.trim() === n.ip;
      },
      30_000,
      200,
    );
    n.kubeProxy = spawnLogged(
      [
        ...enter,
        join(this.opts.binDir, "kube-proxy"),
        "--proxy-mode=nftables",
        `--hostname-override=${n.name}`,
        `--kubeconfig=${join(d, "kube-proxy.kubeconfig")}`,
        `--cluster-cidr=${POD_CIDR}`,
        "--nodeport-addresses=primary",
        // nf_conntrack_max and the timeouts are read-only in a network namespace.
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
      ],
      join(this.logDir, `${n.name}-kube-proxy.log`),
    ).pid;
    this.saveMarker();
  }

  /**
   * The holder: in the node's network namespace, a private mount namespace in which per-node
   * folders cover PRIVATE_DIRS and files cover GUARDED_SYSCTLS; it then sleeps forever.
   */
  private async startHolder(n: ClusterNode): Promise<number> {
    const ready = join(n.dir, "holder.ready");
    const script = `set -e
d="$1"
for m in ${PRIVATE_DIRS.join(" ")}; do
  mkdir -p "$m" "$d/mnt$m"
  mount --bind "$d/mnt$m" "$m"
done
for f in ${GUARDED_SYSCTLS.join(" ")}; do
  copy="$d/sysctl-$(echo "$f" | tr / _)"
  cat "/proc/sys/$f" > "$copy"
  mount --bind "$copy" "/proc/sys/$f"
done
touch "$d/holder.ready"
exec sleep infinity
`;
    const child = spawnLogged(
      [
        "nsenter",
        `--net=/run/netns/${n.ns}`,
        "--",
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        script,
        "holder",
        n.dir,
      ],
      join(this.logDir, `${n.name}-holder.log`),
    );
    const pid = child.pid!;
    await waitFor(
      `the mount holder of ${n.name}`,
      () => {
        if (!alive(pid))
          throw new Error(`holder exited: ${tail(join(this.logDir, `${n.name}-holder.log`))}`);
        return existsSync(ready);
      },
      // A few bind mounts: instant when idle, but one full run saw it pass 10 s under load.
      30_000,
      20,
    );
    return pid;
  }

  /** `ctr images import` into a node's containerd (CRI's k8s.io namespace). */
  async importImage(n: ClusterNode, archive: string): Promise<void> {
    await run("nsenter", [
      "-t",
      String(n.holder),
      "-m",
      "-n",
      "--",
      "ctr",
      "-n",
      "k8s.io",
      "images",
      "import",
      "--no-unpack=false",
      archive,
    ]).catch(async () => {
      // Older ctr has no --no-unpack flag: unpacking is its default.
      await run("nsenter", [
        "-t",
        String(n.holder),
        "-m",
        "-n",
        "--",
        "ctr",
        "-n",
        "k8s.io",
        "images",
        "import",
        archive,
      ]);
    });
  }

  async waitNodesReady(timeoutMs: number): Promise<void> {
    await waitFor(
      "every node Ready",
      async () => {
        for (const n of this.nodes)
          if (n.kubelet !== undefined && !alive(n.kubelet))
            throw new Error(
              `kubelet of ${n.name} exited: ${tail(join(this.logDir, `${n.name}-kubelet.log`))}`,
            );
        const out = await this.kubectl([
          "get",
          "nodes",
          "-o",
          "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
        ]);
        const ready = out.split("\n").filter((l) => l.endsWith("=True")).length;
        return ready === this.nodes.length;
      },
      timeoutMs,
      250,
    );
  }

  /** Runs kubectl against the cluster as admin. */
  kubectl(args: string[], input?: string): Promise<string> {
    return run(this.kubectlBin, ["--kubeconfig", this.kubeconfig, ...args], {
      ...(input === undefined ? {} : { input }),
      timeoutMs: 120_000,
    });
  }

  /** Runs helm against the cluster. */
  helm(args: string[]): Promise<string> {
    return run(join(this.opts.binDir, "helm"), ["--kubeconfig", this.kubeconfig, ...args], {
      timeoutMs: 300_000,
    });
  }

  /** An HTTP GET from the LAN client; the body, or undefined when nothing answered in time. */
  async clientGet(url: string, timeoutMs = 1000): Promise<string | undefined> {
    const out = await tryRun("nsenter", [
      `--net=/run/netns/${CLIENT}`,
      "--",
      "curl",
      "-sS",
      "--max-time",
      String(timeoutMs / 1000),
      url,
    ]);
    return out?.trim() || undefined;
  }

  /** Empties the client's neighbour cache (its next packet to an IP starts with ARP). */
  async clientFlushNeighbours(): Promise<void> {
    await inNet(CLIENT, "ip", ["neigh", "flush", "dev", "eth0"]);
  }

  /** The client's neighbour entry for `ip` (MAC and state), if any. */
  async clientNeighbour(ip: string): Promise<{ mac?: string; state: string[] } | undefined> {
    const out = await inNet(CLIENT, "ip", ["-j", "neigh", "show", ip]);
    const e = (JSON.parse(out || "[]") as { lladdr?: string; state?: string[] }[])[0];
    return e ? { ...(e.lladdr ? { mac: e.lladdr } : {}), state: e.state ?? [] } : undefined;
  }

  async macOf(node: string): Promise<string> {
    const n = this.node(node);
    const out = await inNet(n.ns, "ip", ["-j", "link", "show", "eth0"]);
    return (JSON.parse(out) as { address: string }[])[0]!.address;
  }

  async nodeByMac(mac: string): Promise<string | undefined> {
    for (const n of this.nodes) if ((await this.macOf(n.name)) === mac) return n.name;
    return undefined;
  }

  node(name: string): ClusterNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** SIGKILLs a node's kubelet (a node loss, together with its workloads' processes). */
  async killKubelet(name: string): Promise<void> {
    const n = this.node(name);
    if (n.kubelet !== undefined) await killWait([n.kubelet]);
  }

  /** Starts a node's kubelet (again, after killKubelet). */
  startKubelet(name: string): void {
    const n = this.node(name);
    n.kubelet = spawnLogged(
      [
        "nsenter",
        "-t",
        String(n.holder),
        "-m",
        "-n",
        "--",
        join(this.opts.binDir, "kubelet"),
        `--config=${join(n.dir, "kubelet.yaml")}`,
        `--kubeconfig=${join(n.dir, "kubelet.kubeconfig")}`,
        `--hostname-override=${n.name}`,
        `--node-ip=${n.ip}`,
      ],
      join(this.logDir, `${n.name}-kubelet.log`),
    ).pid;
    this.saveMarker();
  }

  /** Pids of a node's processes (its namespace and cgroups) whose argv passes `match`. */
  async nodeProcesses(name: string, match: (argv: string[]) => boolean): Promise<number[]> {
    const n = this.node(name);
    const out = new Set<number>();
    for (const pid of [...(await netnsPidsOf(n.ns)), ...cgroupPids(n.ns)]) {
      try {
        if (match(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0"))) out.add(pid);
      } catch {
        // gone
      }
    }
    return [...out];
  }

  get logsDir(): string {
    return this.logDir;
  }

  /** Removes everything (also what a failed start left). */
  async destroy(): Promise<void> {
    await destroyCluster(this.log);
  }
}
