// `ironlb doctor`'s BGP session check: for every BGPPeer and every node it selects whose
// speaker runs, the session state that node's speaker records (BGPSessionState). A session
// not Established for longer than a threshold is a problem, said with its last error; one
// never recorded, a warning. Pure.
import type { KubernetesObject, V1Node } from "@kubernetes/client-node";
import { type BGPPeer, parseBGPPeer } from "../api/bgppeer.ts";
import type { BGPSessionState } from "../api/bgpsessionstate.ts";
import { timestamp } from "../k8s/errors.ts";
import { peerSelectsNode } from "../speaker/bgp-plan.ts";
import type { Finding } from "./doctor-findings.ts";

export interface BgpSessionsInput {
  peers: readonly (BGPPeer & KubernetesObject)[];
  sessions: readonly (BGPSessionState & KubernetesObject)[];
  nodes: readonly V1Node[];
  /** Nodes whose speaker runs (Lease current): only they hold sessions. */
  live: ReadonlySet<string>;
}

/** How long a session may be down (or a peer unrecorded) before it is reported, by default. */
export const DEFAULT_BGP_DOWN_AFTER_MS = 60_000;

function ageS(at: string | undefined, nowMs: number): number | undefined {
  const t = Date.parse(timestamp(at));
  return Number.isFinite(t) ? Math.max(0, Math.round((nowMs - t) / 1000)) : undefined;
}

/** Empty without BGPPeers (BGP mode unused). */
export function checkBgpSessions(
  input: BgpSessionsInput,
  nowMs: number,
  downAfterMs = DEFAULT_BGP_DOWN_AFTER_MS,
): Finding[] {
  const peers = input.peers.flatMap((p) => {
    const r = parseBGPPeer(p, { unknownFields: "ignore" });
    return r.ok
      ? [
          {
            name: r.value.metadata.name ?? "",
            spec: r.value.spec,
            created: p.metadata?.creationTimestamp,
          },
        ]
      : [];
  });
  if (peers.length === 0) return [];
  const state = new Map<string, NonNullable<BGPSessionState["status"]>>();
  for (const s of input.sessions)
    if (s.status) state.set(`${s.status.node}|${s.status.peer}`, s.status);
  const nodes = [...input.nodes]
    .filter((n) => input.live.has(n.metadata?.name ?? ""))
    .sort((a, b) => ((a.metadata?.name ?? "") < (b.metadata?.name ?? "") ? -1 : 1));
  const limitS = Math.round(downAfterMs / 1000);
  const findings: Finding[] = [];
  let total = 0;
  let up = 0;
  for (const peer of [...peers].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    for (const n of nodes) {
      const node = n.metadata?.name ?? "";
      if (!peerSelectsNode(peer.spec, { name: node, labels: n.metadata?.labels ?? {} })) continue;
      total++;
      const subject = `bgp peer ${peer.name} on node ${node}`;
      const s = state.get(`${node}|${peer.name}`);
      if (s === undefined) {
        // A peer created just now: its sessions are still being set up.
        const created = ageS(peer.created as string | undefined, nowMs);
        if (created !== undefined && created * 1000 < downAfterMs) continue;
        findings.push({
          severity: "warning",
          check: "bgp-sessions",
          subject,
          cause: `no session state recorded for ${peer.spec.peerAddress}: the speaker on ${node} has not written a BGPSessionState`,
          fix: `read the speaker's log on ${node} (an older speaker, or one that may not write bgpsessionstates?)`,
        });
        continue;
      }
      if (s.state === "Established") {
        up++;
        continue;
      }
      const down = ageS(s.since, nowMs);
      if (down !== undefined && down * 1000 < downAfterMs) continue;
      const error = s.lastError ?? s.lastNotification;
      const evidence = [
        s.lastNotification && s.lastNotification !== error
          ? `last notification: ${s.lastNotification}`
          : "",
        s.bfdState ? `BFD ${s.bfdState}${s.bfdError ? ` (${s.bfdError})` : ""}` : "",
        s.flaps ? `${s.flaps} flaps` : "",
        s.establishedAt ? `last Established at ${timestamp(s.establishedAt)}` : "never Established",
      ].filter((x) => x !== "");
      findings.push({
        severity: "problem",
        check: "bgp-sessions",
        subject,
        cause: `session with ${s.peerAddress ?? peer.spec.peerAddress} is ${s.state}${down === undefined ? "" : ` since ${down} s`} (over ${limitS} s): ${error ?? "no error recorded"}`,
        evidence: evidence.join("; "),
        fix: `check that the router has ${node} as a neighbor with the ASNs of BGPPeer ${peer.name} (myASN ${peer.spec.myASN}), the same password, and that ${node} reaches ${peer.spec.peerAddress} port ${peer.spec.peerPort}; the speaker's log on ${node} says more`,
      });
    }
  }
  if (findings.length === 0 && total > 0)
    findings.push({
      severity: "ok",
      check: "bgp-sessions",
      subject: "cluster",
      cause: `${up} of ${total} BGP sessions Established${up < total ? " (the others came up or went down less than the threshold ago)" : ""}`,
      fix: "",
    });
  return findings;
}
