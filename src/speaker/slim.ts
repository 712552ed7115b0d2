// What the speaker keeps of the objects it watches: the fields it reads (the decision, the
// forwarder, its Events), nothing else. Informers cache every Service, EndpointSlice and
// Node of the cluster; most of an object is fields the speaker never looks at (targetRefs,
// zones, hints, owner references, a Node's image list), and most Services and
// EndpointSlices are not of type LoadBalancer at all. Pure.
import type { V1EndpointSlice, V1Node, V1ObjectMeta, V1Service } from "@kubernetes/client-node";
import { ANNOTATIONS } from "../api/service.ts";
import { SERVICE_NAME_LABEL } from "../api/vocabulary.ts";
import { REBALANCE_ANNOTATION } from "./decision.ts";
import { DRAIN_ANNOTATION } from "./eligibility.ts";

/** Annotations of a Service the speaker reads. */
const SERVICE_ANNOTATIONS = [ANNOTATIONS.allocatedFromPool, REBALANCE_ANNOTATION];
/**
 * The Service's owner may write these (256 KiB): a longer value than this is kept as a
 * placeholder, which, like the value, is neither "true" nor a pool name.
 */
export const ANNOTATION_VALUE_LIMIT = 1024;
const TOO_LONG = "(a value longer than 1024 characters)";

/** Identity and version only (what the informer needs), plus the given labels/annotations. */
function meta(
  m: V1ObjectMeta | undefined,
  labels: readonly string[] = [],
  annotations: readonly string[] = [],
): V1ObjectMeta {
  const out: V1ObjectMeta = {};
  if (m?.name !== undefined) out.name = m.name;
  if (m?.namespace !== undefined) out.namespace = m.namespace;
  if (m?.uid !== undefined) out.uid = m.uid;
  if (m?.resourceVersion !== undefined) out.resourceVersion = m.resourceVersion;
  const l = pick(m?.labels, labels);
  if (l) out.labels = l;
  const a = pick(m?.annotations, annotations);
  if (a) out.annotations = a;
  return out;
}

function pick(
  from: Record<string, string> | undefined,
  keys: readonly string[],
): Record<string, string> | undefined {
  if (!from) return undefined;
  const out: Record<string, string> = {};
  let any = false;
  for (const k of keys) {
    const v = from[k];
    if (v === undefined) continue;
    out[k] = v.length <= ANNOTATION_VALUE_LIMIT ? v : TOO_LONG;
    any = true;
  }
  return any ? out : undefined;
}

/**
 * A Service as the speaker needs it. One not of type LoadBalancer keeps its identity and
 * type only: its other fields matter to nobody here, and a change of type arrives as a
 * whole new object. A LoadBalancer Service keeps its labels (BGPAdvertisement
 * serviceSelectors match them).
 */
export function slimService(svc: V1Service): V1Service {
  const spec = svc.spec;
  if (spec?.type !== "LoadBalancer") {
    return { metadata: meta(svc.metadata), ...(spec?.type ? { spec: { type: spec.type } } : {}) };
  }
  const labels = svc.metadata?.labels;
  const out: V1Service = {
    metadata: meta(svc.metadata, labels ? Object.keys(labels) : [], SERVICE_ANNOTATIONS),
    spec: {
      type: spec.type,
      ...(spec.loadBalancerClass !== undefined
        ? { loadBalancerClass: spec.loadBalancerClass }
        : {}),
      ...(spec.externalTrafficPolicy !== undefined
        ? { externalTrafficPolicy: spec.externalTrafficPolicy }
        : {}),
      ...(spec.sessionAffinity !== undefined ? { sessionAffinity: spec.sessionAffinity } : {}),
      ...(spec.sessionAffinityConfig?.clientIP?.timeoutSeconds !== undefined
        ? {
            sessionAffinityConfig: {
              clientIP: { timeoutSeconds: spec.sessionAffinityConfig.clientIP.timeoutSeconds },
            },
          }
        : {}),
      ...(spec.ports
        ? {
            ports: spec.ports.map((p) => ({
              port: p.port,
              ...(p.name !== undefined ? { name: p.name } : {}),
              ...(p.protocol !== undefined ? { protocol: p.protocol } : {}),
            })),
          }
        : {}),
    },
  };
  const ingress = svc.status?.loadBalancer?.ingress;
  if (ingress) {
    out.status = {
      loadBalancer: {
        ingress: ingress.map((i) => ({
          ...(i.ip !== undefined ? { ip: i.ip } : {}),
          ...(i.ipMode !== undefined ? { ipMode: i.ipMode } : {}),
        })),
      },
    };
  }
  return out;
}

/**
 * An EndpointSlice as the speaker needs it: its Service, address type, ports, and per
 * endpoint the node, readiness and first address (ipMode Proxy forwards to it).
 */
export function slimEndpointSlice(s: V1EndpointSlice): V1EndpointSlice {
  return {
    metadata: meta(s.metadata, [SERVICE_NAME_LABEL]),
    addressType: s.addressType,
    ...(s.ports
      ? {
          ports: s.ports.map((p) => ({
            ...(p.port !== undefined ? { port: p.port } : {}),
            ...(p.name !== undefined ? { name: p.name } : {}),
            ...(p.protocol !== undefined ? { protocol: p.protocol } : {}),
          })),
        }
      : {}),
    endpoints: (s.endpoints ?? []).map((e) => ({
      addresses: e.addresses.length > 0 ? [e.addresses[0]!] : [],
      ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}),
      ...(e.conditions?.ready !== undefined ? { conditions: { ready: e.conditions.ready } } : {}),
    })),
  };
}

/** Node conditions the speaker reads (eligibility). */
const NODE_CONDITIONS = new Set(["Ready", "NetworkUnavailable"]);

/**
 * A Node as the speaker needs it: name, labels, the drain annotation, the Ready and
 * NetworkUnavailable conditions.
 */
export function slimNode(n: V1Node): V1Node {
  const m = n.metadata;
  const out: V1Node = { metadata: meta(m, [], [DRAIN_ANNOTATION]) };
  if (m?.labels) out.metadata!.labels = { ...m.labels };
  const conditions = n.status?.conditions?.filter((c) => NODE_CONDITIONS.has(c.type));
  if (conditions && conditions.length > 0)
    out.status = { conditions: conditions.map((c) => ({ type: c.type, status: c.status })) };
  return out;
}
