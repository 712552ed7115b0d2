// Helpers for tests that talk to the real test control plane: clients, CRDs, objects,
// waiting for conditions, and running ironlb components as real child processes.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KubeConfig, V1Service } from "@kubernetes/client-node";
import { afterAll, inject } from "vitest";
import {
  clientsFor,
  createPoolWith,
  group,
  installCRDs,
  kubeConfigFrom,
  repoRoot,
  version,
  waitFor,
} from "./kube.ts";

export { group, repoRoot, sleep, version, waitFor } from "./kube.ts";

/** An admin KubeConfig for the test control plane. */
export function kubeConfig(): KubeConfig {
  return kubeConfigFrom(inject("kubeconfig"));
}

export function clients(kc = kubeConfig()) {
  const { core, custom, ext } = clientsFor(kc);
  return { kc, core, custom, ext };
}

/** Installs (or updates) the CRDs from config/crd and waits until they are Established. */
export async function applyCRDs(kc = kubeConfig()): Promise<void> {
  await installCRDs(kc);
}

let nsCounter = 0;
/** Creates a namespace with a unique name (namespaces are never deleted: no controller-manager runs). */
export async function createNamespace(
  prefix: string,
  labels: Record<string, string> = {},
  kc = kubeConfig(),
): Promise<string> {
  const name = `${prefix}-${process.pid}-${++nsCounter}`;
  await clients(kc).core.createNamespace({ body: { metadata: { name, labels } } });
  return name;
}

export interface PoolSpecInput {
  addresses: string[];
  autoAssign?: boolean;
  avoidBuggyIPs?: boolean;
  excludeNetworkAndBroadcast?: boolean;
  serviceAllocation?: Record<string, unknown>;
}

export async function createPool(
  name: string,
  spec: PoolSpecInput,
  labels: Record<string, string> = {},
  kc = kubeConfig(),
) {
  return createPoolWith(kc, name, { ...spec }, labels);
}

export async function getPool(name: string, kc = kubeConfig()) {
  return (await clients(kc).custom.getClusterCustomObject({
    group,
    version,
    plural: "ipaddresspools",
    name,
  })) as {
    metadata: { resourceVersion: string };
    spec: PoolSpecInput;
    status?: {
      assignedIPv4?: number;
      assignedIPv6?: number;
      availableIPv4?: number;
      availableIPv6?: number;
      conditions?: { type: string; status: string; reason: string; message: string }[];
    };
  };
}

export async function deletePool(name: string, kc = kubeConfig()) {
  await clients(kc).custom.deleteClusterCustomObject({
    group,
    version,
    plural: "ipaddresspools",
    name,
  });
}

export interface ServiceInput {
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  ports?: { port: number; protocol?: "TCP" | "UDP" }[];
  externalTrafficPolicy?: "Cluster" | "Local";
  loadBalancerIP?: string;
  loadBalancerClass?: string;
  ipFamilyPolicy?: "SingleStack" | "PreferDualStack" | "RequireDualStack";
  ipFamilies?: ("IPv4" | "IPv6")[];
  selector?: Record<string, string>;
  allocateLoadBalancerNodePorts?: boolean;
  type?: string;
}

/** Creates a Service of type LoadBalancer (unless `type` says otherwise). */
export async function createService(
  namespace: string,
  name: string,
  s: ServiceInput = {},
  kc = kubeConfig(),
): Promise<V1Service> {
  return clients(kc).core.createNamespacedService({
    namespace,
    body: {
      metadata: { name, namespace, annotations: s.annotations, labels: s.labels },
      spec: {
        type: s.type ?? "LoadBalancer",
        ports: (s.ports ?? [{ port: 80 }]).map((p) => ({
          port: p.port,
          protocol: p.protocol ?? "TCP",
          targetPort: 8080 as never,
          name: `p${p.port}-${(p.protocol ?? "TCP").toLowerCase()}`,
        })),
        selector: s.selector ?? { app: name },
        externalTrafficPolicy: s.externalTrafficPolicy,
        loadBalancerIP: s.loadBalancerIP,
        loadBalancerClass: s.loadBalancerClass,
        ipFamilyPolicy: s.ipFamilyPolicy,
        ipFamilies: s.ipFamilies,
        allocateLoadBalancerNodePorts: s.allocateLoadBalancerNodePorts,
      },
    },
  });
}

export async function getService(
  namespace: string,
  name: string,
  kc = kubeConfig(),
): Promise<V1Service> {
  return clients(kc).core.readNamespacedService({ name, namespace });
}

/** The ingress IPs in a Service's status. */
export function ingressIPs(svc: V1Service): string[] {
  return (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "");
}

/** Waits until the Service's status lists IPs (and `check` accepts them); returns them. */
export async function waitForIPs(
  namespace: string,
  name: string,
  check: (ips: string[]) => boolean = (ips) => ips.length > 0,
  timeoutMs = 15_000,
): Promise<string[]> {
  return waitFor(
    `IPs on ${namespace}/${name}`,
    async () => {
      const ips = ingressIPs(await getService(namespace, name));
      return check(ips) ? ips : undefined;
    },
    timeoutMs,
  );
}

/** The ironlb condition of a Service, if set. */
export function allocatedCondition(svc: V1Service) {
  return svc.status?.conditions?.find((c) => c.type === "ironlb.dev/IPAllocated");
}

/** Waits for the ironlb condition to have the given status (and reason, if given). */
export async function waitForCondition(
  namespace: string,
  name: string,
  status: "True" | "False",
  reason?: string,
  timeoutMs = 15_000,
) {
  return waitFor(
    `condition ${status}/${reason ?? "*"} on ${namespace}/${name}`,
    async () => {
      const c = allocatedCondition(await getService(namespace, name));
      return c && c.status === status && (!reason || c.reason === reason) ? c : undefined;
    },
    timeoutMs,
  );
}

/** Events recorded on an object. */
export async function eventsFor(namespace: string, name: string, kc = kubeConfig()) {
  const list = await clients(kc).core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.name=${name}`,
  });
  return list.items.map((e) => ({
    type: e.type,
    reason: e.reason ?? "",
    message: e.message ?? "",
    source: e.reportingComponent ?? "",
  }));
}

/** Waits for an Event with the given reason (and message part) on an object. */
export async function waitForEvent(
  namespace: string,
  name: string,
  reason: string,
  messagePart = "",
  timeoutMs = 15_000,
) {
  return waitFor(
    `event ${reason} on ${namespace}/${name}`,
    async () => {
      const ev = (await eventsFor(namespace, name)).find(
        (e) => e.reason === reason && e.message.includes(messagePart),
      );
      return ev;
    },
    timeoutMs,
  );
}

/** A component started as a real child process (`node bin/ironlb.js ...`). */
export interface Component {
  proc: ChildProcess;
  logFile: string;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Log lines so far, parsed. */
  logs(): Record<string, unknown>[];
}

let componentCounter = 0;
let componentLogs: string | undefined;
// Registered while the importing test file is collected, so it runs after that file.
afterAll(() => {
  if (componentLogs && !process.env.IRONLB_KEEP_LOGS)
    rmSync(componentLogs, { recursive: true, force: true });
  componentLogs = undefined;
});
/**
 * A folder for this test file's component logs, removed after its tests
 * (IRONLB_KEEP_LOGS=1 keeps it, for looking into a failure).
 */
function logDir(): string {
  if (componentLogs) return componentLogs;
  const dir = mkdtempSync(join(tmpdir(), "ironlb-logs-"));
  componentLogs = dir;
  if (!process.env.IRONLB_KEEP_LOGS)
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
/** Starts `ironlb <args>` with Node 24; output goes to a log file under the test's temp dir. */
export function startComponent(
  args: string[],
  env: Record<string, string> = {},
  wrap: string[] = [],
): Component {
  const logFile = join(logDir(), `${args[0]}-${++componentCounter}.log`);
  const out = createWriteStream(logFile);
  const node = process.execPath;
  const argv = [...wrap, node, join(repoRoot, "bin/ironlb.js"), ...args];
  const proc = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, LOG_LEVEL: "debug", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  proc.stdout!.pipe(out);
  proc.stderr!.pipe(out);
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return {
    proc,
    logFile,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
    logs() {
      return readFileSync(logFile, "utf8")
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

/** The port a component started with `--health-port 0` serves on (its "starting" line). */
export function healthPortOf(c: Component, timeoutMs?: number): Promise<number> {
  return waitFor(
    `the health port of ${c.logFile}`,
    async () => {
      const line = c.logs().find((l) => l.msg === "starting");
      return typeof line?.healthPort === "number" ? line.healthPort : undefined;
    },
    timeoutMs,
  );
}

/** Starts a controller against the test control plane. */
export function startController(
  extra: string[] = [],
  instance = `ctrl-${++componentCounter}`,
): Component {
  return startComponent([
    "controller",
    "--kubeconfig",
    inject("kubeconfig"),
    "--health-port",
    "0",
    "--health-address",
    "127.0.0.1",
    "--namespace",
    "default",
    "--instance",
    instance,
    ...extra,
  ]);
}

/**
 * Runs the `ironlb` command from the sources (`node bin/ironlb.js ARGS`) to its end, with
 * `input` on its stdin: its exit code (0 on success), stdout and stderr.
 */
export function runIronlb(
  args: string[],
  input = "",
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [join(repoRoot, "bin/ironlb.js"), ...args],
      { env: { ...process.env, IRONLB_FROM_SOURCE: "1" }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}
