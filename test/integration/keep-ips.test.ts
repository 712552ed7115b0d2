// Issue 16: configuration never costs an IP. Against the real apiserver and a real
// controller process: a newer CRD (unknown fields, a field whose type changed), an edit the
// controller cannot meet, and a controller restart in the middle, each judged by the
// Services' status: the IP they had stays.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { load } from "js-yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { KubeClient } from "../../src/k8s/client.ts";
import {
  applyCRDs,
  type Component,
  clients,
  createNamespace,
  createPool,
  createService,
  deletePool,
  getPool,
  getService,
  group,
  ingressIPs,
  repoRoot,
  startController,
  version,
  waitFor,
  waitForCondition,
  waitForEvent,
  waitForIPs,
} from "../support/cluster.ts";

const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const { core, custom } = clients();
const raw = () => KubeClient.load(inject("kubeconfig"));
const POOL_CRD = "ipaddresspools.ironlb.dev";

/** The pool CRD of this repository, changed by `edit` as a newer release might change it. */
async function applyNewerPoolCRD(edit: (schema: Schema) => void): Promise<void> {
  // Raw JSON through ironlb's own client: client-node's typed CRD model would drop the
  // x-kubernetes-* keys of a plain object.
  const doc = load(
    readFileSync(join(repoRoot, "config/crd/ironlb.dev_ipaddresspools.yaml"), "utf8"),
  ) as CRD;
  edit(doc.spec.versions[0]!.schema.openAPIV3Schema);
  const path = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${POOL_CRD}`;
  const cur = await raw().request<CRD>("GET", path);
  doc.metadata.resourceVersion = cur.metadata.resourceVersion;
  const updated = await raw().request<CRD>("PUT", path, { body: doc });
  await waitFor("the newer CRD to be established", async () => {
    const crd = await raw().request<CRD>("GET", path);
    return (
      crd.metadata.generation === updated.metadata.generation &&
      crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")
    );
  });
}
type CRD = {
  metadata: { resourceVersion?: string; generation?: number };
  spec: { versions: { schema: { openAPIV3Schema: Schema } }[] };
  status?: { conditions?: { type: string; status: string }[] };
};
type Schema = { properties: Record<string, Schema>; [k: string]: unknown };

async function patchPool(name: string, body: object, subresource?: "status") {
  const args = { group, version, plural: "ipaddresspools", name, body };
  if (subresource) await custom.patchClusterCustomObjectStatus(args, merge);
  else await custom.patchClusterCustomObject(args, merge);
}

async function annotate(ns: string, name: string, annotations: Record<string, string | null>) {
  await core.patchNamespacedService(
    { name, namespace: ns, body: { metadata: { annotations } } },
    merge,
  );
}

const readyOf = async (pool: string) =>
  (await getPool(pool)).status?.conditions?.find((c) => c.type === "Ready");

describe("configuration never costs an IP", () => {
  let ctrl: Component;
  const pools: string[] = [];

  beforeAll(async () => {
    await applyCRDs();
    ctrl = startController(["--no-leader-elect"]);
  });
  afterAll(async () => {
    await ctrl?.stop();
    await applyCRDs(); // the repository's CRDs again, for the files after this one
    for (const p of pools) await deletePool(p).catch(() => undefined);
  });

  async function scenario(prefix: string, addresses: string[], extra = {}) {
    const ns = await createNamespace(prefix);
    const pool = `${prefix}-${ns.split("-").slice(-2).join("-")}`;
    await createPool(pool, { addresses, serviceAllocation: { namespaces: [ns] }, ...extra });
    pools.push(pool);
    return { ns, pool };
  }

  it("ignores fields a newer CRD adds to spec and status, and says so once", async () => {
    const { ns, pool } = await scenario("skew", ["192.0.2.160/30"]);
    await createService(ns, "s");
    const [ip] = await waitForIPs(ns, "s");

    // A newer CRD adds a defaulted spec field and a status field: the apiserver now serves
    // them in every pool, this one included, without anybody editing it.
    await applyNewerPoolCRD((s) => {
      s.properties.spec!.properties.someFutureField = { type: "string", default: "on" } as never;
      s.properties.status!.properties.someFutureStatus = { type: "integer" } as never;
    });
    await waitFor("the pool served with the new default", async () => {
      const served = (await getPool(pool)) as unknown as { spec: Record<string, unknown> };
      return served.spec.someFutureField === "on";
    });
    // A newer controller wrote its new status field, then was rolled back to this one.
    await patchPool(pool, { status: { someFutureStatus: 7 } }, "status");
    await waitFor("the new status field stored", async () => {
      const served = (await getPool(pool)) as unknown as { status?: Record<string, unknown> };
      return served.status?.someFutureStatus === 7;
    });
    await ctrl.stop();
    ctrl = startController(["--no-leader-elect"]);

    const ev = await waitForEvent("default", pool, "UnknownFields", "spec.someFutureField");
    expect(ev.type).toBe("Warning");
    expect(ev.message).toContain("status.someFutureStatus");
    // The pool stays in use: the old Service keeps its IP, a new one gets the next address.
    await createService(ns, "t");
    expect(await waitForIPs(ns, "t")).toEqual(["192.0.2.161"]);
    expect(ingressIPs(await getService(ns, "s"))).toEqual([ip]);
    // Said once, although the pool's status is written since (its counts changed).
    await waitFor("pool status counts the new Service", async () => {
      return (await getPool(pool)).status?.assignedIPv4 === 2;
    });
    expect((await readyOf(pool))?.status).toBe("True");
    const lines = ctrl
      .logs()
      .filter((l) => l.pool === pool && String(l.msg).includes("does not know"));
    expect(lines).toHaveLength(1);
  });

  it("freezes a pool it cannot read: its Services keep their IPs, also across a restart", async () => {
    const { ns, pool } = await scenario("frozen", ["192.0.2.168/30"], {
      autoAssign: true,
    });
    await patchPool(pool, { spec: { serviceAllocation: { namespaces: [ns], priority: 1 } } });
    await createService(ns, "s");
    const [ip] = await waitForIPs(ns, "s");

    // A newer CRD lets priority be a word; someone uses that.
    await applyNewerPoolCRD((s) => {
      const sa = s.properties.spec!.properties.serviceAllocation!;
      sa.properties.priority = { "x-kubernetes-int-or-string": true } as never;
    });
    await patchPool(pool, { spec: { serviceAllocation: { priority: "high" } } });

    const ready = await waitFor("pool frozen", async () => {
      const r = await readyOf(pool);
      return r?.reason === "InvalidSpec" ? r : undefined;
    });
    expect(ready.status).toBe("False");
    expect(ready.message).toMatch(/^the pool is frozen: Services keep the IPs it gave them/);
    expect(ready.message).toContain("spec.serviceAllocation.priority: must be of type integer");
    const ev = await waitForEvent("default", pool, "PoolFrozen");
    expect(ev.type).toBe("Warning");

    // Nothing new comes from a frozen pool; a canary Service in another, healthy pool proves
    // the controller has handled every change made before it.
    await createService(ns, "new");
    const refused = await waitForCondition(ns, "new", "False", "NoMatchingPool");
    expect(refused.message).toContain(`${pool}: it is frozen`);
    expect(ingressIPs(await getService(ns, "s"))).toEqual([ip]);

    // A controller that starts next to the frozen pool restores the IP from the status.
    await ctrl.stop();
    ctrl = startController(["--no-leader-elect"]);
    await waitFor("the new controller to list", async () =>
      ctrl.logs().some((l) => l.msg === "restored assignments from service statuses"),
    );
    const restored = ctrl
      .logs()
      .find((l) => l.msg === "restored assignments from service statuses");
    expect(restored?.restored).toBeGreaterThanOrEqual(1);
    // Barrier: a Service created after the start, served by another pool, is reconciled
    // after the start-up queue (which holds s) was taken up.
    const other = `${pool}-b`;
    await createPool(other, {
      addresses: ["192.0.2.174/31"],
      autoAssign: false,
      serviceAllocation: { namespaces: [ns] },
    });
    pools.push(other);
    await createService(ns, "canary", { annotations: { "ironlb.dev/address-pool": other } });
    await waitForIPs(ns, "canary");
    expect(ingressIPs(await getService(ns, "s"))).toEqual([ip]);
    expect(
      ctrl.logs().some((l) => l.msg === "existing IP cannot be kept" && l.service === `${ns}/s`),
    ).toBe(false);

    // Readable again: the pool thaws and serves the waiting Service.
    await patchPool(pool, { spec: { serviceAllocation: { priority: 1 } } });
    expect(await waitForIPs(ns, "new")).toEqual(["192.0.2.169"]);
    expect(ingressIPs(await getService(ns, "s"))).toEqual([ip]);
    await waitFor("pool Ready again", async () => (await readyOf(pool))?.status === "True");
  });

  it("keeps the IP when an edit names a missing pool or a taken IP, also across a restart", async () => {
    await applyCRDs();
    const { ns } = await scenario("edit", ["192.0.2.176/30"]);
    await createService(ns, "a");
    await createService(ns, "b");
    const [ipA] = await waitForIPs(ns, "a");
    const [ipB] = await waitForIPs(ns, "b");

    await annotate(ns, "a", { "ironlb.dev/address-pool": "no-such-pool" });
    const c1 = await waitForCondition(ns, "a", "True", "PoolNotFound");
    expect(c1.message).toBe(
      `keeps ${ipA} from pool ${(await getService(ns, "a")).metadata?.annotations?.["ironlb.dev/ip-allocated-from-pool"]}; the requested change cannot be made: pool no-such-pool does not exist`,
    );
    expect((await waitForEvent(ns, "a", "AllocationFailed", "no-such-pool")).type).toBe("Warning");
    expect(ingressIPs(await getService(ns, "a"))).toEqual([ipA]);

    await annotate(ns, "b", { "ironlb.dev/loadBalancerIPs": ipA! });
    const c2 = await waitForCondition(ns, "b", "True", "IPInUse");
    expect(c2.message).toContain(`keeps ${ipB}`);
    expect(c2.message).toContain(`${ns}/a`);
    expect(ingressIPs(await getService(ns, "b"))).toEqual([ipB]);

    // A restart while both edits stand: both IPs stay.
    await ctrl.stop();
    ctrl = startController(["--no-leader-elect"]);
    await waitFor("the new controller to start", async () =>
      ctrl.logs().some((l) => l.msg === "controller started"),
    );
    const restored = ctrl
      .logs()
      .find((l) => l.msg === "restored assignments from service statuses");
    expect(
      ctrl
        .logs()
        .some((l) => l.msg === "existing IP cannot be kept" && String(l.service).startsWith(ns)),
    ).toBe(false);
    expect(restored?.restored).toBeGreaterThanOrEqual(2);
    // A change after the restart is reconciled (the canary), and nothing moved meanwhile.
    await createService(ns, "canary");
    await waitForIPs(ns, "canary");
    expect(ingressIPs(await getService(ns, "a"))).toEqual([ipA]);
    expect(ingressIPs(await getService(ns, "b"))).toEqual([ipB]);
    expect((await waitForCondition(ns, "a", "True", "PoolNotFound")).message).toContain(ipA);

    // Fixing the typo makes it Allocated again, with the same IP.
    await annotate(ns, "a", { "ironlb.dev/address-pool": null });
    await waitForCondition(ns, "a", "True", "Allocated");
    expect(ingressIPs(await getService(ns, "a"))).toEqual([ipA]);
  });

  it("holds IPs no pool holds when it starts (pools not created yet) and keeps them when the pools come", async () => {
    await applyCRDs();
    const { ns, pool } = await scenario("orphan", ["192.0.2.180/30"]);
    await createService(ns, "s");
    const [ipS] = await waitForIPs(ns, "s");

    // The controller is down; the pool goes (a CRD reinstalled, a restore from backup), and a
    // Service arrives as MetalLB left it: its status and MetalLB's pool annotation only.
    await ctrl.stop();
    await deletePool(pool);
    await createService(ns, "m", {
      annotations: { "metallb.universe.tf/ip-allocated-from-pool": pool },
    });
    await core.patchNamespacedServiceStatus(
      {
        name: "m",
        namespace: ns,
        body: { status: { loadBalancer: { ingress: [{ ip: "192.0.2.182" }] } } },
      },
      merge,
    );
    await createService(ns, "x", {
      annotations: { "metallb.universe.tf/ip-allocated-from-pool": pool },
    });
    await core.patchNamespacedServiceStatus(
      {
        name: "x",
        namespace: ns,
        body: { status: { loadBalancer: { ingress: [{ ip: "192.0.2.181" }] } } },
      },
      merge,
    );
    // A pool the Services do not ask for, which would take them if their IPs were released.
    const other = `${pool}-b`;
    await createPool(other, {
      addresses: ["192.0.2.184/30"],
      serviceAllocation: { namespaces: [ns] },
    });
    pools.push(other);
    ctrl = startController(["--no-leader-elect"]);

    // Started before the pool exists: every IP is held, none released or replaced.
    for (const [svc, ip] of [
      ["s", ipS],
      ["m", "192.0.2.182"],
      ["x", "192.0.2.181"],
    ] as const) {
      const held = await waitForCondition(ns, svc, "False", "IPNotInAnyPool");
      expect(held.message).toContain(
        `keeps ${ip}, which no IPAddressPool holds (pool ${pool} does not exist)`,
      );
      expect(ingressIPs(await getService(ns, svc))).toEqual([ip]);
    }
    expect((await waitForEvent(ns, "s", "IPHeld", "no IPAddressPool")).type).toBe("Warning");

    // Naming an existing pool is the way to give up a held IP for a new one.
    await annotate(ns, "x", { "ironlb.dev/address-pool": other });
    await waitForCondition(ns, "x", "True", "Allocated");
    expect(ingressIPs(await getService(ns, "x"))[0]).toMatch(/^192\.0\.2\.18[4-7]$/);

    // The pool comes: the held IPs become ordinary assignments, unchanged.
    await createPool(pool, {
      addresses: ["192.0.2.180/30"],
      serviceAllocation: { namespaces: [ns] },
    });
    await waitForCondition(ns, "s", "True", "Allocated");
    await waitForCondition(ns, "m", "True", "Allocated");
    expect(ingressIPs(await getService(ns, "s"))).toEqual([ipS]);
    const m = await getService(ns, "m");
    expect(ingressIPs(m)).toEqual(["192.0.2.182"]);
    expect(m.metadata?.annotations?.["ironlb.dev/ip-allocated-from-pool"]).toBe(pool);

    // A pool deleted while the controller watches is a decision it saw: its IPs are released
    // (here to the other pool, which admits the namespace).
    await deletePool(pool);
    await waitFor("s moved out of the deleted pool", async () => {
      const ips = ingressIPs(await getService(ns, "s"));
      return ips.length === 1 && ips[0] !== ipS;
    });
  });

  it("gives a held IP back to its Service before a waiting Service can take it from the new pool", async () => {
    const ns = await createNamespace("adopt");
    const pool = `adopt-${ns.split("-").slice(-2).join("-")}`;
    // Started with the controller down: "a-waits" asks for a pool that does not exist yet,
    // "b-held" keeps an IP no pool holds. Both are retried when the pool comes, "a-waits"
    // first (it waited first); the pool's one address is "b-held"'s.
    await ctrl.stop();
    await createService(ns, "a-waits", { annotations: { "ironlb.dev/address-pool": pool } });
    await createService(ns, "b-held");
    await core.patchNamespacedServiceStatus(
      {
        name: "b-held",
        namespace: ns,
        body: { status: { loadBalancer: { ingress: [{ ip: "192.0.2.188" }] } } },
      },
      merge,
    );
    // One reconcile at a time: "a-waits" is then waiting before "b-held" is held.
    ctrl = startController(["--no-leader-elect", "--concurrency", "1"]);
    await waitForCondition(ns, "a-waits", "False", "PoolNotFound");
    await waitForCondition(ns, "b-held", "False", "IPNotInAnyPool");

    await createPool(pool, {
      addresses: ["192.0.2.188/32"],
      serviceAllocation: { namespaces: [ns] },
    });
    pools.push(pool);
    await waitForCondition(ns, "b-held", "True", "Allocated");
    expect(ingressIPs(await getService(ns, "b-held"))).toEqual(["192.0.2.188"]);
    await waitForCondition(ns, "a-waits", "False", "PoolExhausted");
    expect(ingressIPs(await getService(ns, "a-waits"))).toEqual([]);
  });
});
