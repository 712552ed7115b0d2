import { describe, expect, it } from "vitest";
import { initialState, step } from "./fsm.ts";
import {
  connectTimeoutReason,
  holdExpiredReason,
  peerConfigProblems,
  redactPeerConfig,
} from "./peer-config.ts";
import type { BgpPeerConfig } from "./types.ts";

const ok: BgpPeerConfig = {
  name: "r1",
  myASN: 4200000001,
  peerASN: 64500,
  peerAddress: "192.0.2.1",
  peerPort: 179,
  holdTime: 90,
  keepaliveTime: 30,
  connectTime: 10,
  routerID: "192.0.2.11",
};

describe("peerConfigProblems", () => {
  it("accepts a usable config, hold time 0 and a dynamic ASN", () => {
    expect(peerConfigProblems(ok)).toEqual([]);
    expect(peerConfigProblems({ ...ok, holdTime: 0 })).toEqual([]);
    expect(peerConfigProblems({ ...ok, gracefulRestartTime: 4095 })).toEqual([]);
    expect(peerConfigProblems({ ...ok, ttlSecurityHops: 1 })).toEqual([]);
    expect(peerConfigProblems({ ...ok, ttlSecurityHops: 254 })).toEqual([]);
    expect(peerConfigProblems({ ...ok, peerASN: 0, dynamicASN: "external" })).toEqual([]);
    expect(
      peerConfigProblems({ ...ok, peerAddress: "2001:db8::1", sourceAddress: "2001:db8::2" }),
    ).toEqual([]);
  });

  it.each([
    [{ myASN: 0 }, "myASN 0 is not in 1..4294967295"],
    [{ myASN: 4294967296 }, "myASN 4294967296 is not in 1..4294967295"],
    [{ peerASN: 0 }, "peerASN 0 is not in 1..4294967295"],
    [{ dynamicASN: "internal" as const }, "peerASN must be 0 when dynamicASN is set"],
    [{ peerAddress: "r1.example" }, 'peerAddress "r1.example" is not an IP address'],
    [{ sourceAddress: "2001:db8::2" }, "sourceAddress and peerAddress are of different families"],
    [{ peerPort: 0 }, "peerPort 0 is not in 1..65535"],
    [{ holdTime: 2 }, "holdTime 2 is neither 0 nor in 3..65535 seconds"],
    [{ keepaliveTime: -1 }, "keepaliveTime -1 is not in 0..65535 seconds"],
    [{ connectTime: 0 }, "connectTime 0 is not in 1..65535 seconds"],
    [{ routerID: "0.0.0.0" }, 'routerID "0.0.0.0" is not a non-zero dotted IPv4 address'],
    [{ routerID: "2001:db8::1" }, 'routerID "2001:db8::1" is not a non-zero dotted IPv4 address'],
    [{ gracefulRestartTime: 0 }, "gracefulRestartTime 0 is not in 1..4095 seconds"],
    [{ gracefulRestartTime: 4096 }, "gracefulRestartTime 4096 is not in 1..4095 seconds"],
    [{ ttlSecurityHops: 0 }, "ttlSecurityHops 0 is not in 1..254"],
    [{ ttlSecurityHops: 255 }, "ttlSecurityHops 255 is not in 1..254"],
    [{ ttlSecurityHops: 1.5 }, "ttlSecurityHops 1.5 is not in 1..254"],
  ])("refuses %o", (change, problem) => {
    expect(peerConfigProblems({ ...ok, ...change })).toEqual([problem]);
  });
});

describe("TCP-MD5 password", () => {
  it("accepts 1 to 80 bytes of UTF-8, counting bytes, not characters", () => {
    expect(peerConfigProblems({ ...ok, password: "s" })).toEqual([]);
    expect(peerConfigProblems({ ...ok, password: "x".repeat(80) })).toEqual([]);
    // 40 two-byte characters are 80 bytes; 41 are 82.
    expect(peerConfigProblems({ ...ok, password: "é".repeat(40) })).toEqual([]);
    expect(peerConfigProblems({ ...ok, password: "é".repeat(41) })).toEqual([
      "the TCP-MD5 password has 82 bytes; it must have 1 to 80",
    ]);
    expect(peerConfigProblems({ ...ok, password: "x".repeat(81) })).toEqual([
      "the TCP-MD5 password has 81 bytes; it must have 1 to 80",
    ]);
    expect(peerConfigProblems({ ...ok, password: "" })).toEqual([
      "the TCP-MD5 password has 0 bytes; it must have 1 to 80",
    ]);
  });

  it("refuses a config whose password could not be read, with the reason as given", () => {
    const why = "passwordSecret lb/bgp: no such Secret";
    expect(peerConfigProblems({ ...ok, passwordError: why })).toEqual([why]);
  });

  it("says a connect timeout may be a password mismatch when a password is set", () => {
    expect(connectTimeoutReason({ ...ok, password: "s3cret" })).toMatch(
      /^no TCP connection within 10 s: .*may be a TCP-MD5 password mismatch/,
    );
    const none = connectTimeoutReason(ok);
    expect(none).toMatch(/^no TCP connection within 10 s: /);
    expect(none).toContain("expects a TCP-MD5 password and this BGPPeer sets none");
    // The FSM reports it when the connect timer fires.
    const connecting = step(ok, initialState, { type: "start" }, 0);
    const r = step(
      { ...ok, password: "s3cret" },
      connecting.state,
      { type: "timer", timer: "connect" },
      0,
    );
    expect(r.actions).toContainEqual({
      type: "error",
      text: connectTimeoutReason({ ...ok, password: "s3cret" }),
    });
  });

  it("names a GTSM mismatch as a possible cause of a connect timeout or a silent peer", () => {
    expect(holdExpiredReason(ok)).toBe("hold timer expired: nothing received from the peer");
    expect(holdExpiredReason({ ...ok, ttlSecurityHops: 1 })).toMatch(
      /^hold timer expired: nothing received from the peer; with ttlSecurityHops 1 .*ttl-security hops 1/,
    );
    expect(connectTimeoutReason(ok)).not.toContain("ttlSecurityHops");
    const gtsm = connectTimeoutReason({ ...ok, ttlSecurityHops: 1 });
    expect(gtsm).toMatch(/^no TCP connection within 10 s: /);
    expect(gtsm).toContain("unless they arrive with TTL 255 or more");
    expect(gtsm).toContain("ttl-security hops 1");
    expect(connectTimeoutReason({ ...ok, ttlSecurityHops: 2 })).toContain("with TTL 254 or more");
  });

  it("keeps the password out of what is logged", () => {
    expect(redactPeerConfig({ ...ok, password: "s3cret" })).toEqual({ ...ok, password: "(set)" });
    expect(JSON.stringify(redactPeerConfig({ ...ok, password: "s3cret" }))).not.toContain("s3cret");
    expect(redactPeerConfig(ok)).toEqual(ok);
  });
});
