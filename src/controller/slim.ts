// What the controller keeps of the Services and Namespaces it watches: the fields it reads
// (the Service rules of src/api/service.ts, translateService, the status write), nothing
// else. Anyone who may create a Service decides its size: annotations alone may hold
// 256 KiB, and cached whole, a thousand such Services would take the controller past its
// memory limit. Pure.
import type { V1Namespace, V1ObjectMeta, V1Service } from "@kubernetes/client-node";
import { ANNOTATIONS, METALLB_PREFIXES } from "../api/service.ts";

/**
 * The annotations kept: every ironlb annotation (src/api/service.ts ANNOTATIONS, so that one
 * added there is kept without a change here) and its MetalLB spellings.
 */
export const SERVICE_ANNOTATIONS: readonly string[] = Object.values(ANNOTATIONS).flatMap((key) => [
  key,
  ...METALLB_PREFIXES.map((p) => p + key.slice("ironlb.dev/".length)),
]);

function identity(m: V1ObjectMeta | undefined): V1ObjectMeta {
  const out: V1ObjectMeta = {};
  if (m?.name !== undefined) out.name = m.name;
  if (m?.namespace !== undefined) out.namespace = m.namespace;
  if (m?.uid !== undefined) out.uid = m.uid;
  if (m?.resourceVersion !== undefined) out.resourceVersion = m.resourceVersion;
  return out;
}

/**
 * A Service as the controller needs it. Labels stay whole (pool serviceSelectors match
 * them, and any pool may name any label); annotations only those in SERVICE_ANNOTATIONS;
 * status conditions whole (the status write keeps the other conditions it read).
 */
export function slimService(svc: V1Service): V1Service {
  const m = svc.metadata;
  const meta = identity(m);
  if (m?.generation !== undefined) meta.generation = m.generation;
  if (m?.creationTimestamp !== undefined) meta.creationTimestamp = m.creationTimestamp;
  if (m?.labels) meta.labels = m.labels;
  const annotations: Record<string, string> = {};
  let any = false;
  for (const key of SERVICE_ANNOTATIONS) {
    const v = m?.annotations?.[key];
    if (v === undefined) continue;
    annotations[key] = v;
    any = true;
  }
  if (any) meta.annotations = annotations;
  const out: V1Service = { metadata: meta };
  const spec = svc.spec;
  if (spec) {
    out.spec = {};
    const keep = [
      "type",
      "loadBalancerClass",
      "loadBalancerIP",
      "ipFamilies",
      "ipFamilyPolicy",
      "externalTrafficPolicy",
      "selector",
    ] as const;
    for (const k of keep)
      if (spec[k] !== undefined) (out.spec as Record<string, unknown>)[k] = spec[k];
    if (spec.ports)
      out.spec.ports = spec.ports.map((p) => ({
        port: p.port,
        ...(p.protocol !== undefined ? { protocol: p.protocol } : {}),
      }));
  }
  const ingress = svc.status?.loadBalancer?.ingress;
  const conditions = svc.status?.conditions;
  if (ingress || conditions) {
    out.status = {};
    if (ingress)
      out.status.loadBalancer = {
        ingress: ingress.map((i) => ({
          ...(i.ip !== undefined ? { ip: i.ip } : {}),
          ...(i.ipMode !== undefined ? { ipMode: i.ipMode } : {}),
        })),
      };
    if (conditions) out.status.conditions = conditions;
  }
  return out;
}

/** A Namespace as the controller needs it: its labels (pool namespaceSelectors). */
export function slimNamespace(ns: V1Namespace): V1Namespace {
  const meta = identity(ns.metadata);
  if (ns.metadata?.labels) meta.labels = ns.metadata.labels;
  return { metadata: meta };
}
