// BGPAdvertisement (ironlb.dev/v1beta1, cluster-scoped): the checked twin of
// config/crd/ironlb.dev_bgpadvertisements.yaml, with MetalLB's field names. Also the
// grammar of communities, which the speaker turns into the numbers BGP carries.
import {
  envelope,
  type LabelSelector,
  labelSelector,
  type ObjectMeta,
  objectName,
  type ParseOptions,
  type ParseResult,
  parseWith,
  stringSet,
} from "./common.ts";
import { array, integer, object, optional, string, withDefault } from "./validate.ts";

export const bgpAdvertisementKind = "BGPAdvertisement";
export const bgpAdvertisementPlural = "bgpadvertisements";

/** Well-known communities by the names routers use (RFC 1997, 3765, 7999, 8326). */
export const wellKnownCommunities: Readonly<Record<string, number>> = {
  "no-export": 0xffffff01,
  "no-advertise": 0xffffff02,
  "no-export-subconfed": 0xffffff03,
  "no-peer": 0xffffff04,
  blackhole: 0xffff029a,
  "graceful-shutdown": 0xffff0000,
  "accept-own": 0xffff0001,
};

/** Messages shared with the CRD's CEL rules. */
export const bgpAdvertisementMessages = {
  community:
    "a community is ASN:VALUE (each 0 to 65535, like 65535:666), large:GLOBAL:LOCAL1:LOCAL2 (each 0 to 4294967295, like large:64512:1:2), or one of no-export, no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown, accept-own",
  serviceSelectors:
    "serviceSelectors need aggregationLength 32 and aggregationLengthV6 128: an aggregated route also carries the addresses of Services the selectors leave out",
} as const;

export type Community =
  | { kind: "standard"; value: number }
  | { kind: "large"; value: readonly [number, number, number] };

const standardPattern = /^([0-9]{1,5}):([0-9]{1,5})$/;
const largePattern = /^large:([0-9]{1,10}):([0-9]{1,10}):([0-9]{1,10})$/;

/** A community as written in a BGPAdvertisement; undefined when the CRD would refuse it. */
export function parseCommunity(text: string): Community | undefined {
  const known = Object.hasOwn(wellKnownCommunities, text) ? wellKnownCommunities[text] : undefined;
  if (known !== undefined) return { kind: "standard", value: known };
  const s = standardPattern.exec(text);
  if (s) {
    const hi = Number(s[1]);
    const lo = Number(s[2]);
    if (hi > 0xffff || lo > 0xffff) return undefined;
    return { kind: "standard", value: hi * 0x10000 + lo };
  }
  const l = largePattern.exec(text);
  if (l) {
    const parts = [Number(l[1]), Number(l[2]), Number(l[3])] as const;
    if (parts.some((p) => p > 0xffffffff)) return undefined;
    return { kind: "large", value: parts };
  }
  return undefined;
}

const community = string({
  max: 40,
  refine: (s) => (parseCommunity(s) === undefined ? [bgpAdvertisementMessages.community] : []),
});

export interface BGPAdvertisementSpec {
  ipAddressPools?: string[];
  ipAddressPoolSelectors?: LabelSelector[];
  serviceSelectors?: LabelSelector[];
  nodeSelectors?: LabelSelector[];
  peers?: string[];
  communities?: string[];
  localPref?: number;
  aggregationLength: number;
  aggregationLengthV6: number;
}

export const bgpAdvertisementSpec = object<BGPAdvertisementSpec>(
  {
    ipAddressPools: optional(stringSet(objectName, 256)),
    ipAddressPoolSelectors: optional(array(labelSelector, { max: 16 })),
    serviceSelectors: optional(array(labelSelector, { max: 16 })),
    nodeSelectors: optional(array(labelSelector, { max: 16 })),
    peers: optional(stringSet(objectName, 64)),
    communities: optional(stringSet(community, 64)),
    localPref: optional(integer(0, 4294967295)),
    aggregationLength: withDefault(integer(0, 32), 32),
    aggregationLengthV6: withDefault(integer(0, 128), 128),
  },
  {
    strict: true,
    refine: (s) =>
      (s.serviceSelectors?.length ?? 0) > 0 &&
      (s.aggregationLength !== 32 || s.aggregationLengthV6 !== 128)
        ? [bgpAdvertisementMessages.serviceSelectors]
        : [],
  },
);

export interface BGPAdvertisement {
  apiVersion: "ironlb.dev/v1beta1";
  kind: "BGPAdvertisement";
  metadata: ObjectMeta;
  spec: BGPAdvertisementSpec;
}

// The spec is optional as in L2Advertisement: an empty one advertises every pool to every
// peer from every node.
const emptySpec = { aggregationLength: 32, aggregationLengthV6: 128 };

export const bgpAdvertisement = object<BGPAdvertisement>({
  ...envelope(bgpAdvertisementKind),
  spec: withDefault(bgpAdvertisementSpec, emptySpec),
});

/** Validates a whole BGPAdvertisement object as the apiserver would, applying defaults. */
export function parseBGPAdvertisement(
  obj: unknown,
  opts?: ParseOptions,
): ParseResult<BGPAdvertisement> {
  return parseWith(bgpAdvertisement, obj, opts);
}
