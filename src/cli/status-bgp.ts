// The BGP part of `ironlb status`: each node's sessions (from the speakers' BGPSessionStates)
// and, per Service IP, which nodes advertise it to which peer: what each speaker recorded
// in the IP's IPAnnouncement (status.bgp), with the session's state where it is not
// Established (the route reaches that router only once it is). Where nothing is recorded,
// the speakers' own plan (src/speaker/bgp-plan.ts), evaluated for every node over what the
// API server holds, says which nodes are about to advertise it, or why none does.
import type { KubernetesObject } from "@kubernetes/client-node";
import { type BGPAdvertisement, parseBGPAdvertisement } from "../api/bgpadvertisement.ts";
import { type BGPPeer, parseBGPPeer } from "../api/bgppeer.ts";
import type { BGPSessionState } from "../api/bgpsessionstate.ts";
import { type IPAnnouncement, parseIPAnnouncement } from "../api/ipannouncement.ts";
import { planBgp } from "../speaker/bgp-plan.ts";
import type { ObjectInputs } from "../speaker/decision.ts";

export interface BgpStatusInput {
  peers: (BGPPeer & KubernetesObject)[];
  ads: (BGPAdvertisement & KubernetesObject)[];
  sessions: (BGPSessionState & KubernetesObject)[];
}

export interface SessionRow {
  node: string;
  peer: string;
  state: string;
  prefixes: string;
  flaps: string;
  lastError: string;
}

export interface AdvertiserRow {
  service: string;
  ip: string;
  peer: string;
  /** Nodes advertising the IP to the peer, or why none does. */
  nodes: string;
}

/** One row per BGPSessionState, sorted by node and peer. */
export function sessionRows(input: BgpStatusInput): SessionRow[] {
  return input.sessions
    .flatMap((o) => (o.status ? [o.status] : []))
    .sort((a, b) => (a.node === b.node ? (a.peer < b.peer ? -1 : 1) : a.node < b.node ? -1 : 1))
    .map((s) => ({
      node: s.node,
      peer: s.peer,
      state: s.state,
      prefixes: String(s.prefixesSent ?? 0),
      flaps: String(s.flaps ?? 0),
      // An error from before the session came up is history, not its state.
      lastError: s.state === "Established" ? "-" : (s.lastError ?? "-"),
    }));
}

/**
 * Per Service IP and BGPPeer, the nodes that advertise it there; an IP no node advertises
 * gets one row with the first node's reason. Empty without BGPPeers (BGP mode unused).
 */
export function advertiserRows(
  objects: ObjectInputs,
  input: BgpStatusInput,
  /** Nodes whose speaker is live (Lease current): a node without one advertises nothing. */
  live?: ReadonlySet<string>,
  /** The IPAnnouncements: what the speakers recorded (absent: the plan alone). */
  records?: readonly IPAnnouncement[],
): AdvertiserRow[] {
  const peers = input.peers.flatMap((p) => {
    const r = parseBGPPeer(p, { unknownFields: "ignore" });
    return r.ok ? [{ name: r.value.metadata.name ?? "", spec: r.value.spec }] : [];
  });
  if (peers.length === 0) return [];
  const advertisements = input.ads.flatMap((a) => {
    const r = parseBGPAdvertisement(a, { unknownFields: "ignore" });
    return r.ok ? [{ name: r.value.metadata.name ?? "", ...r.value.spec }] : [];
  });
  // ip -> peer -> nodes; ip -> the first reason seen.
  const by = new Map<string, Map<string, string[]>>();
  const why = new Map<string, string>();
  const nodes = [...objects.nodes]
    .filter((n) => live === undefined || live.has(n.name))
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const node of nodes) {
    const plan = planBgp({
      self: node.name,
      node,
      services: objects.services,
      slices: objects.slices,
      pools: objects.pools,
      advertisements,
      peers,
    });
    for (const [ip, p] of plan.ips) {
      for (const peer of p.advertised.keys()) {
        const m = by.get(ip) ?? new Map<string, string[]>();
        by.set(ip, m);
        m.set(peer, [...(m.get(peer) ?? []), node.name]);
      }
      if (p.reason && !why.has(ip)) why.set(ip, `${node.name}: ${p.reason}`);
    }
  }
  const recorded = recordedAdvertisers(records ?? [], live);
  // node|peer -> session state, to say where a route does not reach the router.
  const session = new Map<string, string>();
  for (const o of input.sessions)
    if (o.status) session.set(`${o.status.node}|${o.status.peer}`, o.status.state);
  const named = (peer: string, nodes: readonly string[]) =>
    nodes
      .map((n) => {
        const st = session.get(`${n}|${peer}`);
        return st === undefined || st === "Established" ? n : `${n} (session ${st})`;
      })
      .join(",");
  const rows: AdvertiserRow[] = [];
  const services = [...objects.services].sort((a, b) => (a.key < b.key ? -1 : 1));
  for (const s of services) {
    for (const ip of s.ips) {
      const r = recorded.get(ip);
      if (records !== undefined && r !== undefined) {
        for (const peer of [...r.keys()].sort())
          rows.push({ service: s.key, ip, peer, nodes: named(peer, r.get(peer)!) });
        continue;
      }
      const m = by.get(ip);
      if (records !== undefined && m !== undefined && m.size > 0) {
        for (const peer of [...m.keys()].sort())
          rows.push({
            service: s.key,
            ip,
            peer,
            nodes: `pending: ${m.get(peer)!.join(",")} about to advertise it (not recorded yet)`,
          });
        continue;
      }
      if (m === undefined || m.size === 0) {
        rows.push({
          service: s.key,
          ip,
          peer: "-",
          nodes: `none (${why.get(ip) ?? "no node known"})`,
        });
        continue;
      }
      for (const peer of [...m.keys()].sort())
        rows.push({ service: s.key, ip, peer, nodes: named(peer, m.get(peer)!) });
    }
  }
  return rows;
}

/**
 * IP -> peer -> nodes (sorted), from the records' BGP entries; entries of nodes whose
 * speaker is not live are left out (its sessions ended with it).
 */
export function recordedAdvertisers(
  records: readonly IPAnnouncement[],
  live?: ReadonlySet<string>,
): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  for (const obj of records) {
    // What the API server holds may come from a bad writer: read through the checker.
    const c = parseIPAnnouncement(obj, { unknownFields: "ignore" });
    const ip = c.ok ? c.value.status?.ip : undefined;
    if (!c.ok || !ip) continue;
    for (const e of c.value.status?.bgp ?? []) {
      if (live !== undefined && !live.has(e.node)) continue;
      for (const peer of e.peers) {
        const m = out.get(ip) ?? new Map<string, string[]>();
        out.set(ip, m);
        m.set(peer, [...(m.get(peer) ?? []), e.node].sort());
      }
    }
  }
  return out;
}

/** An aligned table with a header (the last column is not padded). */
export function formatTable<T extends object>(head: T, rows: readonly T[]): string {
  const cols = Object.keys(head) as (keyof T)[];
  const all = [head, ...rows];
  const text = (r: T, c: keyof T) => String(r[c]);
  const width = cols.map((c) => Math.max(...all.map((r) => text(r, c).length)));
  return all
    .map((r) =>
      cols
        .map((c, i) => (i === cols.length - 1 ? text(r, c) : text(r, c).padEnd(width[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}
