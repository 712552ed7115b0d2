// What this node forwards for Services whose status says `ipMode: Proxy`: one entry per
// (Service IP, protocol, port) with the endpoints eligible on this node. Pure.
//
// Every speaker forwards every Proxy-mode IP of the Services it handles (as kube-proxy does
// for VIP-mode IPs on every node), not only the IPs it announces: a node taking an IP over
// then needs no rule change before its first packet, and a client still sending to the
// previous owner is forwarded rather than dropped.
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { type ClassFilter, isOurs } from "../api/service.ts";
import { keyOf, SERVICE_NAME_LABEL } from "../api/vocabulary.ts";

export type Protocol = "tcp" | "udp" | "sctp";

export interface Endpoint {
  address: string;
  port: number;
}

export interface Forward {
  /** "namespace/name" of the Service. */
  service: string;
  ip: string;
  family: 4 | 6;
  protocol: Protocol;
  port: number;
  /** externalTrafficPolicy Cluster: endpoints may be on other nodes, so the source is masqueraded. */
  masquerade: boolean;
  /** sessionAffinity ClientIP: how long a client stays on its endpoint, seconds. */
  affinitySeconds?: number;
  /** Eligible endpoints, sorted; empty means new connections are rejected. */
  endpoints: Endpoint[];
}

export interface DesiredInput extends ClassFilter {
  /** This node's name (Local uses its endpoints only). */
  node: string;
  services: readonly V1Service[];
  slices: readonly V1EndpointSlice[];
}

/** Kubernetes' default for sessionAffinityConfig.clientIP.timeoutSeconds (3 hours). */
export const DEFAULT_AFFINITY_SECONDS = 10800;

/**
 * The forwarding this node needs, sorted by IP, protocol and port. When two Services
 * claim the same IP, protocol and port (a sharing mistake), the first by name wins.
 */
export function desiredForwarding(input: DesiredInput): Forward[] {
  // Only Services with a Proxy-mode IP matter (most have none): filter before sorting.
  const services = input.services
    .filter((svc) => svc.status?.loadBalancer?.ingress?.some((i) => i.ipMode === "Proxy"))
    .sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  if (services.length === 0) return [];
  const slicesBySvc = new Map<string, V1EndpointSlice[]>();
  for (const s of input.slices) {
    const name = s.metadata?.labels?.[SERVICE_NAME_LABEL];
    if (!name) continue;
    const key = `${s.metadata?.namespace}/${name}`;
    const list = slicesBySvc.get(key) ?? [];
    list.push(s);
    slicesBySvc.set(key, list);
  }
  const out = new Map<string, Forward>();
  for (const svc of services) {
    if (!isOurs(svc, input)) continue;
    const key = keyOf(svc);
    const local = svc.spec?.externalTrafficPolicy === "Local";
    const affinity =
      svc.spec?.sessionAffinity === "ClientIP"
        ? (svc.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? DEFAULT_AFFINITY_SECONDS)
        : undefined;
    for (const ingress of svc.status?.loadBalancer?.ingress ?? []) {
      if (ingress.ipMode !== "Proxy" || !ingress.ip) continue;
      const ip = ingress.ip;
      const family = ip.includes(":") ? 6 : 4;
      for (const p of svc.spec?.ports ?? []) {
        const protocol = (p.protocol ?? "TCP").toLowerCase() as Protocol;
        if (protocol !== "tcp" && protocol !== "udp" && protocol !== "sctp") continue;
        const id = `${ip}|${protocol}|${p.port}`;
        if (out.has(id)) continue;
        const endpoints = eligibleEndpoints(slicesBySvc.get(key) ?? [], {
          family,
          portName: p.name ?? "",
          protocol,
          node: local ? input.node : undefined,
        });
        out.set(id, {
          service: key,
          ip,
          family,
          protocol,
          port: p.port,
          masquerade: !local,
          ...(affinity !== undefined ? { affinitySeconds: affinity } : {}),
          endpoints,
        });
      }
    }
  }
  return [...out.values()].sort(compareForward);
}

/**
 * Ready endpoints of one Service port in one family: the EndpointSlice port with the
 * Service port's name (how kube-proxy matches them), deduplicated and sorted. An endpoint
 * is ready unless `conditions.ready` is false; `node` keeps only that node's endpoints.
 */
export function eligibleEndpoints(
  slices: readonly V1EndpointSlice[],
  o: { family: 4 | 6; portName: string; protocol: Protocol; node?: string | undefined },
): Endpoint[] {
  const seen = new Map<string, Endpoint>();
  for (const slice of slices) {
    if (slice.addressType !== (o.family === 4 ? "IPv4" : "IPv6")) continue;
    const port = (slice.ports ?? []).find(
      (sp) => (sp.name ?? "") === o.portName && (sp.protocol ?? "TCP").toLowerCase() === o.protocol,
    )?.port;
    if (port === undefined || port === null) continue;
    for (const ep of slice.endpoints ?? []) {
      if (ep.conditions?.ready === false) continue;
      if (o.node !== undefined && ep.nodeName !== o.node) continue;
      const address = ep.addresses[0];
      if (!address) continue;
      seen.set(`${address}|${port}`, { address, port });
    }
  }
  return [...seen.values()].sort((a, b) => a.address.localeCompare(b.address) || a.port - b.port);
}

function compareForward(a: Forward, b: Forward): number {
  return (
    a.family - b.family ||
    a.ip.localeCompare(b.ip) ||
    a.protocol.localeCompare(b.protocol) ||
    a.port - b.port
  );
}
