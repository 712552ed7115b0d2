import type { NetworkInterfaceInfo } from "node:os";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  chooseAutoInterfaces,
  fromOsNetworkInterfaces,
  type HostInterface,
  isVirtualInterface,
  resolveInterfaces,
  subnetContains,
  VIRTUAL_INTERFACE_PREFIXES,
} from "./interfaces.ts";

function iface(name: string, cidrs: string[], extra: Partial<HostInterface> = {}): HostInterface {
  return {
    name,
    up: true,
    mac: "02:00:00:00:00:01",
    addresses: cidrs.map((cidr) => ({
      address: cidr.split("/")[0]!,
      family: cidr.includes(":") ? "IPv6" : "IPv4",
      internal: false,
      cidr,
    })),
    ...extra,
  };
}

const names = (list: HostInterface[]) => list.map((i) => i.name);

describe("subnetContains", () => {
  it.each([
    ["192.0.2.5/24", "192.0.2.200", true],
    ["192.0.2.5/24", "192.0.3.1", false],
    ["192.0.2.5/25", "192.0.2.127", true],
    ["192.0.2.5/25", "192.0.2.128", false],
    ["10.0.0.1/8", "10.255.255.255", true],
    ["0.0.0.0/0", "203.0.113.1", true],
    ["192.0.2.5/32", "192.0.2.5", false], // a host address, not a subnet
    ["2001:db8::1/64", "2001:db8::abcd", true],
    ["2001:db8::1/64", "2001:db8:0:1::1", false],
    ["2001:db8::1/128", "2001:db8::1", false],
    ["fe80::1%eth0/64", "fe80::2", true],
    ["192.0.2.5/24", "::ffff:192.0.2.9", false], // families differ
    ["2001:db8::1/64", "192.0.2.1", false],
    ["192.0.2.5", "192.0.2.5", false],
    ["192.0.2.5/33", "192.0.2.5", false],
    ["192.0.2.5/x", "192.0.2.5", false],
    ["bogus/24", "192.0.2.5", false],
    ["192.0.2.5/24", "bogus", false],
  ])("%s contains %s: %s", (cidr, ip, expected) => {
    expect(subnetContains(cidr, ip)).toBe(expected);
  });

  it("agrees with prefix arithmetic for IPv4", () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 31 }), (a, b, prefix) => {
        const num = (s: string) => s.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
        const same =
          Math.floor(num(a) / 2 ** (32 - prefix)) === Math.floor(num(b) / 2 ** (32 - prefix));
        return subnetContains(`${a}/${prefix}`, b) === same;
      }),
    );
  });
});

describe("isVirtualInterface", () => {
  it.each([
    ["lo", true],
    ["docker0", true],
    ["veth1a2b3c", true],
    ["cni0", true],
    ["flannel.1", true],
    ["cali12345", true],
    ["kube-ipvs0", true],
    ["vxlan.calico", true],
    ["tunl0", true],
    ["cilium_host", true],
    ["lxc_health", true],
    ["br-0123456789ab", true],
    ["eth0", false],
    ["ens3", false],
    ["enp0s31f6", false],
    ["bond0", false],
    ["bond0.100", false],
    ["br0", false],
    ["wlan0", false],
  ])("%s: %s", (name, virtual) => {
    expect(isVirtualInterface({ name })).toBe(virtual);
  });

  it("honours an explicit flag either way", () => {
    expect(isVirtualInterface({ name: "eth0", virtual: true })).toBe(true);
    expect(isVirtualInterface({ name: "veth0", virtual: false })).toBe(false);
  });

  it("keeps the documented list", () => {
    for (const p of [
      "lo",
      "docker",
      "veth",
      "cni",
      "flannel",
      "cali",
      "kube-ipvs",
      "vxlan",
      "tunl",
      "cilium",
      "lxc",
    ]) {
      expect(VIRTUAL_INTERFACE_PREFIXES).toContain(p);
    }
  });
});

describe("chooseAutoInterfaces", () => {
  const host = [
    iface("lo", ["127.0.0.1/8", "::1/128"], {
      addresses: [{ address: "127.0.0.1", family: "IPv4", internal: true, cidr: "127.0.0.1/8" }],
    }),
    iface("eth1", ["198.51.100.10/24"]),
    iface("eth0", ["192.0.2.10/24", "2001:db8::10/64"]),
    iface("eth2", ["192.0.2.11/24"], { up: false }),
    iface("kube-ipvs0", ["203.0.113.7/32", "192.0.2.77/24"]),
    iface("docker0", ["172.17.0.1/16"]),
    iface("eth3", []),
  ];

  it("picks the up interfaces whose subnet holds the IP", () => {
    expect(names(chooseAutoInterfaces(host, "192.0.2.50"))).toEqual(["eth0"]);
    expect(names(chooseAutoInterfaces(host, "2001:db8::50"))).toEqual(["eth0"]);
    expect(names(chooseAutoInterfaces(host, "198.51.100.99"))).toEqual(["eth1"]);
  });

  it("returns several when several hold the subnet", () => {
    const two = [...host, iface("eth4", ["192.0.2.12/23"])];
    expect(names(chooseAutoInterfaces(two, "192.0.2.50"))).toEqual(["eth0", "eth4"]);
  });

  it("falls back to every up, physical, non-loopback interface", () => {
    expect(names(chooseAutoInterfaces(host, "203.0.113.7"))).toEqual(["eth0", "eth1", "eth3"]);
  });

  it("treats an interface with an internal address as loopback", () => {
    const odd = [
      iface("dummy-lo", ["10.0.0.1/8"], {
        addresses: [{ address: "10.0.0.1", family: "IPv4", internal: true, cidr: "10.0.0.1/8" }],
      }),
    ];
    expect(chooseAutoInterfaces(odd, "10.0.0.5")).toEqual([]);
  });

  it("returns nothing when there is nothing suitable", () => {
    expect(chooseAutoInterfaces([], "192.0.2.1")).toEqual([]);
  });
});

describe("resolveInterfaces", () => {
  const host = [
    iface("eth0", ["192.0.2.10/24"]),
    iface("eth1", [], { up: false }),
    iface("veth9", []),
  ];

  it("resolves auto", () => {
    expect(names(resolveInterfaces("auto", host, "192.0.2.3").use)).toEqual(["eth0"]);
  });

  it("keeps named interfaces that exist and are up, even virtual ones", () => {
    const r = resolveInterfaces(["veth9", "eth1", "eth7", "eth0", "eth0"], host, "192.0.2.3");
    expect(names(r.use)).toEqual(["eth0", "veth9"]);
    expect(r.unavailable).toEqual(["eth1", "eth7"]);
  });
});

describe("fromOsNetworkInterfaces", () => {
  it("converts os.networkInterfaces() output", () => {
    const info = (
      address: string,
      cidr: string,
      family: "IPv4" | "IPv6",
      internal = false,
    ): NetworkInterfaceInfo =>
      family === "IPv4"
        ? { address, cidr, family, internal, mac: "02:00:00:00:00:0a", netmask: "255.255.255.0" }
        : {
            address,
            cidr,
            family,
            internal,
            mac: "02:00:00:00:00:0a",
            netmask: "ffff:ffff:ffff:ffff::",
            scopeid: 0,
          };
    const out = fromOsNetworkInterfaces(
      {
        lo: [info("127.0.0.1", "127.0.0.1/8", "IPv4", true)],
        eth0: [
          info("192.0.2.10", "192.0.2.10/24", "IPv4"),
          info("2001:db8::10", "2001:db8::10/64", "IPv6"),
        ],
      },
      new Set(["eth0", "lo"]),
      new Map([["eth0", false]]),
    );
    expect(out.map((i) => [i.name, i.up, i.virtual, i.mac, i.addresses.length])).toEqual([
      ["eth0", true, false, "02:00:00:00:00:0a", 2],
      ["lo", true, undefined, "02:00:00:00:00:0a", 1],
    ]);
    expect(names(chooseAutoInterfaces(out, "192.0.2.99"))).toEqual(["eth0"]);
  });
});
