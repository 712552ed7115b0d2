// IPAddressPool (ironlb.dev/v1beta1, cluster-scoped): the zod twin of
// config/crd/ironlb.dev_ipaddresspools.yaml. Both must accept and reject the same objects
// (test/fixtures/crd-examples.ts is the shared table).
import { z } from "zod";
import { addressEntryErrors } from "./addresses.ts";
import {
  condition,
  envelope,
  labelSelector,
  namespaceName,
  type ParseResult,
  parseWith,
  stringSet,
} from "./common.ts";

export const ipAddressPoolKind = "IPAddressPool";
export const ipAddressPoolPlural = "ipaddresspools";

/** Largest count the status reports: available IPv6 counts saturate here. */
export const maxCount = Number.MAX_SAFE_INTEGER;

/** Condition types and reasons the controller writes on pools. */
export const poolConditions = {
  ready: "Ready",
  conflict: "Conflict",
  reasons: {
    ready: "PoolReady",
    invalidAddresses: "InvalidAddresses",
    noUsableAddresses: "NoUsableAddresses",
    familyUnavailable: "FamilyUnavailable",
    overlapsPool: "OverlapsPool",
    noOverlap: "NoOverlap",
  },
} as const;

export const addressEntry = z
  .string()
  // The longest valid entry: two IPv6 addresses with an embedded IPv4 part (45 characters each).
  .max(91)
  .superRefine((entry, ctx) => {
    for (const message of addressEntryErrors(entry)) ctx.addIssue({ code: "custom", message });
  });

export const serviceAllocation = z.strictObject({
  priority: z.int().min(0).max(2147483647).optional(),
  namespaces: stringSet(namespaceName, 256).optional(),
  namespaceSelectors: z.array(labelSelector).max(16).optional(),
  serviceSelectors: z.array(labelSelector).max(16).optional(),
});
export type ServiceAllocation = z.infer<typeof serviceAllocation>;

export const ipAddressPoolSpec = z.strictObject({
  addresses: stringSet(addressEntry, 256).min(1),
  autoAssign: z.boolean().default(true),
  avoidBuggyIPs: z.boolean().default(false),
  excludeNetworkAndBroadcast: z.boolean().default(false),
  serviceAllocation: serviceAllocation.optional(),
});
/** The spec with defaults applied (what the controller works with). */
export type IPAddressPoolSpec = z.output<typeof ipAddressPoolSpec>;
/** The spec as a person may write it (defaulted fields optional). */
export type IPAddressPoolSpecInput = z.input<typeof ipAddressPoolSpec>;

const count = z.int().min(0).max(maxCount);

export const ipAddressPoolStatus = z.strictObject({
  assignedIPv4: count.optional(),
  assignedIPv6: count.optional(),
  availableIPv4: count.optional(),
  availableIPv6: count.optional(),
  conditions: z
    .array(condition)
    .max(8)
    .superRefine((cs, ctx) => {
      // listType map keyed by type: one entry per type.
      const seen = new Set<string>();
      cs.forEach((c, i) => {
        if (seen.has(c.type)) {
          ctx.addIssue({
            code: "custom",
            path: [i],
            message: `Duplicate value: map[string]interface {}{"type":${JSON.stringify(c.type)}}`,
          });
        }
        seen.add(c.type);
      });
    })
    .optional(),
});
export type IPAddressPoolStatus = z.infer<typeof ipAddressPoolStatus>;

export const ipAddressPool = z.strictObject({
  ...envelope(ipAddressPoolKind),
  spec: ipAddressPoolSpec,
  status: ipAddressPoolStatus.optional(),
});
export type IPAddressPool = z.output<typeof ipAddressPool>;

/** Validates a whole IPAddressPool object as the apiserver would, applying defaults. */
export function parseIPAddressPool(obj: unknown): ParseResult<IPAddressPool> {
  return parseWith(ipAddressPool, obj);
}
