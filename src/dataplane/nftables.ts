// The speaker's nftables table (`inet ironlb`) as data, and the `nft -f` transactions that
// take the kernel from one version to the next. Pure: the edge (nft.ts) only runs them.
//
// Shape of the table:
//   prerouting, output   nat hooks just before kube-proxy's (dstnat - 10): jump services
//   services             one verdict map per family: IP . protocol . port → svc-<id>
//   svc-<id>             affinity first (a client seen recently goes to its endpoint), then
//                        a random pick per new connection (NAT sees only a flow's first
//                        packet, so this is a per-flow choice) over the ready endpoints
//   ep-<id>              remembers the client when sessionAffinity is ClientIP; DNAT to the
//                        endpoint. Straight to the pod: a DNAT to the node's own NodePort
//                        would hide the packet from kube-proxy (one DNAT per hook).
//   postrouting          masquerade for Cluster only, matched on the connection's original
//                        destination (no packet marks to collide with kube-proxy or a CNI)
//   no-endpoints         new connections to an IP:port with no eligible endpoint get a TCP
//                        reset or ICMP unreachable rather than silence
import { createHash } from "node:crypto";
import type { Endpoint, Forward } from "./desired.ts";

export const TABLE_FAMILY = "inet";
export const TABLE_NAME = "ironlb";
const T = `${TABLE_FAMILY} ${TABLE_NAME}`;

export interface Chain {
  /** Base-chain specification, e.g. "type nat hook prerouting priority dstnat - 10; policy accept;". */
  base?: string;
  rules: string[];
}

export interface Table {
  /** Set name → its specification (names change when the specification does). */
  sets: Map<string, string>;
  chains: Map<string, Chain>;
}

/** Builds the table for the given forwarding (from desiredForwarding). */
export function buildTable(forwards: readonly Forward[]): Table {
  const sets = new Map<string, string>();
  const chains = new Map<string, Chain>();
  chains.set("prerouting", {
    base: "type nat hook prerouting priority dstnat - 10; policy accept;",
    rules: ["jump services"],
  });
  // Connections the node itself opens to a Service IP (the output hook has no "dstnat" alias).
  chains.set("output", {
    base: "type nat hook output priority -110; policy accept;",
    rules: ["jump services"],
  });
  const post: string[] = [];
  const reject: string[] = [];
  const maps: Record<4 | 6, string[]> = { 4: [], 6: [] };
  for (const f of forwards) {
    const ipk = f.family === 4 ? "ip" : "ip6";
    if (f.endpoints.length === 0) {
      reject.push(
        f.protocol === "tcp"
          ? `ct state new ${ipk} daddr ${f.ip} tcp dport ${f.port} reject with tcp reset`
          : `ct state new ${ipk} daddr ${f.ip} meta l4proto ${f.protocol} th dport ${f.port} reject`,
      );
      continue;
    }
    const sid = id("svc", f.service, f.ip, f.protocol, f.port);
    const svcChain = `svc-${sid}`;
    maps[f.family].push(`${f.ip} . ${f.protocol} . ${f.port} : goto ${svcChain}`);
    const svcRules: string[] = [];
    const picks: string[] = [];
    f.endpoints.forEach((ep, i) => {
      const eid = id("ep", sid, ep.address, ep.port, f.affinitySeconds ?? 0);
      const epChain = `ep-${eid}`;
      const epRules: string[] = [];
      if (f.affinitySeconds !== undefined) {
        const set = `aff-${eid}`;
        sets.set(
          set,
          `type ${f.family === 4 ? "ipv4_addr" : "ipv6_addr"}; flags dynamic,timeout; timeout ${f.affinitySeconds}s;`,
        );
        svcRules.push(`${ipk} saddr @${set} goto ${epChain}`);
        epRules.push(`update @${set} { ${ipk} saddr }`);
      }
      epRules.push(`meta l4proto ${f.protocol} dnat ${ipk} to ${target(f.family, ep)}`);
      chains.set(epChain, { rules: epRules });
      picks.push(`${i} : goto ${epChain}`);
    });
    svcRules.push(`numgen random mod ${f.endpoints.length} vmap { ${picks.join(", ")} }`);
    chains.set(svcChain, { rules: svcRules });
    if (f.masquerade)
      post.push(
        `ct status dnat ct original ${ipk} daddr ${f.ip} meta l4proto ${f.protocol} ct original proto-dst ${f.port} masquerade`,
      );
  }
  const services: string[] = [];
  if (maps[4].length > 0)
    services.push(`ip daddr . meta l4proto . th dport vmap { ${maps[4].join(", ")} }`);
  if (maps[6].length > 0)
    services.push(`ip6 daddr . meta l4proto . th dport vmap { ${maps[6].join(", ")} }`);
  chains.set("services", { rules: services });
  chains.set("postrouting", {
    base: "type nat hook postrouting priority srcnat - 10; policy accept;",
    rules: post,
  });
  // Before connection tracking's NAT (dstnat - 20), so that the original address is seen.
  chains.set("no-endpoints", {
    base: "type filter hook prerouting priority dstnat - 20; policy accept;",
    rules: reject,
  });
  return { sets, chains };
}

/**
 * The `nft -f` script that takes the kernel from `prev` to `next` in one transaction, or
 * undefined when nothing changes. Without `prev` (start-up, or after a failed apply), the
 * table is deleted and rebuilt from scratch in the same transaction: whatever an earlier
 * run left is gone, and nothing is ever missing in between. Incremental changes keep the
 * affinity sets of endpoints that stay, so that clients keep their endpoint.
 */
export function transaction(prev: Table | undefined, next: Table): string | undefined {
  const lines: string[] = [];
  if (!prev) {
    // "add" first: "delete" of a table that does not exist would fail the transaction.
    lines.push(`add table ${T}`, `delete table ${T}`, `add table ${T}`);
  }
  const old: Table = prev ?? { sets: new Map(), chains: new Map() };
  for (const [name, spec] of next.sets)
    if (!old.sets.has(name)) lines.push(`add set ${T} ${name} { ${spec} }`);
  for (const [name, c] of next.chains)
    if (!old.chains.has(name))
      lines.push(`add chain ${T} ${name}${c.base ? ` { ${c.base} }` : ""}`);
  const changed = [...next.chains].filter(([name, c]) => {
    const o = old.chains.get(name);
    return !o || !sameRules(o.rules, c.rules);
  });
  const gone = [...old.chains.keys()].filter((name) => !next.chains.has(name));
  for (const [name] of changed) if (old.chains.has(name)) lines.push(`flush chain ${T} ${name}`);
  // Rules of vanishing chains go before the chains, and chains before the sets they use.
  for (const name of gone) lines.push(`flush chain ${T} ${name}`);
  for (const [name, c] of changed)
    for (const r of c.rules) lines.push(`add rule ${T} ${name} ${r}`);
  for (const name of gone) lines.push(`delete chain ${T} ${name}`);
  for (const name of old.sets.keys())
    if (!next.sets.has(name)) lines.push(`delete set ${T} ${name}`);
  if (prev && lines.length === 0) return undefined;
  return `${lines.join("\n")}\n`;
}

/**
 * Deletes the table; nft fails with "No such file or directory" when there is none, which
 * the caller takes as done. (Adding it first would make the delete always succeed, but
 * would create the table for an instant on a node that never had one.)
 */
export function deleteIfPresentScript(): string {
  return `delete table ${T}\n`;
}

function target(family: 4 | 6, ep: Endpoint): string {
  return family === 4 ? `${ep.address}:${ep.port}` : `[${ep.address}]:${ep.port}`;
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

/** A short stable name part: chain and set names must be identifiers (no ":" of IPv6). */
function id(...parts: (string | number)[]): string {
  return createHash("sha256").update(parts.join("|")).digest("hex").slice(0, 12);
}
