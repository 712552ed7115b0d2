// The ironlb.dev/v1beta1 API: zod schemas and types for IPAddressPool and L2Advertisement,
// and the address parser they share with the controller.
export * from "./addresses.ts";
export * from "./common.ts";
export * from "./ipaddresspool.ts";
export * from "./l2advertisement.ts";
