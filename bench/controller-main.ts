// Controller figures against a real kube-apiserver + etcd, for ironlb and, as the peer,
// MetalLB v0.15.2's controller (built from its Go module by bench/metallb/build.sh and run
// out of cluster with --webhook-mode=disabled), one after the other, each on a fresh
// control plane with the same workload:
//   1. 1,000 Services exist, the controller starts: time until all have an IP; RSS idle;
//   2. controller stopped, 9,000 more created, controller started again: cold start with
//      10,000 present, 1,000 of them assigned (time until all have an IP, API writes it
//      made); RSS idle;
//   3. create -> IP latency with 10,000 present: back to back (one create at a time), then
//      paced (one create every 300 ms, not waiting for the previous);
//   4. RSS after that.
// Then, once, the ceiling: status writes per second the same control plane accepts from a
// minimal client (merge patches of status, 32 in flight), to express cold starts as a
// fraction of it.
// Services are single-stack IPv6 from 2001:db8::/32 (no IPv4 documentation block holds
// 10,000) and allocate no NodePorts. No traffic is sent.
// BENCH_CONTROLLERS=ironlb (or metallb) runs one; BENCH_SERVICES changes 10,000;
// BENCH_SAMPLES changes the 200 creates of each latency profile. BENCH_TRACE=1 runs ironlb
// with debug logs and splits each paced create -> IP into its steps (create call, watch
// event at the controller, status patch sent and answered, watch event at the bench).
// ironlb runs as the image and chart run it: compiled to JavaScript, with the node flags
// of the controller Deployment's `command` (else the Dockerfile's ENTRYPOINT) and the
// variables of the Dockerfile's ENV lines (bench/compile.ts reads them from those files). BENCH_FROM_SOURCE=1 runs the TypeScript sources instead, without
// those flags; BENCH_NODE_ARGS replaces the flags (e.g. to try others, or add --trace-gc).
// BENCH_ANNOUNCE=realistic also gives ironlb's Announceable condition a healthy cluster to
// judge: three Ready Nodes with live speaker Leases (renewed every 5 s), an L2Advertisement
// for the pool and, for every Service, an EndpointSlice with a ready endpoint (created right
// after the Service, as the EndpointSlice controller would): most Services announceable, no
// condition written. Without it (the default) there is no Node and no advertisement, so every
// Service is judged not announceable and gets the condition written: the worst case.
// BENCH_SHORT=1 skips the 1,000-Service cold start and the ceiling: all Services are created,
// then the controller starts with none assigned. BENCH_LOCK=FILE holds that flock(1) lock
// (e.g. /tmp/ironlb-e2e.lock) only while measuring (cold start to the last paced create), not
// while creating the objects.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { loadAll } from "js-yaml";
import { KubeClient } from "../src/k8s/client.ts";
import {
  freePort,
  startControlPlane,
  stopControlPlane,
} from "../test/controlplane/controlplane.ts";
import { installCRDs, kubeConfigFrom } from "../test/support/kube.ts";
import { compileToJs, imageRuntime } from "./compile.ts";
import { percentile, rssMiB, rssParts } from "./stats.ts";

const TOTAL = Number(process.env.BENCH_SERVICES ?? 10_000);
const short = process.env.BENCH_SHORT === "1";
const FIRST = short ? 0 : Math.min(1_000, TOTAL);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const PACE_MS = 300;
const root = join(import.meta.dirname, "..");
const impls = (process.env.BENCH_CONTROLLERS ?? "ironlb,metallb").split(",");
const fromSource = process.env.BENCH_FROM_SOURCE === "1";
const compiled = fromSource ? undefined : compileToJs();
const image = fromSource ? { nodeArgs: [], env: {} } : imageRuntime();
const nodeArgs =
  process.env.BENCH_NODE_ARGS !== undefined
    ? process.env.BENCH_NODE_ARGS.split(" ").filter(Boolean)
    : image.nodeArgs;
process.on("exit", () => compiled && rmSync(compiled, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const trace = process.env.BENCH_TRACE === "1";
const realistic = process.env.BENCH_ANNOUNCE === "realistic";
if (!["realistic", "worst", undefined].includes(process.env.BENCH_ANNOUNCE))
  throw new Error(`BENCH_ANNOUNCE is realistic or worst, not "${process.env.BENCH_ANNOUNCE}"`);
/** Where the bench's ironlb controller reads the speakers' Leases (its --namespace). */
const LEASE_NS = "ironlb-system";
const NODES = ["bench-0", "bench-1", "bench-2"];
/** Wall-clock ms with sub-ms precision, comparable with the controller's (same host). */
const epochMs = () => performance.timeOrigin + performance.now();
/** The controller's "status written" traces by Service name (BENCH_TRACE). */
const traces = new Map<string, { eventAt?: number; sentAt: number; answeredAt: number }>();

async function pool<T>(items: T[], width: number, fn: (t: T) => Promise<unknown>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (i < items.length) await fn(items[i++]!);
    }),
  );
}

interface Figures {
  cold1k: number;
  rss1k: number;
  /** RSS 30 s after the cold start finished: idle steady state. */
  rss1kSteady: number;
  cold: number;
  coldWrites: Record<string, number>;
  rss: number;
  rssSteady: number;
  latSerial: number[];
  latPaced: number[];
  rssAfter: number;
  heapMiB?: number;
}

interface Impl {
  name: string;
  installCRDs(api: KubeClient, kubeconfig: string): Promise<void>;
  createPool(api: KubeClient): Promise<void>;
  start(kubeconfig: string, port: number): ChildProcess;
}

const ironlb: Impl = {
  name: fromSource ? "ironlb (sources)" : "ironlb",
  installCRDs: async (_api, kubeconfig) => installCRDs(kubeConfigFrom(kubeconfig)),
  createPool: async (api) => {
    await api.create("/apis/ironlb.dev/v1beta1/ipaddresspools", {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "bench" },
      spec: { addresses: ["2001:db8:b::/112"] },
    });
  },
  start: (kubeconfig, port) => {
    const p = spawn(
      process.execPath,
      [
        ...nodeArgs,
        compiled ? join(compiled, "ironlb.js") : join(root, "bin/ironlb.js"),
        "controller",
        "--kubeconfig",
        kubeconfig,
        "--no-leader-elect",
        "--health-port",
        String(port),
        "--health-address",
        "127.0.0.1",
        "--concurrency",
        "32",
        "--namespace",
        LEASE_NS,
      ],
      {
        // Node's own traces (--trace-gc) go to stdout: keep it when asked for them.
        stdio: [
          "ignore",
          trace ? "pipe" : process.env.BENCH_NODE_ARGS ? "inherit" : "ignore",
          "inherit",
        ],
        // With BENCH_FROM_SOURCE, the sources: a dist/ left in the tree must not change that.
        env: {
          ...process.env,
          ...image.env,
          LOG_LEVEL: trace ? "debug" : "warn",
          IRONLB_FROM_SOURCE: "1",
        },
      },
    );
    if (trace)
      createInterface({ input: p.stdout! }).on("line", (line) => {
        if (!line.includes('"status written"')) return;
        const t = JSON.parse(line) as {
          service: string;
          eventAt?: number;
          sentAt: number;
          answeredAt: number;
        };
        const name = t.service.slice(t.service.indexOf("/") + 1);
        if (name.startsWith("paced-")) traces.set(name, t);
      });
    return p;
  },
};

function metallb(): Impl {
  const r = spawnSync("bash", [join(root, "bench/metallb/build.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (r.status !== 0) throw new Error("building MetalLB's controller failed (see above)");
  const [bin, moduleDir] = r.stdout.trim().split("\n") as [string, string];
  const ns = "metallb-system";
  return {
    name: "MetalLB 0.15.2",
    installCRDs: async (api) => {
      // Its own CRDs, from the module it was built from.
      const dir = join(moduleDir, "config/crd/bases");
      for (const f of readdirSync(dir).filter((x) => x.endsWith(".yaml"))) {
        for (const doc of loadAll(readFileSync(join(dir, f), "utf8"))) {
          if (doc) await api.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", doc);
        }
      }
      await api.create("/api/v1/namespaces", { metadata: { name: ns } });
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await api.get(`/apis/metallb.io/v1beta1/namespaces/${ns}/ipaddresspools`);
          await api.get(`/apis/metallb.io/v1beta1/namespaces/${ns}/l2advertisements`);
          break;
        } catch (err) {
          if (Date.now() > deadline) throw err;
          await sleep(200);
        }
      }
    },
    createPool: async (api) => {
      await api.create(`/apis/metallb.io/v1beta1/namespaces/${ns}/ipaddresspools`, {
        apiVersion: "metallb.io/v1beta1",
        kind: "IPAddressPool",
        metadata: { name: "bench", namespace: ns },
        spec: { addresses: ["2001:db8:b::/112"] },
      });
    },
    start: (kubeconfig, port) =>
      spawn(
        bin,
        ["--webhook-mode=disabled", `--namespace=${ns}`, `--port=${port}`, "--log-level=warn"],
        { stdio: ["ignore", "ignore", "ignore"], env: { ...process.env, KUBECONFIG: kubeconfig } },
      ),
  };
}

/** ironlb's GC pause counts so far, from its metrics (nodejs_gc_duration_seconds). */
async function gcPauses(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  const add = (k: string, v: number) => out.set(k, (out.get(k) ?? 0) + v);
  for (const m of text.matchAll(
    /^nodejs_gc_duration_seconds_(count|sum|bucket)\{([^}]*)\} (\S+)$/gm,
  )) {
    const v = Number(m[3]);
    const kind = /kind="(\w+)"/.exec(m[2]!)?.[1] ?? "";
    const le = /le="([^"]+)"/.exec(m[2]!)?.[1];
    if (m[1] === "count") {
      add("all", v);
      if (kind === "major") add("major", v);
    } else if (m[1] === "sum") add("seconds", v);
    else if (le === "0.01") add("under10ms", v);
    else if (le === "0.1") add("under100ms", v);
  }
  out.set("over10ms", (out.get("all") ?? 0) - (out.get("under10ms") ?? 0));
  out.set("over100ms", (out.get("all") ?? 0) - (out.get("under100ms") ?? 0));
  return out;
}

/** ironlb's V8 heap (used / committed) and external memory, from its metrics: where RSS is. */
async function memoryParts(port: number): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const get = (n: string) =>
    (Number(new RegExp(`^${n} (\\S+)`, "m").exec(text)?.[1]) / 2 ** 20).toFixed(1);
  return `V8 heap used ${get("nodejs_heap_size_used_bytes")} MiB of ${get("nodejs_heap_size_total_bytes")} MiB committed, external ${get("nodejs_external_memory_bytes")} MiB, RSS ${get("process_resident_memory_bytes")} MiB`;
}

/** Write requests the apiserver served, per verb and resource (its own metrics). */
async function writeCounts(api: KubeClient): Promise<Map<string, number>> {
  const text = String(await api.request<string>("GET", "/metrics"));
  const out = new Map<string, number>();
  const re = /^apiserver_request_total\{([^}]*)\} (\S+)$/gm;
  for (const m of text.matchAll(re)) {
    const labels = Object.fromEntries(
      [...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    if (!["POST", "PUT", "PATCH", "DELETE"].includes(labels.verb ?? "")) continue;
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? `/${labels.subresource}` : ""}`;
    out.set(key, (out.get(key) ?? 0) + Number(m[2]));
  }
  return out;
}

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

/** A ready endpoint on the first node, as the EndpointSlice controller would write it. */
const sliceBody = (name: string) => ({
  metadata: { name: `${name}-1`, labels: { "kubernetes.io/service-name": name } },
  addressType: "IPv6",
  endpoints: [{ addresses: ["2001:db8:e::1"], conditions: { ready: true }, nodeName: NODES[0] }],
  ports: [{ port: 80, protocol: "TCP" }],
});

/**
 * BENCH_ANNOUNCE=realistic: Ready Nodes, live speaker Leases (renewed every 5 s as the
 * speakers do, until the returned function is called) and an L2Advertisement for the pool.
 */
async function healthyCluster(api: KubeClient): Promise<() => void> {
  await api.create("/api/v1/namespaces", { metadata: { name: LEASE_NS } });
  for (const n of NODES) {
    await api.create("/api/v1/nodes", { metadata: { name: n, labels: {} } });
    await api.mergePatch(`/api/v1/nodes/${n}/status`, {
      status: { conditions: [{ type: "Ready", status: "True", reason: "Bench", message: "" }] },
    });
  }
  await api.create("/apis/ironlb.dev/v1beta1/l2advertisements", {
    apiVersion: "ironlb.dev/v1beta1",
    kind: "L2Advertisement",
    metadata: { name: "bench" },
    spec: { ipAddressPools: ["bench"] },
  });
  const leases = `/apis/coordination.k8s.io/v1/namespaces/${LEASE_NS}/leases`;
  const now = () => new Date().toISOString().replace("Z", "000Z");
  for (const n of NODES)
    await api.create(leases, {
      metadata: { name: `ironlb-speaker-${n}`, labels: { "ironlb.dev/speaker": "true" } },
      spec: { holderIdentity: n, leaseDurationSeconds: 15, renewTime: now() },
    });
  const renew = setInterval(() => {
    for (const n of NODES)
      void api
        .mergePatch(`${leases}/ironlb-speaker-${n}`, { spec: { renewTime: now() } })
        .catch((err: Error) => console.error(`renewing ${n}'s Lease: ${err.message}`));
  }, 5000);
  return () => clearInterval(renew);
}

/** Takes BENCH_LOCK's lock (waiting for it); the function returned releases it. */
async function lock(): Promise<() => void> {
  const file = process.env.BENCH_LOCK;
  if (!file) return () => {};
  const t = performance.now();
  // flock holds the lock while its shell waits on stdin: closing it (or our exit) releases.
  const p = spawn("flock", [file, "sh", "-c", "echo locked; read x"], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  await new Promise((resolve, reject) => {
    p.stdout!.once("data", resolve);
    p.once("exit", (code) => reject(new Error(`flock ${file} exited with ${code}`)));
  });
  console.log(`  took ${file} after ${((performance.now() - t) / 1000).toFixed(1)} s`);
  return () => p.stdin!.end();
}

async function run(impl: Impl, measureCeiling: boolean): Promise<{ f: Figures; ceiling?: number }> {
  console.log(`\n-- ${impl.name}${realistic ? " (BENCH_ANNOUNCE=realistic)" : ""}`);
  const dir = mkdtempSync(join(tmpdir(), "ironlb-bench-"));
  const state = await startControlPlane({ dir, log: () => {} });
  let ctrl: ChildProcess | undefined;
  const stopCtrl = async () => {
    const p = ctrl;
    ctrl = undefined;
    if (p === undefined || p.exitCode !== null) return;
    if (process.env.BENCH_HEAPSNAPSHOT && impl === ironlb) {
      p.kill("SIGUSR2"); // with BENCH_NODE_ARGS=--heapsnapshot-signal=SIGUSR2
      await sleep(8000);
    }
    // SIGTERM first: a graceful exit lets --cpu-prof (BENCH_NODE_ARGS) write its profile.
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await Promise.race([exited, sleep(5000)]);
    p.kill("SIGKILL");
  };
  let stopped = false;
  let watch: ReturnType<KubeClient["watch"]> | undefined;
  let stopRenewing = () => {};
  let unlock = () => {};
  try {
    const api = KubeClient.load(state.kubeconfig);
    await impl.installCRDs(api, state.kubeconfig);
    await impl.createPool(api);
    if (realistic) stopRenewing = await healthyCluster(api);
    const slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
    const createSlice = (name: string) =>
      realistic ? api.create(slices, sliceBody(name)) : Promise.resolve();
    const sliceWrites: Promise<unknown>[] = [];

    // Watch statuses: the time a Service first shows an IP, as clients see it.
    const assignedAt = new Map<string, number>();
    const waiters = new Map<string, () => void>();
    type Svc = {
      metadata: { name: string; resourceVersion?: string };
      status?: {
        loadBalancer?: { ingress?: unknown[] };
        conditions?: { type: string; status: string }[];
      };
    };
    /** Services whose ironlb.dev/Announceable condition is False (what the judge said). */
    const unannounceable = new Set<string>();
    let rv = "";
    const startWatch = () => {
      watch = api.watch<Svc>(
        "/api/v1/namespaces/default/services",
        rv ? { resourceVersion: rv } : {},
        ({ object: obj }) => {
          rv = obj.metadata.resourceVersion ?? rv;
          const c = obj.status?.conditions?.find((x) => x.type === "ironlb.dev/Announceable");
          if (c?.status === "False") unannounceable.add(obj.metadata.name);
          else unannounceable.delete(obj.metadata.name);
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
    startWatch();
    const create = (names: string[]) =>
      pool(names, 32, (n) =>
        Promise.all([api.create("/api/v1/namespaces/default/services", body(n)), createSlice(n)]),
      );
    const port = await freePort();
    /** Starts the controller and waits until every one of `names` has an IP: seconds. */
    let started = 0;
    const coldStart = async (names: string[]) => {
      const start = performance.now();
      started = start;
      ctrl = impl.start(state.kubeconfig, port);
      const p = ctrl;
      while (names.some((n) => !assignedAt.has(n))) {
        if (p.exitCode !== null) throw new Error(`${impl.name} exited with ${p.exitCode}`);
        await sleep(100);
      }
      return (Math.max(...names.map((n) => assignedAt.get(n)!)) - start) / 1000;
    };
    /** RSS 5 s after the burst (what it keeps, not what it peaked at) and 30 s after. */
    const idleRss = async (): Promise<[number, number]> => {
      const done = performance.now();
      await sleep(5000);
      const at5 = rssMiB(ctrl!.pid!);
      const parts = rssParts(ctrl!.pid!);
      console.log(
        `  5 s after: RSS file-backed ${parts.file.toFixed(1)} MiB, malloc heap ${parts.heap.toFixed(1)} MiB, other anonymous ${parts.anon.toFixed(1)} MiB${impl === ironlb ? `; ${await memoryParts(port)}` : ""}`,
      );
      await sleep(Math.max(0, done + 30_000 - performance.now()));
      return [at5, rssMiB(ctrl!.pid!)];
    };

    let t = 0;
    const first = Array.from({ length: FIRST }, (_, i) => `cold-${i}`);
    const all = Array.from({ length: TOTAL }, (_, i) => `cold-${i}`);
    let [cold1k, rss1k, rss1kSteady] = [Number.NaN, Number.NaN, Number.NaN];
    if (FIRST > 0) {
      t = performance.now();
      await create(first);
      console.log(`  created ${FIRST} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      unlock = await lock();
      cold1k = await coldStart(first);
      [rss1k, rss1kSteady] = await idleRss();
      console.log(
        `  ${FIRST} Services: all have an IP after ${cold1k.toFixed(1)} s; RSS ${rss1k.toFixed(0)} MiB 5 s after, ${rss1kSteady.toFixed(0)} MiB 30 s after`,
      );
      await stopCtrl();
      unlock();
    }

    t = performance.now();
    await create(all.slice(FIRST));
    console.log(
      `  created ${TOTAL - FIRST} more in ${((performance.now() - t) / 1000).toFixed(1)} s`,
    );
    unlock = await lock();
    const w0 = await writeCounts(api);
    const cold = await coldStart(all);
    const w1 = await writeCounts(api);
    const coldWrites: Record<string, number> = {};
    for (const [k, v] of w1) {
      const d = v - (w0.get(k) ?? 0);
      if (d > 0) coldWrites[k] = d;
    }
    const [rss, rssSteady] = await idleRss();
    console.log(
      `  cold start of ${TOTAL}: ${cold.toFixed(1)} s; writes ${JSON.stringify(coldWrites)}; RSS ${rss.toFixed(0)} MiB 5 s after, ${rssSteady.toFixed(0)} MiB 30 s after`,
    );

    const latSerial: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const name = `lat-${i}`;
      const seen = new Promise<void>((r) => waiters.set(name, r));
      t = performance.now();
      await api.create("/api/v1/namespaces/default/services", body(name));
      sliceWrites.push(createSlice(name));
      await seen;
      latSerial.push(assignedAt.get(name)! - t);
    }
    const gc0 = impl === ironlb ? await gcPauses(port) : undefined;
    const latPaced: number[] = [];
    const pacedAt = new Map<string, { createAt: number; createdAt: number }>();
    const paced: Promise<void>[] = [];
    const p0 = performance.now();
    for (let i = 0; i < SAMPLES; i++) {
      await sleep(Math.max(0, p0 + i * PACE_MS - performance.now()));
      const name = `paced-${i}`;
      const seen = new Promise<void>((r) => waiters.set(name, r));
      const t0 = performance.now();
      paced.push(
        api
          .create("/api/v1/namespaces/default/services", body(name))
          .then(() => {
            sliceWrites.push(createSlice(name));
            pacedAt.set(name, { createAt: performance.timeOrigin + t0, createdAt: epochMs() });
            return seen;
          })
          .then(() => {
            latPaced.push(assignedAt.get(name)! - t0);
          }),
      );
    }
    await Promise.all(paced);
    await Promise.all(sliceWrites);
    if (trace && impl === ironlb) printTrace(pacedAt, assignedAt);
    if (gc0) {
      const gc1 = await gcPauses(port);
      const d = (k: string) => (gc1.get(k) ?? 0) - (gc0.get(k) ?? 0);
      console.log(
        `  GC during the paced creates: ${d("all")} collections (${d("major")} major), ${d("over10ms")} took over 10 ms, ${d("over100ms")} over 100 ms; ${(d("seconds") * 1000).toFixed(0)} ms in all`,
      );
    }
    // To line up with the controller's own traces (--trace-gc prints ms since it started).
    console.log(
      `  paced creates ran from ${((p0 - started) / 1000).toFixed(1)} s to ${((performance.now() - started) / 1000).toFixed(1)} s after the controller started`,
    );
    if (impl === ironlb)
      console.log(
        `  Services with ironlb.dev/Announceable=False after the latency runs: ${unannounceable.size} of ${assignedAt.size}`,
      );
    const rssAfter = rssMiB(ctrl!.pid!);
    let heapMiB: number | undefined;
    if (impl === ironlb) {
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      heapMiB = Number(/^nodejs_heap_size_used_bytes (\S+)/m.exec(metrics)?.[1]) / 2 ** 20;
    }
    await stopCtrl();
    unlock();

    let ceiling: number | undefined;
    if (measureCeiling && !short) ceiling = await statusWriteCeiling(api);
    stopped = true;
    watch?.abort();
    return {
      f: {
        cold1k,
        rss1k,
        rss1kSteady,
        cold,
        coldWrites,
        rss,
        rssSteady,
        latSerial,
        latPaced,
        rssAfter,
        heapMiB,
      },
      ceiling,
    };
  } finally {
    unlock();
    stopped = true;
    stopRenewing();
    watch?.abort();
    await stopCtrl();
    await stopControlPlane(state);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Where the time of each paced create -> IP went (BENCH_TRACE): percentiles per step. */
function printTrace(
  pacedAt: Map<string, { createAt: number; createdAt: number }>,
  assignedAt: Map<string, number>,
): void {
  const steps: Record<string, number[]> = {
    "create call answered": [],
    "create call -> watch event at the controller": [],
    "watch event -> status patch sent (queue, reconcile)": [],
    "status patch sent -> answered": [],
    "status patch answered -> watch event at the bench": [],
    "create -> IP seen (total)": [],
  };
  const rows: string[] = [];
  for (const [name, b] of pacedAt) {
    const t = traces.get(name);
    const seen = assignedAt.get(name);
    if (!t || t.eventAt === undefined || seen === undefined) continue;
    const seenAt = performance.timeOrigin + seen;
    const parts = [
      b.createdAt - b.createAt,
      t.eventAt - b.createAt,
      t.sentAt - t.eventAt,
      t.answeredAt - t.sentAt,
      seenAt - t.answeredAt,
      seenAt - b.createAt,
    ];
    for (const [i, xs] of Object.values(steps).entries()) xs.push(parts[i]!);
    rows.push(`${name}: ${parts.map((x) => x.toFixed(1)).join(" / ")}`);
  }
  console.log(`  trace of ${rows.length} paced creates (ms): step | p50 | p90 | p99 | max`);
  for (const [step, xs] of Object.entries(steps))
    console.log(
      `    ${step} | ${[50, 90, 99, 100].map((q) => percentile(xs, q).toFixed(1)).join(" | ")}`,
    );
  const total = steps["create -> IP seen (total)"]!;
  const slow = rows
    .map((r, i) => [total[i]!, r] as const)
    .sort((a, b) => b[0] - a[0])
    .slice(0, 5);
  console.log("  slowest (steps in the order above):");
  for (const [, r] of slow) console.log(`    ${r}`);
}

/**
 * Status writes per second the control plane accepts from a minimal client: merge patches
 * of `status.loadBalancer` on Services no controller touches, 32 in flight (the
 * controllers' own concurrency), on the same machine and apiserver.
 */
async function statusWriteCeiling(api: KubeClient): Promise<number> {
  await api.create("/api/v1/namespaces", { metadata: { name: "ceiling" } });
  const names = Array.from({ length: 2000 }, (_, i) => `w-${i}`);
  await pool(names, 32, (n) => api.create("/api/v1/namespaces/ceiling/services", body(n)));
  let i = 0;
  const t0 = performance.now();
  await pool(names, 32, (n) =>
    api.mergePatch(`/api/v1/namespaces/ceiling/services/${n}/status`, {
      status: {
        loadBalancer: {
          ingress: [{ ip: `2001:db8:c::${(i++).toString(16)}`, ipMode: "VIP" }],
        },
      },
    }),
  );
  return names.length / ((performance.now() - t0) / 1000);
}

const results: Array<[string, Figures]> = [];
let ceiling: number | undefined;
for (const name of impls) {
  const impl = name === "ironlb" ? ironlb : name === "metallb" ? metallb() : undefined;
  if (impl === undefined) throw new Error(`unknown controller "${name}": ironlb or metallb`);
  const r = await run(impl, ceiling === undefined);
  ceiling ??= r.ceiling;
  results.push([impl.name, r.f]);
}

const p = (xs: number[], q: number) => percentile(xs, q);
const rows: Array<[string, (f: Figures) => number, string, string]> = [
  [`cold start, ${TOTAL.toLocaleString("en")} Services → all have an IP`, (f) => f.cold, "s", ""],
  [
    `create → IP p50, back to back, ${TOTAL.toLocaleString("en")} present`,
    (f) => p(f.latSerial, 50),
    "ms",
    "",
  ],
  [`create → IP p99, back to back`, (f) => p(f.latSerial, 99), "ms", ""],
  [`create → IP p50, one every ${PACE_MS} ms`, (f) => p(f.latPaced, 50), "ms", ""],
  [`create → IP p99, one every ${PACE_MS} ms`, (f) => p(f.latPaced, 99), "ms", "goal ≤ 50 ms"],
  [
    `RSS, ${FIRST.toLocaleString("en")} Services, 5 s after the cold start`,
    (f) => f.rss1k,
    "MiB",
    "goal ≤ 70 MiB",
  ],
  [
    `RSS, ${FIRST.toLocaleString("en")} Services, idle 30 s after the cold start`,
    (f) => f.rss1kSteady,
    "MiB",
    "goal ≤ 70 MiB",
  ],
  [
    `RSS, ${TOTAL.toLocaleString("en")} Services, 5 s after the cold start`,
    (f) => f.rss,
    "MiB",
    "goal ≤ 150 MiB",
  ],
  [
    `RSS, ${TOTAL.toLocaleString("en")} Services, idle 30 s after the cold start`,
    (f) => f.rssSteady,
    "MiB",
    "goal ≤ 150 MiB",
  ],
  [
    `RSS, ${TOTAL.toLocaleString("en")} Services, after the latency runs`,
    (f) => f.rssAfter,
    "MiB",
    "",
  ],
  [`cold start, ${FIRST.toLocaleString("en")} Services`, (f) => f.cold1k, "s", ""],
];
console.log(
  `\n| figure | ${results.map((r) => r[0]).join(" | ")} |${results.length === 2 ? " ironlb / peer |" : ""}`,
);
console.log(
  `| --- |${results.map(() => " --- |").join("")}${results.length === 2 ? " --- |" : ""}`,
);
for (const [label, get, unit, goal] of rows) {
  const vals = results.map((r) => get(r[1]));
  if (vals.every(Number.isNaN)) continue; // BENCH_SHORT
  const ratio = results.length === 2 ? ` ${(vals[0]! / vals[1]!).toFixed(2)} |` : "";
  console.log(
    `| ${label}${goal ? ` (${goal})` : ""} | ${vals.map((v) => `${v.toFixed(unit === "s" ? 1 : 0)} ${unit}`).join(" | ")} |${ratio}`,
  );
}
// The apiserver's own writes (its identity Lease, the kubernetes Service's endpoints) are
// counted too; the controllers run without leader election and write neither.
const ownWrites = new Set(["PUT leases", "POST endpoints", "PUT endpoints"]);
for (const [name, f] of results) {
  const entries = Object.entries(f.coldWrites).filter(([k]) => !ownWrites.has(k));
  const writes = entries.reduce((a, [, v]) => a + v, 0);
  const assigned = TOTAL - FIRST;
  console.log(
    `${name}: cold start wrote ${writes} times (${(writes / assigned).toFixed(2)} per Service assigned: ${entries
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}), ${(writes / f.cold).toFixed(0)} writes/s${
      ceiling ? `, ${((writes / f.cold / ceiling) * 100).toFixed(0)}% of the ceiling` : ""
    }${f.heapMiB ? `; V8 heap in use ${f.heapMiB.toFixed(0)} MiB` : ""}`,
  );
}
if (ceiling)
  console.log(
    `ceiling: a minimal client's status merge patches, 32 in flight: ${ceiling.toFixed(0)} writes/s`,
  );
process.exit(0);
