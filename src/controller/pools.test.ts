import { describe, expect, it } from "vitest";
import type { PoolReport } from "../allocator/types.ts";
import { desiredPoolStatus, type PoolInput } from "./pools.ts";

const input: PoolInput = { name: "p", errors: [], generation: 3 };

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
