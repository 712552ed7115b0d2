// `ironlb doctor`'s CRD check: the ironlb CRDs installed in the cluster against the ones
// this build was made with (BUILD_CRDS, generated from config/crd by `npm run gen:crds`;
// src/cli/doctor-crds.test.ts fails when it is stale). Helm installs CRDs only on the first install and never upgrades them, so a
// chart upgraded without its CRDs leaves fields this build reads missing from the schema:
// the API server then prunes them from every object written, and the feature silently
// does nothing. Pure.
import type { V1CustomResourceDefinition } from "@kubernetes/client-node";
import { type CrdExpectation, schemaFields } from "./crd-fields.ts";
import { BUILD_CRDS } from "./doctor-crds-build.ts";
import type { Finding } from "./doctor-findings.ts";

export { BUILD_CRDS, schemaFields };

/** How to install this build's CRDs (charts/ironlb/README.md, "Upgrading"). */
export const CRD_FIX =
  "apply this version's CRDs: kubectl apply --server-side --force-conflicts -f charts/ironlb/crds/ (from a packaged chart: helm show crds ironlb-<version>.tgz | kubectl apply --server-side --force-conflicts -f -)";

/** Lists the first few of `names`, and how many more. */
function some(names: readonly string[], n = 6): string {
  const more = names.length - n;
  return names.slice(0, n).join(", ") + (more > 0 ? ` and ${more} more` : "");
}

/**
 * One finding per CRD that is missing, does not serve or store this build's version, or
 * lacks fields this build reads (a problem); fields this build does not know make a
 * warning (CRDs newer than this ironlb). All in order: one ok finding.
 */
export function checkCrds(
  installed: readonly V1CustomResourceDefinition[],
  expected: readonly CrdExpectation[] = BUILD_CRDS,
): Finding[] {
  const byName = new Map(installed.map((c) => [c.metadata?.name ?? "", c]));
  const findings: Finding[] = [];
  for (const want of expected) {
    const subject = `crd ${want.name}`;
    const crd = byName.get(want.name);
    if (!crd) {
      findings.push({
        severity: "problem",
        check: "crds",
        subject,
        cause: `not installed: ironlb cannot read or write ${want.kind} objects`,
        fix: CRD_FIX,
      });
      continue;
    }
    const versions = crd.spec?.versions ?? [];
    const v = versions.find((x) => x.name === want.version);
    const listed = versions.map(
      (x) => `${x.name}${x.served ? "" : " (not served)"}${x.storage ? " (storage)" : ""}`,
    );
    if (!v?.served) {
      findings.push({
        severity: "problem",
        check: "crds",
        subject,
        cause: `does not serve ${want.version}, the version this build uses`,
        evidence: `versions: ${listed.join(", ") || "none"}`,
        fix: CRD_FIX,
      });
      continue;
    }
    const have = new Set(schemaFields(v.schema?.openAPIV3Schema));
    const missing = want.fields.filter((f) => !have.has(f));
    if (missing.length > 0) {
      findings.push({
        severity: "problem",
        check: "crds",
        subject,
        cause: `older than this build: its ${want.version} schema lacks ${some(missing)}, which the API server then drops from every ${want.kind} written (was the chart upgraded without its CRDs?)`,
        fix: CRD_FIX,
      });
      continue;
    }
    if (!v.storage) {
      findings.push({
        severity: "warning",
        check: "crds",
        subject,
        cause: `stores objects as another version than ${want.version}, the one this build uses`,
        evidence: `versions: ${listed.join(", ")}`,
        fix: CRD_FIX,
      });
      continue;
    }
    const known = new Set(want.fields);
    const unknown = [...have].filter((f) => !known.has(f));
    if (unknown.length > 0)
      findings.push({
        severity: "warning",
        check: "crds",
        subject,
        cause: `newer than this build: it has fields this ironlb does not know (${some(unknown)}); objects that use them may not work as written`,
        fix: "upgrade ironlb (the chart) to the version of these CRDs",
      });
  }
  if (findings.length === 0)
    findings.push({
      severity: "ok",
      check: "crds",
      subject: "cluster",
      cause: `${expected.length} ironlb CRDs installed, as this build expects (${[...new Set(expected.map((e) => e.version))].join(", ")}, every field)`,
      fix: "",
    });
  return findings;
}
