import { describe, expect, it } from "vitest";
import { nameservers, tcpPeers, urlHosts } from "../lab/host-deps.ts";

describe("what a lab must not shadow", () => {
  it("reads nameservers, ignoring comments and IPv6 ones", () => {
    expect(
      nameservers("# generated\nnameserver 203.0.113.53\nnameserver 2001:db8::53\nsearch lan\n"),
    ).toEqual(["203.0.113.53"]);
  });

  it("reads IPv4 peers of established connections, mapped ones too, never loopback", () => {
    const ss = [
      "0      0      192.0.2.2:41234      203.0.113.80:443",
      "0      0      [::ffff:192.0.2.2]:5000 [::ffff:198.51.100.9]:80",
      "0      0      127.0.0.1:6443       127.0.0.1:50000",
      "0      0      [2001:db8::2]:22     [2001:db8::9]:51000",
    ].join("\n");
    expect(tcpPeers(ss).sort()).toEqual(["198.51.100.9", "203.0.113.80"]);
  });

  it("takes host names out of apt sources, GOPROXY lists and registry URLs", () => {
    const text = [
      "deb http://mirror.example/debian bookworm main",
      "URIs: https://security.example/debian-security",
      "https://proxy.example,direct",
      "https://registry.example:8443/",
    ].join("\n");
    expect(urlHosts(text).sort()).toEqual([
      "mirror.example",
      "proxy.example",
      "registry.example",
      "security.example",
    ]);
  });
});
