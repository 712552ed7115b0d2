// Unit tests of the announcer's decisions with an in-memory socket. The real-kernel proof
// is test/e2e/arp-socket.test.ts.
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Announcer } from "./announcer.ts";
import {
  ARP_REPLY,
  arpProbe,
  arpReply,
  arpRequest,
  decodeArpFrame,
  decodeNdpFrame,
  gratuitousArpRequest,
  neighborAdvertisement,
  neighborSolicitation,
} from "./codec.ts";
import type { FrameSocket, PacketSocketKind } from "./packet-socket.ts";
import { PACKET_BROADCAST, PACKET_HOST, PACKET_OTHERHOST } from "./packet-socket.ts";

class FakeSocket implements FrameSocket {
  readonly sent: Buffer[] = [];
  readonly listeners = new Set<(f: Buffer, t: number) => void>();
  closed = false;
  failSends = false;
  readonly ifname: string;
  readonly mac: string;
  readonly kind: PacketSocketKind;
  constructor(ifname: string, mac: string, kind: PacketSocketKind) {
    this.ifname = ifname;
    this.mac = mac;
    this.kind = kind;
  }
  send(frame: Buffer): void {
    if (this.failSends) throw Object.assign(new Error("network is down"), { code: "ENETDOWN" });
    this.sent.push(frame);
  }
  onFrame(l: (f: Buffer, t: number) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  close(): void {
    this.closed = true;
  }
  deliver(frame: Buffer, pktType = PACKET_BROADCAST): void {
    for (const l of this.listeners) l(frame, pktType);
  }
  take(): Buffer[] {
    return this.sent.splice(0);
  }
}

const MACS: Record<string, string> = { eth0: "02:00:00:00:01:00", eth1: "02:00:00:00:01:01" };
const CLIENT = "02:00:00:00:00:99";
const OTHER = "02:00:00:00:00:77";

let sockets: FakeSocket[];
let announcer: Announcer;
const sock = (ifname: string, kind: PacketSocketKind = "arp") => {
  const s = sockets.find((x) => x.ifname === ifname && x.kind === kind && !x.closed);
  if (s === undefined) throw new Error(`no open ${kind} socket on ${ifname}`);
  return s;
};

beforeEach(() => {
  vi.useFakeTimers();
  sockets = [];
  announcer = new Announcer({
    openSocket: (ifname, kind) => {
      const s = new FakeSocket(ifname, MACS[ifname] ?? "02:00:00:00:01:ff", kind);
      sockets.push(s);
      return s;
    },
  });
});
afterEach(() => {
  announcer.close();
  vi.useRealTimers();
});

describe("answering", () => {
  it("answers ARP requests for owned IPs only, on their interface only", () => {
    announcer.announce("198.51.100.10", "eth0");
    announcer.announce("198.51.100.11", "eth1");
    const s0 = sock("eth0");
    const s1 = sock("eth1");
    s0.take();
    s1.take();

    s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
    const [reply, ...rest] = s0.take();
    expect(rest).toEqual([]);
    expect(decodeArpFrame(reply!)).toEqual({
      eth: { dst: CLIENT, src: MACS.eth0, etherType: 0x0806 },
      arp: {
        op: ARP_REPLY,
        senderMac: MACS.eth0,
        senderIp: "198.51.100.10",
        targetMac: CLIENT,
        targetIp: "192.0.2.1",
      },
    });

    // Not owned at all; owned but on the other interface.
    s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.99"));
    s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.11"));
    s1.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
    expect(s0.take()).toEqual([]);
    expect(s1.take()).toEqual([]);
    expect(announcer.counters).toMatchObject({ requestsReceived: 4, repliesSent: 1 });
  });

  it("ignores unicast requests addressed to another host (promiscuous mode)", () => {
    announcer.announce("198.51.100.10", "eth0");
    const s0 = sock("eth0");
    s0.take();
    s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"), PACKET_OTHERHOST);
    expect(s0.take()).toEqual([]);
  });

  it("stops answering after withdraw", () => {
    announcer.announce("198.51.100.10", "eth0");
    const s0 = sock("eth0");
    announcer.withdraw("198.51.100.10");
    // The socket it opened itself is closed once nothing is left to answer for.
    expect(s0.closed).toBe(true);
    expect(s0.listeners.size).toBe(0);
    expect(announcer.isAnnounced("198.51.100.10")).toBe(false);
  });

  it("answers neighbour solicitations with a solicited override advertisement", () => {
    announcer.announce("2001:db8::10", "eth0");
    const s = sock("eth0", "ndp");
    s.take();
    s.deliver(
      neighborSolicitation({ srcMac: CLIENT, srcIp: "2001:db8::1", target: "2001:db8::10" }),
      2,
    );
    const [na] = s.take();
    expect(decodeNdpFrame(na!)).toMatchObject({
      eth: { dst: CLIENT, src: MACS.eth0 },
      ip: { src: "2001:db8::10", dst: "2001:db8::1" },
      message: { type: "advertisement", target: "2001:db8::10", solicited: true, override: true },
    });
    s.deliver(
      neighborSolicitation({ srcMac: CLIENT, srcIp: "2001:db8::1", target: "2001:db8::11" }),
      2,
    );
    expect(s.take()).toEqual([]);
  });

  it("normalizes IPv6 text so that any spelling matches", () => {
    announcer.announce("2001:DB8:0:0::10", "eth0");
    expect(announcer.isAnnounced("2001:db8::10", "eth0")).toBe(true);
  });
});

describe("gratuitous burst", () => {
  it("sends at 0, 0.25, 1 and 2 s, both request and reply forms", () => {
    announcer.announce("198.51.100.10", "eth0");
    const s0 = sock("eth0");
    const times: number[] = [];
    const start = Date.now();
    const step = (ms: number) => {
      vi.advanceTimersByTime(ms);
      for (const f of s0.take()) {
        const d = decodeArpFrame(f);
        expect(d?.arp.senderIp).toBe("198.51.100.10");
        expect(d?.arp.targetIp).toBe("198.51.100.10");
        expect(d?.eth.dst).toBe("ff:ff:ff:ff:ff:ff");
        times.push(Date.now() - start);
      }
    };
    step(0);
    step(250);
    step(750);
    step(1000);
    step(5000);
    expect(times).toEqual([0, 0, 250, 250, 1000, 1000, 2000, 2000]);
    expect(announcer.counters.gratuitousSent).toBe(8);
  });

  it("withdraw cancels the rest of the burst", () => {
    announcer.announce("198.51.100.10", "eth0");
    const s0 = sock("eth0");
    vi.advanceTimersByTime(300);
    expect(s0.take()).toHaveLength(4);
    announcer.withdraw("198.51.100.10", "eth0");
    vi.advanceTimersByTime(5000);
    expect(s0.take()).toEqual([]);
  });

  it("close cancels pending bursts and closes its sockets", () => {
    announcer.announce("198.51.100.10", "eth0");
    announcer.announce("2001:db8::10", "eth1");
    vi.advanceTimersByTime(0);
    const all = [...sockets];
    for (const s of all) s.take();
    announcer.close();
    vi.advanceTimersByTime(5000);
    for (const s of all) {
      expect(s.sent).toEqual([]);
      expect(s.closed).toBe(true);
    }
    expect(() => announcer.announce("198.51.100.10", "eth0")).toThrow(/closed/);
  });

  it("announce is idempotent; reannounce restarts the burst", () => {
    expect(announcer.announce("198.51.100.10", "eth0")).toBe(true);
    vi.advanceTimersByTime(3000);
    sock("eth0").take();
    expect(announcer.announce("198.51.100.10", "eth0")).toBe(false);
    vi.advanceTimersByTime(3000);
    expect(sock("eth0").take()).toEqual([]);
    announcer.reannounce("198.51.100.10", "eth0");
    vi.advanceTimersByTime(3000);
    expect(sock("eth0").take()).toHaveLength(8);
  });

  it("sends unsolicited override advertisements for IPv6", () => {
    announcer.announce("2001:db8::10", "eth0");
    vi.advanceTimersByTime(0);
    const [na] = sock("eth0", "ndp").take();
    expect(decodeNdpFrame(na!)).toMatchObject({
      ip: { dst: "ff02::1" },
      message: { target: "2001:db8::10", override: true, solicited: false },
    });
  });
});

describe("probe", () => {
  it("resolves null when nobody answers, after sending RFC 5227 probes", async () => {
    const p = announcer.probe("198.51.100.20", "eth0", 900);
    const s0 = sock("eth0");
    await vi.advanceTimersByTimeAsync(1000);
    await expect(p).resolves.toBeNull();
    const probes = s0.take().map((f) => decodeArpFrame(f)?.arp);
    expect(probes).toHaveLength(3);
    for (const a of probes)
      expect(a).toMatchObject({ senderIp: "0.0.0.0", targetIp: "198.51.100.20" });
    expect(s0.closed).toBe(true);
  });

  it.each([
    ["a reply from the owner", arpReply(OTHER, "198.51.100.20", MACS.eth0!, "0.0.0.0")],
    ["a gratuitous ARP", gratuitousArpRequest(OTHER, "198.51.100.20")],
    ["another host's probe", arpProbe(OTHER, "198.51.100.20")],
    ["a request sent from that IP", arpRequest(OTHER, "198.51.100.20", "192.0.2.1")],
  ])("detects %s", async (_name, frame) => {
    const p = announcer.probe("198.51.100.20", "eth0", 1000);
    sock("eth0").deliver(frame);
    await expect(p).resolves.toBe(OTHER);
    expect(announcer.counters.conflicts).toBe(1);
  });

  it("ignores traffic about other IPs and on other interfaces", async () => {
    announcer.announce("198.51.100.21", "eth1");
    const p = announcer.probe("198.51.100.20", "eth0", 500);
    sock("eth0").deliver(gratuitousArpRequest(OTHER, "198.51.100.22"));
    sock("eth1").deliver(gratuitousArpRequest(OTHER, "198.51.100.20"));
    await vi.advanceTimersByTimeAsync(600);
    await expect(p).resolves.toBeNull();
  });

  it("detects an IPv6 neighbour advertisement for the probed address", async () => {
    const p = announcer.probe("2001:db8::20", "eth0", 1000);
    const s = sock("eth0", "ndp");
    const [dad] = s.take();
    expect(decodeNdpFrame(dad!)).toMatchObject({
      ip: { src: "::" },
      message: { target: "2001:db8::20" },
    });
    s.deliver(
      neighborAdvertisement({
        srcMac: OTHER,
        srcIp: "2001:db8::20",
        target: "2001:db8::20",
        dstIp: "ff02::1",
        dstMac: "33:33:00:00:00:01",
        override: true,
      }),
      2,
    );
    await expect(p).resolves.toBe(OTHER);
  });

  it("is rejected when the announcer closes", async () => {
    const p = announcer.probe("198.51.100.20", "eth0", 1000);
    announcer.close();
    await expect(p).rejects.toThrow(/closed/);
  });
});

describe("conflicts and robustness", () => {
  it("reports another MAC claiming an owned IP, without defending by default", () => {
    const events: unknown[] = [];
    announcer.on("conflict", (e) => events.push(e));
    announcer.announce("198.51.100.10", "eth0");
    vi.advanceTimersByTime(3000);
    sock("eth0").take();
    sock("eth0").deliver(gratuitousArpRequest(OTHER, "198.51.100.10"));
    expect(events).toEqual([{ ip: "198.51.100.10", ifname: "eth0", mac: OTHER, during: "owned" }]);
    expect(sock("eth0").take()).toEqual([]);
  });

  it("defends at most once per interval when asked to", () => {
    const a = new Announcer({
      defend: true,
      openSocket: (ifname, kind) => {
        const s = new FakeSocket(ifname, MACS.eth0!, kind);
        sockets.push(s);
        return s;
      },
    });
    a.announce("198.51.100.10", "eth0");
    vi.advanceTimersByTime(3000);
    const s = sockets.at(-1)!;
    s.take();
    s.deliver(gratuitousArpRequest(OTHER, "198.51.100.10"));
    s.deliver(gratuitousArpRequest(OTHER, "198.51.100.10"));
    expect(s.take()).toHaveLength(2); // one round: request + reply form
    a.close();
  });

  it("ignores its own frames", () => {
    announcer.announce("198.51.100.10", "eth0");
    const s0 = sock("eth0");
    s0.take();
    s0.deliver(gratuitousArpRequest(MACS.eth0!, "198.51.100.10"));
    expect(announcer.counters.conflicts).toBe(0);
  });

  it("survives send failures and counts them", () => {
    const errors: unknown[] = [];
    announcer.on("error", (e) => errors.push(e));
    announcer.announce("198.51.100.10", "eth0");
    sock("eth0").failSends = true;
    vi.advanceTimersByTime(0);
    sock("eth0").deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
    expect(announcer.counters.sendErrors).toBe(3);
    expect(errors).toHaveLength(3);
  });

  it("attached sockets are used but never closed", () => {
    const s = new FakeSocket("eth9", "02:00:00:00:09:09", "arp");
    announcer.attach("eth9", { arp: s });
    announcer.announce("198.51.100.10", "eth9");
    announcer.withdraw("198.51.100.10");
    announcer.close();
    expect(s.closed).toBe(false);
    expect(s.listeners.size).toBe(0);
    expect(sockets).toHaveLength(0);
  });

  it("never throws on arbitrary or mutated frames", () => {
    announcer.announce("198.51.100.10", "eth0");
    announcer.announce("2001:db8::10", "eth0");
    const arp = sock("eth0");
    const ndp = sock("eth0", "ndp");
    const seeds = [
      arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"),
      neighborSolicitation({ srcMac: CLIENT, srcIp: "2001:db8::1", target: "2001:db8::10" }),
    ];
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 120 }).map((b) => Buffer.from(b)),
          fc
            .tuple(
              fc.constantFrom(...seeds),
              fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 6 }),
            )
            .map(([seed, edits]) => {
              const f = Buffer.from(seed);
              for (const [at, v] of edits) f[at % f.length] = v;
              return f;
            }),
        ),
        fc.constantFrom(PACKET_HOST, PACKET_BROADCAST, PACKET_OTHERHOST),
        (frame, t) => {
          arp.deliver(frame, t);
          ndp.deliver(frame, t);
        },
      ),
    );
    expect(announcer.counters.malformedFrames).toBeGreaterThan(0);
  });
});
