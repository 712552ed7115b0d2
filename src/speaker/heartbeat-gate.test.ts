import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { runFilter } from "../layer2/bpf-filter.ts";
import { HeartbeatGate, MUTE_MS } from "./heartbeat-gate.ts";

/** The installed program as the test's interpreter runs it: does a datagram pass? */
function installed() {
  const calls: Array<Buffer | null> = [];
  const setFilter = (_a: string, _p: number, program: Buffer | null) => void calls.push(program);
  const passes = (host: string, incarnation = 1) => {
    const program = calls.at(-1);
    if (!program) return true; // no filter: everything reaches the socket
    const ins = [];
    for (let o = 0; o < program.length; o += 8)
      ins.push({
        code: program.readUInt16LE(o),
        jt: program[o + 2]!,
        jf: program[o + 3]!,
        k: program.readUInt32LE(o + 4),
      });
    const udp = Buffer.alloc(80);
    udp.writeUInt16BE(7947, 0);
    udp.writeBigUInt64BE(BigInt(incarnation), 12);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.set(host.split(".").map(Number), 12);
    return runFilter(ins, udp, Buffer.concat([ip, udp])) > 0;
  };
  return { calls, setFilter, passes };
}

const peers = (...hosts: string[]) =>
  new Map(hosts.map((h, i) => [`node-${i}`, { host: h, port: 7947 }]));

describe("HeartbeatGate", () => {
  afterEach(() => vi.useRealTimers());
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l)) });

  it("installs the peers' sources, again only when they change", () => {
    const f = installed();
    const g = new HeartbeatGate({
      address: "198.51.100.1",
      port: 7947,
      log,
      setFilter: f.setFilter,
    });
    g.setPeers(peers("198.51.100.11"));
    expect(f.passes("198.51.100.11")).toBe(true);
    expect(f.passes("198.51.100.12")).toBe(false);
    g.setPeers(peers("198.51.100.11"));
    expect(f.calls).toHaveLength(1);
    // A new peer's Lease: its beats pass from now on.
    g.setPeers(peers("198.51.100.11", "198.51.100.12"));
    expect(f.calls).toHaveLength(2);
    expect(f.passes("198.51.100.12")).toBe(true);
  });

  it("a muted peer passes only its incarnation, until MUTE_MS have passed", () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const f = installed();
    const g = new HeartbeatGate({
      address: "198.51.100.1",
      port: 7947,
      log,
      setFilter: f.setFilter,
    });
    g.setPeers(peers("198.51.100.11", "198.51.100.12"));
    g.mute("node-0", 42);
    g.mute("node-0", 43); // already muted: unchanged
    expect(g.isMuted("node-0")).toBe(true);
    expect(f.passes("198.51.100.11", 42)).toBe(true);
    expect(f.passes("198.51.100.11", 43)).toBe(false);
    expect(f.passes("198.51.100.12", 43)).toBe(true);
    vi.advanceTimersByTime(MUTE_MS - 1);
    expect(g.isMuted("node-0")).toBe(true);
    vi.advanceTimersByTime(1);
    expect(g.isMuted("node-0")).toBe(false);
    expect(f.passes("198.51.100.11", 43)).toBe(true);
    // Never heard: nothing from it passes while muted.
    g.mute("node-1", undefined);
    expect(f.passes("198.51.100.12", 1)).toBe(false);
    // Not a peer (no Lease): nothing to mute.
    g.mute("node-9", 1);
    expect(g.isMuted("node-9")).toBe(false);
    g.close();
  });

  it("a program that cannot be installed leaves no stale one and is said once", () => {
    lines.length = 0;
    let fail = false;
    let effective: Buffer | null = null;
    const g = new HeartbeatGate({
      address: "198.51.100.1",
      port: 7947,
      log,
      setFilter: (_a, _p, program) => {
        if (fail && program !== null) throw new Error("ENOENT");
        effective = program;
      },
    });
    g.setPeers(peers("198.51.100.11"));
    expect(effective).not.toBeNull();
    fail = true;
    g.setPeers(peers("198.51.100.11", "198.51.100.12"));
    g.setPeers(peers("198.51.100.11", "198.51.100.13"));
    // The old program would drop the new peer: removed.
    expect(effective).toBeNull();
    expect(
      lines.filter((l) => String(l.msg).startsWith("cannot filter the heartbeat socket")),
    ).toHaveLength(1);
  });
});
