import { describe, expect, it } from "vitest";
import { crdExamples } from "../../test/fixtures/crd-examples.ts";
import { addressEntryErrors, parseAddressEntry, parseCIDR, parseIP } from "./addresses.ts";
import { parseIPAddressPool } from "./ipaddresspool.ts";
import { parseL2Advertisement } from "./l2advertisement.ts";

const parse = (kind: string, obj: unknown) =>
  kind === "IPAddressPool" ? parseIPAddressPool(obj) : parseL2Advertisement(obj);

describe("zod schemas agree with the CRD example table", () => {
  for (const ex of crdExamples) {
    it(`${ex.valid ? "accepts" : "rejects"} ${ex.kind} ${ex.name}`, () => {
      const r = parse(ex.kind, ex.object);
      if (ex.valid) {
        expect(r).toMatchObject({ ok: true });
      } else {
        expect(r.ok).toBe(false);
        // Same wording as the apiserver's rejection.
        if (!r.ok) expect(r.errors.join("\n")).toContain(ex.message);
      }
    });
  }
});

describe("parseIPAddressPool", () => {
  it("applies the defaults of the CRD", () => {
    const r = parseIPAddressPool({
      apiVersion: "ironlb.dev/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "p", uid: "x", resourceVersion: "1" },
      spec: { addresses: ["198.51.100.0/24"] },
    });
    expect(r).toEqual({
      ok: true,
      value: {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "IPAddressPool",
        metadata: { name: "p", uid: "x", resourceVersion: "1" },
        spec: {
          addresses: ["198.51.100.0/24"],
          autoAssign: true,
          avoidBuggyIPs: false,
          excludeNetworkAndBroadcast: false,
        },
      },
    });
  });

  it("reports the path of each error", () => {
    const r = parseIPAddressPool({
      apiVersion: "ironlb.dev/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "p" },
      spec: { addresses: ["198.51.100.0/24", "198.51.100.9/24"], avoidBuggyIPs: 1 },
    });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.errors).toContain(
        "spec.addresses[1]: host bits are set in 198.51.100.9/24: a CIDR must start at its network address (like 198.51.100.0/24, not 198.51.100.5/24)",
      );
      expect(r.errors).toContain("spec.avoidBuggyIPs: must be of type boolean");
    }
  });

  it("rejects a wrong kind or apiVersion", () => {
    const r = parseIPAddressPool({
      apiVersion: "v1",
      kind: "Service",
      metadata: {},
      spec: { addresses: ["::/0"] },
    });
    expect(r.ok).toBe(false);
  });
});

describe("address parser", () => {
  it("parses like Go's net/netip with the Kubernetes refusals", () => {
    expect(parseIP("198.51.100.7")).toEqual({ family: "IPv4", value: 0xc6336407n });
    expect(parseIP("2001:db8::1")).toEqual({ family: "IPv6", value: (0x20010db8n << 96n) | 1n });
    expect(parseIP("::")).toEqual({ family: "IPv6", value: 0n });
    expect(parseIP("::1.2.3.4")).toEqual({ family: "IPv6", value: 0x01020304n });
    expect(parseIP("1:2:3:4:5:6:7::")).not.toBeNull();
    for (const bad of [
      "1:2:3:4:5:6:7:8::", // "::" must stand for at least one group
      "1:2:3:4:5:6:7",
      "1::2::3",
      ":1::",
      "12345::",
      "1.2.3.4::",
      "::1.2.3.4:5",
      "::ffff:1.2.3.4", // IPv4-mapped
      "::ffff:102:304", // the same, in hex
      "fe80::1%eth0",
      "01.2.3.4",
      "1.2.3",
      "",
    ]) {
      expect(parseIP(bad), bad).toBeNull();
    }
    expect(parseCIDR("198.51.100.0/0")).not.toBeNull();
    expect(parseCIDR("198.51.100.0/+1")).toBeNull();
    expect(parseCIDR("198.51.100.0/")).toBeNull();
  });

  it("turns entries into intervals", () => {
    expect(parseAddressEntry("198.51.100.0/24")).toEqual({
      kind: "cidr",
      family: "IPv4",
      first: 0xc6336400n,
      last: 0xc63364ffn,
      prefix: 24,
    });
    expect(parseAddressEntry("2001:db8::10-2001:db8::1f")).toEqual({
      kind: "range",
      family: "IPv6",
      first: (0x20010db8n << 96n) | 0x10n,
      last: (0x20010db8n << 96n) | 0x1fn,
    });
    expect(parseAddressEntry("198.51.100.5/24")).toBeNull();
  });

  it("gives one message per mistake", () => {
    expect(addressEntryErrors("198.51.100.0/24")).toEqual([]);
    expect(addressEntryErrors("2001:db8::2-2001:db8::1")).toEqual([
      "range start must not be after its end",
    ]);
    expect(addressEntryErrors("198.51.100.1-2001:db8::1")).toEqual([
      "a range must not mix IPv4 and IPv6",
    ]);
  });
});
