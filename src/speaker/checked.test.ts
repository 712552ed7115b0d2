import pino from "pino";
import { describe, expect, it } from "vitest";
import { parseIPAddressPool } from "../api/ipaddresspool.ts";
import { parseIPAnnouncement } from "../api/ipannouncement.ts";
import { Checked } from "./checked.ts";

const capture = () => {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  return { lines, log };
};

const pool = (rv: string, spec: Record<string, unknown>) => ({
  apiVersion: "ironlb.dev/v1beta1",
  kind: "IPAddressPool",
  metadata: { name: "default", uid: "u1", resourceVersion: rv },
  spec,
});

describe("Checked", () => {
  it("keeps a pool's last good version when an update fails the checks, said once per version", () => {
    const { lines, log } = capture();
    const pools = new Checked(
      { kind: "IPAddressPool", parse: parseIPAddressPool, freeze: true },
      log,
    );
    const good = pools.list([pool("1", { addresses: ["192.0.2.0/24"] })]);
    expect(good.map((p) => p.spec.addresses)).toEqual([["192.0.2.0/24"]]);
    const bad = pool("2", { addresses: ["198.51.100.0/24"], autoAssign: "yes" });
    expect(pools.list([bad]).map((p) => p.spec.addresses)).toEqual([["192.0.2.0/24"]]);
    pools.list([bad]);
    // A relist hands over a new object of the same version: checked, not said again.
    pools.list([structuredClone(bad)]);
    expect(lines.filter((l) => l.msg === "invalid IPAddressPool")).toEqual([
      expect.objectContaining({
        level: 40,
        name: "default",
        resourceVersion: "2",
        errors: ["spec.autoAssign: must be of type boolean"],
        using: "its last good version",
      }),
    ]);
  });

  it("uses what can be read of a pool it never saw good (salvage), else skips it", () => {
    const { lines, log } = capture();
    const salvage = (o: { metadata?: { name?: string } }) =>
      o.metadata?.name === "default" ? { salvaged: true } : undefined;
    const pools = new Checked<unknown>(
      { kind: "IPAddressPool", parse: parseIPAddressPool, freeze: true, salvage },
      log,
    );
    expect(pools.list([pool("2", { addresses: ["192.0.2.0/24"], autoAssign: "yes" })])).toEqual([
      { salvaged: true },
    ]);
    expect(lines.at(-1)).toMatchObject({ using: "what could be read of it" });
  });

  it("skips a record that fails the checks, and ignores unknown fields of one that passes", () => {
    const { lines, log } = capture();
    const records = new Checked(
      { kind: "IPAnnouncement", parse: parseIPAnnouncement, freeze: false },
      log,
    );
    const record = (name: string, rv: string, status: Record<string, unknown>) => ({
      metadata: { name, uid: name, resourceVersion: rv },
      status,
    });
    const ok = record("192-0-2-10", "5", { ip: "192.0.2.10", node: "node-a", weight: 3 });
    const bad = record("192-0-2-11", "6", { ip: "192.0.2.11", node: "Node_B!" });
    expect(records.list([ok, bad]).map((r) => r.status)).toEqual([
      { ip: "192.0.2.10", node: "node-a" },
    ]);
    expect(lines.map((l) => [l.msg, l.name, l.fields ?? l.using])).toEqual([
      ["unknown fields ignored (a newer CRD?)", "192-0-2-10", ["status.weight"]],
      ["invalid IPAnnouncement", "192-0-2-11", "nothing: skipped"],
    ]);
  });
});
