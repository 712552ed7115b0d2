// BGPPeer (ironlb.dev/v1beta1, cluster-scoped): the checked twin of
// config/crd/ironlb.dev_bgppeers.yaml. MetalLB's field names, so that a migration is a
// change of apiVersion. Durations are written as MetalLB writes them ("90s", "1m30s").
import { parseIP } from "../net/address.ts";
import {
  envelope,
  type LabelSelector,
  labelSelector,
  namespaceName,
  type ObjectMeta,
  objectName,
  type ParseOptions,
  type ParseResult,
  parseWith,
} from "./common.ts";
import {
  array,
  boolean,
  type Checker,
  integer,
  object,
  oneOf,
  optional,
  required,
  string,
  withDefault,
} from "./validate.ts";

export const bgpPeerKind = "BGPPeer";
export const bgpPeerPlural = "bgppeers";

/** Messages shared with the CRD's CEL rules. */
export const bgpPeerMessages = {
  duration:
    "a duration is written in whole hours, minutes and seconds, like 90s, 3m or 1m30s (at most 99h, 9999m, 99999s)",
  holdTime: "holdTime must be 0s (no keepalives, no hold timer) or from 3s to 65535s",
  keepaliveTime: "keepaliveTime must be from 1s to 65535s",
  keepaliveBelowHold: "keepaliveTime must be shorter than holdTime (90s when not set)",
  connectTime: "connectTime must be from 1s to 65535s",
  asn: "set exactly one of peerASN and dynamicASN",
  address: "must be an IPv4 or IPv6 address, like 192.0.2.1 or 2001:db8::1",
  family: "sourceAddress must be of the same IP family as peerAddress",
  routerID: "routerID must be an IPv4 address other than 0.0.0.0, like 192.0.2.11",
  gracefulRestartTime: "gracefulRestartTime must be from 1s to 4095s (the 12 bits of RFC 4724)",
  gracefulRestartTimeAlone: "gracefulRestartTime needs enableGracefulRestart: true",
} as const;

/** The defaults ironlb applies to durations that are not set (MetalLB's). */
export const bgpPeerDefaults = {
  holdTimeSeconds: 90,
  /** Without keepaliveTime: a third of the hold time (RFC 4271's suggestion). */
  keepaliveFraction: 3,
  connectTimeSeconds: 10,
  peerPort: 179,
  /** With enableGracefulRestart and no gracefulRestartTime (FRR's default too). */
  gracefulRestartTimeSeconds: 120,
} as const;

// Whole hours, minutes and seconds, a bounded number of digits each, so that CEL's
// `duration()` never overflows and both sides read the same seconds.
const durationPattern = /^([0-9]{1,2}h)?([0-9]{1,4}m)?([0-9]{1,5}s)?$/;

/** Seconds of a duration that passes `durationPattern` (and is not empty); else undefined. */
export function durationSeconds(text: string): number | undefined {
  if (text === "") return undefined;
  const m = durationPattern.exec(text);
  if (!m) return undefined;
  const n = (s: string | undefined) => (s === undefined ? 0 : Number.parseInt(s, 10));
  return n(m[1]) * 3600 + n(m[2]) * 60 + n(m[3]);
}

function duration(check: (seconds: number) => string[]): Checker<string> {
  return string({
    max: 16,
    refine: (s) => {
      const secs = durationSeconds(s);
      return secs === undefined ? [bgpPeerMessages.duration] : check(secs);
    },
  });
}

const holdTime = duration((s) =>
  s === 0 || (s >= 3 && s <= 65535) ? [] : [bgpPeerMessages.holdTime],
);
const keepaliveTime = duration((s) =>
  s >= 1 && s <= 65535 ? [] : [bgpPeerMessages.keepaliveTime],
);
const connectTime = duration((s) => (s >= 1 && s <= 65535 ? [] : [bgpPeerMessages.connectTime]));
const gracefulRestartTime = duration((s) =>
  s >= 1 && s <= 4095 ? [] : [bgpPeerMessages.gracefulRestartTime],
);

const ipAddress = string({
  max: 45,
  refine: (s) => (parseIP(s) === undefined ? [bgpPeerMessages.address] : []),
});

const routerID = string({
  max: 15,
  refine: (s) => {
    const ip = parseIP(s);
    return ip?.family === "IPv4" && ip.value !== 0n ? [] : [bgpPeerMessages.routerID];
  },
});

const asn = integer(1, 4294967295);

export interface BGPPeerSpec {
  myASN: number;
  peerASN?: number;
  dynamicASN?: "internal" | "external";
  peerAddress: string;
  peerPort: number;
  sourceAddress?: string;
  holdTime?: string;
  keepaliveTime?: string;
  connectTime?: string;
  routerID?: string;
  nodeSelectors?: LabelSelector[];
  ebgpMultiHop?: boolean;
  /** A BFDProfile's name: BFD runs with the router beside the session. */
  bfdProfile?: string;
  /** The TCP-MD5 password's Secret (MetalLB's field; a plain `password` is refused). */
  passwordSecret?: SecretReference;
  /** Offer graceful restart (RFC 4724): the router keeps our routes while we restart. */
  enableGracefulRestart?: boolean;
  /** How long the router keeps them (duration, 1s..4095s; default 120s). */
  gracefulRestartTime?: string;
  /** GTSM (RFC 5082; FRR's `ttl-security hops N`): the router is at most this many hops away. */
  ttlSecurityHops?: number;
}

/** A Secret by name; no namespace: the speaker's own (the chart's release namespace). */
export interface SecretReference {
  name: string;
  namespace?: string;
}

/** What the TCP-MD5 password's Secret must be (MetalLB's convention). */
export const passwordSecretType = "kubernetes.io/basic-auth";
export const passwordSecretKey = "password";

const secretReference = object<SecretReference>(
  { name: required(objectName), namespace: optional(namespaceName) },
  { strict: true },
);

export const bgpPeerSpec = object<BGPPeerSpec>(
  {
    myASN: required(asn),
    peerASN: optional(asn),
    dynamicASN: optional(oneOf("internal", "external")),
    peerAddress: required(ipAddress),
    peerPort: withDefault(integer(1, 65535), bgpPeerDefaults.peerPort),
    sourceAddress: optional(ipAddress),
    holdTime: optional(holdTime),
    keepaliveTime: optional(keepaliveTime),
    connectTime: optional(connectTime),
    routerID: optional(routerID),
    nodeSelectors: optional(array(labelSelector, { max: 16 })),
    ebgpMultiHop: optional(boolean()),
    bfdProfile: optional(string({ max: 253 })),
    passwordSecret: optional(secretReference),
    enableGracefulRestart: optional(boolean()),
    gracefulRestartTime: optional(gracefulRestartTime),
    ttlSecurityHops: optional(integer(1, 254)),
  },
  {
    strict: true,
    refine: (s) => {
      const out: string[] = [];
      if ((s.peerASN === undefined) === (s.dynamicASN === undefined)) out.push(bgpPeerMessages.asn);
      if (
        s.sourceAddress !== undefined &&
        s.sourceAddress.includes(":") !== s.peerAddress.includes(":")
      )
        out.push(bgpPeerMessages.family);
      const hold = durationSeconds(s.holdTime ?? "90s");
      const keep = s.keepaliveTime === undefined ? undefined : durationSeconds(s.keepaliveTime);
      if (keep !== undefined && hold !== undefined && hold !== 0 && keep >= hold)
        out.push(bgpPeerMessages.keepaliveBelowHold);
      if (s.gracefulRestartTime !== undefined && s.enableGracefulRestart !== true)
        out.push(bgpPeerMessages.gracefulRestartTimeAlone);
      return out;
    },
  },
);

export interface BGPPeer {
  apiVersion: "ironlb.dev/v1beta1";
  kind: "BGPPeer";
  metadata: ObjectMeta;
  spec: BGPPeerSpec;
}

export const bgpPeer = object<BGPPeer>({
  ...envelope(bgpPeerKind),
  spec: required(bgpPeerSpec),
});

/** Validates a whole BGPPeer object as the apiserver would, applying defaults. */
export function parseBGPPeer(obj: unknown, opts?: ParseOptions): ParseResult<BGPPeer> {
  return parseWith(bgpPeer, obj, opts);
}
