// ironlb as users run it, inside the real-cluster lab: the image imported on every node,
// `helm install` of charts/ironlb, a pool and an L2Advertisement, an echo Deployment with
// one pod per node behind two LoadBalancer Services (Cluster and Local), and the client's
// view of them. Shared by `npm run lab`, the cluster e2e test and the cluster benchmark.
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { repoRoot, sleep, waitFor } from "../support/kube.ts";
import { POOL_CIDR } from "./addresses.ts";
import type { RealCluster } from "./cluster.ts";
import { ECHO_IMAGE } from "./images.ts";

export const NAMESPACE = "ironlb-system";
export const RELEASE = "ironlb";
export const APP_NAMESPACE = "default";
export const CLUSTER_SVC = "echo-cluster";
export const LOCAL_SVC = "echo-local";

/** What the echo server answered: the pod, its node, and the client address the pod saw. */
export interface EchoAnswer {
  pod: string;
  node: string;
  client: string;
}

export function parseEcho(body: string | undefined): EchoAnswer | undefined {
  const m = body?.match(/^pod=(\S+) node=(\S+) client=(\S+)$/);
  return m ? { pod: m[1]!, node: m[2]!, client: m[3]! } : undefined;
}

/**
 * Imports ironlb's image on every node and installs the chart with it; waits until Ready.
 * `valuesFiles` are passed with `-f` (e.g. the BGP mode values of router.ts).
 */
export async function installIronlb(
  c: RealCluster,
  image: { archive: string; tag: string },
  extraValues: string[] = [],
  importImage = true,
  valuesFiles: string[] = [],
): Promise<void> {
  if (importImage) await Promise.all(c.nodes.map((n) => c.importImage(n, image.archive)));
  await c.helm([
    "install",
    RELEASE,
    join(repoRoot, "charts/ironlb"),
    "--namespace",
    NAMESPACE,
    "--create-namespace",
    "--set",
    "image.repository=localhost/ironlb",
    "--set",
    `image.tag=${image.tag}`,
    "--set",
    "image.pullPolicy=Never",
    ...valuesFiles.flatMap((f) => ["-f", f]),
    ...extraValues.flatMap((v) => ["--set", v]),
    "--wait",
    "--timeout",
    "120s",
  ]);
}

/** A pool over POOL_CIDR announced on the nodes' LAN interface. */
export async function createPool(c: RealCluster): Promise<void> {
  await c.kubectl(
    ["apply", "-f", "-"],
    `apiVersion: ironlb.dev/v1beta1
kind: IPAddressPool
metadata:
  name: lab
spec:
  addresses: [${POOL_CIDR}]
---
apiVersion: ironlb.dev/v1beta1
kind: L2Advertisement
metadata:
  name: lab
spec:
  ipAddressPools: [lab]
  # eth0 is the LAN; cni0 and the pods' veths are not.
  interfaces: [eth0]
`,
  );
}

/**
 * Chart values that probe /readyz every second instead of every 5 s: a rollout replaces the
 * speakers one node at a time and waits for each new pod's first successful probe, which
 * otherwise comes up to 5 s after the pod is ready (the cluster e2e test rolls often).
 */
export const READINESS_VALUES = [
  "speaker.readinessPeriodSeconds=1",
  "controller.readinessPeriodSeconds=1",
];

/** The echo Deployment (one pod per node) and its two LoadBalancer Services. */
export async function deployEcho(c: RealCluster, replicas = c.nodes.length): Promise<void> {
  const svc = (name: string, policy: string) => `---
apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${APP_NAMESPACE}
spec:
  type: LoadBalancer
  externalTrafficPolicy: ${policy}
  selector: { app: echo }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;
  await c.kubectl(
    ["apply", "-f", "-"],
    `apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: ${APP_NAMESPACE}
spec:
  replicas: ${replicas}
  selector: { matchLabels: { app: echo } }
  template:
    metadata:
      labels: { app: echo }
    spec:
      # One pod per node: Cluster reaches all of them, Local only the announcing node's.
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: DoNotSchedule
          labelSelector: { matchLabels: { app: echo } }
      terminationGracePeriodSeconds: 1
      containers:
        - name: echo
          image: ${ECHO_IMAGE}
          imagePullPolicy: Never
          env:
            - { name: POD_NAME, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
            - { name: NODE_NAME, valueFrom: { fieldRef: { fieldPath: spec.nodeName } } }
          ports: [{ containerPort: 8080 }]
          readinessProbe:
            httpGet: { path: /, port: 8080 }
            periodSeconds: 1
${svc(CLUSTER_SVC, "Cluster")}${svc(LOCAL_SVC, "Local")}`,
  );
  await c.kubectl(["rollout", "status", "-n", APP_NAMESPACE, "deployment/echo", "--timeout=90s"]);
}

/** The Service's assigned external IP, once the controller wrote it. */
export async function waitExternalIP(
  c: RealCluster,
  svc: string,
  timeoutMs = 30_000,
): Promise<string> {
  return waitFor(
    `an external IP for ${APP_NAMESPACE}/${svc}`,
    async () => {
      const ip = await c.kubectl([
        "get",
        "svc",
        "-n",
        APP_NAMESPACE,
        svc,
        "-o",
        "jsonpath={.status.loadBalancer.ingress[0].ip}",
      ]);
      return ip.trim() || undefined;
    },
    timeoutMs,
    100,
  );
}

/**
 * The node ironlb says announces the Service: the IPAnnouncement the speakers keep for the
 * Service's first IP (what `ironlb status` and `kubectl get ipannouncements` show).
 */
export async function announcingNode(c: RealCluster, svc: string): Promise<string | undefined> {
  const ip = (
    await c.kubectl([
      "get",
      "svc",
      "-n",
      APP_NAMESPACE,
      svc,
      "-o",
      "jsonpath={.status.loadBalancer.ingress[0].ip}",
    ])
  ).trim();
  if (ip === "") return undefined;
  const list = JSON.parse(await c.kubectl(["get", "ipannouncements", "-o", "json"])) as {
    items: Array<{ status?: { ip?: string; node?: string } }>;
  };
  return list.items.find((a) => a.status?.ip === ip)?.status?.node;
}

/** One GET from the LAN client to `ip`, parsed; undefined when nothing answered in time. */
export async function clientEcho(
  c: RealCluster,
  ip: string,
  timeoutMs = 1000,
): Promise<EchoAnswer | undefined> {
  return parseEcho(await c.clientGet(`http://${ip}/`, timeoutMs));
}

/** The first answer from `ip` (kube-proxy may still be syncing right after a rollout). */
export async function waitAnswer(
  c: RealCluster,
  ip: string,
  timeoutMs = 30_000,
): Promise<EchoAnswer> {
  return waitFor(
    `an answer from http://${ip}/ at the client`,
    () => clientEcho(c, ip, 500),
    timeoutMs,
    50,
  );
}

/** `count` GETs from the client (each a new connection); the answers. */
export async function sample(c: RealCluster, ip: string, count: number): Promise<EchoAnswer[]> {
  const out: EchoAnswer[] = [];
  for (let i = 0; i < count; i++) {
    const a = await clientEcho(c, ip);
    if (a) out.push(a);
  }
  return out;
}

/** Name of the speaker pod on `node`. */
export async function speakerPod(c: RealCluster, node: string): Promise<string> {
  const out = await c.kubectl([
    "get",
    "pods",
    "-n",
    NAMESPACE,
    "-l",
    "app.kubernetes.io/component=speaker",
    "--field-selector",
    `spec.nodeName=${node}`,
    "-o",
    "jsonpath={.items[0].metadata.name}",
  ]);
  if (!out.trim()) throw new Error(`no speaker pod on ${node}`);
  return out.trim();
}

/** Waits until every speaker pod is Ready (after a delete, the DaemonSet makes a new one). */
export async function waitSpeakersReady(c: RealCluster, timeoutMs = 60_000): Promise<void> {
  await c.kubectl([
    "rollout",
    "status",
    "-n",
    NAMESPACE,
    `daemonset/${RELEASE}-speaker`,
    `--timeout=${Math.round(timeoutMs / 1000)}s`,
  ]);
  await waitFor(
    "every speaker pod Ready",
    async () => {
      const out = await c.kubectl([
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        "app.kubernetes.io/component=speaker",
        "-o",
        "jsonpath={range .items[*]}{.metadata.deletionTimestamp}/{.status.conditions[?(@.type=='Ready')].status}{'\\n'}{end}",
      ]);
      const lines = out.trim().split("\n");
      return lines.length === c.nodes.length && lines.every((l) => l === "/True");
    },
    timeoutMs,
    200,
  );
}

export interface Failover {
  /** Milliseconds from the fault to the first answer through another node. */
  ms: number;
  from: string;
  to: string;
}

/**
 * Times a failover as the LAN client lives it: `fault` is applied to the node that carries
 * the Local Service's traffic, then the client GETs the IP until a pod on another node
 * answers (with `Local`, only the announcing node's own pod answers).
 */
export async function timeFailover(
  c: RealCluster,
  ip: string,
  fault: (node: string) => Promise<void>,
  timeoutMs = 30_000,
): Promise<Failover> {
  const before = await waitAnswer(c, ip, 10_000);
  const t0 = performance.now();
  await fault(before.node);
  for (;;) {
    const a = await clientEcho(c, ip, 300);
    if (a && a.node !== before.node)
      return { ms: performance.now() - t0, from: before.node, to: a.node };
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`no node other than ${before.node} answered ${ip} within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/**
 * Follows the log of `node`'s speaker pod (`kubectl logs -f`) until its container ends:
 * `attached` resolves with the first line, `ended` when the stream closes; `lines()` are
 * the pino records so far.
 */
export async function followSpeakerLog(
  c: RealCluster,
  node: string,
): Promise<{ attached: Promise<void>; ended: Promise<void>; lines(): Record<string, unknown>[] }> {
  const pod = await speakerPod(c, node);
  const p = spawn(
    c.kubectlBin,
    ["--kubeconfig", c.kubeconfig, "logs", "-f", "-n", NAMESPACE, pod],
    {
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
  const records: Record<string, unknown>[] = [];
  let onFirst: () => void = () => {};
  const attached = new Promise<void>((r) => {
    onFirst = r;
  });
  createInterface({ input: p.stdout! }).on("line", (line) => {
    try {
      records.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // not a log record
    }
    onFirst();
  });
  const ended = new Promise<void>((r) => p.once("close", () => r()));
  return { attached, ended, lines: () => records };
}

/** Deletes the speaker pod of `node` (the DaemonSet replaces it). */
export async function deleteSpeakerPod(c: RealCluster, node: string): Promise<void> {
  const pod = await speakerPod(c, node);
  await c.kubectl(["delete", "pod", "-n", NAMESPACE, pod, "--wait=false"]);
}

/** A node loss: SIGKILL to the node's kubelet and its speaker process. */
export async function loseNode(c: RealCluster, node: string): Promise<void> {
  await c.killKubelet(node);
  // The speaker container's process: `ironlb speaker ...` (argv has the subcommand).
  const speakers = await c.nodeProcesses(node, (argv) => argv.includes("speaker"));
  if (speakers.length === 0) throw new Error(`no speaker process found on ${node}`);
  for (const pid of speakers) process.kill(pid, "SIGKILL");
}
