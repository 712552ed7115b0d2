// The ironlb.dev/v1beta1 API: zod schemas and types for IPAddressPool and L2Advertisement,
// and the messages for pool addresses (the grammar is src/net's).
export * from "./addresses.ts";
export * from "./common.ts";
export * from "./ipaddresspool.ts";
export * from "./l2advertisement.ts";
