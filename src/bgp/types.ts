// Pure types shared by the BGP protocol (src/bgp) and the speaker's BGP backend.

/** One BGP neighbour as the speaker on one node talks to it. */
export interface BgpPeerConfig {
  /** The BGPPeer resource's name: logs, status, metrics. */
  name: string;
  /** 1..4294967295 */
  myASN: number;
  /** The peer's ASN; 0 when `dynamicASN` is set (accept what its OPEN says). */
  peerASN: number;
  dynamicASN?: "internal" | "external";
  /** IPv4 or IPv6 literal */
  peerAddress: string;
  /** 179 by default */
  peerPort: number;
  /** Local address to bind before connecting; absent: the kernel's choice. */
  sourceAddress?: string;
  /** seconds; 0 (no keepalives) or >= 3 */
  holdTime: number;
  /** seconds; sent at min(keepaliveTime, negotiatedHold/3) */
  keepaliveTime: number;
  /** seconds; TCP connect timeout */
  connectTime: number;
  /** dotted IPv4 */
  routerID: string;
  /**
   * Additive: the TCP-MD5 password (RFC 2385), 1..80 bytes of UTF-8; absent: none. Never
   * logged (log the config through redactPeerConfig).
   */
  password?: string;
  /**
   * Additive: why the password could not be read (its Secret is missing, say): the session
   * does not connect and reports this instead, as it would any other config problem.
   */
  passwordError?: string;
  /**
   * Additive: offer graceful restart (RFC 4724) with this restart time, seconds 1..4095;
   * absent: the peer keeps none of our routes once the session ends.
   */
  gracefulRestartTime?: number;
  /**
   * Additive: GTSM (RFC 5082) for a router at most this many hops away, 1..254: segments
   * are sent with TTL / hop limit 255 and received ones with a TTL below 256 - hops are
   * dropped by the kernel; absent: none (the kernel's default TTL).
   */
  ttlSecurityHops?: number;
}

/** One prefix the node advertises to one peer, with its attributes. */
export interface BgpRoute {
  /** "203.0.113.10/32", "2001:db8::10/128", or an aggregate ("203.0.113.0/24"). */
  prefix: string;
  /** RFC 1997 communities as 32-bit unsigned values (65535:666 -> 0xFFFF029A). */
  communities: readonly number[];
  /** RFC 8092 large communities [global, local1, local2]. */
  largeCommunities: readonly (readonly [number, number, number])[];
  /** Sent only to internal (same-AS) peers. */
  localPref?: number;
}

export type SessionState = "Idle" | "Connect" | "OpenSent" | "OpenConfirm" | "Established";

export interface NotificationInfo {
  direction: "sent" | "received";
  code: number;
  subcode: number;
  /** Human text: the code names and, for an RFC 9003 shutdown, its text. */
  text: string;
  /** Wall-clock ms. */
  at: number;
}

export interface SessionStatus {
  /** BgpPeerConfig.name */
  peer: string;
  state: SessionState;
  /** Wall-clock ms of the last state change. */
  since: number;
  /** Wall-clock ms when the session last became Established; absent if never. */
  establishedAt?: number;
  lastError?: string;
  lastNotification?: NotificationInfo;
  /** Prefixes currently advertised on the session (0 unless Established). */
  prefixesSent: number;
  /**
   * Additive: desired prefixes not advertised on this session (other family than the
   * session's, or attributes too large for one UPDATE).
   */
  prefixesIgnored?: number;
  /** Times the session left Established. */
  flaps: number;
  /** Message counters by type name: "open","update","notification","keepalive","routeRefresh". */
  messagesSent: Readonly<Record<string, number>>;
  messagesReceived: Readonly<Record<string, number>>;
  /** Hold time agreed with the peer, seconds (when Established). */
  negotiatedHoldTime?: number;
  /**
   * Additive: this side's address of the last TCP connection (what BFD runs from when the
   * peer sets no sourceAddress).
   */
  localAddress?: string;
  /** Families the peer accepted (from its OPEN): "ipv4-unicast" | "ipv6-unicast". */
  families?: readonly string[];
  /**
   * Additive, when Established: we offered graceful restart and the peer's OPEN carried a
   * Graceful Restart capability, so it keeps our routes across a speaker restart.
   */
  gracefulRestart?: boolean;
}
