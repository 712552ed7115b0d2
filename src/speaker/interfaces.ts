// Which of a node's interfaces announce an IP when the L2Advertisement leaves it open
// ("auto"), and resolution of explicit interface lists. Pure: the caller reads the host's
// interfaces (os.networkInterfaces() plus up/virtual flags from /sys/class/net) and passes
// them in.

import type { NetworkInterfaceInfo } from "node:os";
import { type IP as Addr, bitsOf, parseIP } from "../net/address.ts";
import type { InterfaceChoice } from "./eligibility.ts";

/** One address on an interface, shaped like an entry of `os.networkInterfaces()`. */
export type InterfaceAddress = Pick<NetworkInterfaceInfo, "address" | "family" | "internal"> & {
  /** "192.0.2.5/24"; null when Node could not compute it (invalid netmask). */
  cidr: string | null;
};

/** One host interface. */
export interface HostInterface {
  name: string;
  /** Administratively and operationally up (IFF_UP and IFF_RUNNING / operstate "up"). */
  up: boolean;
  /**
   * Whether the interface is virtual plumbing that must not answer ARP for LAN clients.
   * When absent, decided by name (`VIRTUAL_INTERFACE_PREFIXES`).
   */
  virtual?: boolean;
  /** "aa:bb:cc:dd:ee:ff". */
  mac: string;
  addresses: readonly InterfaceAddress[];
}

/**
 * Name prefixes of interfaces that are never chosen automatically: loopback, container
 * and CNI plumbing, overlay tunnels, and kube-proxy's IPVS dummy (which holds every
 * LoadBalancer IP as a /32 and would otherwise look like "the subnet of the IP").
 * An operator who really wants one of these names it in the L2Advertisement.
 */
export const VIRTUAL_INTERFACE_PREFIXES: readonly string[] = [
  "lo", // loopback
  "docker", // docker0 bridge
  "br-", // docker user-defined bridges (br-<network id>)
  "veth", // container veth ends
  "cni", // cni0 bridge (bridge plugin, flannel)
  "flannel", // flannel.1 VXLAN, flannel-wg
  "cali", // Calico workload interfaces
  "vxlan", // vxlan.calico and other VXLAN devices
  "tunl", // IPIP tunnels (tunl0)
  "kube-ipvs", // kube-proxy IPVS dummy
  "kube-bridge", // kube-router
  "kube-dummy-if", // kube-router
  "nodelocaldns", // NodeLocal DNSCache dummy
  "cilium", // cilium_host, cilium_net, cilium_vxlan
  "lxc", // Cilium endpoint veths
  "weave", // Weave Net bridge
  "vethwe", // Weave Net
  "genev_sys", // OVS Geneve (OVN-Kubernetes)
  "ovn-k8s", // OVN-Kubernetes management port
  "antrea", // Antrea gateway and tunnels
  "virbr", // libvirt NAT bridges
];

/** Whether an interface is virtual: its explicit flag, or else its name. */
export function isVirtualInterface(iface: Pick<HostInterface, "name" | "virtual">): boolean {
  if (iface.virtual !== undefined) return iface.virtual;
  return VIRTUAL_INTERFACE_PREFIXES.some((p) => iface.name.startsWith(p));
}

function isLoopback(iface: HostInterface): boolean {
  return iface.name === "lo" || iface.addresses.some((a) => a.internal);
}

/** Parses an address, ignoring an IPv6 zone ("fe80::1%eth0"). */
function parseHostIP(text: string): Addr | undefined {
  const zone = text.indexOf("%");
  return parseIP(zone >= 0 ? text.slice(0, zone) : text);
}

/**
 * Whether `cidr` ("192.0.2.5/24") is a subnet containing `ip`. Full-length prefixes (/32,
 * /128) describe a single address, not a LAN segment, and never match: they are how VIPs
 * get bound to dummy devices, and how point-to-point hosts are addressed.
 */
export function subnetContains(cidr: string, ip: string): boolean {
  const slash = cidr.indexOf("/");
  if (slash < 0) return false;
  const net = parseHostIP(cidr.slice(0, slash));
  const addr = parseHostIP(ip);
  const prefixText = cidr.slice(slash + 1);
  if (!net || !addr || net.family !== addr.family || !/^\d{1,3}$/.test(prefixText)) return false;
  const bits = BigInt(bitsOf(net.family));
  const prefix = BigInt(prefixText);
  if (prefix >= bits) return false;
  const shift = bits - prefix;
  return net.value >> shift === addr.value >> shift;
}

function byName(a: HostInterface, b: HostInterface): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The default ("auto") interfaces for announcing `ip`: the up, non-loopback, non-virtual
 * interfaces with an address whose subnet contains `ip`; if there are none, every up,
 * non-loopback, non-virtual interface. Sorted by name.
 */
export function chooseAutoInterfaces(
  interfaces: readonly HostInterface[],
  ip: string,
): HostInterface[] {
  const candidates = interfaces
    .filter((i) => i.up && !isLoopback(i) && !isVirtualInterface(i))
    .sort(byName);
  const onSubnet = candidates.filter((i) =>
    i.addresses.some((a) => a.cidr !== null && subnetContains(a.cidr, ip)),
  );
  return onSubnet.length > 0 ? onSubnet : candidates;
}

/** The result of resolving an interface choice against the host. */
export interface ResolvedInterfaces {
  /** Interfaces to announce on, sorted by name. */
  use: HostInterface[];
  /** Explicitly named interfaces that do not exist or are down (worth a warning). */
  unavailable: string[];
}

/**
 * Resolves an eligibility result's interface choice on this host: "auto" through
 * `chooseAutoInterfaces`; an explicit list to those of its interfaces that exist and are
 * up (explicit names are honoured even when they look virtual).
 */
export function resolveInterfaces(
  choice: InterfaceChoice,
  interfaces: readonly HostInterface[],
  ip: string,
): ResolvedInterfaces {
  if (choice === "auto") return { use: chooseAutoInterfaces(interfaces, ip), unavailable: [] };
  const byNameMap = new Map(interfaces.map((i) => [i.name, i]));
  const use: HostInterface[] = [];
  const unavailable: string[] = [];
  for (const name of [...new Set(choice)].sort()) {
    const iface = byNameMap.get(name);
    if (iface?.up) use.push(iface);
    else unavailable.push(name);
  }
  return { use, unavailable };
}

/**
 * Builds `HostInterface`s from `os.networkInterfaces()` output plus the names of the
 * interfaces that are up (os.networkInterfaces() lists only interfaces with addresses and
 * says nothing of link state) and, optionally, names known to be virtual or physical.
 */
export function fromOsNetworkInterfaces(
  os: Readonly<Record<string, readonly NetworkInterfaceInfo[] | undefined>>,
  upNames: ReadonlySet<string>,
  virtualByName?: ReadonlyMap<string, boolean>,
): HostInterface[] {
  const out: HostInterface[] = [];
  for (const [name, infos] of Object.entries(os)) {
    const list = infos ?? [];
    const virtual = virtualByName?.get(name);
    out.push({
      name,
      up: upNames.has(name),
      ...(virtual !== undefined ? { virtual } : {}),
      mac: list[0]?.mac ?? "00:00:00:00:00:00",
      addresses: list.map((a) => ({
        address: a.address,
        family: a.family,
        internal: a.internal,
        cidr: a.cidr,
      })),
    });
  }
  return out.sort(byName);
}
