// Address plans of the netns lab and the end-to-end tests, in documentation ranges. Only the
// uplink's subnet is ever routed in the root namespace, and lab.ts refuses a subnet that
// overlaps anything the host uses (its routes, nameservers, the hosts its package tools and
// open connections talk to: on some machines those sit in 203.0.113.0/24 themselves). The
// netns lab's fallback and the e2e LAN are the same /25: a lab left running makes an e2e run
// stop with a message naming the lab's uplink, never share the LAN.
// Everything but the uplink's subnet exists only inside the lab's namespaces.

/** `npm run lab:netns`: its LAN (uplink 192.0.2.1); see cli.ts for hosts that sit in it. */
export const LAB_SUBNET = "192.0.2.0/24";
/** The lab's LAN when the host itself uses LAB_SUBNET. */
export const LAB_FALLBACK_SUBNET = "203.0.113.128/25";
/** e2e: the LAN (uplink 203.0.113.129, the address the e2e apiserver certificate names). */
export const E2E_SUBNET = "203.0.113.128/25";
export const E2E_UPLINK_IP = "203.0.113.129";
/** e2e: a second LAN for interface selection; only inside the test's namespaces. */
export const E2E_SECOND_SUBNET = "203.0.113.0/25";
/**
 * Service IPs (lab and e2e): on-link for the client, never routed in the root namespace.
 * Not 198.51.100.0/26: the real-cluster lab's uplink puts 198.51.100.1 in the root
 * namespace, whose kernel answers ARP for its own addresses on every link (our uplink too).
 */
export const POOL_CIDR = "198.51.100.64/26";
/** Service ClusterIPs that kube-proxy programs inside the node namespaces (never ARPed for). */
export const SERVICE_CIDR = "198.51.100.0/26";
/** Pod addresses: a /27 per node (node1 198.51.100.128/27, node2 .160/27, ...). */
export const POD_CIDR = "198.51.100.128/25";
/** The control plane's ClusterIP ranges for a lab with kube-proxy (both families). */
export const LAB_SERVICE_CIDRS = `${SERVICE_CIDR},2001:db8:96::/112`;

// IPv6 (when the lab enables it): LAN, pods (a /64 per node: node1 2001:db8:2:101::/64,
// node2 2001:db8:2:102::/64, ...), Service IPs on-link for the client.
export const LAN6_PREFIX = "2001:db8:2::";
export const LAN6_BITS = 64;
export const POD6_CIDR = "2001:db8:2:100::/56";
export const POOL6_CIDR = "2001:db8:2:ff::/120";
