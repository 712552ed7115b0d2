// A bare-metal LAN on one Linux machine, for the lab command and the end-to-end tests.
//
// Layout (all names carry the lab's prefix, so that several labs and test runs coexist):
//   <prefix>sw       namespace with bridge br0 (the LAN) and, optionally, br1 (a second LAN)
//   <prefix>nodeN    one namespace per node: eth0 (and eth1) into the bridge(s), a NodePort
//                    stand-in server and an nftables redirect from pool:port to NodePort
//   <prefix>client   a LAN client: eth0 (and eth1); routes the pool range on-link, so that
//                    its kernel ARPs for Service IPs like any host on the LAN would
//   <prefix>up       a veth in the root namespace with the subnet's first address: how the
//                    speakers in the node namespaces reach the control plane
// Nothing else in the root namespace is touched; the pool range is never routed there.
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
import { createInterface } from "node:readline";
import type { KubeConfig, V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";
import {
  apiStatus,
  clientsFor,
  createPoolWith,
  ensureNamespace,
  group,
  installCRDs,
  kubeConfigFrom,
  repoRoot,
  sleep,
  version,
  waitFor,
} from "../support/kube.ts";
import { hostDependencies } from "./host-deps.ts";
import {
  alive,
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
const nftTable = "ironlb_lab";

export interface LabOptions {
  /** Prefix of every namespace and root-namespace link (≤ 12 characters: link names are ≤ 15). */
  prefix: string;
  /** The LAN: .1 is the uplink (the control plane's address), nodes .11 on, client .100. */
  subnet: string;
  /** A second LAN (eth1 on nodes and client), for interface selection; no uplink. */
  secondSubnet?: string;
  /** The Service IP range: routed on-link by the client and matched by the redirect rules. */
  poolCIDR: string;
  nodes: number;
  /** Admin kubeconfig valid in the root namespace (the apiserver must listen on 0.0.0.0). */
  kubeconfig: string;
  /** Folder for logs, the nodes' kubeconfig and the heartbeat secret. */
  workDir: string;
  /** Namespace of the speaker Leases and the controller's lease (created). */
  systemNamespace?: string;
  /** Node 24 binary to run ironlb and the NodePort servers with (default: this process's). */
  nodeBin?: string;
  /** Extra `ironlb speaker` arguments for every speaker. */
  speakerArgs?: string[];
  /** Extra labels for every Node object. */
  nodeLabels?: Record<string, string>;
  /** Folder with kubectl: used to prove that the nodes reach the apiserver (TLS name included). */
  binDir?: string;
  log?: (msg: string) => void;
}

export interface LabNode {
  /** Kubernetes node name (also what its NodePort server answers). */
  name: string;
  /** Its network namespace. */
  ns: string;
  index: number;
  ip: string;
  /** Address on the second LAN, if any. */
  ip2?: string;
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
  /** Service port; unique per lab, because the redirect rules match on pool range + port. */
  port: number;
  externalTrafficPolicy?: "Cluster" | "Local";
  /** Nodes with an endpoint (ready unless said otherwise). Default: every node. */
  endpoints?: (string | EndpointSpec)[];
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

/** The NodePort stand-in of one node, driven over its stdin. */
class NodePortServer {
  readonly #proc: ChildProcess;
  readonly #waiters = new Map<string, () => void>();
  readonly #errors: string[] = [];

  constructor(nodeBin: string, node: LabNode, logFile: string) {
    const argv = [
      "ip",
      "netns",
      "exec",
      node.ns,
      nodeBin,
      join(import.meta.dirname, "nodeport-server.ts"),
      node.name,
    ];
    const err = openSync(logFile, "a");
    this.#proc = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", err], detached: true });
    closeSync(err);
    this.#proc.unref();
    createInterface({ input: this.#proc.stdout! }).on("line", (line) => {
      const [what, port] = line.split(" ");
      if (what === "error") this.#errors.push(line);
      const key = `${what === "error" ? "listening" : what} ${port}`;
      this.#waiters.get(key)?.();
      this.#waiters.delete(key);
    });
    // Once the lab's creator exits, these pipes must not keep anything alive or throw.
    (this.#proc.stdout as unknown as { unref?: () => void }).unref?.();
    (this.#proc.stdin as unknown as { unref?: () => void }).unref?.();
    this.#proc.stdin!.on("error", () => {});
  }

  async listen(port: number): Promise<void> {
    await this.#command("listen", "listening", port);
    const err = this.#errors.find((e) => e.startsWith(`error ${port} `));
    if (err) throw new Error(`NodePort server could not listen: ${err}`);
  }

  async #command(cmd: string, reply: string, port: number): Promise<void> {
    const done = new Promise<void>((resolve) => this.#waiters.set(`${reply} ${port}`, resolve));
    this.#proc.stdin!.write(`${cmd} ${port}\n`);
    const timeout = sleep(10_000).then(() => {
      throw new Error(`NodePort server did not answer "${cmd} ${port}"`);
    });
    await Promise.race([done, timeout]);
  }
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
  readonly opts: Required<Omit<LabOptions, "secondSubnet" | "log" | "binDir">> &
    Pick<LabOptions, "secondSubnet" | "binDir">;
  readonly nodes: LabNode[] = [];
  readonly client: { ns: string; ip: string; ip2?: string };
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
  readonly #servers = new Map<string, NodePortServer>();
  readonly #services = new Map<string, LabService>();
  readonly #rootPids: number[] = [];
  #controller: LabProcess | undefined;
  #destroyed = false;

  private constructor(opts: LabOptions) {
    if (opts.prefix.length > 12)
      throw new Error(`lab prefix "${opts.prefix}" is longer than 12 characters`);
    this.opts = {
      systemNamespace: "ironlb-system",
      nodeBin: process.execPath,
      speakerArgs: [],
      nodeLabels: {},
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
    };
    this.nodeKubeconfig = join(opts.workDir, "kubeconfig-lab");
    this.heartbeatSecretFile = join(opts.workDir, "heartbeat-secret");
    this.kc = kubeConfigFrom(opts.kubeconfig);
  }

  /** Builds the LAN, the Kubernetes objects for the nodes, and the NodePort stand-ins. */
  static async create(opts: LabOptions): Promise<Lab> {
    const lab = new Lab(opts);
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
    // The pool is on-link for the client, as a LAN's service range is: it ARPs for each IP.
    await run("ip", ["-n", this.client.ns, "route", "add", this.opts.poolCIDR, "dev", "eth0"]);

    const k = clientsFor(this.kc);
    this.#log("installing CRDs and the ironlb-system namespace");
    await installCRDs(this.kc);
    await ensureNamespace(this.kc, this.opts.systemNamespace);
    await k.core.readNamespace({ name: "default" });
    for (let i = 0; i < this.opts.nodes; i++) await this.addNode();
    // The nodes must reach the apiserver through the uplink: prove it once, with its cert.
    const n1 = this.nodes[0];
    if (n1) await this.#checkApiFrom(n1);
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

  async #newNamespace(ns: string): Promise<void> {
    await run("ip", ["netns", "add", ns]);
    // Before any interface exists, so that no link gets IPv6 addresses: the lab is IPv4 and
    // router/neighbour solicitations would only be noise on the LAN.
    for (const k of ["all", "default"])
      await run("ip", ["netns", "exec", ns, "sysctl", "-qw", `net.ipv6.conf.${k}.disable_ipv6=1`]);
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

  /** Adds a node: namespace, LAN link(s), NodePort server, Node object (Ready). */
  async addNode(labels: Record<string, string> = {}): Promise<LabNode> {
    const index = this.nodes.length + 1;
    const name = `node${index}`;
    const node: LabNode = {
      name,
      ns: `${this.opts.prefix}${name}`,
      index,
      ip: hostAddress(this.#subnet, 10 + index),
      ...(this.#subnet2 ? { ip2: hostAddress(this.#subnet2, 10 + index) } : {}),
    };
    this.#log(`adding ${name} (${node.ip})`);
    await this.#newNamespace(node.ns);
    await this.#plug(node.ns, "eth0", `n${index}e0`, "br0", `${node.ip}/${this.#subnet.bits}`);
    if (this.#subnet2 && node.ip2)
      await this.#plug(node.ns, "eth1", `n${index}e1`, "br1", `${node.ip2}/${this.#subnet2.bits}`);
    this.nodes.push(node);
    const server = new NodePortServer(
      this.opts.nodeBin,
      node,
      join(this.opts.workDir, `nodeport-${name}.log`),
    );
    this.#servers.set(name, server);
    for (const svc of this.#services.values()) await server.listen(svc.nodePort);
    await this.#applyRules(node);
    await this.#createNodeObject(node, labels);
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
      ["ip", "netns", "exec", n.ns, this.opts.nodeBin, join(repoRoot, "bin/ironlb.js"), ...args],
      join(this.opts.workDir, `speaker-${node}.log`),
      { LOG_LEVEL: "debug", NODE_NAME: n.name },
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
      const n = this.node(node);
      await waitFor(
        `speaker of ${node} ready`,
        async () => {
          if (!p.running()) throw new Error(`speaker of ${node} exited: see ${p.logFile}`);
          const out = await tryRun("ip", [
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
            `http://${n.ip}:7473/readyz`,
          ]);
          return out === "200";
        },
        timeoutMs,
        200,
      );
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
      [this.opts.nodeBin, join(repoRoot, "bin/ironlb.js"), ...args],
      join(this.opts.workDir, "controller.log"),
      { LOG_LEVEL: "debug" },
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
  }

  async createL2Advertisement(name: string, spec: Record<string, unknown> = {}) {
    await clientsFor(this.kc).custom.createClusterCustomObject({
      group,
      version,
      plural: "l2advertisements",
      body: {
        apiVersion: `${group}/${version}`,
        kind: "L2Advertisement",
        metadata: { name },
        spec,
      },
    });
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
   * Creates a LoadBalancer Service, its EndpointSlice (no controller-manager runs), the
   * NodePort listeners and the pool:port → NodePort redirect on every node.
   */
  async createService(name: string, o: LabServiceOptions): Promise<LabService> {
    const namespace = o.namespace ?? "default";
    for (const s of this.#services.values())
      if (s.port === o.port)
        throw new Error(`port ${o.port} is used by lab service ${s.name} already`);
    const { core, discovery } = clientsFor(this.kc);
    const annotations: Record<string, string> = { ...o.annotations };
    if (o.pool) annotations["ironlb.dev/address-pool"] = o.pool;
    if (o.ip) annotations["ironlb.dev/loadBalancerIPs"] = o.ip;
    const etp = o.externalTrafficPolicy ?? "Cluster";
    const created = await core.createNamespacedService({
      namespace,
      body: {
        metadata: { name, namespace, annotations },
        spec: {
          type: "LoadBalancer",
          externalTrafficPolicy: etp,
          selector: { app: name },
          ports: [{ name: "http", port: o.port, protocol: "TCP", targetPort: 8080 as never }],
        },
      },
    });
    const nodePort = created.spec?.ports?.[0]?.nodePort;
    if (!nodePort) throw new Error(`the apiserver gave ${name} no NodePort`);
    const svc: LabService = {
      name,
      namespace,
      port: o.port,
      nodePort,
      externalTrafficPolicy: etp,
      endpoints: normEndpoints(o.endpoints ?? this.nodes.map((n) => n.name)),
    };
    await discovery.createNamespacedEndpointSlice({ namespace, body: this.#slice(svc) });
    this.#services.set(`${namespace}/${name}`, svc);
    for (const s of this.#servers.values()) await s.listen(nodePort);
    for (const n of this.nodes) await this.#applyRules(n);
    return svc;
  }

  #slice(svc: LabService): V1EndpointSlice {
    return {
      metadata: {
        name: `${svc.name}-lab`,
        namespace: svc.namespace,
        labels: {
          "kubernetes.io/service-name": svc.name,
          "endpointslice.kubernetes.io/managed-by": "lab.ironlb.dev",
        },
      },
      addressType: "IPv4",
      // hostNetwork-style endpoints: the node's own address, so that no address outside
      // the lab appears anywhere (no traffic is sent to endpoints anyway).
      endpoints: svc.endpoints.map((e) => ({
        addresses: [this.node(e.node).ip],
        nodeName: e.node,
        conditions: { ready: e.ready !== false, serving: e.ready !== false, terminating: false },
      })),
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    };
  }

  service(name: string, namespace = "default"): LabService {
    const s = this.#services.get(`${namespace}/${name}`);
    if (!s) throw new Error(`no lab service ${namespace}/${name}`);
    return s;
  }

  /** Replaces the Service's endpoints (and the ETP Local data path with them). */
  async setEndpoints(
    svc: LabService | string,
    endpoints: (string | EndpointSpec)[],
  ): Promise<void> {
    const s = typeof svc === "string" ? this.service(svc) : svc;
    s.endpoints = normEndpoints(endpoints);
    const { discovery } = clientsFor(this.kc);
    const body = this.#slice(s);
    await waitFor(`EndpointSlice of ${s.name} replaced`, async () => {
      const cur = await discovery.readNamespacedEndpointSlice({
        name: body.metadata!.name!,
        namespace: s.namespace,
      });
      body.metadata!.resourceVersion = cur.metadata?.resourceVersion;
      await discovery.replaceNamespacedEndpointSlice({
        name: body.metadata!.name!,
        namespace: s.namespace,
        body,
      });
      return true;
    });
    for (const n of this.nodes) await this.#applyRules(n);
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

  /**
   * The node's stand-in for kube-proxy: `pool:port` goes to the local NodePort, except that
   * an ETP Local Service is dropped on nodes without a ready local endpoint (as kube-proxy
   * does), so that traffic sent to a wrong node fails visibly.
   */
  async #applyRules(node: LabNode): Promise<void> {
    const pool = this.opts.poolCIDR;
    const nat: string[] = [];
    const drop: string[] = [];
    for (const s of this.#services.values()) {
      const local = s.endpoints.some((e) => e.node === node.name && e.ready !== false);
      if (s.externalTrafficPolicy === "Local" && !local)
        drop.push(`ip daddr ${pool} tcp dport ${s.port} drop`);
      else nat.push(`ip daddr ${pool} tcp dport ${s.port} redirect to :${s.nodePort}`);
    }
    const script = [
      `table ip ${nftTable} {}`,
      `delete table ip ${nftTable}`,
      `table ip ${nftTable} {`,
      "  chain guard {",
      "    type filter hook prerouting priority raw; policy accept;",
      ...drop.map((r) => `    ${r}`),
      "  }",
      "  chain nodeports {",
      "    type nat hook prerouting priority dstnat; policy accept;",
      ...nat.map((r) => `    ${r}`),
      "  }",
      "}",
      "",
    ].join("\n");
    await run("ip", ["netns", "exec", node.ns, "nft", "-f", "-"], { input: script });
  }

  // ---------------------------------------------------------------- the client's view

  #inClient(args: string[], timeoutMs?: number): Promise<string> {
    return run(
      "ip",
      ["netns", "exec", this.client.ns, ...args],
      timeoutMs === undefined ? {} : { timeoutMs },
    );
  }

  /** HTTP GET from the client; resolves with the body (the answering node's name). */
  async clientCurl(ip: string, port: number, timeoutMs = 1000): Promise<string> {
    const s = (timeoutMs / 1000).toFixed(3);
    return (
      await this.#inClient(
        [
          "curl",
          "-sS",
          "--max-time",
          s,
          "--connect-timeout",
          s,
          "--no-keepalive",
          `http://${ip}:${port}/`,
        ],
        timeoutMs + 2000,
      )
    ).trim();
  }

  /** Like clientCurl, but undefined instead of an error when nothing answered. */
  async tryClientCurl(ip: string, port: number, timeoutMs = 1000): Promise<string | undefined> {
    try {
      return await this.clientCurl(ip, port, timeoutMs);
    } catch {
      return undefined;
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
    for (const p of [...this.#speakers.values(), ...(this.#controller ? [this.#controller] : [])]) {
      if (p.running()) p.proc.kill("SIGKILL");
    }
    await removeLab(this.opts.prefix);
  }
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
