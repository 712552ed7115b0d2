import { describe, expect, it } from "vitest";
import type { PoolReport } from "../allocator/types.ts";
import { desiredPoolStatus, type PoolInput, toPoolInput } from "./pools.ts";

const input: PoolInput = { name: "p", errors: [], ignored: [], generation: 3 };

function report(extra: Partial<PoolReport>): PoolReport {
  return {
    name: "p",
    assignedIPv4: 0,
    assignedIPv6: 0,
    availableIPv4: 0,
    availableIPv6: 0,
    invalidAddresses: [],
    overlapsWith: [],
    empty: false,
    warnings: [],
    ...extra,
  };
}

const ready = (s: ReturnType<typeof desiredPoolStatus>) =>
  s.conditions.find((c) => c.type === "Ready");

describe("desiredPoolStatus", () => {
  it("is Ready with usable addresses and nothing asked that it lacks", () => {
    const s = desiredPoolStatus(input, report({ availableIPv4: 4 }), []);
    expect(ready(s)).toMatchObject({ status: "True", reason: "PoolReady", observedGeneration: 3 });
  });

  it("is not Ready when Services ask it for a family it has no address of", () => {
    const s = desiredPoolStatus(input, report({ availableIPv4: 4 }), [
      { service: "shop/web", families: ["IPv6"] },
      { service: "shop/api", families: ["IPv4", "IPv6"] },
      { service: "shop/db", families: ["IPv4"] },
    ]);
    expect(ready(s)).toMatchObject({
      status: "False",
      reason: "FamilyUnavailable",
      message:
        "Services ask this pool for IPv6 addresses but it has none usable (shop/api, shop/web)",
    });
  });

  it("counts assigned addresses as addresses of the family", () => {
    const s = desiredPoolStatus(input, report({ assignedIPv6: 1 }), [
      { service: "shop/web", families: ["IPv6"] },
    ]);
    expect(ready(s)?.status).toBe("True");
  });

  it("names at most a few Services", () => {
    const asked = Array.from({ length: 50 }, (_, i) => ({
      service: `ns/s${String(i).padStart(2, "0")}`,
      families: ["IPv6" as const],
    }));
    const s = desiredPoolStatus(input, report({ availableIPv4: 1 }), asked);
    expect(ready(s)?.message).toBe(
      "Services ask this pool for IPv6 addresses but it has none usable (ns/s00, ns/s01, ns/s02, ns/s03, ns/s04 and 45 more)",
    );
  });

  it("says why an empty pool is empty", () => {
    const s = desiredPoolStatus(input, report({ empty: true, overlapsWith: ["old"] }), []);
    expect(ready(s)).toMatchObject({ status: "False", reason: "NoUsableAddresses" });
    expect(ready(s)?.message).toContain("old");
  });

  it("mentions suspicious addresses while staying Ready", () => {
    const s = desiredPoolStatus(
      input,
      report({ availableIPv4: 4, warnings: ["holds loopback addresses (127.0.0.0/8, ::1)"] }),
      [],
    );
    expect(ready(s)).toMatchObject({ status: "True", reason: "PoolReady" });
    expect(ready(s)?.message).toContain("holds loopback addresses");
  });
});

describe("toPoolInput: a pool object never costs its IPs (issue 16)", () => {
  const obj = (spec: Record<string, unknown>, status?: Record<string, unknown>) => ({
    apiVersion: "ironlb.dev/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: "p", uid: "u1", generation: 2, creationTimestamp: "2026-01-01T00:00:00Z" },
    spec,
    ...(status ? { status } : {}),
  });

  it("ignores unknown fields in spec and status, and lists them", () => {
    const r = toPoolInput(
      obj(
        { addresses: ["192.0.2.0/30"], someFutureField: { x: 1 } },
        { someFutureStatus: 3, assignedIPv4: 1 },
      ),
    );
    expect(r.errors).toEqual([]);
    expect(r.ignored).toEqual(["spec.someFutureField", "status.someFutureStatus"]);
    expect(r.spec).toMatchObject({ name: "p", addresses: ["192.0.2.0/30"], autoAssign: true });
    expect(r.spec?.frozen).toBeUndefined();
  });

  it("freezes an unreadable pool on its last good spec (same object only)", () => {
    const good = toPoolInput(
      obj({ addresses: ["192.0.2.0/30"], serviceAllocation: { namespaces: ["a"] } }),
    );
    const lastGood = { uid: "u1", spec: good.spec! };
    // A newer CRD made priority a string: this controller cannot read the pool.
    const bad = obj({
      addresses: ["198.51.100.0/30"],
      serviceAllocation: { priority: "high", namespaces: ["a"] },
    });
    const r = toPoolInput(bad, lastGood);
    expect(r.errors).toEqual(["spec.serviceAllocation.priority: must be of type integer"]);
    expect(r.spec).toEqual({ ...good.spec, frozen: true });
    // Another object of the same name (deleted and made again) does not inherit it.
    const other = toPoolInput(bad, { uid: "u0", spec: good.spec! });
    expect(other.spec).toMatchObject({
      addresses: ["198.51.100.0/30"],
      autoAssign: false,
      frozen: true,
    });
    expect(other.spec?.namespaces).toBeUndefined();
  });

  it("salvages string address entries when nothing was read before; nothing else", () => {
    const r = toPoolInput(
      obj({
        addresses: ["192.0.2.0/30", 7, "2001:db8::/126"],
        avoidBuggyIPs: true,
        autoAssign: "yes",
      }),
    );
    expect(r.errors.length).toBeGreaterThan(0);
    expect(r.spec).toEqual({
      name: "p",
      addresses: ["192.0.2.0/30", "2001:db8::/126"],
      autoAssign: false,
      avoidBuggyIPs: true,
      excludeNetworkAndBroadcast: false,
      creationTimestamp: "2026-01-01T00:00:00Z",
      allowSharingAcrossNamespaces: true,
      frozen: true,
    });
    expect(toPoolInput(obj({ addresses: "192.0.2.0/30" })).spec).toBeUndefined();
  });

  it("says in Ready that a frozen pool keeps its IPs", () => {
    const r = toPoolInput(obj({ addresses: ["192.0.2.0/30"], autoAssign: "yes" }));
    const s = desiredPoolStatus(r, report({ assignedIPv4: 1, availableIPv4: 3 }));
    expect(ready(s)).toMatchObject({ status: "False", reason: "InvalidSpec" });
    expect(ready(s)?.message).toMatch(/^the pool is frozen: Services keep the IPs it gave them/);
    expect(ready(s)?.message).toMatch("spec.autoAssign: must be of type boolean");
    expect(s.assignedIPv4).toBe(1);
  });
});
