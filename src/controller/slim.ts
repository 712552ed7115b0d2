// What the controller keeps of the Services and Namespaces it watches: the fields it reads
// (the Service rules of src/api/service.ts, translateService, the status write), nothing
// else, and none of it unbounded. Anyone who may create a Service decides its size:
// annotations may hold 256 KiB, labels have no total limit at all (only etcd's 1.5 MiB per
// object), and cached whole, a thousand such Services take the controller past its memory
// limit. Pure.
import { createHash } from "node:crypto";
import type { V1Namespace, V1ObjectMeta, V1Service } from "@kubernetes/client-node";
import { ANNOTATIONS, abbreviated, METALLB_PREFIXES } from "../api/service.ts";

/**
 * Longest annotation value kept as it is. Every value ironlb reads is short when valid (two
 * IPs, a pool or node name, a sharing key); a longer one is kept as a digest that says so:
 * equal values stay equal (sharing keys are compared), and it is no IP list or pool name.
 */
export const ANNOTATION_VALUE_LIMIT = 1024;
/**
 * Most bytes of labels (keys and values) kept for one Service. Beyond it, none are kept:
 * the Service is matched as unlabelled, which gives its owner nothing they could not have
 * by removing the labels (they alone choose them), and bounds what one Service costs.
 */
export const LABELS_LIMIT = 16 * 1024;

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
 * A Service as the controller needs it. Of a Service not of type LoadBalancer, only its
 * type, the pool annotation and the status. Labels whole up to LABELS_LIMIT (pool
 * serviceSelectors match them, and any pool may name any label); annotations only those
 * in SERVICE_ANNOTATIONS, each up to ANNOTATION_VALUE_LIMIT; the pod selector (compared
 * for sharing) whole up to LABELS_LIMIT, else a digest of it; status conditions whole
 * (the status write keeps the other conditions it read; only controllers write them).
 */
export function slimService(svc: V1Service): V1Service {
  const m = svc.metadata;
  const meta = identity(m);
  if (m?.generation !== undefined) meta.generation = m.generation;
  if (m?.creationTimestamp !== undefined) meta.creationTimestamp = m.creationTimestamp;
  const lb = svc.spec?.type === "LoadBalancer";
  // Labels matter to pool selectors only, which only LoadBalancers meet.
  if (lb && m?.labels && labelBytes(m.labels) <= LABELS_LIMIT) meta.labels = m.labels;
  const annotations: Record<string, string> = {};
  let any = false;
  for (const key of SERVICE_ANNOTATIONS) {
    const v = m?.annotations?.[key];
    if (v === undefined) continue;
    annotations[key] = v.length <= ANNOTATION_VALUE_LIMIT ? v : digest(v);
    any = true;
  }
  if (any) meta.annotations = annotations;
  const out: V1Service = { metadata: meta };
  const spec = svc.spec;
  // Any other type is not ironlb's (isOurs): its type says so, and a change of type
  // arrives as a whole new object. Its status and pool annotation stay (a Service that
  // left type LoadBalancer has ironlb's status removed).
  if (spec && !lb) out.spec = spec.type !== undefined ? { type: spec.type } : {};
  else if (spec) {
    out.spec = {};
    const keep = [
      "type",
      "loadBalancerClass",
      "loadBalancerIP",
      "ipFamilies",
      "ipFamilyPolicy",
      "externalTrafficPolicy",
    ] as const;
    for (const k of keep)
      if (spec[k] !== undefined) (out.spec as Record<string, unknown>)[k] = spec[k];
    if (spec.loadBalancerIP !== undefined && spec.loadBalancerIP.length > ANNOTATION_VALUE_LIMIT)
      out.spec.loadBalancerIP = digest(spec.loadBalancerIP);
    if (spec.selector)
      out.spec.selector =
        labelBytes(spec.selector) <= LABELS_LIMIT
          ? spec.selector
          : { [SELECTOR_DIGEST]: digest(JSON.stringify(Object.entries(spec.selector).sort())) };
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

/**
 * The key a pod selector over LABELS_LIMIT is kept under, as a digest: sharing compares
 * selectors for equality only, and equal selectors have equal digests.
 */
const SELECTOR_DIGEST = "ironlb.dev/selector-digest";

/** The size of a label set: what LABELS_LIMIT counts. */
export function labelBytes(labels: Record<string, string>): number {
  let n = 0;
  for (const [k, v] of Object.entries(labels)) n += k.length + v.length;
  return n;
}

/**
 * What stands for a value over ANNOTATION_VALUE_LIMIT: messages quote it as the value
 * itself (its start and length), equal values stay equal (a digest), and it is no IP
 * list or pool name.
 */
function digest(value: string): string {
  const short = abbreviated(value, createHash("sha256").update(value).digest("hex"));
  // A copy: V8 makes a slice of a long string a view that keeps all of it alive, and the
  // abbreviation starts with one (measured: +85 MiB at 1,000 Services in the memory test).
  return Buffer.from(short, "utf8").toString("utf8");
}

/** A Namespace as the controller needs it: its labels (pool namespaceSelectors). */
export function slimNamespace(ns: V1Namespace): V1Namespace {
  const meta = identity(ns.metadata);
  if (ns.metadata?.labels) meta.labels = ns.metadata.labels;
  return { metadata: meta };
}
