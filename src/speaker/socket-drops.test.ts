import { describe, expect, it } from "vitest";
import { procNetAddress, rcvbufErrors, socketDrops } from "./socket-drops.ts";

// Lines as the kernel prints them (udp4_format_sock, udp6_sock_seq_show).
const UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  176: 8180710C:1F0B 00000000:0000 07 00000000:00033600 00:00000000 00000000     0        0 90211 2 0000000000000000 482913
  201: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1234 2 0000000000000000 0
`;
const UDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  12: B80D0120000000000000000001000000:1F0B 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 555 2 0000000000000000 17
`;

describe("procNetAddress: addresses as /proc/net/udp{,6} print them", () => {
  it.each([
    ["12.113.128.129", true, "8180710C"],
    ["12.113.128.129", false, "0C718081"],
    ["127.0.0.1", true, "0100007F"],
    ["2001:db8::1", true, "B80D0120000000000000000001000000"],
    ["2001:db8::1", false, "20010DB8000000000000000000000001"],
    ["2001:0db8:0:0:0:0:0:1", true, "B80D0120000000000000000001000000"],
    ["::", true, "00000000000000000000000000000000"],
    ["not an address", true, undefined],
    ["300.1.1.1", true, undefined],
  ] as const)("%s (little-endian %s) → %s", (address, le, hex) => {
    expect(procNetAddress(address, le)).toBe(hex);
  });
});

describe("socketDrops: the drops column of the socket bound to an address and port", () => {
  it.each([
    [UDP, "12.113.128.129", 7947, 482913],
    [UDP, "127.0.0.1", 53, 0],
    [UDP, "127.0.0.1", 7947, undefined],
    [UDP, "12.113.128.130", 7947, undefined],
    [UDP6, "2001:db8::1", 7947, 17],
    [UDP6, "2001:db8::2", 7947, undefined],
    ["", "127.0.0.1", 53, undefined],
    ["  1: 0100007F:0035 00000000:0000 07 truncated", "127.0.0.1", 53, undefined],
  ] as const)("%#: %s port %i → %s", (text, address, port, drops) => {
    expect(socketDrops(text, address, port, true)).toBe(drops);
  });
});

describe("rcvbufErrors: the namespace's full-buffer drops, not its filtered ones", () => {
  // As a 6.x kernel prints them after 50 datagrams dropped by a socket filter (InErrors)
  // and 7 at a full buffer (RcvbufErrors and InErrors).
  const SNMP = `Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 150
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 100 0 57 150 7 0 0 0 0
UdpLite: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
UdpLite: 0 0 0 0 3 0 0 0 0
`;
  const SNMP6 = `Udp6InDatagrams                 \t100
Udp6InErrors                    \t57
Udp6RcvbufErrors                \t7
UdpLite6RcvbufErrors            \t3
`.replaceAll("\\t", "\t");

  it("reads UDP's column, not UDP-Lite's", () => {
    expect(rcvbufErrors(SNMP, 4)).toBe(7);
    expect(rcvbufErrors(SNMP6, 6)).toBe(7);
  });

  it("undefined when the counter is not there", () => {
    expect(rcvbufErrors("Ip: Forwarding\nIp: 1\n", 4)).toBeUndefined();
    expect(rcvbufErrors(SNMP, 6)).toBeUndefined();
  });
});
