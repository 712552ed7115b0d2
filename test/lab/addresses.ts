// Address plans of the lab and the end-to-end tests. Both keep to documentation ranges and
// differ in the range the root namespace routes to its uplink, so that an e2e run and a
// lab left running never meet.

/** `npm run lab`: its LAN (uplink 192.0.2.1); see cli.ts for hosts that sit in it. */
export const LAB_SUBNET = "192.0.2.0/24";
/** The lab's LAN when the host itself uses LAB_SUBNET. */
export const LAB_FALLBACK_SUBNET = "203.0.113.128/25";
/** e2e: the LAN (uplink 203.0.113.1, the address the e2e apiserver certificate names). */
export const E2E_SUBNET = "203.0.113.0/25";
export const E2E_UPLINK_IP = "203.0.113.1";
/** e2e: a second LAN for interface selection; only inside the test's namespaces. */
export const E2E_SECOND_SUBNET = "203.0.113.128/25";
/** Service IPs (lab and e2e): never routed in the root namespace. */
export const POOL_CIDR = "198.51.100.0/24";
