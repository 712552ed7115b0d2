// L2Advertisement (ironlb.dev/v1beta1, cluster-scoped): the checked twin of
// config/crd/ironlb.dev_l2advertisements.yaml.
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
}

export const l2AdvertisementSpec = object<L2AdvertisementSpec>({
  ipAddressPools: optional(stringSet(objectName, 256)),
  ipAddressPoolSelectors: optional(array(labelSelector, { max: 16 })),
  nodeSelectors: optional(array(labelSelector, { max: 16 })),
  interfaces: optional(stringSet(interfaceName, 64)),
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
