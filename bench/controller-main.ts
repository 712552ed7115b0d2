// Controller figures against a real kube-apiserver + etcd, with TOTAL Services (10,000
// unless BENCH_SERVICES says otherwise):
//   - time to assign TOTAL Services from a cold start;
//   - controller RSS with TOTAL Services;
//   - time from Service create to status IP (p50, p99) with TOTAL Services present.
// Services are single-stack IPv6 from 2001:db8::/32 (no address range of the IPv4
// documentation blocks holds 10,000) and allocate no NodePorts. No traffic is sent.
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeClient } from "../src/k8s/client.ts";
import {
  freePort,
  startControlPlane,
  stopControlPlane,
} from "../test/controlplane/controlplane.ts";
import { installCRDs, kubeConfigFrom } from "../test/support/kube.ts";
import { percentile, rssMiB } from "./stats.ts";

const TOTAL = Number(process.env.BENCH_SERVICES ?? 10_000);
const SAMPLES = 200;
const root = join(import.meta.dirname, "..");

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

const state = await startControlPlane({
  dir: mkdtempSync(join(tmpdir(), "ironlb-bench-")),
  log: () => {},
});
const procs: ReturnType<typeof spawn>[] = [];
// The controller's log (warnings and errors only): kept when the run fails, for the error
// below names it; removed after a good run.
const log = join(tmpdir(), `ironlb-bench-controller-${process.pid}.log`);
let ok = false;
try {
  await installCRDs(kubeConfigFrom(state.kubeconfig));
  // The same client as the controller: client-node opens a TLS connection per request,
  // which would make creating 10,000 Services the slowest part of the benchmark.
  const api = KubeClient.load(state.kubeconfig);
  await api.create("/apis/ironlb.dev/v1beta1/ipaddresspools", {
    apiVersion: "ironlb.dev/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: "bench" },
    spec: { addresses: ["2001:db8:b::/112"] },
  });
  const body = (name: string) => ({
    metadata: { name },
    spec: {
      type: "LoadBalancer",
      ipFamilies: ["IPv6"],
      ipFamilyPolicy: "SingleStack",
      allocateLoadBalancerNodePorts: false,
      ports: [{ port: 80, protocol: "TCP" }],
      selector: { app: name },
    },
  });

  // Watch statuses: the time a Service first shows an IP, as clients see it.
  const assignedAt = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  type Svc = {
    metadata: { name: string; resourceVersion?: string };
    status?: { loadBalancer?: { ingress?: unknown[] } };
  };
  // The server ends a watch every few minutes: resume from the last version seen.
  let rv = "";
  let watch: ReturnType<typeof api.watch>;
  const startWatch = () => {
    watch = api.watch<Svc>(
      "/api/v1/namespaces/default/services",
      rv ? { resourceVersion: rv } : {},
      ({ object: obj }) => {
        rv = obj.metadata.resourceVersion ?? rv;
        if (
          (obj.status?.loadBalancer?.ingress?.length ?? 0) > 0 &&
          !assignedAt.has(obj.metadata.name)
        ) {
          assignedAt.set(obj.metadata.name, performance.now());
          waiters.get(obj.metadata.name)?.();
        }
      },
      (err) => {
        if (stopped) return;
        if (err) console.error(`watch: ${err.message}; resuming`);
        startWatch();
      },
    );
  };
  let stopped = false;
  startWatch();

  process.stdout.write(
    `creating ${TOTAL.toLocaleString("en")} Services before the controller starts... `,
  );
  const names = Array.from({ length: TOTAL }, (_, i) => `cold-${i}`);
  let t = performance.now();
  await pool(names, 32, (n) => api.create("/api/v1/namespaces/default/services", body(n)));
  console.log(`${((performance.now() - t) / 1000).toFixed(1)} s`);

  const logFd = openSync(log, "w");
  const healthPort = await freePort();
  const ctrl = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_NODE_ARGS?.split(" ").filter(Boolean) ?? []),
      join(root, "bin/ironlb.js"),
      "controller",
      "--kubeconfig",
      state.kubeconfig,
      "--no-leader-elect",
      "--health-port",
      String(healthPort),
      "--health-address",
      "127.0.0.1",
      "--concurrency",
      "32",
    ],
    { stdio: ["ignore", logFd, logFd], env: { ...process.env, LOG_LEVEL: "warn" } },
  );
  procs.push(ctrl);
  const start = performance.now();
  while (assignedAt.size < TOTAL) {
    if (ctrl.exitCode !== null) {
      const tail = readFileSync(log, "utf8").trim().split("\n").slice(-10).join("\n");
      throw new Error(`controller exited with ${ctrl.exitCode}; last lines of ${log}:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const coldS = (Math.max(...names.map((n) => assignedAt.get(n)!)) - start) / 1000;
  const rss = rssMiB(ctrl.pid!);
  const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
  const heapMiB = Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1]) / 2 ** 20;

  // Latency with the cluster already full of Services: one create at a time.
  const lat: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const name = `lat-${i}`;
    const seen = new Promise<void>((r) => waiters.set(name, r));
    t = performance.now();
    await api.create("/api/v1/namespaces/default/services", body(name));
    await seen;
    lat.push(assignedAt.get(name)! - t);
  }
  lat.sort((a, b) => a - b);
  stopped = true;
  watch!.abort();

  console.log(
    `Services present while measuring latency: ${TOTAL.toLocaleString("en")} to ${(TOTAL + SAMPLES).toLocaleString("en")}`,
  );
  console.log(`create -> status IP, p50: ${percentile(lat, 50).toFixed(1)} ms`);
  console.log(`create -> status IP, p99: ${percentile(lat, 99).toFixed(1)} ms (goal <= 100 ms)`);
  console.log(
    `cold start, ${TOTAL.toLocaleString("en")} Services assigned in: ${coldS.toFixed(1)} s (goal <= 30 s)`,
  );
  console.log(
    `controller RSS with ${TOTAL.toLocaleString("en")} Services: ${rss.toFixed(0)} MiB (goal <= 150 MiB); V8 heap in use ${heapMiB.toFixed(0)} MiB`,
  );
  ok = true;
} finally {
  for (const p of procs) {
    if (process.env.BENCH_HEAPSNAPSHOT) {
      p.kill("SIGUSR2"); // with BENCH_NODE_ARGS=--heapsnapshot-signal=SIGUSR2
      await new Promise((r) => setTimeout(r, 8000));
    }
    // SIGTERM first: a graceful exit lets --cpu-prof (BENCH_NODE_ARGS) write its profile.
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    p.kill("SIGKILL");
  }
  await stopControlPlane(state);
  if (ok) rmSync(log, { force: true });
}
