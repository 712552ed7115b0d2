import { describe, expect, it } from "vitest";
import type { Forward } from "./desired.ts";
import { buildTable, deleteIfPresentScript, transaction } from "./nftables.ts";

const web: Forward = {
  service: "default/web",
  ip: "198.51.100.10",
  family: 4,
  protocol: "tcp",
  port: 80,
  masquerade: true,
  endpoints: [
    { address: "198.51.100.131", port: 8080 },
    { address: "198.51.100.146", port: 8080 },
  ],
};

/** The rules of the table, chain by chain, with generated ids replaced by their order. */
function rulesOf(forwards: Forward[]): Record<string, string[]> {
  const t = buildTable(forwards);
  const names = new Map<string, string>();
  const alias = (s: string) =>
    s.replace(/\b(svc|ep|aff)-([0-9a-f]{12})\b/g, (_m, kind: string, h: string) => {
      const k = `${kind}-${h}`;
      if (!names.has(k))
        names.set(k, `${kind}-${[...names.keys()].filter((x) => x.startsWith(kind)).length}`);
      return names.get(k)!;
    });
  const out: Record<string, string[]> = {};
  for (const [name, c] of t.chains) out[alias(name)] = c.rules.map(alias);
  for (const [name, spec] of t.sets) out[`set ${alias(name)}`] = [spec];
  return out;
}

describe("buildTable", () => {
  it("no forwarding: the base chains only, jumping to an empty services chain", () => {
    expect(rulesOf([])).toEqual({
      prerouting: ["jump services"],
      output: ["jump services"],
      services: [],
      postrouting: [],
      "no-endpoints": [],
    });
  });

  it("Cluster: a random pick per new flow over the endpoints, DNAT to each, masquerade", () => {
    expect(rulesOf([web])).toEqual({
      prerouting: ["jump services"],
      output: ["jump services"],
      "ep-0": ["meta l4proto tcp dnat ip to 198.51.100.131:8080"],
      "ep-1": ["meta l4proto tcp dnat ip to 198.51.100.146:8080"],
      "svc-0": ["numgen random mod 2 vmap { 0 : goto ep-0, 1 : goto ep-1 }"],
      services: [
        "ip daddr . meta l4proto . th dport vmap { 198.51.100.10 . tcp . 80 : goto svc-0 }",
      ],
      postrouting: [
        "ct status dnat ct original ip daddr 198.51.100.10 meta l4proto tcp ct original proto-dst 80 masquerade",
      ],
      "no-endpoints": [],
    });
  });

  it("Local: no masquerade (the pod sees the client)", () => {
    const r = rulesOf([{ ...web, masquerade: false, endpoints: [web.endpoints[0]!] }]);
    expect(r.postrouting).toEqual([]);
    expect(r["svc-0"]).toEqual(["numgen random mod 1 vmap { 0 : goto ep-0 }"]);
  });

  it("sessionAffinity ClientIP: a timeout set per endpoint, consulted first, refreshed on use", () => {
    const r = rulesOf([{ ...web, affinitySeconds: 600 }]);
    expect(r["svc-0"]).toEqual([
      "ip saddr @aff-0 goto ep-0",
      "ip saddr @aff-1 goto ep-1",
      "numgen random mod 2 vmap { 0 : goto ep-0, 1 : goto ep-1 }",
    ]);
    expect(r["ep-0"]).toEqual([
      "update @aff-0 { ip saddr }",
      "meta l4proto tcp dnat ip to 198.51.100.131:8080",
    ]);
    expect(r["set aff-0"]).toEqual(["type ipv4_addr; flags dynamic,timeout; timeout 600s;"]);
  });

  it("no eligible endpoint: new connections are rejected (TCP reset, ICMP for others)", () => {
    const r = rulesOf([
      { ...web, endpoints: [] },
      { ...web, protocol: "udp", port: 53, endpoints: [] },
      { ...web, ip: "2001:db8:2:100::10", family: 6, endpoints: [] },
    ]);
    expect(r["no-endpoints"]).toEqual([
      "ct state new ip daddr 198.51.100.10 tcp dport 80 reject with tcp reset",
      "ct state new ip daddr 198.51.100.10 meta l4proto udp th dport 53 reject",
      "ct state new ip6 daddr 2001:db8:2:100::10 tcp dport 80 reject with tcp reset",
    ]);
    expect(r.services).toEqual([]);
    expect(r.postrouting).toEqual([]);
  });

  it("IPv6: its own map, ip6 matches, bracketed DNAT targets", () => {
    const r = rulesOf([
      web,
      {
        ...web,
        ip: "2001:db8:2:100::10",
        family: 6,
        affinitySeconds: 30,
        endpoints: [{ address: "2001:db8:2:1::5", port: 8080 }],
      },
    ]);
    expect(r.services).toEqual([
      "ip daddr . meta l4proto . th dport vmap { 198.51.100.10 . tcp . 80 : goto svc-0 }",
      "ip6 daddr . meta l4proto . th dport vmap { 2001:db8:2:100::10 . tcp . 80 : goto svc-1 }",
    ]);
    expect(r["ep-2"]).toEqual([
      "update @aff-0 { ip6 saddr }",
      "meta l4proto tcp dnat ip6 to [2001:db8:2:1::5]:8080",
    ]);
    expect(r["set aff-0"]).toEqual(["type ipv6_addr; flags dynamic,timeout; timeout 30s;"]);
    expect(r.postrouting).toContain(
      "ct status dnat ct original ip6 daddr 2001:db8:2:100::10 meta l4proto tcp ct original proto-dst 80 masquerade",
    );
  });

  it("names are stable: the same forwarding gives the same table", () => {
    expect(buildTable([web])).toEqual(buildTable([{ ...web }]));
  });
});

describe("transaction", () => {
  it("without a previous table: deletes and rebuilds the table in one script", () => {
    const s = transaction(undefined, buildTable([]))!;
    expect(s.split("\n").slice(0, 4)).toEqual([
      "add table inet ironlb",
      "delete table inet ironlb",
      "add table inet ironlb",
      "add chain inet ironlb prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }",
    ]);
    expect(s).toContain("add rule inet ironlb prerouting jump services\n");
    expect(s).not.toMatch(/flush|delete (chain|set)/);
  });

  it("nothing changed: no script", () => {
    expect(transaction(buildTable([web]), buildTable([web]))).toBeUndefined();
  });

  it("an endpoint leaves: only changed chains are rewritten, its chain and set go last", () => {
    const a = { ...web, affinitySeconds: 60 };
    const prev = buildTable([a]);
    const next = buildTable([{ ...a, endpoints: [a.endpoints[0]!] }]);
    const lines = transaction(prev, next)!.trim().split("\n");
    const gone = [...prev.chains.keys()].find((c) => !next.chains.has(c))!;
    const goneSet = [...prev.sets.keys()].find((c) => !next.sets.has(c))!;
    const svc = [...next.chains.keys()].find((c) => c.startsWith("svc-"))!;
    const kept = [...next.sets.keys()][0]!;
    expect(lines).toEqual([
      `flush chain inet ironlb ${svc}`,
      `flush chain inet ironlb ${gone}`,
      `add rule inet ironlb ${svc} ip saddr @${kept} goto ep-${kept.slice(4)}`,
      `add rule inet ironlb ${svc} numgen random mod 1 vmap { 0 : goto ep-${kept.slice(4)} }`,
      `delete chain inet ironlb ${gone}`,
      `delete set inet ironlb ${goneSet}`,
    ]);
    // The remaining endpoint's affinity set is not touched: its clients stay.
    expect(lines.join("\n")).not.toContain(`set inet ironlb ${kept}`);
  });

  it("a Service appears: new sets and chains are added before rules use them", () => {
    const lines = transaction(buildTable([]), buildTable([{ ...web, affinitySeconds: 5 }]))!
      .trim()
      .split("\n");
    const firstRule = lines.findIndex((l) => l.startsWith("add rule"));
    expect(
      lines
        .slice(0, firstRule)
        .every((l) => /^add (set|chain) /.test(l) || l.startsWith("flush chain")),
    ).toBe(true);
    expect(lines.filter((l) => l.startsWith("add set"))).toHaveLength(2);
    expect(lines).toContain("flush chain inet ironlb services");
    expect(lines).toContain("flush chain inet ironlb postrouting");
  });

  it("clean stop: delete the table, also when it does not exist", () => {
    expect(deleteIfPresentScript()).toBe("delete table inet ironlb\n");
  });
});
