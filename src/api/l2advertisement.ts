// L2Advertisement (ironlb.dev/v1beta1, cluster-scoped): the zod twin of
// config/crd/ironlb.dev_l2advertisements.yaml.
import { z } from "zod";
import {
  envelope,
  labelSelector,
  objectName,
  type ParseResult,
  parseWith,
  stringSet,
} from "./common.ts";

export const l2AdvertisementKind = "L2Advertisement";
export const l2AdvertisementPlural = "l2advertisements";

export const interfaceMessages = {
  chars: "an interface name has 1 to 15 printable ASCII characters and no '/', ':' or spaces",
  dots: "an interface name must not be '.' or '..'",
} as const;

// Linux refuses '/', ':' and white space in interface names (dev_valid_name); we also keep
// to printable ASCII so that the 15-character limit is the kernel's 15-byte limit.
const interfaceChars = /^[!-.0-9;-~]+$/;

export const interfaceName = z
  .string()
  .min(1)
  .max(15)
  .superRefine((name, ctx) => {
    if (!interfaceChars.test(name))
      ctx.addIssue({ code: "custom", message: interfaceMessages.chars });
    if (name === "." || name === "..")
      ctx.addIssue({ code: "custom", message: interfaceMessages.dots });
  });

export const l2AdvertisementSpec = z.strictObject({
  ipAddressPools: stringSet(objectName, 256).optional(),
  ipAddressPoolSelectors: z.array(labelSelector).max(16).optional(),
  nodeSelectors: z.array(labelSelector).max(16).optional(),
  interfaces: stringSet(interfaceName, 64).optional(),
});
export type L2AdvertisementSpec = z.infer<typeof l2AdvertisementSpec>;

export const l2Advertisement = z.strictObject({
  ...envelope(l2AdvertisementKind),
  spec: l2AdvertisementSpec.optional(),
});
export type L2Advertisement = z.infer<typeof l2Advertisement>;

/** Validates a whole L2Advertisement object as the apiserver would. */
export function parseL2Advertisement(obj: unknown): ParseResult<L2Advertisement> {
  return parseWith(l2Advertisement, obj);
}
