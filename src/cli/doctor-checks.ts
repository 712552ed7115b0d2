// `ironlb doctor`'s checks: pure functions over a snapshot of what the API server holds
// (the edge, doctor.ts, reads it). Each finding says what is wrong in one line, the fix in
// another, and the evidence it is based on. The per-IP verdict is `ironlb status`'s (the
// speakers' own decision function), so that the two commands never disagree; the checks
// here add what status cannot say: pools nobody advertises, nodes without a speaker, the
// kube-proxy mode, recent conflicts and IPs that change hands.
import type {
  CoreV1Event,
  KubernetesObject,
  V1CustomResourceDefinition,
  V1Lease,
  V1Node,
  V1Service,
} from "@kubernetes/client-node";
import type { BGPAdvertisement } from "../api/bgpadvertisement.ts";
import type { BGPPeer } from "../api/bgppeer.ts";
import type { BGPSessionState } from "../api/bgpsessionstate.ts";
import { ANNOTATIONS, type ClassFilter, isOurs, statusIPs } from "../api/service.ts";
import { ALLOCATED_CONDITION, DEFAULT_HEARTBEAT_PORT, keyOf } from "../api/vocabulary.ts";
import { timestamp } from "../k8s/errors.ts";
import { poolOf } from "../speaker/decision.ts";
import {
  advertisementSelectsNode,
  advertisementSelectsPool,
  EXCLUDE_FROM_LB_LABEL,
} from "../speaker/eligibility.ts";
import { checkBgpSessions } from "./doctor-bgp.ts";
import { checkCrds } from "./doctor-crds.ts";
import { checkDrained } from "./doctor-drain.ts";
import { type Finding, ok, type Severity } from "./doctor-findings.ts";
import { announceFix, poolFix, serviceFix } from "./doctor-fixes.ts";
import { checkKubeProxy, type KubeProxyConfig } from "./doctor-kube-proxy.ts";
import { type StatusInput, type StatusRow, statusRows } from "./status.ts";

export interface DoctorInput extends StatusInput {
  /** Events of the reasons the checks read (IPConflict, NodeAnnouncing); the window is applied here. */
  events: CoreV1Event[];
  /** The controllers' leader Leases (name ironlb-controller, any namespace). */
  controllerLeases: V1Lease[];
  kubeProxy: KubeProxyConfig;
  /** BGPAdvertisements (empty where the BGP CRDs are not installed): they announce pools too. */
  bgpAds?: (BGPAdvertisement & KubernetesObject)[];
  /** BGPPeers and the speakers' BGPSessionStates (empty without the BGP CRDs). */
  bgpPeers?: (BGPPeer & KubernetesObject)[];
  bgpSessions?: (BGPSessionState & KubernetesObject)[];
  /** The ironlb.dev CRDs installed; undefined when they could not be read. */
  crds?: V1CustomResourceDefinition[];
}

export interface DoctorOptions extends ClassFilter {
  /** Only this Service ("namespace/name"): its checks, and those of its pools. */
  service?: string;
  /** Window of Events that count (IPConflict, IPs changing hands). */
  eventWindowMs?: number;
  /** A BGP session down this long is a problem (default DEFAULT_BGP_DOWN_AFTER_MS). */
  bgpDownAfterMs?: number;
}

const DEFAULT_EVENT_WINDOW_MS = 60 * 60_000;

/** Lease age at `nowMs` and whether it is within its duration. */
function leaseState(l: V1Lease, nowMs: number): { fresh: boolean; ageS: number | undefined } {
  const renewed = Date.parse(timestamp(l.spec?.renewTime));
  if (!Number.isFinite(renewed)) return { fresh: false, ageS: undefined };
  const duration = (l.spec?.leaseDurationSeconds ?? 15) * 1000;
  return { fresh: nowMs - renewed < duration, ageS: Math.round((nowMs - renewed) / 1000) };
}

function eventTime(e: CoreV1Event): number {
  const t = timestamp(e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp);
  return Date.parse(t);
}

/** Every finding, problems first, then warnings, then ok; stable within each. */
export function diagnose(input: DoctorInput, opts: DoctorOptions, nowMs: number): Finding[] {
  const services = input.services.filter(
    (s) => isOurs(s, opts) && (opts.service === undefined || keyOf(s) === opts.service),
  );
  const findings: Finding[] = [
    ...checkNamed(input.services, opts),
    ...(input.crds === undefined ? [] : checkCrds(input.crds)),
    ...checkSpeakers(input, nowMs),
    ...checkPools(input, services, opts, nowMs),
    ...checkServices(input, services, opts, nowMs),
    ...checkKubeProxy(input.kubeProxy, services),
    // Asked about one Service: only its IPs can make a drained node a problem here.
    ...checkDrained({ ...input, services }, opts, nowMs),
    ...checkBgpSessions(
      {
        peers: input.bgpPeers ?? [],
        sessions: input.bgpSessions ?? [],
        nodes: input.nodes,
        live: new Set(
          input.leases.flatMap((l) =>
            l.spec?.holderIdentity && leaseState(l, nowMs).fresh ? [l.spec.holderIdentity] : [],
          ),
        ),
      },
      nowMs,
      opts.bgpDownAfterMs,
    ),
  ];
  const rank: Record<Severity, number> = { problem: 0, warning: 1, ok: 2 };
  return findings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => rank[a.f.severity] - rank[b.f.severity] || a.i - b.i)
    .map(({ f }) => f);
}

/**
 * Taints the DaemonSet controller tolerates for every DaemonSet pod (the node's conditions,
 * cordoning; network-unavailable for host-network pods such as the speaker).
 */
const DAEMONSET_TOLERATED = new Set(
  ["not-ready", "unreachable", "disk-pressure", "memory-pressure", "pid-pressure"]
    .concat(["unschedulable", "network-unavailable"])
    .map((t) => `node.kubernetes.io/${t}`),
);

/** A Service asked about by name that ironlb does not handle: nothing else explains it. */
function checkNamed(all: V1Service[], opts: DoctorOptions): Finding[] {
  if (opts.service === undefined) return [];
  const s = all.find((x) => keyOf(x) === opts.service);
  if (!s || isOurs(s, opts)) return [];
  const subject = `service ${opts.service}`;
  if (s.spec?.type !== "LoadBalancer")
    return [
      {
        severity: "problem",
        check: "service-handled",
        subject,
        cause: `it is of type ${s.spec?.type ?? "ClusterIP"}: ironlb gives IPs to Services of type LoadBalancer only`,
        fix: "set spec.type: LoadBalancer",
      },
    ];
  const cls = s.spec.loadBalancerClass;
  return [
    {
      severity: "problem",
      check: "service-handled",
      subject,
      cause: cls
        ? `its loadBalancerClass is ${cls}, not ${opts.lbClass}: another implementation handles it`
        : "it has no loadBalancerClass, and --ignore-unclassed says ironlb leaves those to another implementation",
      fix: cls
        ? `set spec.loadBalancerClass: ${opts.lbClass} when creating the Service (it cannot be changed later), or ask the implementation of ${cls}`
        : `set spec.loadBalancerClass: ${opts.lbClass} when creating the Service`,
    },
  ];
}

/** The taints that keep a DaemonSet without tolerations off a node. */
function blockingTaints(n: V1Node): string[] {
  return (n.spec?.taints ?? [])
    .filter((t) => t.effect === "NoSchedule" || t.effect === "NoExecute")
    .filter((t) => !DAEMONSET_TOLERATED.has(t.key))
    .map((t) => `${t.key}${t.value ? `=${t.value}` : ""}:${t.effect}`);
}

function checkSpeakers(input: DoctorInput, nowMs: number): Finding[] {
  const out: Finding[] = [];
  const byNode = new Map<string, { fresh: boolean; ageS: number | undefined }>();
  for (const l of input.leases) {
    const node = l.spec?.holderIdentity;
    if (node) byNode.set(node, leaseState(l, nowMs));
  }
  const live = [...byNode].filter(([, s]) => s.fresh).map(([n]) => n);
  if (byNode.size === 0) {
    out.push({
      severity: "problem",
      check: "speakers",
      subject: "cluster",
      cause: "no speaker Lease exists: no ironlb speaker has ever run, so no IP is announced",
      fix: "install the speaker DaemonSet (the chart does) and check its pods: kubectl -n ironlb-system get pods -o wide",
    });
  } else if (live.length === 0) {
    const newest = Math.min(...[...byNode.values()].map((s) => s.ageS ?? Infinity));
    out.push({
      severity: "problem",
      check: "speakers",
      subject: "cluster",
      cause: `no speaker is live: none of the ${byNode.size} speaker Leases was renewed within its duration`,
      fix: "check the speaker pods and their logs: kubectl -n ironlb-system get pods; kubectl -n ironlb-system logs ds/ironlb-speaker",
      evidence: Number.isFinite(newest) ? `the newest renewal is ${newest} s old` : undefined,
    });
  } else {
    out.push(ok("speakers", "cluster", `${live.length} of ${byNode.size} speakers live`));
  }

  // Nodes a speaker should run on but does not (a taint the DaemonSet does not tolerate,
  // most often): Local Services with pods there cannot be announced.
  for (const n of [...input.nodes].sort((a, b) => keyOf(a).localeCompare(keyOf(b)))) {
    const name = n.metadata?.name ?? "";
    if (Object.hasOwn(n.metadata?.labels ?? {}, EXCLUDE_FROM_LB_LABEL)) continue;
    const s = byNode.get(name);
    if (s?.fresh) continue;
    const taints = blockingTaints(n);
    const seen =
      s === undefined
        ? "no speaker Lease"
        : `its speaker Lease is ${s.ageS === undefined ? "never renewed" : `${s.ageS} s old`}`;
    out.push({
      severity: "warning",
      check: "speaker-on-node",
      subject: `node ${name}`,
      cause: `no live speaker on node ${name} (${seen}): it cannot announce any IP`,
      fix:
        taints.length > 0
          ? `the node has taints the speaker may not tolerate: add tolerations to the speaker DaemonSet (chart value speaker.tolerations), or label the node ${EXCLUDE_FROM_LB_LABEL} if it must not announce`
          : `check the speaker pod on the node: kubectl -n ironlb-system get pods -o wide --field-selector spec.nodeName=${name}`,
      evidence: taints.length > 0 ? `taints: ${taints.join(", ")}` : undefined,
    });
  }
  return out;
}

/** Pools the checked Services use (all pools when no Service is named). */
function poolsInScope(
  input: DoctorInput,
  services: V1Service[],
  opts: DoctorOptions,
): Set<string> | undefined {
  if (opts.service === undefined) return undefined;
  const snaps = input.pools.map((p) => ({
    name: p.metadata?.name ?? "",
    labels: p.metadata?.labels ?? {},
    addresses: p.spec?.addresses ?? [],
  }));
  const names = new Set<string>();
  for (const s of services) {
    const named = s.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool];
    if (named) names.add(named);
    for (const ip of statusIPs(s)) {
      const m = poolOf(ip, snaps, named);
      if (m && "pool" in m) names.add(m.pool.name);
    }
  }
  // A Service without any IP may lack one because of a pool: then every pool counts.
  return names.size > 0 ? names : undefined;
}

function checkPools(
  input: DoctorInput,
  services: V1Service[],
  opts: DoctorOptions,
  nowMs: number,
): Finding[] {
  const out: Finding[] = [];
  const scope = poolsInScope(input, services, opts);
  const live = new Set(
    input.leases.filter((l) => leaseState(l, nowMs).fresh).map((l) => l.spec?.holderIdentity ?? ""),
  );
  // Either kind of advertisement announces a pool (L2 answers ARP/NDP, BGP tells routers).
  const ads = [
    ...input.ads.map((a) => ({
      name: `L2Advertisement ${a.metadata?.name ?? ""}`,
      ...(a.spec ?? {}),
    })),
    ...(input.bgpAds ?? []).map((a) => ({
      name: `BGPAdvertisement ${a.metadata?.name ?? ""}`,
      ...(a.spec ?? {}),
    })),
  ];
  const nodes = input.nodes.map((n) => ({
    name: n.metadata?.name ?? "",
    labels: n.metadata?.labels ?? {},
  }));
  const allServices = input.services.filter((s) => isOurs(s, opts));
  for (const p of [...input.pools].sort((a, b) =>
    (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""),
  )) {
    const name = p.metadata?.name ?? "";
    if (scope && !scope.has(name)) continue;
    const subject = `pool ${name}`;
    const conds = p.status?.conditions ?? [];
    const ready = conds.find((c) => c.type === "Ready");
    if (!ready) {
      out.push({
        severity: "warning",
        check: "pool-ready",
        subject,
        cause: `pool ${name} has no Ready condition: no ironlb controller has handled it`,
        fix: "check that the controller runs: kubectl -n ironlb-system get pods; kubectl -n ironlb-system logs deploy/ironlb-controller",
      });
    } else if (ready.status !== "True") {
      out.push({
        severity: "problem",
        check: "pool-ready",
        subject,
        cause: `pool ${name} is not Ready: ${ready.reason}: ${ready.message}`,
        fix: poolFix(name, ready.reason),
      });
    } else out.push(ok("pool-ready", subject, `pool ${name} is Ready`));
    const conflict = conds.find((c) => c.type === "Conflict");
    if (conflict?.status === "True") {
      out.push({
        severity: "warning",
        check: "pool-overlap",
        subject,
        cause: `pool ${name} overlaps another pool, which keeps the shared addresses: ${conflict.message}`,
        fix: `remove the overlapping addresses from one of the pools (kubectl edit ipaddresspool ${name})`,
      });
    }

    // Advertised? Nothing is announced until an advertisement selects the pool and a node.
    const info = { name, labels: p.metadata?.labels ?? {} };
    const selecting = ads.filter((a) => advertisementSelectsPool(a, info));
    const used = allServices.some(
      (s) => s.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool] === name,
    );
    if (selecting.length === 0) {
      out.push({
        severity: used ? "problem" : "warning",
        check: "pool-advertised",
        subject,
        cause: `no L2Advertisement or BGPAdvertisement selects pool ${name}: its IPs are assigned but not announced`,
        fix: `create an L2Advertisement (or a BGPAdvertisement, in BGP mode) with ipAddressPools: [${name}] (or with no pool list, for every pool)`,
        evidence:
          ads.length === 0
            ? "no advertisement exists"
            : `advertisements: ${ads.map((a) => a.name).join(", ")}`,
      });
      continue;
    }
    const onNodes = nodes.filter((n) => selecting.some((a) => advertisementSelectsNode(a, n)));
    const adNames = selecting.map((a) => a.name).join(", ");
    if (onNodes.length === 0) {
      out.push({
        severity: used ? "problem" : "warning",
        check: "pool-advertised",
        subject,
        cause: `the nodeSelectors of the advertisements selecting pool ${name} (${adNames}) match no node`,
        fix: "fix the advertisements' nodeSelectors or the nodes' labels: kubectl get nodes --show-labels",
      });
    } else if (!onNodes.some((n) => live.has(n.name))) {
      out.push({
        severity: used ? "problem" : "warning",
        check: "pool-advertised",
        subject,
        cause: `no node selected for pool ${name} by ${adNames} has a live speaker`,
        fix: "run the speaker on those nodes (tolerations for their taints: chart value speaker.tolerations)",
        evidence: `selected nodes: ${onNodes.map((n) => n.name).join(", ")}`,
      });
    } else {
      out.push(ok("pool-advertised", subject, `pool ${name} is advertised by ${adNames}`));
    }
  }
  return out;
}

function checkServices(
  input: DoctorInput,
  services: V1Service[],
  opts: DoctorOptions,
  nowMs: number,
): Finding[] {
  const out: Finding[] = [];
  const window = opts.eventWindowMs ?? DEFAULT_EVENT_WINDOW_MS;
  const recent = input.events.filter((e) => nowMs - eventTime(e) <= window);
  const rows = statusRows({ ...input, services }, opts, nowMs);
  const rowsBy = new Map<string, StatusRow[]>();
  for (const r of rows) rowsBy.set(r.service, [...(rowsBy.get(r.service) ?? []), r]);
  const liveSpeakers = input.leases.filter((l) => leaseState(l, nowMs).fresh).length;
  const controller = controllerEvidence(input.controllerLeases, nowMs);
  // Pools a BGPAdvertisement selects, with the first such advertisement's name.
  const bgpPools = new Map<string, string>();
  for (const p of input.pools) {
    const info = { name: p.metadata?.name ?? "", labels: p.metadata?.labels ?? {} };
    const ad = (input.bgpAds ?? []).find((a) =>
      advertisementSelectsPool({ name: a.metadata?.name ?? "", ...(a.spec ?? {}) }, info),
    );
    if (ad) bgpPools.set(info.name, ad.metadata?.name ?? "");
  }

  for (const s of [...services].sort((a, b) => keyOf(a).localeCompare(keyOf(b)))) {
    const key = keyOf(s);
    const subject = `service ${key}`;
    const cond = s.status?.conditions?.find((c) => c.type === ALLOCATED_CONDITION);
    const ips = statusIPs(s);
    if (ips.length === 0) {
      if (cond && cond.status === "False") {
        out.push({
          severity: "problem",
          check: "service-ip",
          subject,
          cause: `no IP: ${cond.reason}: ${cond.message}`,
          fix: serviceFix(cond.reason, key),
        });
      } else {
        out.push({
          severity: "problem",
          check: "service-ip",
          subject,
          cause:
            "no IP, and no ironlb controller has said why (no ironlb.dev/IPAllocated condition)",
          fix: "check that the controller runs and handles this Service (its loadBalancerClass, --ignore-unclassed): kubectl -n ironlb-system logs deploy/ironlb-controller",
          evidence: controller,
        });
      }
      continue;
    }
    if (cond && cond.status === "True" && cond.reason !== "Allocated") {
      out.push({
        severity: "warning",
        check: "service-ip",
        subject,
        cause: `keeps ${ips.join(", ")}, but its request cannot be met: ${cond.reason}: ${cond.message}`,
        fix: serviceFix(cond.reason, key),
      });
    } else out.push(ok("service-ip", subject, `has ${ips.join(", ")}`));

    for (const r of rowsBy.get(key) ?? []) {
      const ipSubject = `service ${key} ${r.ip}`;
      if (r.state === "announced") {
        out.push(ok("announced", ipSubject, `announced by ${r.node} on ${r.interfaces}`));
      } else if (r.state.startsWith("not announced") && bgpPools.has(r.pool)) {
        // Layer 2 does not announce it, but a BGPAdvertisement selects its pool: BGP mode.
        out.push(
          ok(
            "announced",
            ipSubject,
            `advertised over BGP (BGPAdvertisement ${bgpPools.get(r.pool)}); ironlb status shows which nodes advertise it to which peers`,
          ),
        );
      } else if (r.state.startsWith("not announced")) {
        const reason = r.state.replace(/^not announced:? ?/, "") || "no node announces it";
        out.push({
          severity: "problem",
          check: "announced",
          subject: ipSubject,
          cause: `not announced: ${reason}`,
          fix: announceFix(key, reason),
        });
      } else {
        // The speakers' shared answer names an owner, but the record does not (yet): a
        // moment after a change that is normal; if it lasts, the owner cannot announce or
        // the speakers do not agree on who is live (heartbeats blocked between nodes).
        out.push({
          severity: "warning",
          check: "announced",
          subject: ipSubject,
          cause: `${r.state}${liveSpeakers > 1 ? "; if this lasts while the speaker Leases are fresh, the speakers disagree about who is live" : ""}`,
          fix: `if it lasts: allow UDP port ${DEFAULT_HEARTBEAT_PORT} (speaker --heartbeat-port) between the nodes' addresses each speaker Lease names in ironlb.dev/heartbeat-address, and read the speakers' logs`,
        });
      }
      out.push(...ipEvents(recent, s, r.ip, subject));
    }
  }
  return out;
}

function controllerEvidence(leases: V1Lease[], nowMs: number): string {
  if (leases.length === 0) return "no ironlb-controller Lease (none ran with leader election)";
  return leases
    .map((l) => {
      const st = leaseState(l, nowMs);
      return `Lease ${l.metadata?.namespace}/${l.metadata?.name} held by ${l.spec?.holderIdentity ?? "nobody"}, ${st.fresh ? "current" : `renewed ${st.ageS ?? "?"} s ago (expired)`}`;
    })
    .join("; ");
}

/** Findings from one Service's recent Events about one of its IPs. */
function ipEvents(events: CoreV1Event[], s: V1Service, ip: string, subject: string): Finding[] {
  const mine = events.filter(
    (e) =>
      e.involvedObject?.kind === "Service" &&
      e.involvedObject.namespace === s.metadata?.namespace &&
      e.involvedObject.name === s.metadata?.name &&
      (e.message ?? "").includes(ip),
  );
  const out: Finding[] = [];
  const conflicts = mine.filter((e) => e.reason === "IPConflict");
  if (conflicts.length > 0) {
    const last = conflicts.reduce((a, b) => (eventTime(a) >= eventTime(b) ? a : b));
    const host = /host (\S+) on (\S+)/.exec(last.message ?? "");
    out.push({
      severity: "problem",
      check: "ip-conflict",
      subject: `${subject} ${ip}`,
      cause: `another host on the LAN uses ${ip}${host ? ` (MAC ${host[1]} seen on ${host[2]})` : ""}: ironlb does not announce it while that lasts`,
      fix: "remove the address from that host, or the address from the pool (and give the Service another)",
      evidence: `IPConflict Event: ${last.message}`,
    });
  }
  // Several nodes announcing one IP within the window: a failover, or, when no node
  // failed, speakers that do not hear each other and each take it in turn.
  const nodes = new Set(
    mine
      .filter((e) => e.reason === "NodeAnnouncing")
      .map((e) => /^Node (\S+) announces/.exec(e.message ?? "")?.[1])
      .filter((n): n is string => n !== undefined),
  );
  if (nodes.size > 1) {
    out.push({
      severity: "warning",
      check: "ip-moves",
      subject: `${subject} ${ip}`,
      cause: `${ip} was announced by ${nodes.size} nodes recently (${[...nodes].sort().join(", ")}): if no node failed meanwhile, the speakers do not hear each other's heartbeats`,
      fix: `allow UDP port ${DEFAULT_HEARTBEAT_PORT} (speaker --heartbeat-port) between the nodes, and check that their clocks agree within two minutes`,
    });
  }
  return out;
}
