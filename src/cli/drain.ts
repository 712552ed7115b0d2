// `ironlb drain NODE` / `ironlb undrain NODE`: a planned handover before maintenance. The
// command only sets (or removes) the Node annotation `ironlb.dev/drain`, which the speakers
// read (GitOps may set it the same way); then, by default, it waits until the node announces
// nothing it can hand over, printing what moved where. Progress is read from what the
// speakers publish: the IPAnnouncements (Layer 2: who answers each IP) and the
// BGPSessionStates (prefixes each node sends each router). Whether an IP *can* leave the
// node comes from the speakers' own decision function run over the same objects, as in
// `ironlb status`: an IP the node keeps (no other node may announce it) is listed, and the
// exit status says so, instead of being waited for. Nothing here touches cordon.
import type { V1Node } from "@kubernetes/client-node";
import type { ClassFilter } from "../api/service.ts";
import { PATHS } from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import { decide } from "../speaker/decision.ts";
import { DRAIN_ANNOTATION } from "../speaker/eligibility.ts";
import { liveByLease, type StatusInput, statusObjects } from "./status.ts";
import type { BgpStatusInput } from "./status-bgp.ts";

/** Exit statuses of `ironlb drain` (1: an error, 2: usage, as every command). */
export const DRAIN_EXIT = {
  /** The node announces nothing (or --no-wait: the annotation is set). */
  done: 0,
  /** The node keeps IPs no other node may announce (listed; --force withdraws them). */
  kept: 3,
  /** --timeout passed while IPs were still moving. */
  timeout: 4,
} as const;

/** Where a drain stands, from one read of the cluster. */
export interface DrainProgress {
  /** IP -> the node now recorded for it, for IPs that have left the drained node. */
  moved: Map<string, string>;
  /** IPs still recorded on the drained node that the speakers move elsewhere: ip -> to. */
  moving: Map<string, string>;
  /**
   * IPs recorded on the drained node that no node announces now (`--force`, or no eligible
   * node at all): ip -> why. The record stays (it remembers the last owner), the node is quiet.
   */
  withdrawn: Map<string, string>;
  /** IPs the drained node keeps because no other node may announce them: ip -> why. */
  kept: Map<string, string>;
  /** BGP: sessions of the drained node that still send prefixes, "peer: n prefixes". */
  bgpSending: string[];
}

/**
 * The drain of `node` as the speakers see it: `before` are the IPs it announced when the
 * drain began (their new owner is reported as they move).
 */
export function drainProgress(
  input: StatusInput,
  bgp: Pick<BgpStatusInput, "sessions">,
  node: string,
  before: ReadonlySet<string>,
  filter: ClassFilter,
  nowMs: number,
): DrainProgress {
  const records = new Map<string, string>();
  for (const a of input.announcements)
    if (a.status?.ip && a.status.node) records.set(a.status.ip, a.status.node);
  const d = decide({
    ...statusObjects(input, filter),
    membership: { self: "", live: liveByLease(input.leases, nowMs), settled: true, quorum: true },
    currentOwners: records,
    held: new Set(),
    contested: new Set(),
  });
  const out: DrainProgress = {
    moved: new Map(),
    moving: new Map(),
    withdrawn: new Map(),
    kept: new Map(),
    bgpSending: [],
  };
  for (const [ip, owner] of records) {
    if (owner !== node) {
      if (before.has(ip)) out.moved.set(ip, owner);
      continue;
    }
    const x = d.ips.get(ip);
    if (x?.owner === undefined) out.withdrawn.set(ip, x?.reason ?? "no Service uses it");
    else if (x.owner === node && x.drainKept) out.kept.set(ip, x.drainKept);
    else out.moving.set(ip, x.owner);
  }
  for (const s of bgp.sessions) {
    const st = s.status;
    if (st?.node !== node || (st.prefixesSent ?? 0) === 0) continue;
    out.bgpSending.push(`${st.peer}: ${st.prefixesSent} prefixes`);
  }
  out.bgpSending.sort();
  return out;
}

/** Sets the drain annotation ("true", or "force"); removes it with undefined. */
export async function setDrain(
  api: KubeClient,
  node: string,
  value: "true" | "force" | undefined,
): Promise<void> {
  try {
    await api.mergePatch<V1Node>(`${PATHS.nodes}/${encodeURIComponent(node)}`, {
      metadata: { annotations: { [DRAIN_ANNOTATION]: value ?? null } },
    });
  } catch (err) {
    if (httpStatus(err) === 404) throw new Error(`node ${node} not found`);
    throw new Error(`cannot annotate node ${node}: ${describeError(err)}`);
  }
}

export interface WaitOptions {
  node: string;
  filter: ClassFilter;
  timeoutMs: number;
  /** Between two reads of the cluster, ms. */
  pollMs: number;
  read: () => Promise<{ input: StatusInput; bgp: Pick<BgpStatusInput, "sessions"> }>;
  /** One line of progress for the user. */
  say: (line: string) => void;
  /** The IPs the node announced before the drain (to report where each went). */
  before: ReadonlySet<string>;
}

/**
 * Reads the cluster until the node announces nothing it can hand over (every IP recorded
 * on it is one it keeps, and no BGP session of its sends a prefix but for those), saying
 * each move once; returns the exit status.
 */
export async function waitForDrain(o: WaitOptions): Promise<number> {
  const deadline = Date.now() + o.timeoutMs;
  const said = new Set<string>();
  for (;;) {
    const { input, bgp } = await o.read();
    const p = drainProgress(input, bgp, o.node, o.before, o.filter, Date.now());
    const lines = [
      ...[...p.moved].map(([ip, to]) => `${ip}: moved to ${to}`),
      ...[...p.withdrawn].map(([ip, why]) => `${ip}: withdrawn, no node announces it: ${why}`),
    ];
    for (const line of lines) {
      if (!said.has(line)) o.say(line);
      said.add(line);
    }
    // A kept IP still counts as a BGP prefix: only sessions beyond the kept IPs wait.
    const bgpWaiting = p.kept.size === 0 ? p.bgpSending : [];
    if (p.moving.size === 0 && bgpWaiting.length === 0) {
      for (const [ip, why] of p.kept) o.say(`${ip}: kept on ${o.node}: ${why}`);
      if (p.kept.size > 0) {
        o.say(
          `${o.node} still announces ${p.kept.size} IP(s) no other node can take; fix that (endpoints elsewhere, other nodes eligible) or run ironlb drain --force ${o.node} to withdraw them`,
        );
        return DRAIN_EXIT.kept;
      }
      o.say(`${o.node} announces nothing: drained`);
      return DRAIN_EXIT.done;
    }
    if (Date.now() >= deadline) {
      for (const [ip, to] of p.moving) o.say(`${ip}: still on ${o.node} (speakers choose ${to})`);
      for (const s of bgpWaiting) o.say(`BGP ${s} still sent by ${o.node}`);
      o.say(`timed out after ${Math.round(o.timeoutMs / 1000)} s`);
      return DRAIN_EXIT.timeout;
    }
    await new Promise((r) => setTimeout(r, o.pollMs));
  }
}
