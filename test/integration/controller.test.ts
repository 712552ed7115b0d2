// The controller against the real kube-apiserver: every scenario creates its own
// namespace and a pool restricted to it, so scenarios do not see each other's addresses.
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  allocatedCondition,
  applyCRDs,
  type Component,
  clients,
  createNamespace,
  createPool,
  createService,
  deletePool,
  getPool,
  getService,
  ingressIPs,
  sleep,
  startController,
  waitFor,
  waitForCondition,
  waitForEvent,
  waitForIPs,
} from "../support/cluster.ts";

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

describe("controller", () => {
  let ctrl: Component;
  const { core, custom } = clients();

  beforeAll(async () => {
    await applyCRDs();
    ctrl = startController(["--no-leader-elect"]);
  });
  afterAll(async () => {
    await ctrl?.stop();
  });

  /** A namespace plus a pool only it may use. */
  async function scenario(
    prefix: string,
    addresses: string[],
    extra: Record<string, unknown> = {},
  ) {
    const ns = await createNamespace(prefix);
    const pool = `${prefix}-${ns.split("-").slice(-2).join("-")}`;
    await createPool(pool, { addresses, serviceAllocation: { namespaces: [ns] }, ...extra });
    return { ns, pool };
  }

  it("assigns the lowest free address, with ipMode, pool annotation, condition, Event and pool status", async () => {
    const { ns, pool } = await scenario("auto", ["198.51.100.10-198.51.100.12"]);
    await createService(ns, "a");
    expect(await waitForIPs(ns, "a")).toEqual(["198.51.100.10"]);
    await createService(ns, "b");
    expect(await waitForIPs(ns, "b")).toEqual(["198.51.100.11"]);

    const a = await getService(ns, "a");
    expect(a.status?.loadBalancer?.ingress?.[0]?.ipMode).toBe("VIP");
    expect(a.metadata?.annotations?.["ironlb.dev/ip-allocated-from-pool"]).toBe(pool);
    const cond = allocatedCondition(a);
    expect(cond?.status).toBe("True");
    expect(cond?.reason).toBe("Allocated");
    expect(cond?.message).toContain("198.51.100.10");
    const ev = await waitForEvent(ns, "a", "IPAllocated", "198.51.100.10");
    expect(ev.type).toBe("Normal");

    const status = await waitFor("pool status", async () => {
      const p = await getPool(pool);
      return p.status?.assignedIPv4 === 2 ? p.status : undefined;
    });
    expect(status.availableIPv4).toBe(1);
    expect(status.conditions?.find((c) => c.type === "Ready")?.status).toBe("True");
    expect(status.conditions?.find((c) => c.type === "Conflict")?.status).toBe("False");
  });

  it("gives a requested IP (annotation or spec.loadBalancerIP) and explains every refusal", async () => {
    const { ns } = await scenario("req", ["198.51.100.20-198.51.100.29"]);
    await createService(ns, "ann", {
      annotations: { "ironlb.dev/loadBalancerIPs": "198.51.100.25" },
    });
    expect(await waitForIPs(ns, "ann")).toEqual(["198.51.100.25"]);
    await createService(ns, "spec", { loadBalancerIP: "198.51.100.27" });
    expect(await waitForIPs(ns, "spec")).toEqual(["198.51.100.27"]);

    await createService(ns, "taken", {
      annotations: { "ironlb.dev/loadBalancerIPs": "198.51.100.25" },
    });
    const taken = await waitForCondition(ns, "taken", "False", "IPInUse");
    expect(taken.message).toContain(`${ns}/ann`);
    expect((await waitForEvent(ns, "taken", "AllocationFailed")).type).toBe("Warning");

    await createService(ns, "outside", {
      annotations: { "ironlb.dev/loadBalancerIPs": "203.0.113.77" },
    });
    await waitForCondition(ns, "outside", "False", "IPNotInPool");

    await createService(ns, "both", {
      annotations: { "ironlb.dev/loadBalancerIPs": "198.51.100.21" },
      loadBalancerIP: "198.51.100.22",
    });
    const both = await waitForCondition(ns, "both", "False", "InvalidConfiguration");
    expect(both.message).toMatch(/disagree/);

    await createService(ns, "garbage", {
      annotations: { "ironlb.dev/loadBalancerIPs": "not-an-ip" },
    });
    const garbage = await waitForCondition(ns, "garbage", "False", "InvalidConfiguration");
    expect(garbage.message).toContain("not-an-ip");
    expect(ingressIPs(await getService(ns, "garbage"))).toEqual([]);
  });

  it("keeps the IP of a Service whose annotation becomes invalid, and says so", async () => {
    const { ns } = await scenario("keep", ["198.51.100.30-198.51.100.31"]);
    await createService(ns, "s");
    const [ip] = await waitForIPs(ns, "s");
    await core.patchNamespacedService(
      {
        name: "s",
        namespace: ns,
        body: {
          metadata: {
            annotations: { "ironlb.dev/loadBalancerIPs": "198.51.100.30,198.51.100.31" },
          },
        },
      },
      merge,
    );
    const cond = await waitForCondition(ns, "s", "True", "InvalidConfiguration");
    expect(cond.message).toContain("at most one IPv4");
    expect(ingressIPs(await getService(ns, "s"))).toEqual([ip]);
  });

  it("uses the pool named by annotation, and refuses an unknown pool", async () => {
    const ns = await createNamespace("bypool");
    await createPool(`bypool-a-${ns}`, {
      addresses: ["198.51.100.40/31"],
      serviceAllocation: { namespaces: [ns], priority: 1 },
    });
    await createPool(`bypool-b-${ns}`, {
      addresses: ["198.51.100.42/31"],
      serviceAllocation: { namespaces: [ns], priority: 2 },
    });
    await createService(ns, "default");
    expect(await waitForIPs(ns, "default")).toEqual(["198.51.100.40"]);
    await createService(ns, "named", {
      annotations: { "ironlb.dev/address-pool": `bypool-b-${ns}` },
    });
    expect(await waitForIPs(ns, "named")).toEqual(["198.51.100.42"]);
    await createService(ns, "unknown", {
      annotations: { "ironlb.dev/address-pool": "no-such-pool" },
    });
    const c = await waitForCondition(ns, "unknown", "False", "PoolNotFound");
    expect(c.message).toContain("no-such-pool");
  });

  it("does not auto-assign from an autoAssign:false pool, but serves explicit requests from it", async () => {
    const { ns, pool } = await scenario("manual", ["198.51.100.50-198.51.100.51"], {
      autoAssign: false,
    });
    await createService(ns, "auto");
    const c = await waitForCondition(ns, "auto", "False");
    expect(c.reason).toMatch(/NoMatchingPool|PoolExhausted/);
    await createService(ns, "explicit", {
      annotations: { "ironlb.dev/loadBalancerIPs": "198.51.100.51" },
    });
    expect(await waitForIPs(ns, "explicit")).toEqual(["198.51.100.51"]);
    await createService(ns, "bypool", { annotations: { "ironlb.dev/address-pool": pool } });
    expect(await waitForIPs(ns, "bypool")).toEqual(["198.51.100.50"]);
  });

  it("follows priority, namespace selectors and service selectors", async () => {
    const ns = await createNamespace("sel", { team: `blue-${process.pid}` });
    const other = await createNamespace("sel-other");
    await createPool(`sel-low-${ns}`, {
      addresses: ["198.51.100.60/31"],
      serviceAllocation: { namespaces: [ns, other], priority: 10 },
    });
    await createPool(`sel-high-${ns}`, {
      addresses: ["198.51.100.62/31"],
      serviceAllocation: { namespaces: [ns, other], priority: 1 },
    });
    await createPool(`sel-ns-${ns}`, {
      addresses: ["198.51.100.64/31"],
      serviceAllocation: {
        priority: 0,
        namespaceSelectors: [{ matchLabels: { team: `blue-${process.pid}` } }],
      },
    });
    await createPool(`sel-svc-${ns}`, {
      addresses: ["198.51.100.66/31"],
      serviceAllocation: {
        priority: 0,
        namespaces: [ns, other],
        serviceSelectors: [
          { matchExpressions: [{ key: "tier", operator: "In", values: ["edge"] }] },
        ],
      },
    });
    // `other` is not blue and the Service is not edge: the priority-1 pool wins over priority 10.
    await createService(other, "plain");
    expect(await waitForIPs(other, "plain")).toEqual(["198.51.100.62"]);
    // In the blue namespace the namespace-selected pool (priority 0) comes first.
    await createService(ns, "blue");
    expect(await waitForIPs(ns, "blue")).toEqual(["198.51.100.64"]);
    await createService(other, "edge", { labels: { tier: "edge" } });
    expect(await waitForIPs(other, "edge")).toEqual(["198.51.100.66"]);
  });

  it("shares an IP only with the same key, disjoint ports and compatible traffic policy", async () => {
    const { ns } = await scenario("share", ["198.51.100.70-198.51.100.79"]);
    const ip = "198.51.100.70";
    const ann = (key: string) => ({
      "ironlb.dev/allow-shared-ip": key,
      "ironlb.dev/loadBalancerIPs": ip,
    });
    await createService(ns, "web", { annotations: ann("k"), ports: [{ port: 80 }] });
    await createService(ns, "dns", {
      annotations: ann("k"),
      ports: [{ port: 53, protocol: "UDP" }],
    });
    expect(await waitForIPs(ns, "web")).toEqual([ip]);
    expect(await waitForIPs(ns, "dns")).toEqual([ip]);

    await createService(ns, "otherkey", { annotations: ann("other"), ports: [{ port: 8080 }] });
    expect((await waitForCondition(ns, "otherkey", "False", "SharingRefused")).message).toMatch(
      /key/,
    );
    await createService(ns, "sameport", { annotations: ann("k"), ports: [{ port: 80 }] });
    expect((await waitForCondition(ns, "sameport", "False", "SharingRefused")).message).toMatch(
      /80/,
    );
    await createService(ns, "local", {
      annotations: ann("k"),
      ports: [{ port: 443 }],
      externalTrafficPolicy: "Local",
    });
    expect((await waitForCondition(ns, "local", "False", "SharingRefused")).message).toMatch(
      /[Pp]olicy/,
    );

    // Two Local Services with the same pod selector may share.
    const ann2 = {
      "ironlb.dev/allow-shared-ip": "l",
      "ironlb.dev/loadBalancerIPs": "198.51.100.71",
    };
    await createService(ns, "l1", {
      annotations: ann2,
      ports: [{ port: 80 }],
      externalTrafficPolicy: "Local",
      selector: { app: "x" },
    });
    await createService(ns, "l2", {
      annotations: ann2,
      ports: [{ port: 81 }],
      externalTrafficPolicy: "Local",
      selector: { app: "x" },
    });
    expect(await waitForIPs(ns, "l1")).toEqual(["198.51.100.71"]);
    expect(await waitForIPs(ns, "l2")).toEqual(["198.51.100.71"]);
    await createService(ns, "l3", {
      annotations: ann2,
      ports: [{ port: 82 }],
      externalTrafficPolicy: "Local",
      selector: { app: "y" },
    });
    expect((await waitForCondition(ns, "l3", "False", "SharingRefused")).message).toMatch(
      /selector/,
    );
  });

  it("shares an IP across namespaces only where the pool allows it", async () => {
    // 198.51.100.200-203: no other test file's pool (pools outlive their files) holds them.
    const bank = await createNamespace("bank");
    const evil = await createNamespace("evil");
    const closed = `share-closed-${bank}`;
    const open = `share-open-${bank}`;
    await createPool(closed, {
      addresses: ["198.51.100.200-198.51.100.201"],
      serviceAllocation: { namespaces: [bank, evil] },
    });
    await createPool(open, {
      addresses: ["198.51.100.202-198.51.100.203"],
      serviceAllocation: { namespaces: [bank, evil], allowSharingAcrossNamespaces: true },
    });
    const ann = (ip?: string) => ({
      "ironlb.dev/allow-shared-ip": "k",
      ...(ip ? { "ironlb.dev/loadBalancerIPs": ip } : {}),
    });
    await createService(bank, "s", { annotations: ann("198.51.100.200") });
    expect(await waitForIPs(bank, "s")).toEqual(["198.51.100.200"]);

    // Same key, other port, other namespace: refused by default, and told why.
    await createService(evil, "s", {
      annotations: ann("198.51.100.200"),
      ports: [{ port: 443 }],
    });
    const refused = await waitForCondition(evil, "s", "False", "SharingRefused");
    expect(refused.message).toBe(
      `cannot share 198.51.100.200: ${bank}/s is in namespace ${bank}, not ${evil}, and pool ${closed} does not allow sharing across namespaces (set spec.serviceAllocation.allowSharingAcrossNamespaces: true to allow it)`,
    );
    await waitForEvent(evil, "s", "AllocationFailed", "does not allow sharing across namespaces");
    // Without a requested IP the key does not lead it to bank's IP either.
    await createService(evil, "auto", {
      annotations: { ...ann(), "ironlb.dev/address-pool": closed },
      ports: [{ port: 444 }],
    });
    expect(await waitForIPs(evil, "auto")).toEqual(["198.51.100.201"]);
    expect(ingressIPs(await getService(bank, "s"))).toEqual(["198.51.100.200"]);

    // Where the pool allows it, the same request shares.
    await createService(bank, "t", { annotations: ann("198.51.100.202") });
    expect(await waitForIPs(bank, "t")).toEqual(["198.51.100.202"]);
    await createService(evil, "t", {
      annotations: ann("198.51.100.202"),
      ports: [{ port: 443 }],
    });
    expect(await waitForIPs(evil, "t")).toEqual(["198.51.100.202"]);

    // Turning the setting off takes the IP from the Service that joined later.
    await custom.patchClusterCustomObject(
      {
        group: "ironlb.dev",
        version: "v1beta1",
        plural: "ipaddresspools",
        name: open,
        body: { spec: { serviceAllocation: { allowSharingAcrossNamespaces: false } } },
      },
      merge,
    );
    const lost = await waitForCondition(evil, "t", "False", "SharingRefused");
    expect(lost.message).toContain(`pool ${open} does not allow sharing across namespaces`);
    expect(ingressIPs(await getService(evil, "t"))).toEqual([]);
    expect(ingressIPs(await getService(bank, "t"))).toEqual(["198.51.100.202"]);
  });

  it("assigns both families to dual-stack Services", async () => {
    const { ns } = await scenario("dual", ["198.51.100.80-198.51.100.81", "2001:db8:80::/120"]);
    await createService(ns, "require", {
      ipFamilyPolicy: "RequireDualStack",
      ipFamilies: ["IPv4", "IPv6"],
    });
    expect(await waitForIPs(ns, "require", (ips) => ips.length === 2)).toEqual([
      "198.51.100.80",
      "2001:db8:80::",
    ]);
    await createService(ns, "v6first", {
      ipFamilyPolicy: "RequireDualStack",
      ipFamilies: ["IPv6", "IPv4"],
    });
    expect(await waitForIPs(ns, "v6first", (ips) => ips.length === 2)).toEqual([
      "2001:db8:80::1",
      "198.51.100.81",
    ]);
    await createService(ns, "v6only", { ipFamilyPolicy: "SingleStack", ipFamilies: ["IPv6"] });
    expect(await waitForIPs(ns, "v6only")).toEqual(["2001:db8:80::2"]);
    // IPv4 is exhausted now: PreferDualStack settles for IPv6 alone; RequireDualStack waits.
    await createService(ns, "prefer", {
      ipFamilyPolicy: "PreferDualStack",
      ipFamilies: ["IPv6", "IPv4"],
    });
    expect(await waitForIPs(ns, "prefer")).toEqual(["2001:db8:80::3"]);
    await createService(ns, "require2", {
      ipFamilyPolicy: "RequireDualStack",
      ipFamilies: ["IPv4", "IPv6"],
    });
    await waitForCondition(ns, "require2", "False");
  });

  it("leaves a Service pending when the pool is exhausted and assigns it once an address frees up", async () => {
    const { ns, pool } = await scenario("exh", ["198.51.100.90/32"]);
    await createService(ns, "first");
    expect(await waitForIPs(ns, "first")).toEqual(["198.51.100.90"]);
    await createService(ns, "second");
    const c = await waitForCondition(ns, "second", "False", "PoolExhausted");
    expect(c.message).toContain(pool);
    await core.deleteNamespacedService({ name: "first", namespace: ns });
    expect(await waitForIPs(ns, "second")).toEqual(["198.51.100.90"]);
    await waitForCondition(ns, "second", "True", "Allocated");
  });

  it("takes IPs away when a pool shrinks or disappears, and re-assigns where it can", async () => {
    const { ns, pool } = await scenario("shrink", ["198.51.100.100-198.51.100.101"]);
    await createService(ns, "a");
    await createService(ns, "b");
    await waitForIPs(ns, "a");
    await waitForIPs(ns, "b");
    const holderOf101 = ingressIPs(await getService(ns, "a"))[0] === "198.51.100.101" ? "a" : "b";
    const keeper = holderOf101 === "a" ? "b" : "a";
    await custom.patchClusterCustomObject(
      {
        group: "ironlb.dev",
        version: "v1beta1",
        plural: "ipaddresspools",
        name: pool,
        body: { spec: { addresses: ["198.51.100.100/32"] } },
      },
      merge,
    );
    await waitForCondition(ns, holderOf101, "False", "PoolExhausted");
    expect(ingressIPs(await getService(ns, holderOf101))).toEqual([]);
    await waitForEvent(ns, holderOf101, "IPReleased", "198.51.100.101");
    expect(ingressIPs(await getService(ns, keeper))).toEqual(["198.51.100.100"]);

    await deletePool(pool);
    await waitForCondition(ns, keeper, "False");
    expect(ingressIPs(await getService(ns, keeper))).toEqual([]);
  });

  it("lets the older of two overlapping pools keep the overlap and flags the newer one", async () => {
    const ns = await createNamespace("ovl");
    await createPool(`ovl-old-${ns}`, {
      addresses: ["198.51.100.110-198.51.100.111"],
      serviceAllocation: { namespaces: [ns], priority: 5 },
    });
    await sleep(1100); // creationTimestamp has one-second resolution
    await createPool(`ovl-new-${ns}`, {
      addresses: ["198.51.100.111-198.51.100.112"],
      serviceAllocation: { namespaces: [ns], priority: 1 },
    });
    const conflict = await waitFor("Conflict condition", async () =>
      (await getPool(`ovl-new-${ns}`)).status?.conditions?.find(
        (c) => c.type === "Conflict" && c.status === "True",
      ),
    );
    expect(conflict.reason).toBe("OverlapsPool");
    expect(conflict.message).toContain(`ovl-old-${ns}`);
    expect(
      (await getPool(`ovl-old-${ns}`)).status?.conditions?.find((c) => c.type === "Conflict")
        ?.status,
    ).toBe("False");
    // The newer pool has priority but may not hand out .111: its only own address is .112.
    await createService(ns, "s1");
    expect(await waitForIPs(ns, "s1")).toEqual(["198.51.100.112"]);
    await createService(ns, "s2");
    expect(await waitForIPs(ns, "s2")).toEqual(["198.51.100.110"]);
    await createService(ns, "s3");
    expect(await waitForIPs(ns, "s3")).toEqual(["198.51.100.111"]);
    expect(
      (await getService(ns, "s3")).metadata?.annotations?.["ironlb.dev/ip-allocated-from-pool"],
    ).toBe(`ovl-old-${ns}`);
  });

  it("handles only unclassed and ironlb-classed LoadBalancers, and releases on type change", async () => {
    const { ns } = await scenario("cls", ["198.51.100.120-198.51.100.123"]);
    await createService(ns, "foreign", { loadBalancerClass: "example.com/other" });
    await createService(ns, "ours", { loadBalancerClass: "ironlb.dev/lb" });
    await createService(ns, "plain");
    expect(await waitForIPs(ns, "ours")).toHaveLength(1);
    // plain, created after foreign, is the barrier: the controller takes Services from its
    // queue in the order their events came (one watch, in resourceVersion order), and
    // decides about foreign without waiting for anything; a write for it would have been
    // made before plain's.
    const [plainIP] = await waitForIPs(ns, "plain");
    expect(ingressIPs(await getService(ns, "foreign"))).toEqual([]);
    expect(allocatedCondition(await getService(ns, "foreign"))).toBeUndefined();

    await core.patchNamespacedService(
      {
        name: "plain",
        namespace: ns,
        body: {
          spec: {
            type: "ClusterIP",
            allocateLoadBalancerNodePorts: null,
            externalTrafficPolicy: null,
          },
        },
      },
      merge,
    );
    await waitFor(
      "status cleared",
      async () => ingressIPs(await getService(ns, "plain")).length === 0,
    );
    const plain = await getService(ns, "plain");
    expect(plain.metadata?.annotations?.["ironlb.dev/ip-allocated-from-pool"]).toBeUndefined();
    expect(allocatedCondition(plain)).toBeUndefined();
    await waitForEvent(ns, "plain", "IPReleased", plainIP);
  });

  it("honours MetalLB annotations and warns with the ironlb key to use", async () => {
    const { ns } = await scenario("mlb", ["198.51.100.130-198.51.100.133"]);
    await createService(ns, "old", {
      annotations: { "metallb.universe.tf/loadBalancerIPs": "198.51.100.132" },
    });
    expect(await waitForIPs(ns, "old")).toEqual(["198.51.100.132"]);
    const ev = await waitForEvent(ns, "old", "DeprecatedAnnotation");
    expect(ev.type).toBe("Warning");
    expect(ev.message).toContain("ironlb.dev/loadBalancerIPs");
    await createService(ns, "new", {
      annotations: { "metallb.io/loadBalancerIPs": "198.51.100.133" },
    });
    expect(await waitForIPs(ns, "new")).toEqual(["198.51.100.133"]);
  });

  it("refuses an annotation of only commas, and never echoes a huge one whole", async () => {
    const { ns } = await scenario("commas", ["198.51.100.150/31"]);
    await createService(ns, "commas", { annotations: { "ironlb.dev/loadBalancerIPs": ",,," } });
    const c = await waitForCondition(ns, "commas", "False", "InvalidConfiguration");
    expect(c.message).toContain("empty entry");
    expect(ingressIPs(await getService(ns, "commas"))).toEqual([]);
    expect((await waitForEvent(ns, "commas", "InvalidConfiguration")).type).toBe("Warning");

    const huge = "x".repeat(52_000);
    await createService(ns, "huge", { annotations: { "ironlb.dev/loadBalancerIPs": huge } });
    const h = await waitForCondition(ns, "huge", "False", "InvalidConfiguration");
    expect(h.message.length).toBeLessThan(1024);
    expect(h.message).toContain("(52000 characters)");
    const ev = await waitForEvent(ns, "huge", "InvalidConfiguration");
    expect(ev.message.length).toBeLessThan(1024);
  });

  it("reports a configuration problem once, not on every reconcile", async () => {
    const { ns } = await scenario("once", ["198.51.100.152/31"]);
    const old = "metallb.io/loadBalancerIPs";
    await createService(ns, "s", { annotations: { [old]: "198.51.100.152" } });
    expect(await waitForIPs(ns, "s")).toEqual(["198.51.100.152"]);
    const patch = (body: Record<string, unknown>) =>
      core.patchNamespacedService({ name: "s", namespace: ns, body }, merge);
    // Reconciles: a label change, ironlb's own status writes, an invalid value and back.
    await patch({ metadata: { labels: { touched: "1" } } });
    await patch({ metadata: { annotations: { [old]: ",,," } } });
    await waitForCondition(ns, "s", "True", "InvalidConfiguration");
    await patch({ metadata: { labels: { touched: "2" } } });
    await patch({ metadata: { annotations: { [old]: "198.51.100.152" } } });
    await waitForCondition(ns, "s", "True", "Allocated");
    const counts = async () => {
      const list = await core.listNamespacedEvent({
        namespace: ns,
        fieldSelector: "involvedObject.name=s",
      });
      const by: Record<string, number> = {};
      for (const e of list.items) by[e.reason ?? ""] = (by[e.reason ?? ""] ?? 0) + (e.count ?? 1);
      return by;
    };
    const seen = await waitFor("both warnings recorded", async () => {
      const c = await counts();
      return c.DeprecatedAnnotation && c.InvalidConfiguration ? c : undefined;
    });
    expect(seen.DeprecatedAnnotation).toBe(1);
    expect(seen.InvalidConfiguration).toBe(1);
  });

  it("says when a pool lacks a family Services ask it for", async () => {
    const { ns, pool } = await scenario("fam", ["198.51.100.154/31"]);
    await createService(ns, "v6", {
      ipFamilyPolicy: "SingleStack",
      ipFamilies: ["IPv6"],
      annotations: { "ironlb.dev/address-pool": pool },
    });
    const c = await waitForCondition(ns, "v6", "False", "FamilyUnavailable");
    expect(c.message).toBe(`pool ${pool} has no IPv6 addresses (it has only IPv4)`);
    const ready = await waitFor("pool not Ready", async () =>
      (await getPool(pool)).status?.conditions?.find(
        (x) => x.type === "Ready" && x.status === "False",
      ),
    );
    expect(ready.reason).toBe("FamilyUnavailable");
    expect(ready.message).toContain(`${ns}/v6`);
    await core.deleteNamespacedService({ name: "v6", namespace: ns });
    await waitFor("pool Ready again", async () =>
      (await getPool(pool)).status?.conditions?.find(
        (x) => x.type === "Ready" && x.status === "True",
      ),
    );
  });

  it("explains a pool that lost every address to an older pool", async () => {
    const ns = await createNamespace("lost");
    const older = `lost-a-${ns}`;
    const newer = `lost-b-${ns}`;
    // Created in this order, so the first is older by time or, within a second, by name.
    await createPool(older, {
      addresses: ["198.51.100.156/31"],
      serviceAllocation: { namespaces: [ns] },
    });
    await createPool(newer, {
      addresses: ["198.51.100.156/31"],
      serviceAllocation: { namespaces: [ns] },
    });
    await createService(ns, "s", { annotations: { "ironlb.dev/address-pool": newer } });
    const c = await waitForCondition(ns, "s", "False", "NoUsableAddresses");
    expect(c.message).toBe(
      `pool ${newer} has no usable address: every address it lists belongs to the older pool ${older}`,
    );
  });

  it("warns about a pool holding multicast addresses", async () => {
    const { pool } = await scenario("mcast", ["ff0e::db8:0/126"]);
    const ev = await waitForEvent("default", pool, "SuspiciousAddresses");
    expect(ev.type).toBe("Warning");
    expect(ev.message).toContain("multicast");
    const ready = await waitFor("pool status", async () =>
      (await getPool(pool)).status?.conditions?.find((x) => x.type === "Ready"),
    );
    expect(ready.status).toBe("True");
    expect(ready.message).toContain("multicast");
  });

  it("serves health, readiness and metrics", async () => {
    const port = await waitFor("health port in logs", () => {
      const line = ctrl.logs().find((l) => typeof l.healthPort === "number");
      return line?.healthPort as number | undefined;
    });
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).toMatch(/ironlb_allocations_total \d+/);
    expect(metrics).toMatch(/ironlb_pool_addresses_in_use\{pool="auto-/);
    expect(metrics).toMatch(/ironlb_reconcile_duration_seconds_bucket/);
  });
});
