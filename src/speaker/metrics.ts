// The speaker's Prometheus metrics.

import type { AnnouncerCounterName } from "../layer2/announcer.ts";
import { Counter, Gauge, processMetrics, Registry } from "../observability/metrics.ts";

/** Creates the speaker's metrics in a registry of their own. */
export function speakerMetrics() {
  const registry = new Registry();
  // Process figures (RSS, heap, event-loop lag, CPU) next to ironlb's own.
  processMetrics(registry);
  const packets = new Counter({
    name: "ironlb_speaker_packets_total",
    help: "ARP/NDP activity per interface: requests_received (for watched IPs), replies_sent, replies_rate_limited, gratuitous_sent, conflicts, malformed_frames, send_errors.",
    labelNames: ["interface", "kind"],
    registry,
  });
  const kinds: Record<AnnouncerCounterName, string> = {
    requestsReceived: "requests_received",
    repliesSent: "replies_sent",
    repliesRateLimited: "replies_rate_limited",
    gratuitousSent: "gratuitous_sent",
    conflicts: "conflicts",
    malformedFrames: "malformed_frames",
    sendErrors: "send_errors",
  };
  return {
    registry,
    announced: new Gauge({
      name: "ironlb_speaker_announced_ips",
      help: "IPs this node announces.",
      registry,
    }),
    liveSpeakers: new Gauge({
      name: "ironlb_speaker_live_speakers",
      help: "Speakers this node considers alive.",
      registry,
    }),
    heartbeatsDropped: new Counter({
      name: "ironlb_speaker_heartbeats_dropped_total",
      help: "Datagrams on the heartbeat port that did not count, by reason: unknown-source (not a published speaker address; normally dropped in the kernel by the socket's filter and never counted here, counted only where no filter could be installed), wrong-source (a beat naming another node than the one that published its source), unpaired (under the shared key although its node publishes a heartbeat key: another holder of the shared key speaking in its name), undecodable (bad MAC, format), clock-skew and future-incarnation (the sender's clock, or a forgery), stale (replays, reordering), rate-limited (more than ten times the beat rate from one source, counted separately for datagrams that continue its last run and sequence and for the rest).",
      labelNames: ["reason"],
      registry,
    }),
    heartbeatSocketDrops: new Counter({
      name: "ironlb_speaker_heartbeat_socket_drops_total",
      help: "Datagrams the kernel dropped at the heartbeat socket because its receive buffer was full (a flood, or a stalled speaker), read from /proc/net/udp (less what the socket's filter dropped: the smaller of its growth and the namespace's RcvbufErrors). Real beats may be among them: a peer silent meanwhile is judged by its Lease.",
      registry,
    }),
    silentPeersDoubted: new Counter({
      name: "ironlb_speaker_silent_peers_doubted_total",
      help: "Times a peer fell silent while this node was losing heartbeat datagrams (socket full, or a source over its budget), so that it was judged by its Lease instead of being declared dead.",
      registry,
    }),
    conflicts: new Counter({
      name: "ironlb_speaker_ip_conflicts_total",
      help: "Times another host was found using an IP this node was about to announce or announces.",
      registry,
    }),
    outsidePool: new Counter({
      name: "ironlb_speaker_ips_outside_pool_total",
      help: "Service IPs found outside the pool the Service's ironlb.dev/ip-allocated-from-pool names, and so not announced for it (once per Service, IP and pool each time it appears).",
      registry,
    }),
    bgpSessionState: new Gauge({
      name: "ironlb_speaker_bgp_session_state",
      help: "Per BGP session (peer), 1 for the state it is in (Idle, Connect, OpenSent, OpenConfirm, Established) and 0 for the others.",
      labelNames: ["peer", "state"],
      registry,
    }),
    bgpSessionUp: new Gauge({
      name: "ironlb_speaker_bgp_session_up",
      help: "1 while the BGP session with the peer is Established, else 0.",
      labelNames: ["peer"],
      registry,
    }),
    bgpFlaps: new Counter({
      name: "ironlb_speaker_bgp_session_flaps_total",
      help: "Times the BGP session with the peer left Established.",
      labelNames: ["peer"],
      registry,
    }),
    bgpMessages: new Counter({
      name: "ironlb_speaker_bgp_messages_total",
      help: "BGP messages per peer, direction (sent, received) and type (open, update, notification, keepalive, routeRefresh).",
      labelNames: ["peer", "direction", "type"],
      registry,
    }),
    bgpNotifications: new Counter({
      name: "ironlb_speaker_bgp_notifications_total",
      help: "BGP NOTIFICATIONs per peer, direction (sent, received), error code and subcode (RFC 4271 section 4.5; 6 is Cease).",
      labelNames: ["peer", "direction", "code", "subcode"],
      registry,
    }),
    bgpPrefixes: new Gauge({
      name: "ironlb_speaker_bgp_prefixes_advertised",
      help: "Prefixes this node advertises to the peer now (0 while the session is not Established).",
      labelNames: ["peer"],
      registry,
    }),
    bfdSessionUp: new Gauge({
      name: "ironlb_speaker_bfd_session_up",
      help: "1 while the BFD session with the BGP peer is Up, else 0; absent when the peer has no bfdProfile.",
      labelNames: ["peer"],
      registry,
    }),
    bfdDowns: new Counter({
      name: "ironlb_speaker_bfd_session_down_total",
      help: "Times the BFD session with the BGP peer went from Up to Down (each ends the BGP session at once).",
      labelNames: ["peer"],
      registry,
    }),
    bfdPacketsDropped: new Counter({
      name: "ironlb_speaker_bfd_packets_dropped_total",
      help: "BFD packets received and dropped before any session saw them, by reason: ttl (not received with TTL / hop limit 255, so not from the link itself: RFC 5881 section 5), malformed, no-session.",
      labelNames: ["reason"],
      registry,
    }),
    /** Feeds the announcer's counters into the packets metric. */
    count(name: AnnouncerCounterName, ifname: string): void {
      packets.inc({ interface: ifname, kind: kinds[name] });
    },
  };
}

export type SpeakerMetrics = ReturnType<typeof speakerMetrics>;
