// `ironlb doctor`'s findings: what one check reports, how a person reads it, and the exit
// status a script reads.

export type Severity = "ok" | "warning" | "problem";

export interface Finding {
  severity: Severity;
  /** Stable name of the check (for scripts reading `-o json`). */
  check: string;
  /** What it is about: "service shop/web", "pool public", "node n1", "cluster". */
  subject: string;
  /** What is wrong (or, for ok, what was found), one line. */
  cause: string;
  /** What to do about it, one line; empty for ok. */
  fix: string;
  /** What the finding is based on, when that is not in the cause. */
  evidence?: string;
}

/** A finding that all is well (no fix). */
export const ok = (check: string, subject: string, cause: string): Finding => ({
  severity: "ok",
  check,
  subject,
  cause,
  fix: "",
});

const LABEL: Record<Severity, string> = { ok: "OK", warning: "WARNING", problem: "PROBLEM" };

/** The human output: one block per finding (ok ones on one line), then a count. */
export function formatFindings(findings: Finding[]): string {
  const width = Math.max(...findings.map((f) => LABEL[f.severity].length), 7);
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${LABEL[f.severity].padEnd(width)}  ${f.subject}: ${f.cause}`);
    const pad = " ".repeat(width + 2);
    if (f.evidence) lines.push(`${pad}evidence: ${f.evidence}`);
    if (f.fix) lines.push(`${pad}fix: ${f.fix}`);
  }
  const count = (s: Severity) => findings.filter((f) => f.severity === s).length;
  lines.push(
    "",
    `${count("problem")} problem(s), ${count("warning")} warning(s), ${count("ok")} ok`,
  );
  return lines.join("\n");
}

/** Exit status: 0 without problems (warnings allowed), 3 with at least one problem. */
export const PROBLEM_EXIT_CODE = 3;
export function exitCode(findings: Finding[]): number {
  return findings.some((f) => f.severity === "problem") ? PROBLEM_EXIT_CODE : 0;
}
