import { describe, expect, it } from "vitest";
import { type NodeFacts, type ShutdownEvidence, shutdownIntent } from "./shutdown-intent.ts";

const ds = { nodeSelector: { "kubernetes.io/os": "linux" } };
const node: NodeFacts = {
  labels: { "kubernetes.io/os": "linux" },
  annotations: {},
  conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }],
};
const base: ShutdownEvidence = { daemonSetName: "ironlb-speaker", daemonSet: ds, node };
const withNode = (over: Partial<NodeFacts>): ShutdownEvidence => ({
  ...base,
  node: { ...node, ...over },
});

describe("shutdownIntent: restart (graceful restart) or departure (Cease)", () => {
  const cases: [string, ShutdownEvidence, boolean, RegExp][] = [
    ["DaemonSet present, node staying: a rolling update", base, true, /a restart/],
    ["DaemonSet without a nodeSelector", { ...base, daemonSet: {} }, true, /a restart/],
    [
      "undrained node (annotation false)",
      withNode({ annotations: { "ironlb.dev/drain": "false" } }),
      true,
      /a restart/,
    ],
    [
      "a NoSchedule taint that is not a removal mark",
      withNode({ taints: [{ key: "dedicated", effect: "NoSchedule" }] }),
      true,
      /a restart/,
    ],
    [
      "NotReady for another reason (the kubelet lost its runtime)",
      withNode({
        conditions: [{ type: "Ready", status: "False", message: "container runtime is down" }],
      }),
      true,
      /a restart/,
    ],
    [
      "no --daemonset",
      { daemonSet: ds, node },
      false,
      /no --daemonset given: a restart cannot be told from a departure/,
    ],
    [
      "the API server cannot be asked",
      { daemonSetName: "ironlb-speaker", error: "timeout after 2000 ms" },
      false,
      /could not be asked \(timeout after 2000 ms\): treated as a departure/,
    ],
    ["DaemonSet deleted (uninstall)", { ...base, daemonSet: null }, false, /is gone \(uninstall\)/],
    [
      "DaemonSet being deleted (foreground)",
      { ...base, daemonSet: { deletionTimestamp: "2026-12-08T01:00:00Z" } },
      false,
      /is being deleted/,
    ],
    ["node gone", { ...base, node: null }, false, /node is gone/],
    [
      "node being deleted",
      withNode({ deletionTimestamp: "2026-12-08T01:00:00Z" }),
      false,
      /node is being deleted/,
    ],
    [
      "ironlb drain",
      withNode({ annotations: { "ironlb.dev/drain": "true" } }),
      false,
      /drained \(ironlb.dev\/drain\)/,
    ],
    [
      "ironlb drain --force",
      withNode({ annotations: { "ironlb.dev/drain": "force" } }),
      false,
      /drained/,
    ],
    [
      "cordoned (kubectl drain before a reboot)",
      withNode({ unschedulable: true }),
      false,
      /cordoned/,
    ],
    [
      "cluster autoscaler removing the node",
      withNode({ taints: [{ key: "ToBeDeletedByClusterAutoscaler", effect: "NoSchedule" }] }),
      false,
      /taint ToBeDeletedByClusterAutoscaler/,
    ],
    [
      "Karpenter disrupting the node",
      withNode({ taints: [{ key: "karpenter.sh/disrupted", effect: "NoSchedule" }] }),
      false,
      /karpenter/,
    ],
    [
      "graceful node shutdown",
      withNode({
        conditions: [
          {
            type: "Ready",
            status: "False",
            reason: "KubeletNotReady",
            message: "node is shutting down",
          },
        ],
      }),
      false,
      /shutting down/,
    ],
    [
      "DaemonSet no longer selects the node",
      { ...base, daemonSet: { nodeSelector: { "kubernetes.io/os": "linux", lb: "yes" } } },
      false,
      /no longer selects this node \(lb=yes\)/,
    ],
  ];
  it.each(cases)("%s", (_name, evidence, restart, reason) => {
    const got = shutdownIntent(evidence);
    expect(got.restart).toBe(restart);
    expect(got.reason).toMatch(reason);
  });

  it("a departure reason wins over a restart whatever else holds (drained and cordoned)", () => {
    expect(
      shutdownIntent(
        withNode({ unschedulable: true, annotations: { "ironlb.dev/drain": "true" } }),
      ),
    ).toMatchObject({ restart: false });
  });
});
