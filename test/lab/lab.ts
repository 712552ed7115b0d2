// A bare-metal LAN on one Linux machine, for the lab command and the end-to-end tests.
//
// Layout (all names carry the lab's prefix, so that several labs and test runs coexist):
//   <prefix>sw       namespace with bridge br0 (the LAN) and, optionally, br1 (a second LAN)
//   <prefix>nodeN    one namespace per node: eth0 (and eth1) into the bridge(s), a bridge
//                    cni0 for its pods (gateway = first address of its pod range), routes to
//                    the other nodes' pod ranges, and a real kube-proxy (nftables mode)
//   <prefix>pN       one namespace per pod: eth0 into its node's cni0, an HTTP server
//                    (socat) answering with the pod's name and the client address it saw;
//                    the lab writes the Pod object's status (no kubelet), and a real
//                    kube-controller-manager (EndpointSlice controller only, in the root
//                    namespace: it only talks to the apiserver) turns Pods into slices
//   <prefix>client   a LAN client: eth0 (and eth1); routes the pool range on-link, so that
//                    its kernel ARPs (or solicits, IPv6) for Service IPs like any host on
//                    the LAN would, and each node's pod range through that node
//   <prefix>up       a veth in the root namespace with the subnet's first address: how the
//                    speakers and kube-proxies in the node namespaces reach the control plane
// Nothing else in the root namespace is touched; pool, pod and Service ranges are never
// routed there. The control plane's ClusterIP range must be SERVICE_CIDR (addresses.ts).
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { KubeConfig, V1Node, V1Pod, V1Service } from "@kubernetes/client-node";
import {
  apiStatus,
  clientsFor,
  createPoolWith,
  ensureNamespace,
  group,
  installCRDs,
  kubeConfigFrom,
  repoRoot,
  version,
  waitFor,
} from "../support/kube.ts";
import {
  LAN6_BITS,
  LAN6_PREFIX,
  POD_CIDR,
  POD6_CIDR,
  POOL6_CIDR,
  SERVICE_CIDR,
} from "./addresses.ts";
import { hostDependencies } from "./host-deps.ts";
import {
  alive,
  formatIPv4,
  hostAddress,
  ipJson,
  killAll,
  type LinkEntry,
  listNetns,
  type NeighbourEntry,
  netnsPids,
  overlaps,
  parseCIDR,
  run,
  tryRun,
} from "./net.ts";

/** Where labs record who created them, so that a later run can clean up after a crash. */
const markerDir = "/run/ironlb-lab";
/** Port every lab pod listens on (the Services' targetPort). */
export const POD_PORT = 8080;

export interface LabOptions {
  /** Prefix of every namespace and root-namespace link (≤ 12 characters: link names are ≤ 15). */
  prefix: string;
  /** The LAN: .1 is the uplink (the control plane's address), nodes .11 on, client .100. */
  subnet: string;
  /** A second LAN (eth1 on nodes and client), for interface selection; no uplink. */
  secondSubnet?: string;
  /** The Service IP range: routed on-link by the client. */
  poolCIDR: string;
  /** IPv6 too: LAN, pods and Service IPs (NDP); default off (the LAN is IPv4 only). */
  ipv6?: boolean;
  nodes: number;
  /** Admin kubeconfig valid in the root namespace (the apiserver must listen on 0.0.0.0). */
  kubeconfig: string;
  /** Folder for logs, the nodes' kubeconfig and the heartbeat secret. */
  workDir: string;
  /** Namespace of the speaker Leases and the controller's lease (created). */
  systemNamespace?: string;
  /** Node 24 binary to run ironlb with (default: this process's). */
  nodeBin?: string;
  /** Node flags before the command (the image runs `--max-semi-space-size=2`). */
  nodeArgs?: string[];
  /** The ironlb command to run (default: this checkout's bin/ironlb.js), e.g. compiled JS. */
  entry?: string;
  /** LOG_LEVEL of the ironlb processes (default debug; the chart's default is info). */
  logLevel?: string;
  /** More environment for the ironlb processes (e.g. the image's ENV). */
  env?: Record<string, string>;
  /** Extra `ironlb speaker` arguments for every speaker. */
  speakerArgs?: string[];
  /** Extra labels for every Node object. */
  nodeLabels?: Record<string, string>;
  /**
   * Start kube-proxy in every node (default true). Off for runs that need no Service data
   * path (BGP advertisement only), where its per-Service `nft` runs would dominate the CPU.
   */
  kubeProxy?: boolean;
  /** Folder with kubectl, kube-proxy and kube-controller-manager (build.sh's output). */
  binDir: string;
  log?: (msg: string) => void;
}

export interface LabNode {
  /** Kubernetes node name. */
  name: string;
  /** Its network namespace. */
  ns: string;
  index: number;
  ip: string;
  /** Address on the second LAN, if any. */
  ip2?: string;
  /** IPv6 LAN address (when the lab has IPv6). */
  ip6?: string;
  /** Its pod range and the address of its pod bridge (the pods' gateway). */
  podCIDR: string;
  podGateway: string;
  podCIDR6?: string;
  podGateway6?: string;
}

/** A pod: a network namespace with an HTTP server, and its Pod object. */
export interface LabPod {
  name: string;
  namespace: string;
  node: string;
  /** Its network namespace. */
  ns: string;
  ip: string;
  ip6?: string;
  ready: boolean;
  /** Offset of its addresses in the node's pod range (reused once the pod is gone). */
  offset: number;
  server: LabProcess;
}

/** A process the lab started; its output goes to `logFile`. */
export interface LabProcess {
  name: string;
  proc: ChildProcess;
  logFile: string;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  running(): boolean;
  /** Sends `signal`, waits for the exit, and returns how long that took. */
  stop(signal?: NodeJS.Signals): Promise<{ exit: number | string; ms: number }>;
  /** Log lines so far that are JSON (pino), parsed. */
  logs(): Record<string, unknown>[];
}

export interface EndpointSpec {
  node: string;
  ready?: boolean;
}

export interface LabServiceOptions {
  namespace?: string;
  port: number;
  externalTrafficPolicy?: "Cluster" | "Local";
  /** One pod per entry, on that node (ready unless said otherwise). Default: one per node. */
  endpoints?: (string | EndpointSpec)[];
  /** IPv4 and IPv6 (RequireDualStack); the lab must have IPv6. */
  dualStack?: boolean;
  /** sessionAffinity ClientIP with this timeout, seconds. */
  affinitySeconds?: number;
  /** Pool to allocate from (annotation `ironlb.dev/address-pool`). */
  pool?: string;
  /** A specific IP (annotation `ironlb.dev/loadBalancerIPs`). */
  ip?: string;
  annotations?: Record<string, string>;
}

export interface LabService {
  name: string;
  namespace: string;
  port: number;
  nodePort: number;
  externalTrafficPolicy: "Cluster" | "Local";
  endpoints: EndpointSpec[];
  /** Its pods (one per endpoint), in the order of `endpoints`. */
  pods: LabPod[];
  dualStack: boolean;
}

/** What a lab pod answered: its name and node, the client address it saw. */
export interface PodAnswer {
  pod: string;
  /** The node the pod runs on. */
  node: string;
  /** The source address the pod saw: the client's own, or a node's after masquerade. */
  client: string;
  /** The node the connection entered the cluster through (from `client`, see entryNode). */
  via: string;
}

export interface Neighbour {
  mac?: string;
  /** Kernel NUD states, e.g. ["REACHABLE"], ["STALE"], ["FAILED"], ["INCOMPLETE"]. */
  state: string[];
}

function normEndpoints(eps: (string | EndpointSpec)[]): EndpointSpec[] {
  return eps.map((e) => (typeof e === "string" ? { node: e, ready: true } : { ready: true, ...e }));
}

/** Spawns a long-lived process with its output in a file; it outlives the lab's creator. */
function startProcess(name: string, argv: string[], logFile: string, env = {}): LabProcess {
  // The log file is appended to across restarts: logs() reads this process's part only.
  const start = existsSync(logFile) ? statSync(logFile).size : 0;
  const fd = openSync(logFile, "a");
  // Own process group (detached): `npm run lab` exits and leaves these running; the lab's
  // teardown kills them by pid (recorded, or found through their network namespace).
  const proc = spawn(argv[0]!, argv.slice(1), {
    stdio: ["ignore", fd, fd],
    detached: true,
    env: { ...process.env, ...env },
    cwd: repoRoot,
  });
  closeSync(fd);
  proc.unref();
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    proc.once("exit", (code, signal) => {
      done = true;
      resolve(signal ?? code ?? -1);
    });
    proc.once("error", (err) => {
      done = true;
      resolve(`spawn error: ${err.message}`);
    });
  });
  return {
    name,
    proc,
    logFile,
    exited,
    running: () => !done,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      const t0 = performance.now();
      if (!done) proc.kill(signal);
      const exit = await exited;
      return { exit, ms: performance.now() - t0 };
    },
    logs() {
      if (!existsSync(logFile)) return [];
      const out: Record<string, unknown>[] = [];
      for (const line of readFileSync(logFile).subarray(start).toString("utf8").split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          out.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // a line cut short by a kill
        }
      }
      return out;
    },
  };
}

interface Marker {
  prefix: string;
  pid: number;
  /** Root-namespace processes (the controller): not findable through a namespace. */
  pids: number[];
  uplink: string;
}

function markerPath(prefix: string): string {
  return join(markerDir, `${prefix}.json`);
}

function readMarker(file: string): Marker | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as Marker;
  } catch {
    return undefined;
  }
}

/** Whether `pid` still runs an ironlb process (pids get reused). */
function isIronlbProcess(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("ironlb");
  } catch {
    return false;
  }
}

/** Removes everything of the lab with exactly this prefix: processes, namespaces, uplink. */
/**
 * The labs this process created and has not destroyed, on globalThis so that the e2e
 * tier's setup file (test/e2e/setup-labs.ts) reaches them without importing this module: a
 * test file whose `beforeAll` times out inside `Lab.create` never gets the lab to destroy.
 */
const UNFINISHED = Symbol.for("ironlb.unfinishedLabs");
function unfinished(): Set<{ destroy(): Promise<void> }> {
  const g = globalThis as { [UNFINISHED]?: Set<{ destroy(): Promise<void> }> };
  g[UNFINISHED] ??= new Set();
  return g[UNFINISHED];
}

async function removeLab(prefix: string): Promise<void> {
  const marker = readMarker(markerPath(prefix));
  const rootPids = (marker?.pids ?? []).filter(isIronlbProcess);
  const namespaces = (await listNetns()).filter((n) => n.startsWith(prefix));
  const nsPids = (await Promise.all(namespaces.map(netnsPids))).flat();
  await killAll([...rootPids, ...nsPids]);
  for (const ns of namespaces) await tryRun("ip", ["netns", "del", ns]);
  const uplink = marker?.uplink ?? `${prefix}up`;
  if (await tryRun("ip", ["link", "show", "dev", uplink]))
    await tryRun("ip", ["link", "del", uplink]);
  rmSync(markerPath(prefix), { force: true });
}

/**
 * Removes leftovers of earlier labs whose names start with `prefix` (e.g. "ilbe2e" for all
 * test runs). A lab whose creator still runs is kept unless `force` is set (`npm run lab`
 * leaves its lab running after its own exit, and replaces it with `force`).
 */
export async function destroyStale(prefix: string, force = false): Promise<string[]> {
  const prefixes = new Set<string>();
  const live = new Set<string>();
  if (existsSync(markerDir)) {
    for (const f of readdirSync(markerDir).filter(
      (f) => f.startsWith(prefix) && f.endsWith(".json"),
    )) {
      const m = readMarker(join(markerDir, f));
      const p = m?.prefix ?? f.slice(0, -".json".length);
      if (!force && m && alive(m.pid) && m.pid !== process.pid) live.add(p);
      prefixes.add(p);
    }
  }
  // Namespaces of a lab that crashed before writing its marker: the lab prefix ends at the
  // first "-" after the common part ("ilbe2eab12-node1" → "ilbe2eab12-").
  const prefixOf = (name: string) => {
    const dash = name.indexOf("-", prefix.length - (prefix.endsWith("-") ? 1 : 0));
    return dash < 0 ? undefined : name.slice(0, dash + 1);
  };
  for (const ns of await listNetns()) {
    const p = ns.startsWith(prefix) ? prefixOf(ns) : undefined;
    if (p && !prefixes.has(p) && !live.has(p)) prefixes.add(p);
  }
  for (const l of await ipJson<LinkEntry>(undefined, ["link", "show"])) {
    const p = l.ifname.startsWith(prefix) ? prefixOf(l.ifname) : undefined;
    if (p && l.ifname === `${p}up`) prefixes.add(p);
  }
  const removed: string[] = [];
  for (const p of prefixes) {
    if (live.has(p)) continue;
    await removeLab(p);
    removed.push(p);
  }
  return removed;
}

/**
 * A root-namespace route that overlaps `subnet` (other than the default route and the lab's
 * own uplink), e.g. "192.0.2.0/24 dev eth0", or an address the host relies on inside it
 * (host-deps.ts); undefined when the subnet is free to use.
 */
export async function rootNamespaceClash(
  subnet: string,
  ownUplink?: string,
): Promise<string | undefined> {
  const mine = parseCIDR(subnet);
  const routes = await ipJson<{ dst: string; dev?: string }>(undefined, [
    "-4",
    "route",
    "show",
    "table",
    "all",
  ]);
  for (const r of routes) {
    if (r.dst === "default" || (ownUplink !== undefined && r.dev === ownUplink)) continue;
    let cidr: ReturnType<typeof parseCIDR>;
    try {
      cidr = parseCIDR(r.dst);
    } catch {
      continue; // not an IPv4 prefix (e.g. "broadcast" entries print differently)
    }
    // Local-table entries for 127/8 and the like never overlap documentation ranges; a
    // host route of the machine's own address in the subnet does and is reported.
    if (cidr.bits === 0) continue;
    if (overlaps(mine, cidr)) return `${r.dst}${r.dev ? ` dev ${r.dev}` : ""}`;
  }
  for (const d of await hostDependencies()) {
    if (overlaps(mine, parseCIDR(`${d.addr}/32`))) return `${d.addr}, ${d.why}`;
  }
  return undefined;
}

/**
 * The uplink's (and so the control plane's) address in a lab subnet: its first host.
 * Throws when the subnet cannot hold the lab's plan (client at .100: a /25 or larger).
 */
export function uplinkAddress(subnet: string): string {
  const cidr = parseCIDR(subnet);
  hostAddress(cidr, 100);
  return hostAddress(cidr, 1);
}

/** A random per-run prefix, e.g. "ilbe2e3fa2-". */
export function randomPrefix(base: string): string {
  return `${base}${randomBytes(2).toString("hex")}-`;
}

export class Lab {
  readonly opts: Required<Omit<LabOptions, "secondSubnet" | "log">> &
    Pick<LabOptions, "secondSubnet">;
  readonly nodes: LabNode[] = [];
  readonly client: { ns: string; ip: string; ip2?: string; ip6?: string };
  readonly switchNs: string;
  readonly uplink: string;
  readonly uplinkIP: string;
  /** Kubeconfig for processes in the node namespaces (server = the uplink address). */
  readonly nodeKubeconfig: string;
  readonly heartbeatSecretFile: string;
  readonly kc: KubeConfig;
  readonly #log: (msg: string) => void;
  readonly #subnet;
  readonly #subnet2;
  readonly #speakers = new Map<string, LabProcess>();
  readonly #proxies = new Map<string, LabProcess>();
  readonly #services = new Map<string, LabService>();
  /** Pools and L2Advertisements this lab made (removed with it: the control plane may be shared). */
  /** The cluster-scoped ironlb objects it created ("plural/name"): destroy() deletes them. */
  readonly #objects = new Set<string>();
  /** Address offsets in use per node's pod range. */
  readonly #podOffsets = new Map<string, Set<number>>();
  #podCounter = 0;
  #endpointController: LabProcess | undefined;
  readonly #rootPids: number[] = [];
  #controller: LabProcess | undefined;
  #destroyed = false;

  private constructor(opts: LabOptions) {
    if (opts.prefix.length > 12)
      throw new Error(`lab prefix "${opts.prefix}" is longer than 12 characters`);
    this.opts = {
      systemNamespace: "ironlb-system",
      nodeBin: process.execPath,
      nodeArgs: [],
      entry: join(repoRoot, "bin/ironlb.js"),
      logLevel: "debug",
      env: {},
      speakerArgs: [],
      nodeLabels: {},
      ipv6: false,
      kubeProxy: true,
      ...opts,
    };
    this.#log = opts.log ?? (() => {});
    this.#subnet = parseCIDR(opts.subnet);
    this.#subnet2 = opts.secondSubnet ? parseCIDR(opts.secondSubnet) : undefined;
    this.switchNs = `${opts.prefix}sw`;
    this.uplink = `${opts.prefix}up`;
    this.uplinkIP = uplinkAddress(opts.subnet);
    this.client = {
      ns: `${opts.prefix}client`,
      ip: hostAddress(this.#subnet, 100),
      ...(this.#subnet2 ? { ip2: hostAddress(this.#subnet2, 100) } : {}),
      ...(opts.ipv6 ? { ip6: `${LAN6_PREFIX}100` } : {}),
    };
    this.nodeKubeconfig = join(opts.workDir, "kubeconfig-lab");
    this.heartbeatSecretFile = join(opts.workDir, "heartbeat-secret");
    this.kc = kubeConfigFrom(opts.kubeconfig);
  }

  /** Builds the LAN, the nodes (Node objects, kube-proxy) and the EndpointSlice controller. */
  static async create(opts: LabOptions): Promise<Lab> {
    const lab = new Lab(opts);
    unfinished().add(lab);
    try {
      await lab.#build();
      return lab;
    } catch (err) {
      await lab.destroy();
      throw err;
    }
  }

  get prefix(): string {
    return this.opts.prefix;
  }

  get subnetBits(): number {
    return this.#subnet.bits;
  }

  /**
   * A LAN address nobody holds, for ARP requests that must not teach any kernel anything:
   * a node that has an entry for the sender IP of a request updates it to the sender MAC,
   * so requests "from the client" with another MAC would misdirect the nodes' replies.
   */
  get watcherIP(): string {
    return hostAddress(this.#subnet, 99);
  }

  async #build(): Promise<void> {
    const { prefix, workDir } = this.opts;
    if (process.getuid?.() !== 0) throw new Error("the lab needs root (network namespaces)");
    await this.#checkRootNamespace();
    mkdirSync(markerDir, { recursive: true });
    this.#writeMarker();
    mkdirSync(workDir, { recursive: true });
    writeFileSync(this.heartbeatSecretFile, randomBytes(32).toString("hex"), { mode: 0o600 });
    // Processes in the node namespaces reach the apiserver through the uplink address.
    const kubeconfig = readFileSync(this.opts.kubeconfig, "utf8");
    if (!/server: https:\/\/[^\s/]+:\d+/.test(kubeconfig))
      throw new Error(`no https server in ${this.opts.kubeconfig}`);
    writeFileSync(
      this.nodeKubeconfig,
      kubeconfig.replace(/server: https:\/\/[^\s/]+:(\d+)/, `server: https://${this.uplinkIP}:$1`),
      { mode: 0o600 },
    );

    this.#log(`creating the LAN ${this.opts.subnet} (namespaces ${prefix}*)`);
    await this.#newNamespace(this.switchNs);
    await this.#sw("link", "add", "br0", "type", "bridge");
    await this.#sw("link", "set", "br0", "up");
    if (this.#subnet2) {
      await this.#sw("link", "add", "br1", "type", "bridge");
      await this.#sw("link", "set", "br1", "up");
    }
    // The uplink: root end keeps the lab's name, the other end is a bridge port.
    await run("ip", [
      "link",
      "add",
      this.uplink,
      "type",
      "veth",
      "peer",
      "name",
      "up0",
      "netns",
      this.switchNs,
    ]);
    writeFileSync(`/proc/sys/net/ipv6/conf/${this.uplink}/disable_ipv6`, "1");
    await run("ip", ["addr", "add", `${this.uplinkIP}/${this.#subnet.bits}`, "dev", this.uplink]);
    await run("ip", ["link", "set", this.uplink, "up"]);
    await this.#sw("link", "set", "up0", "master", "br0", "up");

    await this.#newNamespace(this.client.ns);
    await this.#plug(
      this.client.ns,
      "eth0",
      "client0",
      "br0",
      `${this.client.ip}/${this.#subnet.bits}`,
    );
    if (this.#subnet2 && this.client.ip2)
      await this.#plug(
        this.client.ns,
        "eth1",
        "client1",
        "br1",
        `${this.client.ip2}/${this.#subnet2.bits}`,
      );
    if (this.client.ip6)
      await run("ip", [
        "-n",
        this.client.ns,
        "addr",
        "add",
        `${this.client.ip6}/${LAN6_BITS}`,
        "dev",
        "eth0",
        "nodad",
      ]);
    // The pool is on-link for the client, as a LAN's service range is: it ARPs for each IP.
    await run("ip", ["-n", this.client.ns, "route", "add", this.opts.poolCIDR, "dev", "eth0"]);
    if (this.opts.ipv6)
      await run("ip", ["-n", this.client.ns, "-6", "route", "add", POOL6_CIDR, "dev", "eth0"]);

    const k = clientsFor(this.kc);
    // kube-proxy programs every ClusterIP in the node namespaces: they must be ours to use.
    const apiIP = (await k.core.readNamespacedService({ name: "kubernetes", namespace: "default" }))
      .spec?.clusterIP;
    if (!apiIP || !overlaps(parseCIDR(`${apiIP}/32`), parseCIDR(SERVICE_CIDR)))
      throw new Error(
        `the control plane's ClusterIPs (kubernetes Service: ${apiIP}) are outside ${SERVICE_CIDR}: start it with serviceCIDRs: LAB_SERVICE_CIDRS (test/lab/addresses.ts)`,
      );
    this.#log("installing CRDs and the ironlb-system namespace");
    await installCRDs(this.kc);
    await ensureNamespace(this.kc, this.opts.systemNamespace);
    await k.core.readNamespace({ name: "default" });
    this.#startEndpointController();
    for (let i = 0; i < this.opts.nodes; i++) await this.addNode();
    // The nodes must reach the apiserver through the uplink: prove it once, with its cert.
    const n1 = this.nodes[0];
    if (n1) await this.#checkApiFrom(n1);
    await this.waitProxiesReady();
  }

  /** kube-controller-manager with the EndpointSlice controller only (slices from Pods). */
  #startEndpointController(): void {
    const p = startProcess(
      "endpointslice-controller",
      [
        join(this.opts.binDir, "kube-controller-manager"),
        `--kubeconfig=${this.opts.kubeconfig}`,
        "--controllers=endpointslice-controller",
        "--leader-elect=false",
        "--use-service-account-credentials=false",
        "--secure-port=0",
        "--concurrent-service-endpoint-syncs=10",
      ],
      join(this.opts.workDir, "kube-controller-manager.log"),
    );
    this.#endpointController = p;
    if (p.proc.pid) this.#rootPids.push(p.proc.pid);
    this.#writeMarker();
  }

  /** Starts (or restarts) kube-proxy in a node's namespace: nftables mode, with the flags below. */
  startProxy(node: string): LabProcess {
    const n = this.node(node);
    if (this.#proxies.get(node)?.running()) throw new Error(`kube-proxy of ${node} runs already`);
    const p = startProcess(
      `kube-proxy-${node}`,
      [
        "ip",
        "netns",
        "exec",
        n.ns,
        join(this.opts.binDir, "kube-proxy"),
        "--proxy-mode=nftables",
        `--hostname-override=${n.name}`,
        `--kubeconfig=${this.nodeKubeconfig}`,
        `--cluster-cidr=${POD_CIDR}${this.opts.ipv6 ? `,${POD6_CIDR}` : ""}`,
        "--nodeport-addresses=primary",
        // nf_conntrack_max and these timeouts are not writable from a namespace.
        "--conntrack-max-per-core=0",
        "--conntrack-tcp-timeout-established=0",
        "--conntrack-tcp-timeout-close-wait=0",
        `--healthz-bind-address=${n.ip}:10256`,
        "--metrics-bind-address=127.0.0.1:10249",
      ],
      join(this.opts.workDir, `kube-proxy-${node}.log`),
    );
    this.#proxies.set(node, p);
    return p;
  }

  /** Waits until every node's kube-proxy reports healthy (it has synced its rules). */
  async waitProxiesReady(timeoutMs = 60_000): Promise<void> {
    if (!this.opts.kubeProxy) return;
    for (const n of this.nodes) {
      const p = this.#proxies.get(n.name);
      await this.#waitHttpOk(n, `kube-proxy of ${n.name}`, p, 10256, "/healthz", timeoutMs);
    }
  }

  /**
   * Waits until `what` (process `p`, running in node `n`'s namespace) answers 200 at
   * http://<node IP>:<port><path>; fails at once if the process has exited.
   */
  async #waitHttpOk(
    n: LabNode,
    what: string,
    p: LabProcess | undefined,
    port: number,
    path: string,
    timeoutMs: number,
  ): Promise<void> {
    await waitFor(
      `${what} answering ${path}`,
      async () => {
        if (!p?.running()) throw new Error(`${what} exited: see ${p?.logFile}`);
        const code = await tryRun("ip", [
          "netns",
          "exec",
          n.ns,
          "curl",
          "-s",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "--max-time",
          "1",
          `http://${n.ip}:${port}${path}`,
        ]);
        return code === "200";
      },
      timeoutMs,
      200,
    );
  }

  /**
   * Waits until every node's kube-proxy forwards `ip:port` (its `service-ips` map has the
   * entry): a Service's load-balancer IP is served wherever it may be announced. kube-proxy
   * syncs at most once a second, later on a busy host.
   */
  async waitProxiesServe(ip: string, port: number, timeoutMs = 30_000): Promise<void> {
    const family = ip.includes(":") ? "ip6" : "ip";
    for (const n of this.nodes) {
      await waitFor(
        `kube-proxy of ${n.name} forwarding ${ip}:${port}`,
        async () => {
          const out = await tryRun("ip", [
            "netns",
            "exec",
            n.ns,
            "nft",
            "list",
            "map",
            family,
            "kube-proxy",
            "service-ips",
          ]);
          return out?.includes(`${ip} . tcp . ${port} :`) === true;
        },
        timeoutMs,
        100,
      );
    }
  }

  /** Proves that a node namespace reaches the apiserver through the uplink. */
  async #checkApiFrom(node: LabNode): Promise<void> {
    const inNode = ["ip", "netns", "exec", node.ns];
    const what = `the apiserver at ${this.uplinkIP} from ${node.ns}`;
    if (this.opts.binDir) {
      // kubectl checks the serving certificate names the uplink address, as the speakers will.
      const kubectl = join(this.opts.binDir, "kubectl");
      const out = await run(
        inNode[0]!,
        [
          ...inNode.slice(1),
          kubectl,
          "--kubeconfig",
          this.nodeKubeconfig,
          "get",
          "--raw",
          "/readyz",
        ],
        {
          timeoutMs: 15_000,
        },
      ).catch((err: Error) => {
        throw new Error(`cannot reach ${what}: ${err.message}`);
      });
      if (out.trim() !== "ok") throw new Error(`${what} is not ready: ${out}`);
    } else {
      const port = /server: https:\/\/[^\s/]+:(\d+)/.exec(
        readFileSync(this.nodeKubeconfig, "utf8"),
      )?.[1];
      await run(inNode[0]!, [
        ...inNode.slice(1),
        "curl",
        "-sk",
        "--max-time",
        "5",
        "-o",
        "/dev/null",
        `https://${this.uplinkIP}:${port}/readyz`,
      ]).catch((err: Error) => {
        throw new Error(`cannot reach ${what}: ${err.message}`);
      });
    }
  }

  /** Refuses subnets that the root namespace already uses, and leftovers of this prefix. */
  async #checkRootNamespace(): Promise<void> {
    const clash = await rootNamespaceClash(this.opts.subnet, this.uplink);
    if (clash)
      throw new Error(
        `the lab subnet ${this.opts.subnet} would shadow ${clash} in the root namespace: choose another subnet`,
      );
    const links = await ipJson<{ ifname: string }>(undefined, ["link", "show"]);
    if (links.some((l) => l.ifname === this.uplink))
      throw new Error(`${this.uplink} exists already: remove the old lab first (destroyStale)`);
    if ((await listNetns()).some((n) => n.startsWith(this.opts.prefix)))
      throw new Error(
        `namespaces ${this.opts.prefix}* exist already: remove the old lab first (destroyStale)`,
      );
  }

  #writeMarker(): void {
    const m: Marker = {
      prefix: this.opts.prefix,
      pid: process.pid,
      pids: this.#rootPids,
      uplink: this.uplink,
    };
    writeFileSync(markerPath(this.opts.prefix), JSON.stringify(m));
  }

  async #newNamespace(ns: string, sysctls: string[] = []): Promise<void> {
    await run("ip", ["netns", "add", ns]);
    // Before any interface exists. An IPv4 lab has no IPv6 at all (router and neighbour
    // solicitations would only be noise on the LAN); an IPv6 lab has static addresses only,
    // without duplicate address detection (addresses usable at once), kept over a link
    // flap (the kernel flushes IPv6 addresses on admin down otherwise; a fault test takes
    // eth0 down and up as a pulled cable would, and the node must keep its address).
    const v6 = this.opts.ipv6
      ? ["accept_dad=0", "autoconf=0", "accept_ra=0", "keep_addr_on_down=1"]
      : ["disable_ipv6=1"];
    const all = [
      ...["all", "default"].flatMap((k) => v6.map((x) => `net.ipv6.conf.${k}.${x}`)),
      ...sysctls,
    ];
    await run("ip", ["netns", "exec", ns, "sysctl", "-qw", ...all]);
    await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
  }

  #sw(...args: string[]): Promise<string> {
    return run("ip", ["-n", this.switchNs, ...args]);
  }

  /** A veth from `ns` (named `ifname` there) into a bridge of the switch. */
  async #plug(
    ns: string,
    ifname: string,
    port: string,
    bridge: string,
    cidr: string,
  ): Promise<void> {
    await this.#sw("link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns);
    await this.#sw("link", "set", port, "master", bridge, "up");
    await run("ip", ["-n", ns, "addr", "add", cidr, "dev", ifname]);
    await run("ip", ["-n", ns, "link", "set", ifname, "up"]);
  }

  /**
   * Adds a node: namespace, LAN link(s), pod bridge and routes, Node object (Ready, with
   * its addresses), then kube-proxy (which reads those addresses at start).
   */
  async addNode(labels: Record<string, string> = {}): Promise<LabNode> {
    const index = this.nodes.length + 1;
    const name = `node${index}`;
    const pods = parseCIDR(POD_CIDR);
    if (index * 32 > pods.size)
      throw new Error(`${POD_CIDR} holds pod ranges for ${pods.size / 32} nodes`);
    const podBase = pods.base + 32 * (index - 1);
    const node: LabNode = {
      name,
      ns: `${this.opts.prefix}${name}`,
      index,
      ip: hostAddress(this.#subnet, 10 + index),
      ...(this.#subnet2 ? { ip2: hostAddress(this.#subnet2, 10 + index) } : {}),
      podCIDR: `${formatIPv4(podBase)}/27`,
      podGateway: formatIPv4(podBase + 1),
      ...(this.opts.ipv6
        ? {
            ip6: `${LAN6_PREFIX}${10 + index}`,
            podCIDR6: `${pod6Prefix(index)}/64`,
            podGateway6: `${pod6Prefix(index)}1`,
          }
        : {}),
    };
    this.#log(`adding ${name} (${node.ip})`);
    await this.#newNamespace(node.ns, [
      "net.ipv4.ip_forward=1",
      ...(this.opts.ipv6 ? ["net.ipv6.conf.all.forwarding=1"] : []),
    ]);
    await this.#plug(node.ns, "eth0", `n${index}e0`, "br0", `${node.ip}/${this.#subnet.bits}`);
    if (this.#subnet2 && node.ip2)
      await this.#plug(node.ns, "eth1", `n${index}e1`, "br1", `${node.ip2}/${this.#subnet2.bits}`);
    const inNode = (...args: string[]) => run("ip", ["-n", node.ns, ...args]);
    if (node.ip6) await inNode("addr", "add", `${node.ip6}/${LAN6_BITS}`, "dev", "eth0", "nodad");
    // The pod bridge ("cni0": the speaker never announces on CNI plumbing).
    await inNode("link", "add", "cni0", "type", "bridge");
    await inNode("addr", "add", `${node.podGateway}/27`, "dev", "cni0");
    if (node.podGateway6)
      await inNode("addr", "add", `${node.podGateway6}/64`, "dev", "cni0", "nodad");
    await inNode("link", "set", "cni0", "up");
    // Pod ranges are routed through their nodes, both ways, and from the client.
    for (const other of this.nodes) {
      await inNode("route", "add", other.podCIDR, "via", other.ip);
      await run("ip", ["-n", other.ns, "route", "add", node.podCIDR, "via", node.ip]);
      if (node.ip6 && other.ip6 && other.podCIDR6 && node.podCIDR6) {
        await inNode("-6", "route", "add", other.podCIDR6, "via", other.ip6);
        await run("ip", ["-n", other.ns, "-6", "route", "add", node.podCIDR6, "via", node.ip6]);
      }
    }
    await run("ip", ["-n", this.client.ns, "route", "add", node.podCIDR, "via", node.ip]);
    if (node.ip6 && node.podCIDR6)
      await run("ip", ["-n", this.client.ns, "-6", "route", "add", node.podCIDR6, "via", node.ip6]);
    this.nodes.push(node);
    this.#podOffsets.set(name, new Set());
    await this.#createNodeObject(node, labels);
    if (this.opts.kubeProxy) this.startProxy(name);
    return node;
  }

  node(name: string): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no lab node ${name}`);
    return n;
  }

  async #createNodeObject(node: LabNode, labels: Record<string, string>): Promise<void> {
    const { core } = clientsFor(this.kc);
    const body: V1Node = {
      metadata: {
        name: node.name,
        labels: {
          "kubernetes.io/hostname": node.name,
          "kubernetes.io/os": "linux",
          ...this.opts.nodeLabels,
          ...labels,
        },
      },
    };
    let created: V1Node;
    try {
      created = await core.createNode({ body });
    } catch (err) {
      if (apiStatus(err) !== 409) throw err;
      // A Node left from an earlier lab on the same control plane: take it over.
      created = await core.readNode({ name: node.name });
      created.metadata!.labels = body.metadata!.labels;
      created = await core.replaceNode({ name: node.name, body: created });
    }
    // No kubelet: the lab reports the node's address and readiness itself.
    const now = new Date();
    created.status = {
      addresses: [
        { type: "InternalIP", address: node.ip },
        ...(node.ip6 ? [{ type: "InternalIP", address: node.ip6 }] : []),
        { type: "Hostname", address: node.name },
      ],
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "ironlb lab node",
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
    };
    await core.replaceNodeStatus({ name: node.name, body: created });
  }

  /** Changes a Node's labels (`null` removes one). */
  async labelNode(name: string, labels: Record<string, string | null>): Promise<void> {
    await this.#updateNode(name, (n) => {
      const cur = { ...(n.metadata!.labels ?? {}) };
      for (const [k, v] of Object.entries(labels)) {
        if (v === null) delete cur[k];
        else cur[k] = v;
      }
      n.metadata!.labels = cur;
    });
  }

  /** Sets a Node's Ready condition (the speaker only uses Ready nodes). */
  async setNodeReady(name: string, ready: boolean): Promise<void> {
    const { core } = clientsFor(this.kc);
    await waitFor(`Node ${name} status update`, async () => {
      const n = await core.readNodeStatus({ name });
      const c = n.status?.conditions?.find((x) => x.type === "Ready");
      if (c) {
        c.status = ready ? "True" : "False";
        c.lastTransitionTime = new Date();
      }
      await core.replaceNodeStatus({ name, body: n });
      return true;
    });
  }

  async #updateNode(name: string, change: (n: V1Node) => void): Promise<void> {
    const { core } = clientsFor(this.kc);
    // Read-modify-replace; a conflict (someone else wrote meanwhile) is retried.
    await waitFor(`Node ${name} update`, async () => {
      const n = await core.readNode({ name });
      change(n);
      await core.replaceNode({ name, body: n });
      return true;
    });
  }

  /** The MAC of a node's interface. */
  async macOf(node: string, ifname = "eth0"): Promise<string> {
    const [l] = await ipJson<LinkEntry>(this.node(node).ns, ["link", "show", "dev", ifname]);
    if (!l?.address) throw new Error(`no MAC for ${node} ${ifname}`);
    return l.address;
  }

  /** The addresses the kernel of a node has (`ip -j addr show`). */
  async nodeAddresses(node: string): Promise<unknown[]> {
    return ipJson<unknown>(this.node(node).ns, ["addr", "show"]);
  }

  /** Which node has this MAC (on any of its LAN interfaces). */
  async nodeByMac(mac: string): Promise<string | undefined> {
    for (const n of this.nodes) {
      for (const l of await ipJson<LinkEntry>(n.ns, ["link", "show"]))
        if (l.address?.toLowerCase() === mac.toLowerCase() && l.ifname !== "lo") return n.name;
    }
    return undefined;
  }

  // ---------------------------------------------------------------- ironlb processes

  /** Starts the speaker of a node inside its namespace (replacing a stopped one). */
  startSpeaker(node: string, extraArgs: string[] = []): LabProcess {
    const n = this.node(node);
    const cur = this.#speakers.get(node);
    if (cur?.running()) throw new Error(`the speaker of ${node} runs already`);
    const args = [
      "speaker",
      "--node-name",
      n.name,
      "--node-address",
      n.ip,
      "--kubeconfig",
      this.nodeKubeconfig,
      "--namespace",
      this.opts.systemNamespace,
      "--health-address",
      n.ip,
      "--health-port",
      "7473",
      "--heartbeat-port",
      "7947",
      "--heartbeat-secret-file",
      this.heartbeatSecretFile,
      ...this.opts.speakerArgs,
      ...extraArgs,
    ];
    const p = startProcess(
      `speaker-${node}`,
      [
        "ip",
        "netns",
        "exec",
        n.ns,
        this.opts.nodeBin,
        ...this.opts.nodeArgs,
        this.opts.entry,
        ...args,
      ],
      join(this.opts.workDir, `speaker-${node}.log`),
      { ...this.opts.env, LOG_LEVEL: this.opts.logLevel, NODE_NAME: n.name },
    );
    this.#speakers.set(node, p);
    return p;
  }

  speaker(node: string): LabProcess | undefined {
    return this.#speakers.get(node);
  }

  /** Stops a node's speaker with SIGTERM (clean leave) or SIGKILL (crash). */
  async stopSpeaker(node: string, signal: NodeJS.Signals = "SIGTERM") {
    const p = this.#speakers.get(node);
    if (!p) throw new Error(`no speaker started on ${node}`);
    return p.stop(signal);
  }

  /** Waits until every started speaker is ready (its /readyz answers 200). */
  async waitSpeakersReady(timeoutMs = 30_000): Promise<void> {
    for (const [node, p] of this.#speakers) {
      if (!p.running()) continue;
      await this.#waitHttpOk(this.node(node), `speaker of ${node}`, p, 7473, "/readyz", timeoutMs);
    }
  }

  /** Starts the controller in the root namespace (the apiserver's loopback is there). */
  startController(extraArgs: string[] = []): LabProcess {
    if (this.#controller?.running()) throw new Error("the controller runs already");
    const args = [
      "controller",
      "--kubeconfig",
      this.opts.kubeconfig,
      "--namespace",
      this.opts.systemNamespace,
      "--health-address",
      "127.0.0.1",
      "--health-port",
      "0",
      ...extraArgs,
    ];
    const p = startProcess(
      "controller",
      [this.opts.nodeBin, ...this.opts.nodeArgs, this.opts.entry, ...args],
      join(this.opts.workDir, "controller.log"),
      { ...this.opts.env, LOG_LEVEL: this.opts.logLevel },
    );
    this.#controller = p;
    if (p.proc.pid) this.#rootPids.push(p.proc.pid);
    this.#writeMarker();
    return p;
  }

  get controller(): LabProcess | undefined {
    return this.#controller;
  }

  // ---------------------------------------------------------------- pools and Services

  async createPool(
    name: string,
    addresses: string[],
    extra: Record<string, unknown> = {},
    labels: Record<string, string> = {},
  ) {
    await createPoolWith(this.kc, name, { addresses, ...extra }, labels);
    this.#objects.add(`ipaddresspools/${name}`);
  }

  async createL2Advertisement(name: string, spec: Record<string, unknown> = {}) {
    await this.createClusterObject("l2advertisements", "L2Advertisement", name, spec);
  }

  /** Creates a cluster-scoped ironlb object (BGPPeer, BGPAdvertisement, BFDProfile, ...); destroy() deletes it. */
  async createClusterObject(plural: string, kind: string, name: string, spec: object = {}) {
    await clientsFor(this.kc).custom.createClusterCustomObject({
      group,
      version,
      plural,
      body: { apiVersion: `${group}/${version}`, kind, metadata: { name }, spec },
    });
    this.#objects.add(`${plural}/${name}`);
  }

  /** The last `last` log lines at `minLevel` or above (pino levels) of every speaker. */
  speakerLogLines(minLevel: number, last: number): string[] {
    const lines: string[] = [];
    for (const n of this.nodes)
      for (const l of this.speaker(n.name)?.logs() ?? [])
        if (typeof l.level === "number" && l.level >= minLevel)
          lines.push(`  ${n.name}: ${l.msg} ${JSON.stringify(l)}`);
    return lines.slice(-last);
  }

  async deleteL2Advertisement(name: string) {
    await clientsFor(this.kc).custom.deleteClusterCustomObject({
      group,
      version,
      plural: "l2advertisements",
      name,
    });
  }

  /**
   * Creates a LoadBalancer Service and its pods (one per endpoint, ready as asked), and
   * waits until the EndpointSlice controller has published them.
   */
  async createService(name: string, o: LabServiceOptions): Promise<LabService> {
    const namespace = o.namespace ?? "default";
    if (this.#services.has(`${namespace}/${name}`))
      throw new Error(`lab service ${namespace}/${name} exists already`);
    if (o.dualStack && !this.opts.ipv6)
      throw new Error("a dual-stack Service needs a lab with ipv6");
    const { core } = clientsFor(this.kc);
    const annotations: Record<string, string> = { ...o.annotations };
    if (o.pool) annotations["ironlb.dev/address-pool"] = o.pool;
    if (o.ip) annotations["ironlb.dev/loadBalancerIPs"] = o.ip;
    const etp = o.externalTrafficPolicy ?? "Cluster";
    const svc: LabService = {
      name,
      namespace,
      port: o.port,
      nodePort: 0,
      externalTrafficPolicy: etp,
      endpoints: [],
      pods: [],
      dualStack: o.dualStack === true,
    };
    this.#services.set(`${namespace}/${name}`, svc);
    // Pods first: the controller then publishes all of them in its first slice.
    await this.#reconcilePods(svc, normEndpoints(o.endpoints ?? this.nodes.map((n) => n.name)));
    const created = await core.createNamespacedService({
      namespace,
      body: {
        metadata: { name, namespace, annotations },
        spec: {
          type: "LoadBalancer",
          externalTrafficPolicy: etp,
          selector: { app: name },
          ports: [{ name: "http", port: o.port, protocol: "TCP", targetPort: POD_PORT as never }],
          ...(o.dualStack
            ? { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] }
            : {}),
          ...(o.affinitySeconds !== undefined
            ? {
                sessionAffinity: "ClientIP",
                sessionAffinityConfig: { clientIP: { timeoutSeconds: o.affinitySeconds } },
              }
            : {}),
        },
      },
    });
    const nodePort = created.spec?.ports?.[0]?.nodePort;
    if (!nodePort) throw new Error(`the apiserver gave ${name} no NodePort`);
    svc.nodePort = nodePort;
    await this.waitEndpoints(svc);
    return svc;
  }

  service(name: string, namespace = "default"): LabService {
    const s = this.#services.get(`${namespace}/${name}`);
    if (!s) throw new Error(`no lab service ${namespace}/${name}`);
    return s;
  }

  /**
   * Makes the Service's pods match `endpoints` (one pod per entry: a pod on that node is
   * kept and its readiness set, missing ones are started, the rest deleted), then waits
   * until the EndpointSlices say so.
   */
  async setEndpoints(
    svc: LabService | string,
    endpoints: (string | EndpointSpec)[],
  ): Promise<void> {
    const s = typeof svc === "string" ? this.service(svc) : svc;
    await this.#reconcilePods(s, normEndpoints(endpoints));
    await this.waitEndpoints(s);
  }

  /** Waits until the Service's EndpointSlices list exactly its pods with their readiness. */
  async waitEndpoints(svc: LabService, timeoutMs = 15_000): Promise<void> {
    const want = svc.pods
      .flatMap((p) => [
        `${p.ip}=${p.ready}`,
        ...(p.ip6 && svc.dualStack ? [`${p.ip6}=${p.ready}`] : []),
      ])
      .sort()
      .join(",");
    let have = "";
    await waitFor(
      `EndpointSlices of ${svc.namespace}/${svc.name} (want ${want || "none"})`,
      async () => {
        have = (await this.endpointsOf(svc))
          .map((e) => `${e.address}=${e.ready}`)
          .sort()
          .join(",");
        return have === want;
      },
      timeoutMs,
      50,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; have ${have || "none"}`);
    });
  }

  /** The endpoints the Service's EndpointSlices publish now. */
  async endpointsOf(svc: LabService): Promise<{ address: string; ready: boolean }[]> {
    const list = await clientsFor(this.kc).discovery.listNamespacedEndpointSlice({
      namespace: svc.namespace,
      labelSelector: `kubernetes.io/service-name=${svc.name}`,
    });
    return list.items.flatMap((sl) =>
      (sl.endpoints ?? []).map((e) => ({
        address: e.addresses[0] ?? "",
        ready: e.conditions?.ready !== false,
      })),
    );
  }

  /** The speaker's nftables table on a node (`nft list table inet ironlb`), if it exists. */
  async nodeTable(node: string): Promise<string | undefined> {
    return tryRun("ip", [
      "netns",
      "exec",
      this.node(node).ns,
      "nft",
      "list",
      "table",
      "inet",
      "ironlb",
    ]);
  }

  /** Runs a command in a node's namespace. */
  inNode(node: string, args: string[], input?: string): Promise<string> {
    return run(
      "ip",
      ["netns", "exec", this.node(node).ns, ...args],
      input === undefined ? {} : { input },
    );
  }

  /** Sets one pod's Ready condition (what a kubelet's readiness probe would do). */
  async setPodReady(pod: LabPod, ready: boolean): Promise<void> {
    pod.ready = ready;
    await this.#writePodStatus(pod);
  }

  async #reconcilePods(svc: LabService, want: EndpointSpec[]): Promise<void> {
    const left = [...svc.pods];
    // New pods start side by side (each waits for its server and its status write);
    // #startPod takes its address and names before its first await.
    const starting: Promise<LabPod>[] = [];
    for (const e of want) {
      const i = left.findIndex((p) => p.node === e.node);
      if (i >= 0) {
        const pod = left.splice(i, 1)[0]!;
        if (pod.ready !== (e.ready !== false)) await this.setPodReady(pod, e.ready !== false);
        starting.push(Promise.resolve(pod));
      } else starting.push(this.#startPod(svc, e.node, e.ready !== false));
    }
    // Every start settles before a failure is thrown: none is left running unnoticed.
    const settled = await Promise.allSettled(starting);
    const failed = settled.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const pods = settled.map((r) => (r as PromiseFulfilledResult<LabPod>).value);
    for (const pod of left) await this.#deletePod(pod);
    svc.pods = pods;
    svc.endpoints = want;
  }

  /** A pod: namespace plugged into its node's bridge, HTTP server, Pod object and status. */
  async #startPod(svc: LabService, nodeName: string, ready: boolean): Promise<LabPod> {
    const node = this.node(nodeName);
    const used = this.#podOffsets.get(nodeName)!;
    let offset = 2;
    while (used.has(offset)) offset++;
    if (offset > 30) throw new Error(`no pod address left on ${nodeName} (${node.podCIDR})`);
    used.add(offset);
    const n = ++this.#podCounter;
    const base = parseCIDR(node.podCIDR).base;
    const pod: LabPod = {
      name: `${svc.name}-${nodeName}-${n}`,
      namespace: svc.namespace,
      node: nodeName,
      ns: `${this.opts.prefix}p${n}`,
      ip: formatIPv4(base + offset),
      ...(this.opts.ipv6 ? { ip6: `${pod6Prefix(node.index)}${offset}` } : {}),
      ready,
      offset,
      server: undefined as unknown as LabProcess,
    };
    await this.#newNamespace(pod.ns);
    const veth = `veth${n}`;
    await run("ip", [
      "-n",
      node.ns,
      "link",
      "add",
      veth,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      pod.ns,
    ]);
    await run("ip", ["-n", node.ns, "link", "set", veth, "master", "cni0", "up"]);
    const inPod = (...args: string[]) => run("ip", ["-n", pod.ns, ...args]);
    await inPod("addr", "add", `${pod.ip}/27`, "dev", "eth0");
    if (pod.ip6) await inPod("addr", "add", `${pod.ip6}/64`, "dev", "eth0", "nodad");
    await inPod("link", "set", "eth0", "up");
    await inPod("route", "add", "default", "via", node.podGateway);
    if (pod.ip6 && node.podGateway6)
      await inPod("-6", "route", "add", "default", "via", node.podGateway6);
    // socat forks one pod-http.sh per connection; with IPv6 one socket takes both families.
    const listen = pod.ip6
      ? `TCP6-LISTEN:${POD_PORT},ipv6only=0,fork,reuseaddr,backlog=512`
      : `TCP4-LISTEN:${POD_PORT},fork,reuseaddr,backlog=512`;
    pod.server = startProcess(
      `pod-${pod.name}`,
      [
        "ip",
        "netns",
        "exec",
        pod.ns,
        "socat",
        listen,
        `EXEC:bash ${join(import.meta.dirname, "pod-http.sh")}`,
      ],
      join(this.opts.workDir, `pod-${pod.name}.log`),
      { POD_NAME: pod.name },
    );
    await waitFor(
      `the server of pod ${pod.name} listening`,
      async () => {
        if (!pod.server.running())
          throw new Error(`the server of pod ${pod.name} exited: see ${pod.server.logFile}`);
        const out = await run("ip", [
          "netns",
          "exec",
          pod.ns,
          "ss",
          "-Hltn",
          `sport = :${POD_PORT}`,
        ]);
        return out.trim() !== "";
      },
      10_000,
      20,
    );
    const { core } = clientsFor(this.kc);
    const body: V1Pod = {
      metadata: { name: pod.name, namespace: pod.namespace, labels: { app: svc.name } },
      spec: {
        nodeName,
        containers: [
          {
            name: "http",
            image: "lab.ironlb.dev/none",
            ports: [{ containerPort: POD_PORT, name: "http" }],
          },
        ],
      },
    };
    await core.createNamespacedPod({ namespace: pod.namespace, body });
    await this.#writePodStatus(pod);
    return pod;
  }

  /** Writes the status a kubelet would: Running, the pod's addresses, Ready as asked. */
  async #writePodStatus(pod: LabPod): Promise<void> {
    const { core } = clientsFor(this.kc);
    const node = this.node(pod.node);
    await waitFor(`status of pod ${pod.name}`, async () => {
      const cur = await core.readNamespacedPodStatus({ name: pod.name, namespace: pod.namespace });
      const now = new Date();
      const cond = (type: string, status: boolean) => ({
        type,
        status: status ? "True" : "False",
        lastTransitionTime: now,
      });
      cur.status = {
        phase: "Running",
        hostIP: node.ip,
        hostIPs: [{ ip: node.ip }, ...(node.ip6 ? [{ ip: node.ip6 }] : [])],
        podIP: pod.ip,
        podIPs: [{ ip: pod.ip }, ...(pod.ip6 ? [{ ip: pod.ip6 }] : [])],
        startTime: cur.status?.startTime ?? now,
        conditions: [
          cond("PodScheduled", true),
          cond("Initialized", true),
          cond("ContainersReady", pod.ready),
          cond("Ready", pod.ready),
        ],
      };
      await core.replaceNamespacedPodStatus({
        name: pod.name,
        namespace: pod.namespace,
        body: cur,
      });
      return true;
    });
  }

  async #deletePod(pod: LabPod): Promise<void> {
    await clientsFor(this.kc)
      .core.deleteNamespacedPod({ name: pod.name, namespace: pod.namespace, gracePeriodSeconds: 0 })
      .catch((err: unknown) => {
        if (apiStatus(err) !== 404) throw err;
      });
    await pod.server.stop("SIGKILL");
    await killAll(await netnsPids(pod.ns));
    await tryRun("ip", ["netns", "del", pod.ns]);
    this.#podOffsets.get(pod.node)?.delete(pod.offset);
  }

  /** Deletes a Service and its pods. */
  async deleteService(svc: LabService): Promise<void> {
    await clientsFor(this.kc).core.deleteNamespacedService({
      name: svc.name,
      namespace: svc.namespace,
    });
    for (const pod of svc.pods) await this.#deletePod(pod);
    svc.pods = [];
    this.#services.delete(`${svc.namespace}/${svc.name}`);
  }

  async getService(name: string, namespace = "default"): Promise<V1Service> {
    return clientsFor(this.kc).core.readNamespacedService({ name, namespace });
  }

  /** Waits until the controller has written an ingress IP into the Service's status. */
  async waitForIP(svc: LabService | string, timeoutMs = 20_000): Promise<string> {
    const s = typeof svc === "string" ? this.service(svc) : svc;
    return waitFor(
      `an IP on ${s.namespace}/${s.name}`,
      async () =>
        (await this.getService(s.name, s.namespace)).status?.loadBalancer?.ingress?.[0]?.ip,
      timeoutMs,
      100,
    );
  }

  /** Events recorded on a Service. */
  async serviceEvents(name: string, namespace = "default") {
    const list = await clientsFor(this.kc).core.listNamespacedEvent({
      namespace,
      fieldSelector: `involvedObject.name=${name},involvedObject.kind=Service`,
    });
    return list.items.map((e) => ({
      type: e.type ?? "",
      reason: e.reason ?? "",
      message: e.message ?? "",
      source: e.reportingComponent ?? e.source?.component ?? "",
      instance: e.reportingInstance ?? e.source?.host ?? "",
    }));
  }

  // ---------------------------------------------------------------- the client's view

  #inClient(args: string[], timeoutMs?: number): Promise<string> {
    return run(
      "ip",
      ["netns", "exec", this.client.ns, ...args],
      timeoutMs === undefined ? {} : { timeoutMs },
    );
  }

  /** HTTP GET from the client; resolves with what the pod answered. */
  async clientRequest(ip: string, port: number, timeoutMs = 1000): Promise<PodAnswer> {
    const s = (timeoutMs / 1000).toFixed(3);
    const host = ip.includes(":") ? `[${ip}]` : ip;
    const body = (
      await this.#inClient(
        [
          "curl",
          "-sS",
          "--max-time",
          s,
          "--connect-timeout",
          s,
          "--no-keepalive",
          `http://${host}:${port}/`,
        ],
        timeoutMs + 2000,
      )
    ).trim();
    return this.parseAnswer(body);
  }

  /** Like clientRequest, but undefined instead of an error when nothing answered. */
  async tryClientRequest(
    ip: string,
    port: number,
    timeoutMs = 1000,
  ): Promise<PodAnswer | undefined> {
    try {
      return await this.clientRequest(ip, port, timeoutMs);
    } catch {
      return undefined;
    }
  }

  /** The node a client's connection to ip:port entered through, or undefined if none answered. */
  async tryEntryNode(ip: string, port: number, timeoutMs = 1000): Promise<string | undefined> {
    return (await this.tryClientRequest(ip, port, timeoutMs))?.via;
  }

  /**
   * Reads a pod's answer "<pod> <client address>". The entry node: the node whose address
   * (LAN or pod gateway) the pod saw after masquerade (Cluster), or, when the pod saw the
   * client itself (Local keeps it, and reaches local pods only), the pod's own node.
   */
  parseAnswer(body: string): PodAnswer {
    const [pod, seen] = body.split(" ");
    const client = seen === undefined ? undefined : canonicalAddress(seen);
    const p = [...this.#services.values()].flatMap((s) => s.pods).find((x) => x.name === pod);
    if (!p || !client) throw new Error(`not a lab pod's answer: "${body}"`);
    const by = this.nodes.find((n) =>
      [n.ip, n.ip2, n.ip6, n.podGateway, n.podGateway6].includes(client),
    );
    return { pod: p.name, node: p.node, client, via: by?.name ?? p.node };
  }

  /**
   * Puts back a node's routes to the other nodes' pod ranges, which the kernel drops when
   * the node's eth0 goes down (as a host's network configuration would after a link flap).
   */
  async restoreNodeRoutes(name: string): Promise<void> {
    const node = this.node(name);
    for (const other of this.nodes) {
      if (other.name === name) continue;
      await run("ip", ["-n", node.ns, "route", "replace", other.podCIDR, "via", other.ip]);
      if (node.ip6 && other.ip6 && other.podCIDR6) {
        const args = ["-n", node.ns, "-6", "route", "replace", other.podCIDR6, "via", other.ip6];
        // The on-link prefix route comes back with the carrier, which can lag the link-up
        // call: until then the gateway is "No route to host". Retry briefly.
        const deadline = performance.now() + 5000;
        for (;;) {
          try {
            await run("ip", args);
            break;
          } catch (err) {
            if (performance.now() > deadline || !/No route to host/.test(String(err))) throw err;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }
    }
  }

  /** The client kernel's neighbour entry for `ip`, if it has one. */
  async clientNeighbour(ip: string, ifname = "eth0"): Promise<Neighbour | undefined> {
    const [e] = await ipJson<NeighbourEntry>(this.client.ns, [
      "neigh",
      "show",
      "to",
      ip,
      "dev",
      ifname,
    ]);
    if (!e) return undefined;
    return { ...(e.lladdr ? { mac: e.lladdr } : {}), state: e.state ?? [] };
  }

  /** Forgets the client's neighbour entry for `ip` (the next packet ARPs afresh). */
  async clientForget(ip: string, ifname = "eth0"): Promise<void> {
    await tryRun("ip", ["-n", this.client.ns, "neigh", "flush", "to", ip, "dev", ifname]);
  }

  /** Makes the client kernel resolve `ip` (a UDP datagram needs the MAC first). */
  async clientResolve(ip: string): Promise<void> {
    // The send may fail once resolution fails; only the ARP it causes matters.
    await tryRun("ip", [
      "netns",
      "exec",
      this.client.ns,
      "bash",
      "-c",
      `echo x > /dev/udp/${ip}/9`,
    ]);
  }

  /**
   * ARP requests from the client (arping, which bypasses the neighbour table): the MACs
   * that answered, in order of first answer, lower case.
   */
  async arpingFromClient(
    ip: string,
    o: { ifname?: string; count?: number } = {},
  ): Promise<string[]> {
    const count = o.count ?? 3;
    const out =
      (await tryRun("ip", [
        "netns",
        "exec",
        this.client.ns,
        "arping",
        // Broadcast every request: after a first reply arping would otherwise unicast to
        // that MAC only, and a second announcer would never be asked.
        "-b",
        "-I",
        o.ifname ?? "eth0",
        "-c",
        String(count),
        "-w",
        String(count + 1),
        ip,
      ])) ?? "";
    return arpingMacs(out, ip);
  }

  /** Adds an address to the client (to make it the holder of a pool IP: a conflict). */
  async clientAddAddress(cidr: string, ifname = "eth0"): Promise<void> {
    await run("ip", ["-n", this.client.ns, "addr", "add", cidr, "dev", ifname]);
  }

  async clientDelAddress(cidr: string, ifname = "eth0"): Promise<void> {
    await tryRun("ip", ["-n", this.client.ns, "addr", "del", cidr, "dev", ifname]);
  }

  async clientMac(ifname = "eth0"): Promise<string> {
    const [l] = await ipJson<LinkEntry>(this.client.ns, ["link", "show", "dev", ifname]);
    return l?.address ?? "";
  }

  // ---------------------------------------------------------------- teardown

  /** Removes everything the lab created (processes, namespaces, uplink); idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    unfinished().delete(this);
    const all = [
      ...this.#speakers.values(),
      ...this.#proxies.values(),
      ...[...this.#services.values()].flatMap((s) => s.pods.map((p) => p.server)),
      ...(this.#controller ? [this.#controller] : []),
      ...(this.#endpointController ? [this.#endpointController] : []),
    ];
    for (const p of all) if (p.running()) p.proc.kill("SIGKILL");
    // The control plane may be shared (the e2e tier): its Services and Pods go too,
    // best effort (the apiserver may be gone when a failed run tears down).
    const { core } = clientsFor(this.kc);
    for (const svc of this.#services.values()) {
      await core
        .deleteNamespacedService({ name: svc.name, namespace: svc.namespace })
        .catch(() => {});
      for (const pod of svc.pods)
        await core
          .deleteNamespacedPod({ name: pod.name, namespace: pod.namespace, gracePeriodSeconds: 0 })
          .catch(() => {});
    }
    // Its pools, advertisements and peers too: a pool left behind would keep its addresses
    // from a later file's overlapping pool (the older pool wins an overlap).
    const { custom } = clientsFor(this.kc);
    for (const o of this.#objects) {
      const [plural, name] = o.split("/") as [string, string];
      await custom.deleteClusterCustomObject({ group, version, plural, name }).catch(() => {});
    }
    // And the records its (now killed) speakers kept: the next lab reuses the node names,
    // and a stale record would name an owner of that lab's IPs that never claimed them.
    const anns = (await custom
      .listClusterCustomObject({ group, version, plural: "ipannouncements" })
      .catch(() => ({ items: [] }))) as { items: Array<{ metadata?: { name?: string } }> };
    for (const a of anns.items)
      await custom
        .deleteClusterCustomObject({
          group,
          version,
          plural: "ipannouncements",
          name: a.metadata?.name ?? "",
        })
        .catch(() => {});
    await removeLab(this.opts.prefix);
  }
}

/**
 * An address as the lab writes it: IPv4-mapped IPv6 as IPv4, IPv6 compressed (RFC 5952);
 * socat reports peers in full ("0000:...:ffff:cb00:7164").
 */
export function canonicalAddress(a: string): string {
  if (!a.includes(":")) return a;
  const [head = "", tail] = a.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t].map((g) =>
    Number.parseInt(g, 16),
  );
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff)
    return [groups[6]! >> 8, groups[6]! & 255, groups[7]! >> 8, groups[7]! & 255].join(".");
  // The longest run of two or more zero groups becomes "::".
  let best = [-1, 0];
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best[1]! && j - i >= 2) best = [i, j - i];
    i = j > i ? j : i + 1;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best[0]! < 0) return hex.join(":");
  return `${hex.slice(0, best[0]).join(":")}::${hex.slice(best[0]! + best[1]!).join(":")}`;
}

/** The /64 prefix of node `index`'s IPv6 pods ("2001:db8:2:101::"), inside POD6_CIDR. */
function pod6Prefix(index: number): string {
  return `${POD6_CIDR.split("::")[0]!.replace(/00$/, "")}${index.toString().padStart(2, "0")}::`;
}

/** MACs in arping's "Unicast reply from IP [MAC]" lines, first answer first. */
export function arpingMacs(out: string, ip: string): string[] {
  const macs: string[] = [];
  for (const m of out.matchAll(/reply from (\S+) \[([0-9A-Fa-f:]{17})\]/g)) {
    if (m[1] !== ip) continue;
    const mac = m[2]!.toLowerCase();
    if (!macs.includes(mac)) macs.push(mac);
  }
  return macs;
}
