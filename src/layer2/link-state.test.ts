import { describe, expect, it } from "vitest";
import {
  applyLinkChanges,
  decodeLinkMessages,
  decodeNeighbourMessages,
  IF_OPER_DOWN,
  IF_OPER_LOWERLAYERDOWN,
  IF_OPER_UNKNOWN,
  IF_OPER_UP,
  IFF_LOWER_UP,
  IFF_RUNNING,
  IFF_UP,
  linkUsable,
} from "./link-state.ts";

/**
 * One rtnetlink message in little-endian order, as the kernel of an x86 host sends: the
 * header, the fixed part (`fixed`), then the attributes, each padded to 4 bytes.
 */
function nlMsg(type: number, fixed: Buffer, attrs: Array<[number, Uint8Array]>): Buffer {
  const body = attrs.map(([t, d]) => {
    const len = 4 + d.byteLength;
    const b = Buffer.alloc((len + 3) & ~3);
    b.writeUInt16LE(len, 0);
    b.writeUInt16LE(t, 2);
    Buffer.from(d).copy(b, 4);
    return b;
  });
  const payload = Buffer.concat([fixed, ...body]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + payload.byteLength, 0);
  h.writeUInt16LE(type, 4);
  return Buffer.concat([h, payload]);
}

/** One RTM_NEWLINK / RTM_DELLINK message. */
function linkMsg(
  type: number,
  index: number,
  flags: number,
  attrs: Array<[number, Uint8Array]>,
): Buffer {
  const ifi = Buffer.alloc(16);
  ifi.writeInt32LE(index, 4);
  ifi.writeUInt32LE(flags, 8);
  return nlMsg(type, ifi, attrs);
}
const name = (s: string) => Buffer.from(`${s}\0`);
const oper = (n: number) => Uint8Array.of(n);
const NEW = 16;
const DEL = 17;
const DONE = Buffer.from([16, 0, 0, 0, 3, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

describe("decodeLinkMessages", () => {
  it("reads index, name, flags and operational state of every link in a datagram", () => {
    const d = Buffer.concat([
      linkMsg(NEW, 2, IFF_UP | IFF_RUNNING | IFF_LOWER_UP, [
        [3, name("eth0")],
        [16, oper(IF_OPER_UP)],
      ]),
      linkMsg(NEW, 3, IFF_UP, [
        [3, name("eth1")],
        [16, oper(IF_OPER_LOWERLAYERDOWN)],
      ]),
      DONE,
    ]);
    expect(decodeLinkMessages(d, true)).toEqual([
      {
        index: 2,
        name: "eth0",
        flags: IFF_UP | IFF_RUNNING | IFF_LOWER_UP,
        operstate: IF_OPER_UP,
        deleted: false,
      },
      { index: 3, name: "eth1", flags: IFF_UP, operstate: IF_OPER_LOWERLAYERDOWN, deleted: false },
    ]);
  });

  it("marks RTM_DELLINK as deleted", () => {
    const [l] = decodeLinkMessages(linkMsg(DEL, 7, 0, [[3, name("veth7")]]), true);
    expect(l).toMatchObject({ index: 7, name: "veth7", deleted: true });
  });

  it("stops at a truncated message or attribute, keeping what was whole", () => {
    const whole = linkMsg(NEW, 2, IFF_UP, [[3, name("eth0")]]);
    const cut = linkMsg(NEW, 3, IFF_UP, [[3, name("eth1")]]).subarray(0, 20);
    expect(decodeLinkMessages(Buffer.concat([whole, cut]), true).map((l) => l.name)).toEqual([
      "eth0",
    ]);
    // An attribute claiming more bytes than the message holds is ignored.
    const bad = linkMsg(NEW, 4, IFF_UP, [[3, name("eth2")]]);
    bad.writeUInt16LE(200, 32);
    expect(decodeLinkMessages(bad, true)).toEqual([
      { index: 4, flags: IFF_UP, operstate: IF_OPER_UNKNOWN, deleted: false },
    ]);
    expect(decodeLinkMessages(Buffer.alloc(3), true)).toEqual([]);
    expect(decodeLinkMessages(Buffer.alloc(64), true)).toEqual([]);
  });
});

describe("linkUsable", () => {
  it.each([
    ["up with carrier", IFF_UP | IFF_RUNNING | IFF_LOWER_UP, IF_OPER_UP, true],
    ["carrier lost", IFF_UP, IF_OPER_DOWN, false],
    ["peer of a veth down", IFF_UP, IF_OPER_LOWERLAYERDOWN, false],
    ["administratively down", 0, IF_OPER_DOWN, false],
    ["virtual link without state, running", IFF_UP | IFF_RUNNING, IF_OPER_UNKNOWN, true],
    ["virtual link without state, not running", IFF_UP, IF_OPER_UNKNOWN, false],
  ])("%s", (_, flags, operstate, usable) => {
    expect(linkUsable({ flags, operstate, deleted: false })).toBe(usable);
  });
});

describe("applyLinkChanges", () => {
  it("tracks links by index: renamed, changed, deleted", () => {
    let m = applyLinkChanges(new Map(), [
      {
        index: 2,
        name: "eth0",
        flags: IFF_UP | IFF_RUNNING,
        operstate: IF_OPER_UP,
        deleted: false,
      },
      { index: 3, name: "eth1", flags: IFF_UP, operstate: IF_OPER_DOWN, deleted: false },
    ]);
    expect([...m.values()]).toEqual([
      { name: "eth0", usable: true },
      { name: "eth1", usable: false },
    ]);
    // A change without a name keeps the known one; a deleted link goes.
    m = applyLinkChanges(m, [
      { index: 3, flags: IFF_UP | IFF_RUNNING, operstate: IF_OPER_UP, deleted: false },
      { index: 2, name: "eth0", flags: 0, operstate: IF_OPER_DOWN, deleted: true },
    ]);
    expect([...m.values()]).toEqual([{ name: "eth1", usable: true }]);
  });
});

/** One RTM_NEWNEIGH / RTM_DELNEIGH message. */
function neighMsg(
  type: number,
  family: number,
  ifindex: number,
  state: number,
  attrs: Array<[number, number[]]>,
): Buffer {
  const nd = Buffer.alloc(12);
  nd.writeUInt8(family, 0);
  nd.writeInt32LE(ifindex, 4);
  nd.writeUInt16LE(state, 8);
  return nlMsg(
    type,
    nd,
    attrs.map(([t, d]) => [t, Uint8Array.from(d)]),
  );
}

describe("decodeNeighbourMessages", () => {
  it("reads IPv4 entries: address, MAC (none while incomplete), state; deletions; skips IPv6", () => {
    const d = Buffer.concat([
      neighMsg(28, 2, 5, 0x04, [
        [1, [198, 51, 100, 100]],
        [2, [0x02, 0xaa, 0, 0, 0, 0x01]],
      ]),
      neighMsg(28, 2, 5, 0x01, [[1, [198, 51, 100, 101]]]),
      neighMsg(29, 2, 5, 0x04, [
        [1, [198, 51, 100, 102]],
        [2, [0x02, 0xaa, 0, 0, 0, 0x02]],
      ]),
      neighMsg(28, 10, 5, 0x02, [[1, [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]]]),
    ]);
    expect(decodeNeighbourMessages(d, true)).toEqual([
      { ifindex: 5, ip: "198.51.100.100", mac: "02:aa:00:00:00:01", state: 4, deleted: false },
      { ifindex: 5, ip: "198.51.100.101", mac: "", state: 1, deleted: false },
      { ifindex: 5, ip: "198.51.100.102", mac: "", state: 4, deleted: true },
    ]);
    expect(decodeNeighbourMessages(d.subarray(0, 30), true)).toEqual([]);
  });
});
