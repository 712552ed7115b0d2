// Pieces shared by the kinds: label selectors, conditions, names, checked with messages
// worded like the apiserver's (validate.ts), so that a pool rejected by `kubectl apply` and
// one rejected by the controller read the same.
import { apiVersion } from "./group.ts";
import {
  array,
  type Checker,
  dateTime,
  integer,
  object,
  oneOf,
  optional,
  record,
  required,
  string,
} from "./validate.ts";

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

export { type ParseOptions, type ParseResult, parseWith } from "./validate.ts";

/** A list of unique strings, each checked by `item`, at most `max` long. */
export function stringSet(item: Checker<string>, max: number, min?: number): Checker<string[]> {
  return array(item, { max, min, unique: true });
}

export const namespaceName = string({
  max: 63,
  pattern: dnsLabelPattern,
  message: messages.namespace,
});
export const objectName = string({
  max: 253,
  pattern: dnsSubdomainPattern,
  message: messages.objectName,
});

export interface LabelSelectorRequirement {
  key: string;
  operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
  values?: string[];
}

const labelValue = string({ max: 63, pattern: labelValuePattern, message: messages.labelValue });

export const labelSelectorRequirement = object<LabelSelectorRequirement>(
  {
    key: required(string({ max: 317, pattern: labelKeyPattern, message: messages.labelKey })),
    operator: required(oneOf("In", "NotIn", "Exists", "DoesNotExist")),
    values: optional(array(labelValue, { max: 64 })),
  },
  {
    strict: true,
    refine: (r) => {
      const n = r.values?.length ?? 0;
      if ((r.operator === "In" || r.operator === "NotIn") && n === 0)
        return [messages.valuesRequired];
      if ((r.operator === "Exists" || r.operator === "DoesNotExist") && n > 0)
        return [messages.valuesForbidden];
      return [];
    },
  },
);

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export const labelSelector = object<LabelSelector>({
  matchLabels: optional(
    record(
      labelValue,
      (k) => (k.length > 317 || !labelKeyPattern.test(k) ? [messages.labelKey] : []),
      64,
    ),
  ),
  matchExpressions: optional(array(labelSelectorRequirement, { max: 16 })),
});

/** The standard metav1.Condition. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export const condition = object<Condition>({
  type: required(string({ max: 316, pattern: labelKeyPattern })),
  status: required(oneOf("True", "False", "Unknown")),
  reason: required(
    string({ min: 1, max: 1024, pattern: /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/ }),
  ),
  message: required(string({ max: 32768 })),
  lastTransitionTime: required(dateTime()),
  observedGeneration: optional(integer(0)),
});

/** The part of metadata that validation cares about; the rest is passed through. */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  generation?: number;
  resourceVersion?: string;
  uid?: string;
  [key: string]: unknown;
}

export const objectMeta = object<ObjectMeta>(
  {
    name: optional(objectName),
    generateName: optional(string()),
    labels: optional(record(string())),
    annotations: optional(record(string())),
    creationTimestamp: optional(string()),
    generation: optional(integer()),
    resourceVersion: optional(string()),
    uid: optional(string()),
  },
  { strict: false },
);

/** The envelope the kinds share: apiVersion, kind and metadata around a spec. */
export function envelope<K extends string>(kind: K) {
  return {
    apiVersion: required(oneOf(apiVersion)),
    kind: required(oneOf(kind)),
    metadata: required(objectMeta),
  };
}
