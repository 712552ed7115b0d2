// A tenant cannot run the controller out of memory: Services carrying ~256 KiB each (the
// most annotations the API allows; labels, which it does not limit in total, as much)
// against the controller as a real process in a
// memory cgroup limited as the chart limits its pod (Node sizes its heap from that limit,
// as it does in the pod). It must stay alive and use well under the limit. The controller
// starts after the Services exist (its cold start lists them all: the largest reads it
// makes) and writes the LoadBalancers' statuses, each of which comes back through its
// watch, whole.
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { KubeClient } from "../../src/k8s/client.ts";
import {
  applyCRDs,
  type Component,
  createNamespace,
  createPool,
  getPool,
  repoRoot,
  startComponent,
  waitFor,
} from "../support/cluster.ts";

/**
 * Services created. The controller caches every Service, whatever its type; only some are
 * LoadBalancers (IPs assigned, status written, each back through the watch, whole): on 2
 * cores 1,000 LoadBalancers take ~50 s to assign (a 256 KiB object written and watched
 * each time), 1,000 Services ~20-40 s to create and as long to delete.
 */
const SERVICES = 1_000;
const LOAD_BALANCERS = 100;
/** The API server's limit on all annotations of an object together: 256 KiB. */
const ANNOTATION_BYTES = 256 * 1024;
const MiB = 1024 * 1024;

/** The controller's memory limit in the chart (values.yaml). */
function chartLimitBytes(): number {
  const values = readFileSync(`${repoRoot}/charts/ironlb/values.yaml`, "utf8");
  const controller = values.slice(values.indexOf("\ncontroller:"));
  const m = /limits:\s*\n\s*memory:\s*(\d+)Mi/.exec(controller);
  if (!m) throw new Error("no controller memory limit in charts/ironlb/values.yaml");
  return Number(m[1]) * MiB;
}

/**
 * The node flags the image runs with (the Dockerfile's ENTRYPOINT), but --lite-mode: it
 * turns WebAssembly off, which Node's type stripping needs, and the test runs the sources
 * (without it the figures are higher, not lower).
 */
function imageNodeFlags(): string {
  const dockerfile = readFileSync(`${repoRoot}/Dockerfile`, "utf8");
  const m = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile);
  if (!m) throw new Error("no ENTRYPOINT in the Dockerfile");
  const argv = JSON.parse(m[1]!) as string[];
  return argv.filter((a) => a.startsWith("--") && a !== "--lite-mode").join(" ");
}

/** Resident memory now (all, and anonymous) and at its peak (/proc/<pid>/status), in bytes. */
function memory(pid: number): { rss: number; anon: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]) * 1024;
  return { rss: kb("VmRSS"), anon: kb("RssAnon"), peak: kb("VmHWM") };
}

/**
 * A memory cgroup limited to `limit` bytes (v1 or v2; needs root, as the e2e tier does).
 * `wrap` runs a command inside it; `peak` is the most it ever used.
 */
function memoryCgroup(limit: number) {
  const v1 = existsSync("/sys/fs/cgroup/memory/memory.limit_in_bytes");
  const dir = v1
    ? `/sys/fs/cgroup/memory/ironlb-test-memory-${process.pid}`
    : `/sys/fs/cgroup/ironlb-test-memory-${process.pid}`;
  try {
    mkdirSync(dir);
    writeFileSync(`${dir}/${v1 ? "memory.limit_in_bytes" : "memory.max"}`, String(limit));
  } catch (err) {
    throw new Error(
      `this test runs the controller in a memory cgroup and needs root: cannot make ${dir}: ${(err as Error).message}`,
    );
  }
  const read = (file: string) => Number(readFileSync(`${dir}/${file}`, "utf8").trim());
  return {
    // Joins the cgroup, then runs node as the image does (Dockerfile ENTRYPOINT flags).
    wrap: [
      "sh",
      "-c",
      'echo $$ > "$0/cgroup.procs" && node="$1" && shift && exec "$node" $NODE_FLAGS "$@"',
      dir,
    ],
    peak: () => read(v1 ? "memory.max_usage_in_bytes" : "memory.peak"),
    remove: () => rmdirSync(dir),
  };
}

/** Runs `fn` over `items`, `n` at a time. */
async function inParallel<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

describe("controller memory against tenants' Services", () => {
  const api = KubeClient.load(inject("kubeconfig"));
  let ns = "";
  let controller: Component | undefined;
  let cgroup: ReturnType<typeof memoryCgroup> | undefined;
  const names = Array.from({ length: SERVICES }, (_, i) => `big-${i}`);

  beforeAll(async () => {
    await applyCRDs();
    ns = await createNamespace("memory");
  });

  afterAll(async () => {
    await controller?.stop("SIGKILL");
    cgroup?.remove();
    // Later test files in the same run list every Service of the cluster: take these away.
    if (ns)
      await inParallel(names, 16, (name) =>
        api.delete(`/api/v1/namespaces/${ns}/services/${name}`).catch(() => undefined),
      );
  }, 120_000);

  it(`stays far below the chart's limit with ${SERVICES} Services of ~256 KiB each`, async () => {
    const limit = chartLimitBytes();
    expect(limit).toBe(384 * MiB);
    await createPool(`memory-${ns}`, {
      addresses: ["2001:db8:ee::/112"],
      serviceAllocation: { namespaces: [ns] },
    });
    // ~256 KiB that a tenant chooses, three ways in turn: an annotation ironlb does not
    // read, one it reads (a sharing key, unique to each Service), and labels (the API
    // limits each label, not their number). Annotations stay 1 KiB under the API's 256 KiB
    // for the pool annotation the controller writes with the status: at the very limit
    // that write is refused (422) and the Service gets no IP.
    const payload = ANNOTATION_BYTES - 1024;
    const labels = Object.fromEntries(
      Array.from({ length: Math.floor(payload / 80) }, (_, i) => [
        `l${String(i).padStart(4, "0")}.example.com/k`,
        "v".repeat(80 - 19),
      ]),
    );
    const metadata = (name: string, i: number) => {
      if (i % 3 === 0) {
        const key = "example.com/tenant-notes";
        return { name, annotations: { [key]: "n".repeat(payload - key.length) } };
      }
      if (i % 3 === 1) {
        const key = "ironlb.dev/allow-shared-ip";
        return { name, annotations: { [key]: `${name}-`.padEnd(payload - key.length, "k") } };
      }
      return { name, labels };
    };
    const balanced = new Set(names.slice(0, LOAD_BALANCERS));
    const t0 = performance.now();
    await inParallel(names, 16, (name) =>
      api.create(`/api/v1/namespaces/${ns}/services`, {
        metadata: metadata(name, names.indexOf(name)),
        spec: {
          ...(balanced.has(name)
            ? { type: "LoadBalancer", allocateLoadBalancerNodePorts: false }
            : { type: "ClusterIP" }),
          ipFamilyPolicy: "SingleStack",
          ipFamilies: ["IPv6"],
          ports: [{ port: 80, protocol: "TCP" }],
        },
      }),
    );
    const createdS = (performance.now() - t0) / 1000;

    cgroup = memoryCgroup(limit);
    const kubeconfig = inject("kubeconfig");
    controller = startComponent(
      [
        ...["controller", "--kubeconfig", kubeconfig, "--namespace", "default"],
        ...["--health-port", "0", "--health-address", "127.0.0.1", "--instance", "memory"],
      ],
      { NODE_FLAGS: imageNodeFlags() },
      cgroup.wrap,
    );
    const pid = controller.proc.pid!;
    const t1 = performance.now();
    // Every LoadBalancer has its IP when the pool's status counts them all; or the controller died.
    const died = new Promise<never>((_, reject) =>
      controller?.proc.once("exit", (code, signal) =>
        reject(new Error(`the controller exited (${signal ?? code}); see ${controller?.logFile}`)),
      ),
    );
    await Promise.race([
      died,
      waitFor(
        `${LOAD_BALANCERS} IPs assigned`,
        async () => (await getPool(`memory-${ns}`)).status?.assignedIPv6 === LOAD_BALANCERS,
        90_000,
        500,
      ),
    ]);
    const assignedS = (performance.now() - t1) / 1000;
    const m = memory(pid);
    const cgroupPeak = cgroup.peak();
    console.log(
      `controller memory: ${SERVICES} Services × ~256 KiB created in ${createdS.toFixed(1)} s; ${LOAD_BALANCERS} LoadBalancers assigned ${assignedS.toFixed(1)} s after the controller started; RSS ${(m.rss / MiB).toFixed(0)} MiB (anonymous ${(m.anon / MiB).toFixed(0)} MiB), peak RSS ${(m.peak / MiB).toFixed(0)} MiB, cgroup peak ${(cgroupPeak / MiB).toFixed(0)} MiB (limit ${limit / MiB} MiB)`,
    );
    // Alive (not killed by the limit, no heap exhaustion), and the peaks, not only the
    // RSS now, well under the limit: half leaves room for what a real cluster adds.
    expect(controller.proc.exitCode).toBeNull();
    expect(controller.proc.signalCode).toBeNull();
    expect(m.peak).toBeLessThan(limit / 2);
    expect(cgroupPeak).toBeLessThan(limit / 2);
    expect(controller.logs().filter((l) => (l.level as number) >= 50)).toEqual([]);
  }, 180_000);
});
