import { describe, expect, it } from "vitest";
import { crdExamples } from "../../test/fixtures/crd-examples.ts";
import { cidrContains, formatCIDR, parseCIDR } from "./cidr.ts";
import { formatRange, parseAddressEntry, parseRange } from "./range.ts";

describe("parseCIDR", () => {
  it("parses like CEL cidr() (host bits allowed)", () => {
    expect(parseCIDR("198.51.100.5/24")).toEqual({
      ip: { family: "IPv4", value: 0xc6336405n },
      prefix: 24,
    });
    expect(parseCIDR("198.51.100.0/0")).toBeDefined();
    expect(parseCIDR("::/0")).toBeDefined();
    expect(parseCIDR("2001:db8::/128")).toBeDefined();
  });

  it.each([
    "198.51.100.0",
    "198.51.100.0/",
    "198.51.100.0/+1",
    "198.51.100.0/-1",
    "198.51.100.0/024",
    "198.51.100.0/33",
    "198.51.100.0/24/1",
    "198.51.100.0/ 24",
    "2001:db8::/129",
    "fe80::%eth0/64",
    "::ffff:198.51.100.0/120",
    "/24",
  ])("rejects %j", (text) => {
    expect(parseCIDR(text)).toBeUndefined();
  });

  it("contains and formats", () => {
    const c = parseCIDR("2001:DB8::/126")!;
    expect(formatCIDR(c)).toBe("2001:db8::/126");
    expect(cidrContains(c, { family: "IPv6", value: (0x20010db8n << 96n) | 3n })).toBe(true);
    expect(cidrContains(c, { family: "IPv6", value: (0x20010db8n << 96n) | 4n })).toBe(false);
    expect(cidrContains(c, { family: "IPv4", value: 3n })).toBe(false);
  });
});

describe("parseAddressEntry", () => {
  it.each([
    [
      "198.51.100.0/24",
      { kind: "cidr", family: "IPv4", first: 0xc6336400n, last: 0xc63364ffn, prefix: 24 },
    ],
    [
      "198.51.100.10-198.51.100.20",
      { kind: "range", family: "IPv4", first: 0xc633640an, last: 0xc6336414n },
    ],
    [
      "2001:db8::/126",
      {
        kind: "cidr",
        family: "IPv6",
        first: 0x20010db8n << 96n,
        last: (0x20010db8n << 96n) + 3n,
        prefix: 126,
      },
    ],
    [
      "2001:db8::1-2001:db8::3",
      {
        kind: "range",
        family: "IPv6",
        first: (0x20010db8n << 96n) + 1n,
        last: (0x20010db8n << 96n) + 3n,
      },
    ],
    ["0.0.0.0/0", { kind: "cidr", family: "IPv4", first: 0n, last: 0xffffffffn, prefix: 0 }],
    ["::/0", { kind: "cidr", family: "IPv6", first: 0n, last: (1n << 128n) - 1n, prefix: 0 }],
  ])("%s", (input, out) => {
    expect(parseAddressEntry(input)).toEqual(out);
  });

  it.each([
    "198.51.100.77/24", // host bits
    "198.51.100.5", // a bare address is neither a CIDR nor a range
    "198.51.100.10 - 198.51.100.20",
    "198.51.100.20-198.51.100.10",
    "198.51.100.1-2001:db8::1",
    "198.51.100.1-",
    "-198.51.100.1",
    "198.51.100.1-198.51.100.2-198.51.100.3",
    "2001:db8::1/64",
    "bogus",
    "",
  ])("rejects %j", (input) => {
    expect(parseAddressEntry(input)).toBeUndefined();
  });

  it("formats ranges canonically", () => {
    expect(formatRange(parseRange("2001:DB8::a-2001:db8:0::f")!)).toBe("2001:db8::a-2001:db8::f");
  });
});

// The grammar must accept exactly the pool entries the CRD's CEL rules accept. The shared
// example table is checked against a real apiserver by test/integration/crd-validation.test.ts.
describe("agrees with the CRD validation table", () => {
  const entries = crdExamples.flatMap((ex) => {
    const spec = (ex.object as { spec?: { addresses?: unknown } }).spec;
    if (ex.kind !== "IPAddressPool" || !Array.isArray(spec?.addresses)) return [];
    // A rejected pool with one entry is rejected because of that entry, unless the
    // rejection is about the list or another field.
    const list = spec.addresses as string[];
    return list.map((entry) => ({
      example: ex.name,
      entry,
      valid: ex.valid,
      single: list.length === 1,
      message: ex.message,
    }));
  });
  const aboutEntry = (m: string | undefined) =>
    m !== undefined &&
    [
      "each address must",
      "must not contain spaces",
      "prefix length",
      "host bits",
      "must not mix",
      "range start",
    ].some((s) => m.includes(s));

  it("has address examples to check", () => {
    expect(entries.filter((e) => e.valid).length).toBeGreaterThan(10);
    expect(entries.filter((e) => !e.valid && aboutEntry(e.message)).length).toBeGreaterThan(15);
  });

  for (const e of entries) {
    if (e.valid) {
      it(`accepts ${e.entry} (${e.example})`, () => {
        expect(parseAddressEntry(e.entry)).toBeDefined();
      });
    } else if (e.single && aboutEntry(e.message)) {
      it(`rejects ${e.entry} (${e.example})`, () => {
        expect(parseAddressEntry(e.entry)).toBeUndefined();
      });
    }
  }
});
