// `ironlb doctor`'s check of drained nodes (`ironlb drain`, annotation ironlb.dev/drain),
// from the same reading of the cluster as the drain command's wait (drain.ts). Pure.
import type { ClassFilter } from "../api/service.ts";
import { DRAIN_ANNOTATION, drainMode } from "../speaker/eligibility.ts";
import type { Finding } from "./doctor-findings.ts";
import { ok } from "./doctor-findings.ts";
import { drainProgress } from "./drain.ts";
import type { StatusInput } from "./status.ts";

/**
 * Nodes drained with `ironlb drain` (annotation ironlb.dev/drain): each said as an "ok"
 * finding (information: a drain is deliberate), and a problem when the node still announces
 * IPs no other node may announce (it keeps them rather than leave them unanswered).
 */
export function checkDrained(input: StatusInput, opts: ClassFilter, nowMs: number): Finding[] {
  const out: Finding[] = [];
  for (const n of input.nodes) {
    const name = n.metadata?.name ?? "";
    const value = n.metadata?.annotations?.[DRAIN_ANNOTATION];
    const mode = drainMode(value);
    if (!name || mode === undefined) continue;
    const p = drainProgress(input, { sessions: [] }, name, new Set(), opts, nowMs);
    out.push(
      ok(
        "drained",
        `node ${name}`,
        `drained (${DRAIN_ANNOTATION}=${value}): it hands its IPs over and takes no new ones; ironlb undrain ${name} ends it`,
      ),
    );
    if (p.kept.size === 0) continue;
    const ips = [...p.kept.keys()].sort();
    out.push({
      severity: "problem",
      check: "drained",
      subject: `node ${name}`,
      cause: `drained, but still announces ${ips.length} IP(s) no other node may announce: ${ips.join(", ")}`,
      fix: `give those Services a ready endpoint on another eligible node, or run ironlb drain --force ${name} (the IPs then go unanswered), or ironlb undrain ${name}`,
      evidence: p.kept.get(ips[0]!),
    });
  }
  return out;
}
