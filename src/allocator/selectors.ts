// Label selector matching for a pool's serviceAllocation (metav1.LabelSelector semantics).

import type { LabelSelector } from "./types.ts";

/**
 * Whether `labels` satisfy `selector`: all matchLabels pairs present and all
 * matchExpressions true. An empty selector matches everything, as in Kubernetes. A malformed
 * expression (In/NotIn without values, Exists/DoesNotExist with values) matches nothing: the
 * API server rejects those, and a pool that serves too few Services is the safer mistake.
 */
export function selectorMatches(
  selector: LabelSelector,
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!Object.hasOwn(labels, key) || labels[key] !== value) return false;
  }
  for (const expr of selector.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, expr.key);
    const value = has ? labels[expr.key] : undefined;
    const values = expr.values ?? [];
    switch (expr.operator) {
      case "In":
        if (values.length === 0 || value === undefined || !values.includes(value)) return false;
        break;
      case "NotIn":
        if (values.length === 0 || (value !== undefined && values.includes(value))) return false;
        break;
      case "Exists":
        if (values.length > 0 || !has) return false;
        break;
      case "DoesNotExist":
        if (values.length > 0 || has) return false;
        break;
      default:
        return false;
    }
  }
  return true;
}

/** Whether `labels` satisfy at least one of `selectors` (alternatives, ORed). */
export function anySelectorMatches(
  selectors: readonly LabelSelector[],
  labels: Readonly<Record<string, string>>,
): boolean {
  return selectors.some((s) => selectorMatches(s, labels));
}
