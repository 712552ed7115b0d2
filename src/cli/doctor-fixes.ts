// `ironlb doctor`'s fixes: one line per reason the controller or the speakers give, saying
// what to change. Pure.

export function poolFix(name: string, reason: string): string {
  switch (reason) {
    case "InvalidSpec":
      return `the pool is frozen (its Services keep their IPs, no new ones): make its spec readable again, see its PoolFrozen Event: kubectl describe ipaddresspool ${name}`;
    case "InvalidAddresses":
      return `fix the addresses the message names: kubectl edit ipaddresspool ${name}`;
    case "FamilyUnavailable":
      return "add addresses of the missing family to the pool, or change the ipFamilies of the Services that name it";
    case "NoUsableAddresses":
      return "the pool has no address left to give (an older overlapping pool holds them, or avoidBuggyIPs/excludeNetworkAndBroadcast remove them all): give it addresses of its own";
    default:
      return `see the pool's Events: kubectl describe ipaddresspool ${name}`;
  }
}

/** The fix for a reason `ironlb status` gives for an IP no node announces. */
export function announceFix(svc: string, reason: string): string {
  const [ns, name] = svc.split("/");
  const pool = /pool "([^"]+)"/.exec(reason)?.[1];
  if (/^no L2Advertisement (exists|selects|or BGPAdvertisement selects)/.test(reason))
    return `create an L2Advertisement that selects pool ${pool ?? "of the IP"}`;
  if (reason === "no ready endpoints")
    return `the Service has no ready endpoint: check its selector and pods: kubectl -n ${ns} get endpointslices -l kubernetes.io/service-name=${name}`;
  if (reason.includes("no known node holds a ready endpoint"))
    return `its ready endpoints are on no known node: check the pods (kubectl -n ${ns} get pods -o wide), or use externalTrafficPolicy Cluster`;
  if (reason.includes("no node with a ready endpoint has a live speaker"))
    return "the speaker does not run on the nodes with the Service's pods (a taint it does not tolerate?): add tolerations (chart value speaker.tolerations), or move the pods";
  if (reason.includes("no node with a ready endpoint is eligible"))
    return "make the L2Advertisement's nodeSelectors include a node with the Service's pods (or schedule the pods there), and check those nodes' conditions";
  if (reason.includes("ironlb.dev/ip-allocated-from-pool"))
    return `the status IP was not written by ironlb: remove it (kubectl -n ${ns} edit service ${name} --subresource status) so that the controller assigns one of the pool`;
  if (reason.includes("in no IPAddressPool"))
    return `create a pool that holds the IP, or clear the status (kubectl -n ${ns} edit service ${name} --subresource status) so that ironlb assigns one`;
  if (reason.startsWith("no eligible node"))
    return "make a node eligible: a live speaker, Ready, selected by an L2Advertisement of the pool, not labelled to be excluded";
  return `kubectl -n ${ns} describe service ${name}`;
}

export function serviceFix(reason: string | undefined, svc: string): string {
  const [ns, name] = svc.split("/");
  switch (reason) {
    case "NoMatchingPool":
      return "create a pool the Service may use, or let it use one (the pool's serviceAllocation, autoAssign: false pools need the ironlb.dev/address-pool annotation)";
    case "PoolExhausted":
      return "add addresses to a pool the Service may use, or free some";
    case "PoolNotFound":
      return `create the pool, or fix the Service's ironlb.dev/address-pool annotation (kubectl -n ${ns} edit service ${name})`;
    case "IPInUse":
    case "SharingRefused":
      return "ask for another IP, or give both Services the same ironlb.dev/allow-shared-ip key on different ports";
    case "InvalidConfiguration":
    case "InvalidRequest":
      return `fix the annotations or spec.loadBalancerIP the message names (kubectl -n ${ns} edit service ${name})`;
    default:
      return `kubectl -n ${ns} describe service ${name}`;
  }
}
