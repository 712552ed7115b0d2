// Pieces shared by both kinds: label selectors, conditions, names, and the translation of
// zod issues into messages worded like the apiserver's, so that a pool rejected by
// `kubectl apply` and one rejected by the controller read the same.
import { z } from "zod";

import { apiVersion } from "./group.ts";

export { apiVersion, group, version } from "./group.ts";

// Patterns shared with the CRD manifests (keep them identical to the CEL `matches()` there).
export const dnsLabelPattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const dnsSubdomainPattern =
  /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const labelKeyPattern =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
export const labelValuePattern = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;

/** Messages shared with the CRDs' CEL rules. */
export const messages = {
  namespace:
    "a namespace name is a DNS label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit",
  objectName:
    "a name is a DNS subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
  labelKey:
    "a label key is a name of at most 63 letters, digits, '-', '_' or '.' (starting and ending with a letter or digit), optionally after a DNS subdomain prefix and '/'",
  labelValue:
    "a label value is empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
  valuesRequired: "operators In and NotIn need at least one value",
  valuesForbidden: "operators Exists and DoesNotExist must not have values",
} as const;

/** Appends a "Duplicate value" issue for every repeated item (the CRD lists are sets). */
function noDuplicates(items: string[], ctx: z.RefinementCtx): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (seen.has(item)) {
      ctx.addIssue({
        code: "custom",
        path: [i],
        message: `Duplicate value: ${JSON.stringify(item)}`,
      });
    }
    seen.add(item);
  });
}

/** A list of unique strings, each checked by `item`, at most `max` long. */
export function stringSet(item: z.ZodType<string>, max: number) {
  return z.array(item).max(max).superRefine(noDuplicates);
}

export const namespaceName = z.string().max(63).regex(dnsLabelPattern, messages.namespace);
export const objectName = z.string().max(253).regex(dnsSubdomainPattern, messages.objectName);

export const labelSelectorRequirement = z
  .strictObject({
    key: z.string().max(317).regex(labelKeyPattern, messages.labelKey),
    operator: z.enum(["In", "NotIn", "Exists", "DoesNotExist"]),
    values: z
      .array(z.string().max(63).regex(labelValuePattern, messages.labelValue))
      .max(64)
      .optional(),
  })
  .superRefine((r, ctx) => {
    const n = r.values?.length ?? 0;
    if ((r.operator === "In" || r.operator === "NotIn") && n === 0) {
      ctx.addIssue({ code: "custom", message: messages.valuesRequired });
    }
    if ((r.operator === "Exists" || r.operator === "DoesNotExist") && n > 0) {
      ctx.addIssue({ code: "custom", message: messages.valuesForbidden });
    }
  });

export const labelSelector = z.strictObject({
  matchLabels: z
    .record(z.string(), z.string().max(63).regex(labelValuePattern, messages.labelValue))
    .superRefine((m, ctx) => {
      const keys = Object.keys(m);
      if (keys.length > 64) {
        ctx.addIssue({
          code: "custom",
          message: `Too many: ${keys.length}: must have at most 64 items`,
        });
      }
      for (const k of keys) {
        if (k.length > 317 || !labelKeyPattern.test(k)) {
          ctx.addIssue({ code: "custom", message: messages.labelKey });
        }
      }
    })
    .optional(),
  matchExpressions: z.array(labelSelectorRequirement).max(16).optional(),
});
export type LabelSelector = z.infer<typeof labelSelector>;

/** The standard metav1.Condition. */
export const condition = z.strictObject({
  type: z.string().max(316).regex(labelKeyPattern),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z
    .string()
    .min(1)
    .max(1024)
    .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/),
  message: z.string().max(32768),
  lastTransitionTime: z.iso.datetime({ offset: true }),
  observedGeneration: z.int().min(0).optional(),
});
export type Condition = z.infer<typeof condition>;

/** The part of metadata that validation cares about; the rest is passed through. */
export const objectMeta = z.looseObject({
  name: objectName.optional(),
  generateName: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  creationTimestamp: z.string().optional(),
  generation: z.int().optional(),
  resourceVersion: z.string().optional(),
  uid: z.string().optional(),
});
export type ObjectMeta = z.infer<typeof objectMeta>;

export type ParseResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

const apiTypes: Record<string, string> = {
  number: "integer",
  int: "integer",
  record: "object",
};

function formatPath(path: PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out;
}

/** Words one zod issue as the apiserver words the same problem: "<path>: <message>". */
function formatIssue(issue: z.core.$ZodIssue): string[] {
  const path = formatPath(issue.path);
  const at = (msg: string) => (path === "" ? msg : `${path}: ${msg}`);
  const absent = !("input" in issue) || issue.input === undefined;
  switch (issue.code) {
    case "invalid_type":
      if (absent) return [at("Required value")];
      return [at(`must be of type ${apiTypes[issue.expected] ?? issue.expected}`)];
    case "invalid_value":
      if (absent) return [at("Required value")];
      return [
        at(
          `Unsupported value: ${JSON.stringify(issue.input)}: supported values: ${issue.values
            .map((v) => JSON.stringify(v))
            .join(", ")}`,
        ),
      ];
    case "unrecognized_keys":
      return issue.keys.map((k) => `unknown field "${path === "" ? k : `${path}.${k}`}"`);
    case "too_small":
      if (issue.origin === "array") return [at(`should have at least ${issue.minimum} items`)];
      if (issue.origin === "string") return [at(`should be at least ${issue.minimum} chars long`)];
      return [at(`should be greater than or equal to ${issue.minimum}`)];
    case "too_big":
      if (issue.origin === "array") return [at(`must have at most ${issue.maximum} items`)];
      if (issue.origin === "string")
        return [at(`Too long: may not be more than ${issue.maximum} bytes`)];
      return [at(`should be less than or equal to ${issue.maximum}`)];
    case "invalid_format":
      // Our own regexes carry a message for people; the others fall back to the pattern.
      return [
        at(
          issue.message.startsWith("Invalid string")
            ? `should match '${issue.format}'`
            : issue.message,
        ),
      ];
    default:
      return [at(issue.message)];
  }
}

/** Runs a schema and returns either the parsed value (defaults applied) or apiserver-style errors. */
export function parseWith<T>(schema: z.ZodType<T>, obj: unknown): ParseResult<T> {
  const r = schema.safeParse(obj, { reportInput: true });
  if (r.success) return { ok: true, value: r.data };
  return { ok: false, errors: r.error.issues.flatMap(formatIssue) };
}

/** The envelope both kinds share: apiVersion, kind and metadata around a spec. */
export function envelope<K extends string>(kind: K) {
  return {
    apiVersion: z.literal(apiVersion),
    kind: z.literal(kind),
    metadata: objectMeta,
  };
}
