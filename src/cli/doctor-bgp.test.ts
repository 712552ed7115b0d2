import type { V1Node } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { type BgpSessionsInput, checkBgpSessions } from "./doctor-bgp.ts";

const NOW = Date.parse("2026-12-01T12:00:00Z");
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

const peer = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: "ironlb.dev/v1beta1" as const,
  kind: "BGPPeer" as const,
  metadata: { name, creationTimestamp: ago(3600) as never },
  spec: { myASN: 64512, peerASN: 64513, peerAddress: "192.0.2.1", ...extra },
});

const node = (name: string, labels: Record<string, string> = {}): V1Node => ({
  metadata: { name, labels },
});

const session = (n: string, p: string, status: Record<string, unknown>) => ({
  apiVersion: "ironlb.dev/v1beta1" as const,
  kind: "BGPSessionState" as const,
  metadata: { name: `${n}-${p}` },
  status: { node: n, peer: p, peerAddress: "192.0.2.1", ...status },
});

function input(o: Partial<BgpSessionsInput> = {}): BgpSessionsInput {
  return {
    peers: [peer("tor")] as never,
    sessions: [
      session("n1", "tor", { state: "Established", since: ago(600) }),
      session("n2", "tor", { state: "Established", since: ago(600) }),
    ] as never,
    nodes: [node("n1"), node("n2")],
    live: new Set(["n1", "n2"]),
    ...o,
  };
}

describe("checkBgpSessions", () => {
  it("says nothing without BGPPeers (BGP mode unused)", () => {
    expect(checkBgpSessions(input({ peers: [] }), NOW)).toEqual([]);
  });

  it("every session Established: one ok finding", () => {
    expect(checkBgpSessions(input(), NOW)).toEqual([
      expect.objectContaining({ severity: "ok", cause: "2 of 2 BGP sessions Established" }),
    ]);
  });

  it("a session down longer than the threshold: a problem with its last error", () => {
    const f = checkBgpSessions(
      input({
        sessions: [
          session("n1", "tor", { state: "Established", since: ago(600) }),
          session("n2", "tor", {
            state: "Connect",
            since: ago(300),
            lastError: "connect ECONNREFUSED 192.0.2.1:179",
            flaps: 2,
            establishedAt: ago(900),
          }),
        ] as never,
      }),
      NOW,
    );
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({
      severity: "problem",
      check: "bgp-sessions",
      subject: "bgp peer tor on node n2",
      cause:
        "session with 192.0.2.1 is Connect since 300 s (over 60 s): connect ECONNREFUSED 192.0.2.1:179",
    });
    expect(f[0]!.evidence).toContain("2 flaps");
    expect(f[0]!.fix).toContain("port 179");
  });

  it("the last NOTIFICATION when there is no error; the threshold is a parameter", () => {
    const sessions = [
      session("n1", "tor", {
        state: "Idle",
        since: ago(30),
        lastNotification: "OPEN Message Error / Bad Peer AS",
      }),
      session("n2", "tor", { state: "Established", since: ago(600) }),
    ] as never;
    // 30 s down: under the default 60 s, not yet a problem.
    expect(checkBgpSessions(input({ sessions }), NOW)[0]).toMatchObject({ severity: "ok" });
    const f = checkBgpSessions(input({ sessions }), NOW, 10_000);
    expect(f[0]).toMatchObject({
      severity: "problem",
      cause:
        "session with 192.0.2.1 is Idle since 30 s (over 10 s): OPEN Message Error / Bad Peer AS",
      evidence: "never Established",
    });
  });

  it("a node the peer selects without a recorded session: a warning; a new peer: not yet", () => {
    const sessions = [session("n1", "tor", { state: "Established", since: ago(600) })] as never;
    expect(checkBgpSessions(input({ sessions }), NOW)).toEqual([
      expect.objectContaining({ severity: "warning", subject: "bgp peer tor on node n2" }),
    ]);
    const fresh = { ...peer("tor"), metadata: { name: "tor", creationTimestamp: ago(5) } };
    expect(checkBgpSessions(input({ sessions, peers: [fresh] as never }), NOW)[0]).toMatchObject({
      severity: "ok",
    });
  });

  it("only nodes the peer selects and whose speaker runs", () => {
    const f = checkBgpSessions(
      input({
        peers: [peer("tor", { nodeSelectors: [{ matchLabels: { rack: "a" } }] })] as never,
        nodes: [node("n1", { rack: "a" }), node("n2"), node("n3", { rack: "a" })],
        live: new Set(["n1", "n2"]),
        sessions: [session("n1", "tor", { state: "Established", since: ago(600) })] as never,
      }),
      NOW,
    );
    expect(f).toEqual([expect.objectContaining({ cause: "1 of 1 BGP sessions Established" })]);
  });
});
