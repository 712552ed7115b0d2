// L2Advertisement (ironlb.dev/v1beta1, cluster-scoped): the checked twin of
// config/crd/ironlb.dev_l2advertisements.yaml.
import { bgpPeerMessages, durationSeconds } from "./bgppeer.ts";
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
import { array, object, optional, string } from "./validate.ts";

export const l2AdvertisementKind = "L2Advertisement";

/** Bounds of `gratuitousInterval`, in seconds: see the CRD's description for why. */
export const GRATUITOUS_INTERVAL_BOUNDS = { min: 5, max: 3600 } as const;

export const l2AdvertisementMessages = {
  duration: bgpPeerMessages.duration,
  gratuitousInterval: "gratuitousInterval must be from 5s to 1h (3600s)",
} as const;

/** `gratuitousInterval` in ms, or undefined when it is not set or not valid. */
export function gratuitousIntervalMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const secs = durationSeconds(text);
  if (secs === undefined) return undefined;
  const { min, max } = GRATUITOUS_INTERVAL_BOUNDS;
  return secs >= min && secs <= max ? secs * 1000 : undefined;
}

const gratuitousInterval = string({
  max: 16,
  refine: (s) => {
    const secs = durationSeconds(s);
    if (secs === undefined) return [l2AdvertisementMessages.duration];
    const { min, max } = GRATUITOUS_INTERVAL_BOUNDS;
    return secs >= min && secs <= max ? [] : [l2AdvertisementMessages.gratuitousInterval];
  },
});

export const interfaceMessages = {
  chars: "an interface name has 1 to 15 printable ASCII characters and no '/', ':' or spaces",
  dots: "an interface name must not be '.' or '..'",
} as const;

// Linux refuses '/', ':' and white space in interface names (dev_valid_name); we also keep
// to printable ASCII so that the 15-character limit is the kernel's 15-byte limit.
const interfaceChars = /^[!-.0-9;-~]+$/;

export const interfaceName = string({
  min: 1,
  max: 15,
  refine: (name) => [
    ...(interfaceChars.test(name) ? [] : [interfaceMessages.chars]),
    ...(name === "." || name === ".." ? [interfaceMessages.dots] : []),
  ],
});

export interface L2AdvertisementSpec {
  ipAddressPools?: string[];
  ipAddressPoolSelectors?: LabelSelector[];
  nodeSelectors?: LabelSelector[];
  interfaces?: string[];
  /** Periodic gratuitous ARP / unsolicited NA, e.g. "30s"; unset: only on takeover. */
  gratuitousInterval?: string;
}

export const l2AdvertisementSpec = object<L2AdvertisementSpec>({
  ipAddressPools: optional(stringSet(objectName, 256)),
  ipAddressPoolSelectors: optional(array(labelSelector, { max: 16 })),
  nodeSelectors: optional(array(labelSelector, { max: 16 })),
  interfaces: optional(stringSet(interfaceName, 64)),
  gratuitousInterval: optional(gratuitousInterval),
});

export interface L2Advertisement {
  apiVersion: "ironlb.dev/v1beta1";
  kind: "L2Advertisement";
  metadata: ObjectMeta;
  spec?: L2AdvertisementSpec;
}

export const l2Advertisement = object<L2Advertisement>({
  ...envelope(l2AdvertisementKind),
  spec: optional(l2AdvertisementSpec),
});

/** Validates a whole L2Advertisement object as the apiserver would. */
export function parseL2Advertisement(
  obj: unknown,
  opts?: ParseOptions,
): ParseResult<L2Advertisement> {
  return parseWith(l2Advertisement, obj, opts);
}
