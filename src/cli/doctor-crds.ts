// `ironlb doctor`'s CRD check: the ironlb CRDs installed in the cluster against the ones
// this build was made with (config/crd; src/cli/doctor-crds.test.ts keeps BUILD_CRDS equal
// to them). Helm installs CRDs only on the first install and never upgrades them, so a
// chart upgraded without its CRDs leaves fields this build reads missing from the schema:
// the API server then prunes them from every object written, and the feature silently
// does nothing. Pure.
import type { V1CustomResourceDefinition } from "@kubernetes/client-node";
import type { Finding } from "./doctor-findings.ts";

export interface CrdExpectation {
  /** plural.group */
  name: string;
  kind: string;
  /** The version this build reads and writes (served, and the storage version). */
  version: string;
  /** Every property path of its spec and status schema ("spec.a.b", "spec.list[].c"). */
  fields: readonly string[];
}

/** The CRDs of this build (config/crd), with their schemas' property paths. */
export const BUILD_CRDS: readonly CrdExpectation[] = [
  {
    name: "bfdprofiles.ironlb.dev",
    kind: "BFDProfile",
    version: "v1beta1",
    fields: [
      "spec.detectMultiplier",
      "spec.echoInterval",
      "spec.echoMode",
      "spec.minimumTtl",
      "spec.passiveMode",
      "spec.receiveInterval",
      "spec.transmitInterval",
    ],
  },
  {
    name: "bgpadvertisements.ironlb.dev",
    kind: "BGPAdvertisement",
    version: "v1beta1",
    fields: [
      "spec.aggregationLength",
      "spec.aggregationLengthV6",
      "spec.communities",
      "spec.ipAddressPoolSelectors",
      "spec.ipAddressPoolSelectors[].matchExpressions",
      "spec.ipAddressPoolSelectors[].matchExpressions[].key",
      "spec.ipAddressPoolSelectors[].matchExpressions[].operator",
      "spec.ipAddressPoolSelectors[].matchExpressions[].values",
      "spec.ipAddressPoolSelectors[].matchLabels",
      "spec.ipAddressPools",
      "spec.localPref",
      "spec.nodeSelectors",
      "spec.nodeSelectors[].matchExpressions",
      "spec.nodeSelectors[].matchExpressions[].key",
      "spec.nodeSelectors[].matchExpressions[].operator",
      "spec.nodeSelectors[].matchExpressions[].values",
      "spec.nodeSelectors[].matchLabels",
      "spec.peers",
      "spec.serviceSelectors",
      "spec.serviceSelectors[].matchExpressions",
      "spec.serviceSelectors[].matchExpressions[].key",
      "spec.serviceSelectors[].matchExpressions[].operator",
      "spec.serviceSelectors[].matchExpressions[].values",
      "spec.serviceSelectors[].matchLabels",
    ],
  },
  {
    name: "bgppeers.ironlb.dev",
    kind: "BGPPeer",
    version: "v1beta1",
    fields: [
      "spec.bfdProfile",
      "spec.connectTime",
      "spec.dynamicASN",
      "spec.ebgpMultiHop",
      "spec.enableGracefulRestart",
      "spec.gracefulRestartTime",
      "spec.holdTime",
      "spec.keepaliveTime",
      "spec.myASN",
      "spec.nodeSelectors",
      "spec.nodeSelectors[].matchExpressions",
      "spec.nodeSelectors[].matchExpressions[].key",
      "spec.nodeSelectors[].matchExpressions[].operator",
      "spec.nodeSelectors[].matchExpressions[].values",
      "spec.nodeSelectors[].matchLabels",
      "spec.passwordSecret",
      "spec.passwordSecret.name",
      "spec.passwordSecret.namespace",
      "spec.peerASN",
      "spec.peerAddress",
      "spec.peerPort",
      "spec.routerID",
      "spec.sourceAddress",
      "spec.ttlSecurityHops",
    ],
  },
  {
    name: "bgpsessionstates.ironlb.dev",
    kind: "BGPSessionState",
    version: "v1beta1",
    fields: [
      "status.bfdError",
      "status.bfdState",
      "status.establishedAt",
      "status.flaps",
      "status.gracefulRestart",
      "status.lastError",
      "status.lastNotification",
      "status.node",
      "status.peer",
      "status.peerAddress",
      "status.prefixesSent",
      "status.since",
      "status.state",
    ],
  },
  {
    name: "ipaddresspools.ironlb.dev",
    kind: "IPAddressPool",
    version: "v1beta1",
    fields: [
      "spec.addresses",
      "spec.autoAssign",
      "spec.avoidBuggyIPs",
      "spec.excludeNetworkAndBroadcast",
      "spec.serviceAllocation",
      "spec.serviceAllocation.allowSharingAcrossNamespaces",
      "spec.serviceAllocation.namespaceSelectors",
      "spec.serviceAllocation.namespaceSelectors[].matchExpressions",
      "spec.serviceAllocation.namespaceSelectors[].matchExpressions[].key",
      "spec.serviceAllocation.namespaceSelectors[].matchExpressions[].operator",
      "spec.serviceAllocation.namespaceSelectors[].matchExpressions[].values",
      "spec.serviceAllocation.namespaceSelectors[].matchLabels",
      "spec.serviceAllocation.namespaces",
      "spec.serviceAllocation.priority",
      "spec.serviceAllocation.serviceSelectors",
      "spec.serviceAllocation.serviceSelectors[].matchExpressions",
      "spec.serviceAllocation.serviceSelectors[].matchExpressions[].key",
      "spec.serviceAllocation.serviceSelectors[].matchExpressions[].operator",
      "spec.serviceAllocation.serviceSelectors[].matchExpressions[].values",
      "spec.serviceAllocation.serviceSelectors[].matchLabels",
      "status.assignedIPv4",
      "status.assignedIPv6",
      "status.availableIPv4",
      "status.availableIPv6",
      "status.conditions",
      "status.conditions[].lastTransitionTime",
      "status.conditions[].message",
      "status.conditions[].observedGeneration",
      "status.conditions[].reason",
      "status.conditions[].status",
      "status.conditions[].type",
    ],
  },
  {
    name: "ipannouncements.ironlb.dev",
    kind: "IPAnnouncement",
    version: "v1beta1",
    fields: [
      "status.bgp",
      "status.bgp[].node",
      "status.bgp[].peers",
      "status.bgp[].since",
      "status.interfaces",
      "status.ip",
      "status.node",
      "status.services",
      "status.since",
    ],
  },
  {
    name: "l2advertisements.ironlb.dev",
    kind: "L2Advertisement",
    version: "v1beta1",
    fields: [
      "spec.gratuitousInterval",
      "spec.interfaces",
      "spec.ipAddressPoolSelectors",
      "spec.ipAddressPoolSelectors[].matchExpressions",
      "spec.ipAddressPoolSelectors[].matchExpressions[].key",
      "spec.ipAddressPoolSelectors[].matchExpressions[].operator",
      "spec.ipAddressPoolSelectors[].matchExpressions[].values",
      "spec.ipAddressPoolSelectors[].matchLabels",
      "spec.ipAddressPools",
      "spec.nodeSelectors",
      "spec.nodeSelectors[].matchExpressions",
      "spec.nodeSelectors[].matchExpressions[].key",
      "spec.nodeSelectors[].matchExpressions[].operator",
      "spec.nodeSelectors[].matchExpressions[].values",
      "spec.nodeSelectors[].matchLabels",
    ],
  },
];

/** How to install this build's CRDs (charts/ironlb/README.md, "Upgrading"). */
export const CRD_FIX =
  "apply this version's CRDs: kubectl apply --server-side --force-conflicts -f charts/ironlb/crds/ (from a packaged chart: helm show crds ironlb-<version>.tgz | kubectl apply --server-side --force-conflicts -f -)";

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
}

/** The property paths under `spec` and `status` of a version's schema, sorted. */
export function schemaFields(openAPIV3Schema: unknown): string[] {
  const out: string[] = [];
  const walk = (s: Schema | undefined, prefix: string) => {
    if (!s) return;
    if (s.type === "array" && s.items) return walk(s.items, `${prefix}[]`);
    for (const [k, v] of Object.entries(s.properties ?? {})) {
      out.push(`${prefix}.${k}`);
      walk(v, `${prefix}.${k}`);
    }
  };
  const root = openAPIV3Schema as Schema | undefined;
  for (const top of ["spec", "status"]) walk(root?.properties?.[top], top);
  return out.sort();
}

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
