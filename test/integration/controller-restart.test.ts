// Restart safety and high availability, with controllers as real processes that are
// killed for real: assigned IPs never move and never collide.
import { CoordinationV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  allocatedCondition,
  applyCRDs,
  type Component,
  clients,
  createNamespace,
  createPool,
  createService,
  eventsFor,
  getService,
  healthPortOf,
  ingressIPs,
  kubeConfig,
  startController,
  waitFor,
  waitForIPs,
} from "../support/cluster.ts";

const running: Component[] = [];
function controller(extra: string[], name?: string): Component {
  const c = startController(extra, name);
  running.push(c);
  return c;
}

async function allIPs(ns: string): Promise<Map<string, string[]>> {
  const list = await clients().core.listNamespacedService({ namespace: ns });
  return new Map(list.items.map((s) => [s.metadata!.name!, ingressIPs(s)]));
}

/** The holder of the controller's Lease in `namespace`, as the apiserver has it. */
async function leaseHolder(namespace: string): Promise<string | undefined> {
  const lease = await kubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({
    name: "ironlb-controller",
    namespace,
  });
  return lease.spec?.holderIdentity ?? undefined;
}

/**
 * Waits until a replica is up and standing by: it logged its start (the election begins
 * right after that line), its readiness endpoint answers, and it reports not leading.
 */
async function standingBy(c: Component, name: string): Promise<void> {
  const port = await healthPortOf(c);
  const metrics = await waitFor(`${name} serves metrics`, async () => {
    const r = await fetch(`http://127.0.0.1:${port}/readyz`);
    return r.status === 200 ? (await fetch(`http://127.0.0.1:${port}/metrics`)).text() : undefined;
  });
  expect(metrics).toMatch(/^ironlb_controller_leader 0$/m);
  expect(c.logs().some((l) => l.msg === "became leader")).toBe(false);
}

function expectNoDuplicates(ips: Map<string, string[]>): void {
  const seen = new Map<string, string>();
  for (const [name, list] of ips) {
    for (const ip of list) {
      expect(seen.get(ip), `${ip} held by ${seen.get(ip)} and ${name}`).toBeUndefined();
      seen.set(ip, name);
    }
  }
}

describe("controller restarts and handovers", () => {
  beforeAll(async () => {
    await applyCRDs();
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((c) => c.stop("SIGKILL")));
  });

  it("keeps every assigned IP across a SIGKILL and restart, and then serves the pending ones", async () => {
    const ns = await createNamespace("restart");
    const pool = `restart-${ns}`;
    await createPool(pool, {
      addresses: ["198.51.100.140-198.51.100.149"],
      serviceAllocation: { namespaces: [ns] },
    });
    const first = controller(["--no-leader-elect"]);
    for (let i = 0; i < 8; i++) await createService(ns, `s${i}`);
    for (let i = 0; i < 8; i++) await waitForIPs(ns, `s${i}`);
    // Free addresses in the middle, so a controller that forgot the others would reuse them.
    await clients().core.deleteNamespacedService({ name: "s2", namespace: ns });
    await clients().core.deleteNamespacedService({ name: "s5", namespace: ns });
    await waitFor("release seen", async () => !(await allIPs(ns)).has("s2"));
    const before = await allIPs(ns);
    expect(await first.stop("SIGKILL")).toBeNull();
    // Every IP in a status cluster-wide (earlier test files leave theirs) must be restored.
    const everywhere = await clients().core.listServiceForAllNamespaces();
    const withIPs = everywhere.items.filter(
      (s) =>
        s.spec?.type === "LoadBalancer" && !s.spec.loadBalancerClass && ingressIPs(s).length > 0,
    ).length;

    // While no controller runs: new Services, including more than the pool can hold.
    for (let i = 8; i < 14; i++) await createService(ns, `s${i}`);
    const second = controller(["--no-leader-elect"]);
    await waitFor("restore logged", () =>
      second.logs().find((l) => l.msg === "restored assignments from service statuses"),
    );
    await waitFor("4 new services assigned", async () => {
      const now = await allIPs(ns);
      return [...now.values()].filter((v) => v.length > 0).length === 10;
    });
    // A barrier, not a sleep: the two left without an IP are told why (a False condition),
    // which the controller writes only once the pool is full, after the others.
    await waitFor("the two left over told the pool is full", async () => {
      const list = await clients().core.listNamespacedService({ namespace: ns });
      const told = list.items.filter(
        (svc) => ingressIPs(svc).length === 0 && allocatedCondition(svc)?.status === "False",
      );
      return told.length === 2 ? true : undefined;
    });
    const after = await allIPs(ns);
    for (const [name, ips] of before) expect(after.get(name), name).toEqual(ips);
    expectNoDuplicates(after);
    const pending = [...after].filter(([, v]) => v.length === 0).map(([k]) => k);
    expect(pending).toHaveLength(2);
    const restoredLine = second
      .logs()
      .find((l) => l.msg === "restored assignments from service statuses");
    // Every Service that had IPs before the restart was restored, or held (earlier test
    // files on this shared control plane leave Services whose pools they deleted: their IPs
    // lie in no pool); those files' Services may gain IPs in between, so "at least".
    expect(Number(restoredLine?.restored) + Number(restoredLine?.held)).toBeGreaterThanOrEqual(
      withIPs,
    );
    expect(restoredLine?.restored).toBeGreaterThanOrEqual(6);
    expect(withIPs).toBeGreaterThanOrEqual(6);
  });

  it("hands over between two replicas during a burst of creations without losing or duplicating an IP", async () => {
    const ns = await createNamespace("ha");
    await createPool(`ha-${ns}`, {
      addresses: ["198.51.100.160/27"],
      serviceAllocation: { namespaces: [ns] },
    });
    // The Lease in the test's own namespace: other files' controllers elect in "default",
    // and one killed while leading holds that Lease for its duration (15 s by default).
    const fast = [
      ...["--namespace", ns],
      ...["--lease-duration", "2", "--renew-deadline", "1.5", "--retry-period", "0.25"],
    ];
    const a = controller(fast, "replica-a");
    await waitFor("replica-a leads", () => a.logs().some((l) => l.msg === "became leader"));
    const b = controller(fast, "replica-b");
    await standingBy(b, "replica-b");
    expect(await leaseHolder(ns)).toBe("replica-a");

    const burst = (from: number, to: number) =>
      Promise.all(Array.from({ length: to - from }, (_, i) => createService(ns, `h${from + i}`)));
    await burst(0, 10);
    await waitForIPs(ns, "h0");
    // Kill the leader mid-burst: creations continue while nobody leads.
    const more = burst(10, 25);
    expect(await a.stop("SIGKILL")).toBeNull();
    await more;
    await waitFor(
      "replica-b takes over",
      () => b.logs().some((l) => l.msg === "became leader"),
      10_000,
    );
    await waitFor(
      "all 25 assigned",
      async () =>
        [...(await allIPs(ns)).values()].every((v) => v.length === 1) &&
        (await allIPs(ns)).size === 25,
      15_000,
    );
    const ips = await allIPs(ns);
    expectNoDuplicates(ips);
    // Deterministic choice: 25 Services fill the 25 lowest usable addresses of the /27.
    const sorted = [...ips.values()].map((v) => Number(v[0]!.split(".")[3])).sort((x, y) => x - y);
    expect(sorted).toEqual(Array.from({ length: 25 }, (_, i) => 160 + i));

    // A graceful stop hands the lease over at once (no lease-duration wait).
    const c = controller(fast, "replica-c");
    await standingBy(c, "replica-c");
    expect(await leaseHolder(ns)).toBe("replica-b");
    const t0 = Date.now();
    expect(await b.stop("SIGTERM")).toBe(0);
    await waitFor("replica-c leads", () => c.logs().some((l) => l.msg === "became leader"), 5000);
    expect(Date.now() - t0).toBeLessThan(1500);
    await createService(ns, "after");
    expect(await waitForIPs(ns, "after")).toEqual(["198.51.100.185"]);
    expect(ingressIPs(await getService(ns, "h0"))).toEqual(ips.get("h0"));
  });

  it("after a restart, of two namespaces sharing an IP their pool no longer shares, the older keeps it", async () => {
    const bank = await createNamespace("rbank");
    const evil = await createNamespace("revil");
    const pool = `rshare-${bank}`;
    await createPool(pool, {
      addresses: ["198.51.100.204-198.51.100.205"],
      serviceAllocation: { namespaces: [bank, evil], allowSharingAcrossNamespaces: true },
    });
    const first = controller(["--no-leader-elect"]);
    const shared = { "ironlb.dev/allow-shared-ip": "k" };
    await createService(bank, "s", { annotations: shared });
    expect(await waitForIPs(bank, "s")).toEqual(["198.51.100.204"]);
    await createService(evil, "s", { annotations: shared, ports: [{ port: 443 }] });
    expect(await waitForIPs(evil, "s")).toEqual(["198.51.100.204"]);
    expect(await first.stop("SIGKILL")).toBeNull();

    // While no controller runs, the pool stops allowing sharing across namespaces.
    await clients().custom.patchClusterCustomObject(
      {
        group: "ironlb.dev",
        version: "v1beta1",
        plural: "ipaddresspools",
        name: pool,
        body: { spec: { serviceAllocation: { allowSharingAcrossNamespaces: false } } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    controller(["--no-leader-elect"]);
    const why = await waitFor("evil's IPNotKept Event", async () =>
      (await eventsFor(evil, "s")).find((e) => e.reason === "IPNotKept"),
    );
    expect(why.type).toBe("Warning");
    expect(why.message).toBe(
      `198.51.100.204 cannot be kept: SharingRefused: cannot share 198.51.100.204: ${bank}/s is in namespace ${bank}, not ${evil}, and pool ${pool} does not allow sharing across namespaces (set spec.serviceAllocation.allowSharingAcrossNamespaces: true to allow it)`,
    );
    // The older Service keeps the IP; the other gets the pool's other address.
    await waitFor("evil moved", async () =>
      ingressIPs(await getService(evil, "s"))[0] === "198.51.100.205" ? true : undefined,
    );
    expect(ingressIPs(await getService(bank, "s"))).toEqual(["198.51.100.204"]);
  });

  it("folds the IPAllocated Events of a cold start past the first 50 into one Event per pool", async () => {
    // A class of its own: no other file's controller touches these Services.
    const lbClass = "fold.test/lb";
    const ns = await createNamespace("fold");
    const pool = `fold-${ns.split("-").slice(-1)[0]}`;
    await createPool(pool, {
      addresses: ["2001:db8:f01d::/120"],
      serviceAllocation: { namespaces: [ns] },
    });
    const names = Array.from({ length: 60 }, (_, i) => `s${i}`);
    for (const n of names)
      await createService(ns, n, {
        loadBalancerClass: lbClass,
        ipFamilyPolicy: "SingleStack",
        ipFamilies: ["IPv6"],
      });
    controller(["--no-leader-elect", "--lb-class", lbClass, "--ignore-unclassed"]);
    for (const n of names) expect((await waitForIPs(ns, n))[0]).toMatch(/^2001:db8:f01d::/);
    const summary = await waitFor("the pool's start-up Event", async () =>
      (await eventsFor("default", pool)).find((e) => e.reason === "IPsAllocated"),
    );
    expect(summary.type).toBe("Normal");
    expect(summary.message).toContain("Assigned IPs to 10 more Services at controller start-up");
    // 50 Services have an Event of their own, the other 10 are named in the summary.
    const own = await waitFor("50 IPAllocated Events", async () => {
      const list = await clients().core.listNamespacedEvent({ namespace: ns });
      const got = list.items.filter((e) => e.reason === "IPAllocated");
      return got.length >= 50 ? got : undefined;
    });
    // Events leave in the order emitted (k8s/events.ts) and the summary was emitted after
    // every start-up reconcile: no further IPAllocated Event of these Services can follow.
    const after = own;
    expect(after.length).toBe(50);
    const folded = names.filter((n) => !after.some((e) => e.involvedObject.name === n));
    expect(folded.length).toBe(10);
    for (const n of folded) expect(summary.message).toContain(`${ns}/${n}`);

    // After the start-up, every new Service has its own Event again.
    await createService(ns, "late", {
      loadBalancerClass: lbClass,
      ipFamilyPolicy: "SingleStack",
      ipFamilies: ["IPv6"],
    });
    await waitForIPs(ns, "late");
    await waitFor("late's IPAllocated Event", async () =>
      (await eventsFor(ns, "late")).find((e) => e.reason === "IPAllocated"),
    );
  });
});
