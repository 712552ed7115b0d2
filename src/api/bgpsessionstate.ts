// BGPSessionState (ironlb.dev/v1beta1, cluster-scoped): the checked twin of
// config/crd/ironlb.dev_bgpsessionstates.yaml. One object per node and BGPPeer, written by
// that node's speaker (as frr-k8s's BGPSessionState): what `kubectl get bgpsessionstates`
// and `ironlb status` show.
import {
  dnsSubdomainPattern,
  envelope,
  type ObjectMeta,
  type ParseOptions,
  type ParseResult,
  parseWith,
} from "./common.ts";
import { dateTime, integer, object, oneOf, optional, required, string } from "./validate.ts";

export const bgpSessionStateKind = "BGPSessionState";
export const bgpSessionStatePlural = "bgpsessionstates";

export const bgpSessionStateMessages = {
  name: "a node or peer name is a DNS subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
} as const;

export const bfdStates = ["AdminDown", "Down", "Init", "Up"] as const;
/** Graceful restart on an Established session whose BGPPeer enables it. */
export const gracefulRestartStates = ["Negotiated", "Unsupported"] as const;

export const sessionStates = ["Idle", "Connect", "OpenSent", "OpenConfirm", "Established"] as const;

export interface BGPSessionStateStatus {
  node: string;
  peer: string;
  peerAddress?: string;
  state: (typeof sessionStates)[number];
  /** Last change of `state`. */
  since?: string;
  establishedAt?: string;
  lastError?: string;
  lastNotification?: string;
  prefixesSent?: number;
  flaps?: number;
  /** The BFD session's state when the peer names a BFDProfile. */
  bfdState?: (typeof bfdStates)[number];
  /** Why BFD does not run (the profile is missing). */
  bfdError?: string;
  /** Whether the router agreed to keep our routes across a restart (RFC 4724). */
  gracefulRestart?: (typeof gracefulRestartStates)[number];
}

const name = string({
  max: 253,
  pattern: dnsSubdomainPattern,
  message: bgpSessionStateMessages.name,
});

export const bgpSessionStateStatus = object<BGPSessionStateStatus>({
  node: required(name),
  peer: required(name),
  peerAddress: optional(string({ max: 45 })),
  state: required(oneOf(...sessionStates)),
  since: optional(dateTime()),
  establishedAt: optional(dateTime()),
  lastError: optional(string({ max: 1024 })),
  lastNotification: optional(string({ max: 1024 })),
  prefixesSent: optional(integer(0)),
  flaps: optional(integer(0)),
  bfdState: optional(oneOf(...bfdStates)),
  bfdError: optional(string({ max: 1024 })),
  gracefulRestart: optional(oneOf(...gracefulRestartStates)),
});

export interface BGPSessionState {
  apiVersion: "ironlb.dev/v1beta1";
  kind: "BGPSessionState";
  metadata: ObjectMeta;
  status?: BGPSessionStateStatus;
}

export const bgpSessionState = object<BGPSessionState>({
  ...envelope(bgpSessionStateKind),
  status: optional(bgpSessionStateStatus),
});

/** Validates a whole BGPSessionState object as the apiserver would. */
export function parseBGPSessionState(
  obj: unknown,
  opts?: ParseOptions,
): ParseResult<BGPSessionState> {
  return parseWith(bgpSessionState, obj, opts);
}

/**
 * The object name for a node's session with a peer: "<node>-<peer>-<hash>", where the hash
 * (FNV-1a, 8 hex digits, over node and peer) keeps two pairs apart that would otherwise
 * read the same ("a-b" + "c" and "a" + "b-c"), and the readable part is cut so that the
 * whole stays a DNS subdomain of at most 253 characters.
 */
export function bgpSessionStateName(node: string, peer: string): string {
  const hash = fnv1a(`${node}\0${peer}`).toString(16).padStart(8, "0");
  let head = `${node}-${peer}`.slice(0, 253 - 9);
  // A cut may leave a '-' or '.' at the end; a subdomain's labels end in a letter or digit.
  head = head.replace(/[-.]+$/, "");
  return `${head}-${hash}`;
}

/** 32-bit FNV-1a over UTF-16 code units: a short, stable tag (not a secret). */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
