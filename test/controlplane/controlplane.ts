// A real Kubernetes control plane for tests and the lab: etcd plus kube-apiserver, built
// from their Go modules by build.sh, with TLS, RBAC and ServiceAccount token signing.
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request } from "node:https";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { sleep } from "../support/wait.ts";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

/** Where the control plane's state lives unless told otherwise. */
export const cacheRoot =
  process.env.IRONLB_CACHE ??
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "ironlb");

/**
 * Default Service ClusterIP ranges. No traffic is ever sent to them: no kube-proxy runs with
 * this control plane. A control plane whose ClusterIPs kube-proxy programs (the netns lab)
 * passes documentation ranges in `serviceCIDRs`.
 */
export const serviceCIDRs = "10.96.0.0/16,2001:db8:96::/112";

export interface ControlPlaneOptions {
  /** Folder for certificates, etcd data, logs and the kubeconfig (created, then removed on stop). */
  dir: string;
  /** Address kube-apiserver listens on (default 127.0.0.1; the lab uses 0.0.0.0). */
  bindAddress?: string;
  /** Address clients are told to use (default 127.0.0.1); also put in the serving certificate. */
  advertiseAddress?: string;
  /** Start the processes in their own session so they outlive the caller (`cluster:up`). */
  detached?: boolean;
  /** Progress messages (default: stderr). */
  log?: (msg: string) => void;
  /** Picks a free port (default: `freePort`); tests hand in taken ones to exercise the retry. */
  pickPort?: () => Promise<number>;
  /** `--service-cluster-ip-range` (default `serviceCIDRs`); IPv4 range first. */
  serviceCIDRs?: string;
  /**
   * Keep the ServiceAccount admission plugin (default off: without kube-controller-manager
   * there are no default ServiceAccounts). The real-cluster lab runs the controller-manager.
   */
  serviceAccountAdmission?: boolean;
  /** `--authorization-mode` (default RBAC; the real-cluster lab adds Node). */
  authorizationModes?: string;
  /** More kube-apiserver flags, appended after the defaults. */
  extraArgs?: string[];
}

/**
 * How often a process that lost its port to someone else is started again on new ports.
 * A port found free can be taken before the process binds it (other test runs, outgoing
 * connections from the ephemeral range): the process then exits with "address already in
 * use", and a retry on other ports is the only fix that needs no cooperation.
 */
const PORT_ATTEMPTS = 5;

class PortTaken extends Error {}

/** The saved description of a running control plane (state.json in its folder). */
export interface ControlPlaneState {
  dir: string;
  kubeconfig: string;
  /** The apiserver URL as seen from this host (always loopback). */
  server: string;
  /** The apiserver port, for kubeconfigs that reach it through another address. */
  port: number;
  pids: number[];
  binDir: string;
}

/** Builds (or finds in the cache) the pinned binaries and returns their folder. */
export async function ensureBinaries(log: (msg: string) => void = defaultLog): Promise<string> {
  log(
    "checking control-plane binaries (kube-apiserver, etcd, kubectl, helm); the first build takes minutes",
  );
  const child = spawn("bash", [join(here, "build.sh")], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const code: number = await new Promise((res) => child.on("close", (c) => res(c ?? 1)));
  if (code !== 0)
    throw new Error(
      `building the control-plane binaries failed (exit ${code}); see the messages above`,
    );
  const lines = out.trim().split("\n");
  return lines[lines.length - 1]!;
}

/** Starts etcd and kube-apiserver, waits for /readyz, and writes a kubeconfig. */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlaneState> {
  const log = opts.log ?? defaultLog;
  const binDir = await ensureBinaries(log);
  const dir = opts.dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "pki"), { recursive: true });
  const bind = opts.bindAddress ?? "127.0.0.1";
  const advertise = opts.advertiseAddress ?? "127.0.0.1";
  const pids: number[] = [];
  const state: ControlPlaneState = {
    dir,
    kubeconfig: join(dir, "kubeconfig"),
    server: "",
    port: 0,
    pids,
    binDir,
  };
  try {
    log("generating certificates");
    const cidrs = opts.serviceCIDRs ?? serviceCIDRs;
    const pki = await makePki(join(dir, "pki"), [advertise, "127.0.0.1"], firstServiceIP(cidrs));
    const pick = opts.pickPort ?? freePort;
    const etcdUrl = await withFreshPorts("etcd", log, async () => {
      const [clientPort, peerPort] = [await pick(), await pick()];
      const url = `http://127.0.0.1:${clientPort}`;
      const logFile = join(dir, "etcd.log");
      rmSync(logFile, { force: true });
      rmSync(join(dir, "etcd"), { recursive: true, force: true });
      log(`starting etcd on ${url}`);
      const pid = startProcess(
        join(binDir, "etcd"),
        [
          "--name=default",
          `--data-dir=${join(dir, "etcd")}`,
          `--listen-client-urls=${url}`,
          `--advertise-client-urls=${url}`,
          `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
          `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
          "--unsafe-no-fsync", // test data: durability is not worth the disk latency
          "--log-level=warn",
        ],
        logFile,
        opts.detached,
      );
      pids.push(pid);
      await untilUp("etcd", pid, logFile, pids, async () => {
        const r = await get(`${url}/health`);
        return r.status === 200 ? undefined : `${r.status}: ${r.body.slice(0, 300)}`;
      });
      return url;
    });
    await withFreshPorts("kube-apiserver", log, async () => {
      const apiPort = await pick();
      state.port = apiPort;
      // A specific bind address is the only one the apiserver answers on; 0.0.0.0 includes loopback.
      const host = bind === "0.0.0.0" ? "127.0.0.1" : bind;
      state.server = `https://${host}:${apiPort}`;
      const logFile = join(dir, "kube-apiserver.log");
      rmSync(logFile, { force: true });
      log(`starting kube-apiserver on ${state.server}`);
      const pid = startProcess(
        join(binDir, "kube-apiserver"),
        [
          `--etcd-servers=${etcdUrl}`,
          `--bind-address=${bind}`,
          `--advertise-address=${advertise}`,
          `--secure-port=${apiPort}`,
          `--tls-cert-file=${pki.serverCert}`,
          `--tls-private-key-file=${pki.serverKey}`,
          `--client-ca-file=${pki.caCert}`,
          "--anonymous-auth=false",
          `--authorization-mode=${opts.authorizationModes ?? "RBAC"}`,
          `--service-account-issuer=https://kubernetes.default.svc.cluster.local`,
          `--service-account-key-file=${pki.saPub}`,
          `--service-account-signing-key-file=${pki.saKey}`,
          `--service-cluster-ip-range=${cidrs}`,
          // No kube-controller-manager creates default ServiceAccounts, so the admission
          // plugin that requires them would reject every pod (envtest does the same).
          ...(opts.serviceAccountAdmission ? [] : ["--disable-admission-plugins=ServiceAccount"]),
          "--allow-privileged=true",
          `--cert-dir=${join(dir, "pki")}`,
          "--profiling=false",
          "--max-requests-inflight=1000",
          "--max-mutating-requests-inflight=500",
          ...(opts.extraArgs ?? []),
        ],
        logFile,
        opts.detached,
      );
      pids.push(pid);
      await untilUp("kube-apiserver", pid, logFile, pids, async () => {
        const r = await get(`${state.server}/readyz`, pki);
        return r.status === 200 ? undefined : `${r.status}: ${r.body.slice(0, 300)}`;
      });
    });
    writeKubeconfig(state, state.kubeconfig);
    writeFileSync(join(dir, "state.json"), JSON.stringify(state, null, 2));
    log("control plane ready");
    return state;
  } catch (err) {
    await stopControlPlane(state);
    throw err;
  }
}

/** Stops the processes of a control plane and removes its folder. */
export async function stopControlPlane(
  state: Pick<ControlPlaneState, "dir" | "pids">,
): Promise<void> {
  for (const pid of [...state.pids].reverse()) await killAndWait(pid);
  rmSync(state.dir, { recursive: true, force: true });
}

/** Reads the state of a control plane started earlier in `dir`, if any. */
export function readState(dir: string): ControlPlaneState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as ControlPlaneState;
  } catch {
    return undefined;
  }
}

export interface Pki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run("openssl", args);
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT")
      throw new Error("openssl is not installed (Debian: apt-get install openssl)");
    throw new Error(`openssl ${args[0]} failed: ${e.stderr ?? e.message}`);
  }
}

/** The `kubernetes` Service's ClusterIP: the first address of the first (IPv4) range. */
export function firstServiceIP(cidrs: string): string {
  const first = cidrs.split(",")[0]!.trim();
  const [addr, bits] = first.split("/");
  const parts = (addr ?? "").split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !(p >= 0 && p <= 255)) || !bits)
    throw new Error(`the first service CIDR must be IPv4, got "${first}"`);
  const size = 2 ** (32 - Number(bits));
  const n = parts.reduce((a, b) => a * 256 + b, 0);
  const ip = n - (n % size) + 1;
  return [24, 16, 8, 0].map((s) => Math.floor(ip / 2 ** s) % 256).join(".");
}

async function makePki(dir: string, ips: string[], serviceIP: string): Promise<Pki> {
  const p = (f: string) => join(dir, f);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
    "-days",
    "3650",
    "-subj",
    "/CN=ironlb-test-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const sign = async (name: string, subj: string, ext: string) => {
    await openssl([
      "req",
      "-new",
      ...ec,
      "-keyout",
      p(`${name}.key`),
      "-out",
      p(`${name}.csr`),
      "-subj",
      subj,
    ]);
    writeFileSync(p(`${name}.ext`), ext);
    await openssl([
      "x509",
      "-req",
      "-in",
      p(`${name}.csr`),
      "-CA",
      p("ca.crt"),
      "-CAkey",
      p("ca.key"),
      "-CAcreateserial",
      "-out",
      p(`${name}.crt`),
      "-days",
      "3650",
      "-extfile",
      p(`${name}.ext`),
    ]);
  };
  const sans = [...new Set(ips.filter((ip) => ip !== "0.0.0.0")), serviceIP].map(
    (ip) => `IP:${ip}`,
  );
  sans.push(
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
  );
  await sign(
    "apiserver",
    "/CN=kube-apiserver",
    `subjectAltName=${sans.join(",")}\nextendedKeyUsage=serverAuth\n`,
  );
  // system:masters is the bootstrap superuser group that RBAC always allows.
  await sign("admin", "/O=system:masters/CN=ironlb-admin", "extendedKeyUsage=clientAuth\n");
  await openssl([
    "genpkey",
    "-algorithm",
    "RSA",
    "-pkeyopt",
    "rsa_keygen_bits:2048",
    "-out",
    p("sa.key"),
  ]);
  await openssl(["pkey", "-in", p("sa.key"), "-pubout", "-out", p("sa.pub")]);
  return pkiPaths(dir);
}

/**
 * Issues a client certificate signed by the control plane's CA (for kubelets, kube-proxy,
 * the scheduler...): `subject` like `/O=system:nodes/CN=system:node:n1`. Returns its paths.
 */
export async function issueClientCert(
  state: Pick<ControlPlaneState, "dir">,
  name: string,
  subject: string,
): Promise<{ cert: string; key: string; ca: string }> {
  const dir = join(state.dir, "pki");
  const p = (f: string) => join(dir, f);
  await openssl([
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    p(`${name}.key`),
    "-out",
    p(`${name}.csr`),
    "-subj",
    subject,
  ]);
  writeFileSync(p(`${name}.ext`), "extendedKeyUsage=clientAuth\n");
  await openssl([
    "x509",
    "-req",
    "-in",
    p(`${name}.csr`),
    "-CA",
    p("ca.crt"),
    "-CAkey",
    p("ca.key"),
    // A random serial, not -CAcreateserial: certificates are issued in parallel.
    "-set_serial",
    `0x${randomBytes(16).toString("hex")}`,
    "-out",
    p(`${name}.crt`),
    "-days",
    "3650",
    "-extfile",
    p(`${name}.ext`),
  ]);
  return { cert: p(`${name}.crt`), key: p(`${name}.key`), ca: p("ca.crt") };
}

/** A kubeconfig for a client certificate, reaching the apiserver at `server`. */
export function clientKubeconfig(server: string, ca: string, cert: string, key: string): string {
  const b64 = (f: string) => readFileSync(f).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: ironlb-test
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(ca)}
users:
- name: user
  user:
    client-certificate-data: ${b64(cert)}
    client-key-data: ${b64(key)}
contexts:
- name: ironlb-test
  context:
    cluster: ironlb-test
    user: user
current-context: ironlb-test
`;
}

/** Paths of the control plane's CA, admin and ServiceAccount signing keys. */
export function pkiPaths(dir: string): Pki {
  const p = (f: string) => join(dir, f);
  return {
    caCert: p("ca.crt"),
    caKey: p("ca.key"),
    serverCert: p("apiserver.crt"),
    serverKey: p("apiserver.key"),
    adminCert: p("admin.crt"),
    adminKey: p("admin.key"),
    saKey: p("sa.key"),
    saPub: p("sa.pub"),
  };
}

/**
 * Writes an admin kubeconfig for the control plane; `host` is the address to reach it by
 * (default loopback; the lab passes its uplink address, which the serving certificate names).
 */
export function writeKubeconfig(
  state: ControlPlaneState,
  path: string,
  host = new URL(state.server).hostname,
): void {
  const pki = pkiPaths(join(state.dir, "pki"));
  writeFileSync(path, kubeconfigYaml(`https://${host}:${state.port}`, pki));
}

function kubeconfigYaml(server: string, pki: Pki): string {
  const b64 = (f: string) => readFileSync(f).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: ironlb-test
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(pki.caCert)}
users:
- name: ironlb-admin
  user:
    client-certificate-data: ${b64(pki.adminCert)}
    client-key-data: ${b64(pki.adminKey)}
contexts:
- name: ironlb-test
  context:
    cluster: ironlb-test
    user: ironlb-admin
current-context: ironlb-test
`;
}

function startProcess(bin: string, args: string[], logFile: string, detached = false): number {
  const fd = openSync(logFile, "a");
  // Attached processes die with their parent even when it is killed outright (a test run
  // stopped with SIGKILL must not leave an apiserver behind): setpriv sets the kernel's
  // parent-death signal, then executes the binary in its place (same pid).
  const child = detached
    ? spawn(bin, args, { stdio: ["ignore", fd, fd], detached })
    : spawn("setpriv", ["--pdeathsig", "KILL", "--", bin, ...args], { stdio: ["ignore", fd, fd] });
  if (detached) child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${bin}`);
  return child.pid;
}

/** A TCP port free on loopback now (the kernel picks it); someone may take it before it is used. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port")),
      );
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function killAndWait(pid: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(50);
  if (alive(pid)) process.kill(pid, "SIGKILL");
}

/** GET `url`, over TLS as the admin user when `pki` is given; 2 s timeout. */
function get(url: string, pki?: Pki): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage) => {
      let body = "";
      res.on("data", (d: Buffer) => {
        body += d.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    };
    const req = pki
      ? request(
          url,
          {
            ca: readFileSync(pki.caCert),
            cert: readFileSync(pki.adminCert),
            key: readFileSync(pki.adminKey),
            timeout: 2000,
          },
          onResponse,
        )
      : httpRequest(url, { timeout: 2000 }, onResponse);
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end();
  });
}

/**
 * Runs `start` (which starts one process and waits until it is up) again on new ports,
 * up to PORT_ATTEMPTS times, while the process exits because its port was taken.
 */
async function withFreshPorts<T>(
  name: string,
  log: (msg: string) => void,
  start: () => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt >= PORT_ATTEMPTS) throw err;
      log(
        `${name} lost its port to another process (attempt ${attempt}); starting it on other ports`,
      );
    }
  }
}

/**
 * Waits until `probe` says the process is up (returns undefined), or fails when it exits:
 * with PortTaken when its log says its address was in use.
 */
async function untilUp(
  name: string,
  pid: number,
  logFile: string,
  pids: number[],
  probe: () => Promise<string | undefined>,
): Promise<void> {
  const deadline = Date.now() + 90_000;
  let last = "";
  while (Date.now() < deadline) {
    if (!alive(pid)) {
      pids.splice(pids.indexOf(pid), 1);
      const text = readFileSync(logFile, "utf8");
      const tail = text.split("\n").slice(-15).join("\n");
      if (/address already in use/.test(text))
        throw new PortTaken(`${name} exited: its port was taken; last log lines:\n${tail}`);
      throw new Error(`${name} exited during start-up; last log lines:\n${tail}`);
    }
    try {
      const why = await probe();
      if (why === undefined) return;
      last = why;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`${name} did not become ready within 90 s (last answer: ${last})`);
}

function defaultLog(msg: string): void {
  process.stderr.write(`[controlplane] ${msg}\n`);
}
