// Address plan of the real-cluster lab (COMMON address plan). Only the LAN /26 is routed in
// the root namespace (to the lab's uplink); the other ranges exist only inside the lab's
// namespaces (the routed client's network only in the router's and its client's).

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

/** BGP mode's router (FRR): on the LAN, where the nodes' speakers connect to it. */
export const ROUTER_IP = "198.51.100.40";
/**
 * The routed client's network behind the router, off the LAN: the router .1, the client .2.
 * The nodes route it through the router, as through a default gateway.
 */
export const ROUTED_CIDR = "203.0.113.0/28";
export const ROUTER_ROUTED_IP = "203.0.113.1";
export const ROUTED_CLIENT_IP = "203.0.113.2";
/** Private AS numbers: the nodes' (BGPPeer myASN) and the router's. */
export const NODE_ASN = 64512;
export const ROUTER_ASN = 64500;
