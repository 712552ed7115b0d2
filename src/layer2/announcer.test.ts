// Unit tests of the announcer's decisions with an in-memory socket. The real-kernel proof
// is test/e2e/arp-socket.test.ts.
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Announcer } from "./announcer.ts";
import { type BpfInstruction, runFilter } from "./bpf-filter.ts";
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

  it("holds replies for a while after a stall, but not gratuitous bursts", () => {
    announcer.announce("198.51.100.10", "eth0");
    const s0 = sock("eth0");
    s0.take();
    announcer.holdReplies(50);
    s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
    expect(s0.take()).toEqual([]);
    announcer.reannounce("198.51.100.10", "eth0");
    vi.advanceTimersByTime(0);
    expect(s0.take()).toHaveLength(2);
    vi.advanceTimersByTime(60);
    s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
    expect(s0.take().map((f) => decodeArpFrame(f)?.arp.op)).toEqual([ARP_REPLY]);
  });

  // A stall (which sets the hold) is often followed by an NTP step of the wall clock: the
  // hold and the defence interval measure elapsed time, so only the monotonic clock counts.
  it.each([
    { what: "ARP", kind: "arp" as const, ip: "198.51.100.10" },
    { what: "NDP", kind: "ndp" as const, ip: "2001:db8::10" },
  ])("a backward wall-clock step does not extend a reply hold ($what)", ({ kind, ip }) => {
    let mono = 1_000;
    const a = new Announcer({
      now: () => mono,
      openSocket: (ifname, k) => {
        const s = new FakeSocket(ifname, MACS.eth0!, k);
        sockets.push(s);
        return s;
      },
    });
    a.announce(ip, "eth0");
    const s = sockets.at(-1)!;
    const ask = () =>
      kind === "arp"
        ? s.deliver(arpRequest(CLIENT, "192.0.2.1", ip))
        : s.deliver(neighborSolicitation({ srcMac: CLIENT, srcIp: "2001:db8::99", target: ip }));
    vi.advanceTimersByTime(3000);
    s.take();
    a.holdReplies(30);
    ask();
    expect(s.take()).toEqual([]);
    // The wall clock steps back an hour; 31 ms pass on the monotonic clock.
    vi.setSystemTime(Date.now() - 3_600_000);
    mono += 31;
    ask();
    expect(s.take()).toHaveLength(1);
    a.close();
  });

  it("a backward wall-clock step does not extend the defence interval", () => {
    let mono = 1_000;
    const a = new Announcer({
      now: () => mono,
      defend: true,
      defendIntervalMs: 10_000,
      openSocket: (ifname, k) => {
        const s = new FakeSocket(ifname, MACS.eth0!, k);
        sockets.push(s);
        return s;
      },
    });
    a.announce("198.51.100.10", "eth0");
    vi.advanceTimersByTime(3000);
    const s = sockets.at(-1)!;
    s.take();
    s.deliver(gratuitousArpRequest(OTHER, "198.51.100.10"));
    expect(s.take()).toHaveLength(2);
    vi.setSystemTime(Date.now() - 3_600_000);
    mono += 10_001;
    s.deliver(gratuitousArpRequest(OTHER, "198.51.100.10"));
    expect(s.take()).toHaveLength(2);
    a.close();
  });

  it("lets its owner notice a stall before a frame queued during it is handled", () => {
    // The speaker's hook: the first frame after a stall finds the stall clock overdue and
    // holds replies (what Membership.noticeStall's rejoin does); later frames find it not.
    let overdue = true;
    const seen: string[] = [];
    const a = new Announcer({
      openSocket: (ifname, kind) => {
        const s = new FakeSocket(ifname, MACS[ifname] ?? "02:00:00:00:01:ff", kind);
        sockets.push(s);
        return s;
      },
      beforeFrame: () => {
        seen.push("before");
        if (overdue) a.holdReplies(30);
        overdue = false;
      },
    });
    try {
      a.announce("198.51.100.10", "eth0");
      const s0 = sock("eth0");
      s0.take();
      // Queued while stopped: the first one is handled after the hook has held replies.
      s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
      s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
      expect(seen).toEqual(["before", "before"]);
      expect(s0.take()).toEqual([]);
      vi.advanceTimersByTime(40);
      s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
      expect(s0.take().map((f) => decodeArpFrame(f)?.arp.op)).toEqual([ARP_REPLY]);
    } finally {
      a.close();
    }
  });

  it("cancels pending burst frames on request, and keeps answering", () => {
    announcer.announce("198.51.100.10", "eth0");
    const s0 = sock("eth0");
    expect(s0.take()).toHaveLength(2); // the burst's first round, at once
    announcer.cancelBursts();
    vi.advanceTimersByTime(5000);
    expect(s0.take()).toEqual([]);
    s0.deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
    expect(s0.take().map((f) => decodeArpFrame(f)?.arp.op)).toEqual([ARP_REPLY]);
    // A later reannounce schedules a whole burst again.
    announcer.reannounce("198.51.100.10", "eth0");
    vi.advanceTimersByTime(5000);
    expect(s0.take()).toHaveLength(8);
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
    vi.advanceTimersByTime(250); // the burst's second round: request and reply form
    sock("eth0").deliver(arpRequest(CLIENT, "192.0.2.1", "198.51.100.10"));
    expect(announcer.counters.sendErrors).toBe(3);
    expect(errors).toHaveLength(3);
  });

  it("sends the first gratuitous frames within announce(), before any timer runs", () => {
    announcer.announce("198.51.100.10", "eth0");
    // No timer has run: the frames are already out, so no answer can precede them.
    const frames = sock("eth0").take();
    expect(frames.map((f) => decodeArpFrame(f)?.arp.senderIp)).toEqual([
      "198.51.100.10",
      "198.51.100.10",
    ]);
    announcer.reannounce("198.51.100.10", "eth0");
    expect(sock("eth0").take()).toHaveLength(2);
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

describe("kernel filter", () => {
  /** Applies the installed program to delivered frames, as the kernel does. */
  class FilteringSocket extends FakeSocket {
    program: BpfInstruction[] | null = null;
    installs = 0;
    setFilter(p: readonly BpfInstruction[] | null): void {
      this.installs++;
      this.program = p === null ? null : [...p];
    }
    override deliver(frame: Buffer, pktType = PACKET_BROADCAST): void {
      if (this.program !== null && runFilter(this.program, frame) === 0) return;
      super.deliver(frame, pktType);
    }
  }
  let fs: FilteringSocket[];
  let a: Announcer;
  beforeEach(() => {
    fs = [];
    a = new Announcer({
      openSocket: (ifname, kind) => {
        const s = new FilteringSocket(ifname, MACS[ifname] ?? "02:00:00:00:01:ff", kind);
        fs.push(s);
        return s;
      },
    });
  });
  afterEach(() => a.close());
  const req = (target: string) => arpRequest(CLIENT, "203.0.113.1", target);

  it("passes only requests for owned IPs and follows announce and withdraw", () => {
    a.announce("198.51.100.1", "eth0");
    const s = fs[0]!;
    s.take();
    s.deliver(req("198.51.100.2"));
    expect(a.counters.requestsReceived).toBe(0); // dropped before it reached us
    s.deliver(req("198.51.100.1"));
    expect(s.take().map((f) => decodeArpFrame(f)?.arp.senderIp)).toEqual(["198.51.100.1"]);
    a.announce("198.51.100.2", "eth0");
    s.take();
    s.deliver(req("198.51.100.2"));
    expect(s.take()).toHaveLength(1);
    a.withdraw("198.51.100.1");
    s.deliver(req("198.51.100.1"));
    expect(s.take()).toHaveLength(0);
    expect(a.counters.requestsReceived).toBe(2);
  });

  it("rebuilds only when the watched set changes", () => {
    a.announce("198.51.100.1", "eth0");
    const s = fs[0]!;
    const n = s.installs;
    a.announce("198.51.100.1", "eth0"); // already there
    a.withdraw("198.51.100.9"); // never there
    expect(s.installs).toBe(n);
  });

  it("lets a probe's answers through while the probe runs, and not after", async () => {
    a.announce("198.51.100.1", "eth0"); // keeps the socket open after the probe
    const s = fs[0]!;
    const p = a.probe("198.51.100.50", "eth0", 300);
    s.deliver(arpReply(OTHER, "198.51.100.50", MACS.eth0!, "0.0.0.0"));
    await expect(p).resolves.toBe(OTHER);
    expect(runFilter(s.program!, req("198.51.100.50"))).toBe(0);
  });

  it("keeps per-interface sets apart, and IPv6 on the NDP socket", () => {
    a.announce("198.51.100.1", "eth0");
    a.announce("198.51.100.2", "eth1");
    a.announce("2001:db8::1", "eth0");
    const arp0 = fs.find((x) => x.ifname === "eth0" && x.kind === "arp")!;
    const ndp0 = fs.find((x) => x.ifname === "eth0" && x.kind === "ndp")!;
    expect(runFilter(arp0.program!, req("198.51.100.2"))).toBe(0);
    expect(runFilter(arp0.program!, req("198.51.100.1"))).toBeGreaterThan(0);
    const ns = neighborSolicitation({
      srcMac: CLIENT,
      srcIp: "2001:db8::9",
      target: "2001:db8::1",
    });
    expect(runFilter(ndp0.program!, ns)).toBeGreaterThan(0);
  });

  it("returns an attached socket unfiltered", () => {
    const mine = new FilteringSocket("eth0", MACS.eth0!, "arp");
    const b = new Announcer();
    b.attach("eth0", { arp: mine });
    b.announce("198.51.100.1", "eth0");
    expect(mine.program).not.toBeNull();
    b.close();
    expect(mine.program).toBeNull();
    expect(mine.closed).toBe(false);
  });

  it("falls back to the default filter, and says so, when the kernel refuses the program", () => {
    const errors: string[] = [];
    const b = new Announcer({
      openSocket: (ifname, kind) => {
        const s = new FilteringSocket(ifname, MACS[ifname]!, kind);
        s.setFilter = (p) => {
          if (p !== null) throw new Error("EINVAL");
          s.program = null;
        };
        fs.push(s);
        return s;
      },
    });
    b.on("error", (e: Error) => errors.push(e.message));
    b.announce("198.51.100.1", "eth0");
    expect(errors.at(-1)).toMatch(/kernel filter for 1 IPs on eth0 refused, receiving all ARP/);
    expect(fs.at(-1)!.program).toBeNull();
    b.close();
  });
});

describe("reply rate limit", () => {
  let now = 0;
  let a: Announcer;
  const opened = new Map<PacketSocketKind, FakeSocket>();
  beforeEach(() => {
    now = 0;
    a = new Announcer({
      now: () => now,
      replyLimits: { ratePerSec: 10, burst: 5, maxTracked: 100 },
      openSocket: (ifname, kind) => {
        const s = new FakeSocket(ifname, MACS[ifname]!, kind);
        opened.set(kind, s);
        return s;
      },
    });
    a.announce("198.51.100.1", "eth0");
    a.announce("2001:db8::1", "eth0");
  });
  afterEach(() => a.close());

  it("a flooding requester gets its burst, then the rate; another requester is answered", () => {
    const sockArp = opened.get("arp")!;
    sockArp.take();
    for (let i = 0; i < 1000; i++) {
      now = i; // 1,000 requests in one second
      sockArp.deliver(arpRequest(CLIENT, "203.0.113.1", "198.51.100.1"));
    }
    const replies = sockArp.take().filter((f) => decodeArpFrame(f)?.arp.op === ARP_REPLY);
    expect(replies).toHaveLength(5 + 9); // burst, then 10/s (a token every 100 ms)
    expect(a.counters.repliesRateLimited).toBe(1000 - 14);
    sockArp.deliver(arpRequest(OTHER, "203.0.113.2", "198.51.100.1"));
    expect(sockArp.take()).toHaveLength(1);
  });

  it("limits neighbour solicitations the same way", () => {
    const ndp = opened.get("ndp")!;
    ndp.take();
    for (let i = 0; i < 100; i++) {
      ndp.deliver(
        neighborSolicitation({ srcMac: CLIENT, srcIp: "2001:db8::9", target: "2001:db8::1" }),
      );
    }
    expect(
      ndp.take().filter((f) => decodeNdpFrame(f)?.message.type === "advertisement"),
    ).toHaveLength(5);
  });
});

describe("periodic gratuitous rounds (refreshEvery)", () => {
  it("sends one round per interval after the takeover burst, and stops on withdraw", () => {
    announcer.announce("198.51.100.20", "eth0");
    announcer.announce("2001:db8::20", "eth0");
    vi.advanceTimersByTime(5_000); // the takeover bursts are over
    const arp = sock("eth0", "arp");
    const ndp = sock("eth0", "ndp");
    arp.take();
    ndp.take();
    // Without an interval nothing more goes out, however long the IP stays quiet.
    vi.advanceTimersByTime(120_000);
    expect(arp.take()).toEqual([]);
    announcer.refreshEvery("198.51.100.20", "eth0", 30_000);
    announcer.refreshEvery("2001:db8::20", "eth0", 30_000);
    vi.advanceTimersByTime(30_000);
    const round = arp.take().map((f) => decodeArpFrame(f)?.arp);
    // The same two frames as a burst step: a gratuitous request and reply for the IP.
    expect(round).toHaveLength(2);
    for (const a of round)
      expect(a).toMatchObject({ senderIp: "198.51.100.20", targetIp: "198.51.100.20" });
    const na = ndp.take().map((f) => decodeNdpFrame(f)?.message);
    expect(na).toMatchObject([{ type: "advertisement", target: "2001:db8::20" }]);
    vi.advanceTimersByTime(90_000);
    expect(arp.take()).toHaveLength(6);
    // Setting the same interval on every evaluation keeps the pace (no extra round).
    for (let i = 0; i < 5; i++) announcer.refreshEvery("198.51.100.20", "eth0", 30_000);
    vi.advanceTimersByTime(29_000);
    expect(arp.take().length).toBeLessThanOrEqual(2);
    ndp.take();
    announcer.withdraw("198.51.100.20", "eth0");
    vi.advanceTimersByTime(300_000);
    expect(arp.take()).toEqual([]);
    expect(ndp.take()).toHaveLength(10); // the IPv6 one goes on
    announcer.refreshEvery("2001:db8::20", "eth0", undefined);
    vi.advanceTimersByTime(300_000);
    expect(ndp.take()).toEqual([]);
  });

  it("refuses an IP that is not announced on the interface", () => {
    expect(() => announcer.refreshEvery("198.51.100.21", "eth0", 30_000)).toThrow(
      /not announced on eth0/,
    );
  });

  it("drops the pending rounds after a stall (cancelBursts) until they are set again", () => {
    announcer.announce("198.51.100.22", "eth0");
    announcer.refreshEvery("198.51.100.22", "eth0", 10_000);
    vi.advanceTimersByTime(5_000);
    sock("eth0").take();
    announcer.cancelBursts();
    vi.advanceTimersByTime(60_000);
    expect(sock("eth0").take()).toEqual([]);
  });

  it("holds thousands of IPs to the refresh budget", () => {
    const a = new Announcer({
      openSocket: (ifname, kind) => {
        const s = new FakeSocket(ifname, MACS[ifname] ?? "02:00:00:00:01:ff", kind);
        sockets.push(s);
        return s;
      },
      burstScheduleMs: [0],
      kernelFilter: false,
      refreshLimits: { ratePerSec: 100, burst: 10 },
    });
    try {
      const ips = Array.from({ length: 1000 }, (_, i) => `10.2.${i >> 8}.${i & 255}`);
      for (const ip of ips) a.announce(ip, "eth1");
      const s = sockets.find((x) => x.ifname === "eth1" && !x.closed)!;
      s.take();
      for (const ip of ips) a.refreshEvery(ip, "eth1", 5_000);
      // Asked for 200 rounds a second, allowed 100 (two frames each).
      vi.advanceTimersByTime(5_000);
      expect(s.take().length).toBeLessThanOrEqual(2 * (10 + 100 * 5));
      vi.advanceTimersByTime(5_000);
      expect(s.take().length).toBeGreaterThan(2 * 400);
    } finally {
      a.close();
    }
  });
});
