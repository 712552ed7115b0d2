// Address plan of the real-cluster lab (COMMON address plan). Only the LAN /26 is routed in
// the root namespace (to the lab's uplink); the other ranges exist only inside the lab's
// namespaces.

/** The LAN: uplink .1 (the control plane's address), nodes .11 on, the client .50. */
export const LAN_CIDR = "198.51.100.0/26";
export const LAN_PREFIX = 26;
export const UPLINK_IP = "198.51.100.1";
export const CLIENT_IP = "198.51.100.50";
export function nodeIP(index: number): string {
  return `198.51.100.${11 + index}`;
}

/** Pods: a /28 per node out of 198.51.100.64/26 (so at most 4 nodes). */
export const POD_CIDR = "198.51.100.64/26";
export function podCIDR(index: number): { cidr: string; gateway: string } {
  if (index < 0 || index > 3) throw new Error("the lab's pod range has room for 4 nodes");
  const base = 64 + 16 * index;
  return { cidr: `198.51.100.${base}/28`, gateway: `198.51.100.${base + 1}` };
}

/** Service ClusterIPs (the `kubernetes` Service gets the first address). */
export const SERVICE_CIDRS = "198.51.100.128/26,2001:db8:96::/112";
export const SERVICE_CIDR_V4 = "198.51.100.128/26";

/** LoadBalancer IPs ironlb assigns and announces. */
export const POOL_CIDR = "198.51.100.192/27";
