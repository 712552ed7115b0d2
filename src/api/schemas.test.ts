import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { crdExamples } from "../../test/fixtures/crd-examples.ts";
import { parseAddressEntry } from "../net/range.ts";
import { addressEntryErrors } from "./addresses.ts";
import { parseBFDProfile } from "./bfdprofile.ts";
import { parseBGPAdvertisement } from "./bgpadvertisement.ts";
import { parseBGPPeer } from "./bgppeer.ts";
import { parseBGPSessionState } from "./bgpsessionstate.ts";
import { parseIPAddressPool, parseIPAddressPoolStatus } from "./ipaddresspool.ts";
import { parseIPAnnouncement } from "./ipannouncement.ts";
import { parseL2Advertisement } from "./l2advertisement.ts";

const parsers: Record<string, (obj: unknown) => { ok: true } | { ok: false; errors: string[] }> = {
  IPAddressPool: parseIPAddressPool,
  IPAnnouncement: parseIPAnnouncement,
  L2Advertisement: parseL2Advertisement,
  BGPPeer: parseBGPPeer,
  BGPAdvertisement: parseBGPAdvertisement,
  BGPSessionState: parseBGPSessionState,
  BFDProfile: parseBFDProfile,
};
const parse = (kind: string, obj: unknown) => parsers[kind]!(obj);

describe("the checkers agree with the CRD example table", () => {
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

  it("rejects unknown fields by default, and only lists them when asked to ignore them", () => {
    const obj = {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "p" },
      spec: {
        addresses: ["198.51.100.0/24"],
        someFutureField: true,
        serviceAllocation: { priority: 1, later: 1 },
      },
      status: { someFutureStatus: "x" },
    };
    expect(parseIPAddressPool(obj)).toEqual({
      ok: false,
      errors: [
        'unknown field "spec.serviceAllocation.later"',
        'unknown field "spec.someFutureField"',
        'unknown field "status.someFutureStatus"',
      ],
    });
    const r = parseIPAddressPool(obj, { unknownFields: "ignore" });
    expect(r).toMatchObject({
      ok: true,
      ignored: ["spec.serviceAllocation.later", "spec.someFutureField", "status.someFutureStatus"],
      value: { spec: { addresses: ["198.51.100.0/24"], serviceAllocation: { priority: 1 } } },
    });
    if (r.ok) expect(r.value.spec).not.toHaveProperty("someFutureField");
    // Real errors still count; unknown fields do not hide the object's own rules.
    const bad = parseIPAddressPool(
      { ...obj, spec: { ...obj.spec, addresses: ["198.51.100.9/24"] } },
      { unknownFields: "ignore" },
    );
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.errors).toEqual([expect.stringMatching(/^spec.addresses\[0\]: host bits/)]);
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

describe("address messages", () => {
  it("gives one message per mistake", () => {
    expect(addressEntryErrors("198.51.100.0/24")).toEqual([]);
    expect(addressEntryErrors("2001:db8::2-2001:db8::1")).toEqual([
      "range start must not be after its end",
    ]);
    expect(addressEntryErrors("198.51.100.1-2001:db8::1")).toEqual([
      "a range must not mix IPv4 and IPv6",
    ]);
  });

  it("agrees with the grammar of src/net (parseAddressEntry) on arbitrary entries on arbitrary entries", () => {
    const piece = fc.oneof(
      fc.ipV4(),
      fc.ipV6(),
      fc.constantFrom("::", "0.0.0.0", "::ffff:1.2.3.4", "01.2.3.4", "fe80::1%lo", "1::2::3", ""),
    );
    const entry = fc.oneof(
      fc.tuple(piece, fc.integer({ min: -1, max: 130 })).map(([ip, p]) => `${ip}/${p}`),
      fc.tuple(piece, piece).map(([a, b]) => `${a}-${b}`),
      piece,
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(entry, (text) => {
        const parsed = parseAddressEntry(text);
        expect(parsed === undefined).toBe(addressEntryErrors(text).length > 0);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("checker messages the table does not cover", () => {
  const base = {
    apiVersion: "ironlb.dev/v1beta1",
    kind: "IPAddressPool",
    metadata: { name: "p" },
    spec: { addresses: ["198.51.100.0/24"] },
  };
  const errors = (obj: unknown) => {
    const r = parseIPAddressPool(obj);
    return r.ok ? [] : r.errors;
  };

  it("words types, limits and enums as the apiserver does", () => {
    expect(
      errors({ ...base, spec: { ...base.spec, serviceAllocation: { priority: 1.5 } } }),
    ).toEqual(["spec.serviceAllocation.priority: must be of type integer"]);
    expect(errors({ ...base, spec: "x" })).toEqual(["spec: must be of type object"]);
    expect(errors({ ...base, apiVersion: "v1" })).toEqual([
      'apiVersion: Unsupported value: "v1": supported values: "ironlb.dev/v1beta1"',
    ]);
    expect(
      errors({
        ...base,
        spec: {
          addresses: Array.from({ length: 257 }, (_, i) => `2001:db8::${i.toString(16)}/128`),
        },
      }),
    ).toEqual(["spec.addresses: must have at most 256 items"]);
    expect(errors({ ...base, metadata: { name: "Bad_Name" } })[0]).toMatch(
      /^metadata\.name: a name is a DNS subdomain/,
    );
  });

  it("checks the status: counts, one condition per type, RFC 3339 times", () => {
    const cond = {
      type: "Ready",
      status: "True",
      reason: "PoolReady",
      message: "",
      lastTransitionTime: "2026-12-01T15:05:17Z",
    };
    expect(parseIPAddressPoolStatus({ assignedIPv4: 3, conditions: [cond] })).toMatchObject({
      ok: true,
    });
    expect(
      parseIPAddressPoolStatus({
        assignedIPv4: -1,
        conditions: [cond, { ...cond, lastTransitionTime: "yesterday" }],
      }),
    ).toEqual({
      ok: false,
      errors: [
        "assignedIPv4: should be greater than or equal to 0",
        "conditions[1].lastTransitionTime: must be an RFC 3339 date-time, like 2026-12-01T15:05:17Z",
        'conditions[1]: Duplicate value: map[string]interface {}{"type":"Ready"}',
      ],
    });
  });

  it("keeps unknown metadata fields (the apiserver's, like managedFields) untouched", () => {
    const r = parseIPAddressPool({ ...base, metadata: { name: "p", managedFields: [{ a: 1 }] } });
    expect(r).toMatchObject({ ok: true, value: { metadata: { managedFields: [{ a: 1 }] } } });
  });
});
