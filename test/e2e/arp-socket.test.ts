// End-to-end proof of the ARP path against the real Linux kernel: two network namespaces
// joined by a veth pair; the announcer (real AF_PACKET socket, in a child process) runs in
// one, and the other namespace's own kernel resolves the announced IP.
//
// Addresses: links use 192.0.2.0/24, announced IPs 198.51.100.0/24, nothing else. IPv6 is
// disabled in both namespaces so that no other traffic appears on the link.
import { type ChildProcessWithoutNullStreams, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AnnouncerCounters } from "../../src/layer2/announcer.ts";
import { sleep, waitFor } from "../support/wait.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const NODE = `${ROOT}node_modules/.bin/node`;
const FIXTURE = `${ROOT}test/e2e/fixtures/arp-announcer.ts`;
const ADDON = `${ROOT}src/layer2/native/build/Release/ironlb_packet.node`;
const TOOLS_ADDON = `${ROOT}src/layer2/native/build/Release/ironlb_packet_tools.node`;

const suffix = randomBytes(3).toString("hex");
const NS_SRV = `ilbarp-s-${suffix}`;
const NS_CLI = `ilbarp-c-${suffix}`;
const IF_SRV = "ilbs0";
const IF_CLI = "ilbc0";
const FAKE_MAC = "02:00:00:00:00:99";

// This tier needs root (network namespaces, packet sockets): without it, it fails loudly.
if (process.platform !== "linux" || process.getuid?.() !== 0) {
  throw new Error("the e2e tier needs Linux and root (network namespaces): run it as root");
}

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}
const ipc = (...args: string[]) => sh("ip", ["-n", NS_CLI, ...args]);
const ips = (...args: string[]) => sh("ip", ["-n", NS_SRV, ...args]);
const inCli = (...args: string[]) => sh("ip", ["netns", "exec", NS_CLI, ...args]);

const SCRIPT_PRELUDE = `
  import { PacketSocket } from ${JSON.stringify(`${ROOT}src/layer2/packet-socket.ts`)};
  import { openToolSocket, sendBatch } from ${JSON.stringify(`${ROOT}test/support/packet-tools.ts`)};
  import { arpRequest, decodeNdpFrame, neighborSolicitation, unsolicitedNeighborAdvertisement }
    from ${JSON.stringify(`${ROOT}src/layer2/codec.ts`)};
`;

/** Runs a small ES module script with the packet socket and codec in scope, in `ns`. */
function runScript(ns: string, body: string): string {
  return sh("ip", ["netns", "exec", ns, NODE, "--input-type=module", "-e", SCRIPT_PRELUDE + body]);
}

function cleanupNamespaces(): void {
  for (const ns of [NS_SRV, NS_CLI]) {
    try {
      sh("ip", ["netns", "del", ns]);
    } catch {
      // already gone or never created
    }
  }
}

interface Neighbour {
  dst: string;
  lladdr?: string;
  state?: string[];
}

function neighbour(ip: string): Neighbour | undefined {
  const out = JSON.parse(ipc("-j", "neigh", "show", ip, "dev", IF_CLI) || "[]") as Neighbour[];
  return out[0];
}

/** Makes the client kernel resolve `ip`: a UDP datagram needs its MAC first. */
function triggerResolution(ip: string): void {
  // The send itself may fail once resolution fails; only the ARP it causes matters.
  try {
    inCli("bash", "-c", `echo x > /dev/udp/${ip}/9`);
  } catch {}
}

class Fixture {
  readonly child: ChildProcessWithoutNullStreams;
  readonly #pending = new Map<number, (msg: Record<string, unknown>) => void>();
  #nextId = 1;
  readonly ready: Promise<{ mac: string }>;
  stderr = "";

  constructor() {
    this.child = spawn("ip", ["netns", "exec", NS_SRV, NODE, FIXTURE, IF_SRV], { cwd: ROOT });
    // Writing to a fixture that died fails its call (below), not the test process.
    this.child.stdin.on("error", () => {});
    this.child.stderr.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    let onReady: (v: { mac: string }) => void = () => {};
    this.ready = new Promise((resolve, reject) => {
      onReady = resolve;
      this.child.on("exit", (code) => reject(new Error(`fixture exited ${code}: ${this.stderr}`)));
    });
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      const msg = JSON.parse(line) as Record<string, unknown>;
      if (msg.ready === true) onReady(msg as unknown as { mac: string });
      const cb = this.#pending.get(msg.id as number);
      if (cb !== undefined) {
        this.#pending.delete(msg.id as number);
        cb(msg);
      }
    });
  }

  async call(cmd: string, args: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    // A fixture that dies (a crash in the addon: ASan's report is on its stderr) fails the
    // call instead of leaving it waiting for a reply.
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        reject(new Error(`fixture gone before ${cmd}: ${this.stderr}`));
        return;
      }
      const gone = () => reject(new Error(`fixture exited during ${cmd}: ${this.stderr}`));
      this.child.once("exit", gone);
      this.#pending.set(id, (msg) => {
        this.child.off("exit", gone);
        resolve(msg);
      });
    });
    this.child.stdin.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
    const msg = await reply;
    if (typeof msg.error === "string") throw new Error(msg.error);
    return msg;
  }

  async counters(): Promise<AnnouncerCounters> {
    return (await this.call("counters")).counters as AnnouncerCounters;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  }
}

describe("ARP announcer on a real packet socket (network namespaces)", () => {
  let fixture: Fixture | undefined;
  let srvMac = "";
  let cliMac = "";

  beforeAll(async () => {
    if (!existsSync(ADDON)) throw new Error("packet socket addon not built: run `npm run build`");
    try {
      sh("ip", ["netns", "add", NS_SRV]);
      sh("ip", ["netns", "add", NS_CLI]);
      for (const ns of [NS_SRV, NS_CLI]) {
        // Before any interface exists, so that the veth ends never get IPv6 addresses.
        sh("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
        sh("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
      }
      ipc("link", "add", IF_CLI, "type", "veth", "peer", "name", IF_SRV, "netns", NS_SRV);
      ipc("addr", "add", "192.0.2.1/24", "dev", IF_CLI);
      ips("addr", "add", "192.0.2.2/24", "dev", IF_SRV);
      ipc("link", "set", IF_CLI, "up");
      ips("link", "set", IF_SRV, "up");
      // The announced range is on-link for the client, as a LAN's service range would be.
      ipc("route", "add", "198.51.100.0/24", "dev", IF_CLI);
      cliMac = (JSON.parse(ipc("-j", "link", "show", IF_CLI)) as { address: string }[])[0]!.address;

      fixture = new Fixture();
      srvMac = (await fixture.ready).mac;
    } catch (err) {
      await fixture?.stop();
      cleanupNamespaces();
      throw err;
    }
  });

  afterAll(async () => {
    try {
      await fixture?.stop();
    } finally {
      cleanupNamespaces();
    }
    expect(sh("ip", ["netns", "list"])).not.toContain(suffix);
  });

  it("reports the interface MAC the kernel has", () => {
    const kernelMac = (JSON.parse(ips("-j", "link", "show", IF_SRV)) as { address: string }[])[0]!
      .address;
    expect(srvMac).toBe(kernelMac);
  });

  it("the client kernel resolves an announced IP that no interface has to the announcer's MAC", async () => {
    // Not configured anywhere: only the announcer can answer for it.
    expect(ips("-j", "addr", "show")).not.toContain("198.51.100.10");
    await fixture!.call("announce", { ip: "198.51.100.10" });
    triggerResolution("198.51.100.10");
    const n = await waitFor(
      "neighbour entry for 198.51.100.10",
      () => {
        const e = neighbour("198.51.100.10");
        return e?.lladdr !== undefined ? e : undefined;
      },
      5000,
    );
    expect(n.lladdr).toBe(srvMac);
    expect(n.state).not.toContain("FAILED");
    const c = await fixture!.counters();
    expect(c.repliesSent).toBeGreaterThanOrEqual(1);
  });

  it("does not answer for an IP it does not own", async () => {
    const before = await fixture!.counters();
    triggerResolution("198.51.100.11");
    // The kernel gives up after its 3 unanswered requests, one second apart.
    const n = await waitFor(
      "resolution of 198.51.100.11 to fail",
      () => {
        const e = neighbour("198.51.100.11");
        return e?.state?.includes("FAILED") ? e : undefined;
      },
      8000,
    );
    expect(n.lladdr).toBeUndefined();
    const after = await fixture!.counters();
    // The kernel filter kept the requests from reaching the process at all.
    expect(after.requestsReceived).toBe(before.requestsReceived);
    expect(after.repliesSent).toBe(before.repliesSent);
  });

  it("stops answering after withdraw", async () => {
    await fixture!.call("withdraw", { ip: "198.51.100.10" });
    ipc("neigh", "flush", "dev", IF_CLI);
    triggerResolution("198.51.100.10");
    const n = await waitFor(
      "resolution of 198.51.100.10 to fail",
      () => {
        const e = neighbour("198.51.100.10");
        return e?.state?.includes("FAILED") ? e : undefined;
      },
      8000,
    );
    expect(n.lladdr).toBeUndefined();
  });

  it("gratuitous ARP overrides an existing wrong-MAC entry (arp_accept=0)", async () => {
    expect(inCli("sysctl", "-n", `net.ipv4.conf.${IF_CLI}.arp_accept`).trim()).toBe("0");
    ipc("neigh", "replace", "198.51.100.12", "lladdr", FAKE_MAC, "dev", IF_CLI, "nud", "stale");
    expect(neighbour("198.51.100.12")?.lladdr).toBe(FAKE_MAC);

    await fixture!.call("announce", { ip: "198.51.100.12" });
    const n = await waitFor(
      "gratuitous ARP to update 198.51.100.12",
      () => {
        const e = neighbour("198.51.100.12");
        return e?.lladdr === srvMac ? e : undefined;
      },
      4000,
    );
    expect(n.lladdr).toBe(srvMac);
    expect((await fixture!.counters()).gratuitousSent).toBeGreaterThanOrEqual(2);
  });

  it("gratuitous ARP creates no entry where the client had none (arp_accept=0)", async () => {
    await fixture!.call("announce", { ip: "198.51.100.13" });
    await sleep(2500); // the whole burst
    expect(neighbour("198.51.100.13")).toBeUndefined();
  });

  it("probe finds the client that has the IP configured, and nobody for a free IP", async () => {
    ipc("addr", "add", "198.51.100.30/32", "dev", IF_CLI);
    try {
      const conflict = await fixture!.call("probe", { ip: "198.51.100.30", timeoutMs: 1500 });
      expect(conflict.conflict).toBe(cliMac);
    } finally {
      ipc("addr", "del", "198.51.100.30/32", "dev", IF_CLI);
    }
    const free = await fixture!.call("probe", { ip: "198.51.100.31", timeoutMs: 1000 });
    expect(free.conflict).toBeNull();
    expect((await fixture!.counters()).conflicts).toBeGreaterThanOrEqual(1);
  });

  it("survives malformed frames sent at it over the wire", async () => {
    // The target is an owned IP, so that the kernel filter lets the frames through.
    await fixture!.call("announce", { ip: "198.51.100.14" });
    const before = await fixture!.counters();
    const out = runScript(
      NS_CLI,
      `const s = PacketSocket.open(${JSON.stringify(IF_CLI)}, "arp");
      const hdr = "ffffffffffff020000000099" + "0806";
      const owned = "000000000000" + "c633640e"; // target MAC, target IP 198.51.100.14
      const bad = [
        hdr + "0001080006040001", // truncated ARP body: too short for the filter, dropped
        hdr + "0001080006040009" + "00".repeat(10) + owned, // opcode 9
        hdr + "0006080006040001" + "00".repeat(10) + owned, // hardware type 6
        "ff".repeat(60), // nonsense ethertype
      ];
      for (const f of bad) s.send(Buffer.from(f, "hex"));
      // A canary behind them on the same socket: once the announcer has read it, it has
      // read the four before it (one socket, one veth: in order).
      s.send(arpRequest(${JSON.stringify(cliMac)}, "192.0.2.1", "198.51.100.14"));
      s.close();
      console.log("sent", bad.length);`,
    );
    expect(out.trim()).toBe("sent 4");
    await waitFor(
      "the canary request read",
      async () =>
        (await fixture!.counters()).requestsReceived > before.requestsReceived ? true : undefined,
      5000,
    );
    const after = await fixture!.counters();
    expect(after.requestsReceived - before.requestsReceived).toBe(1);
    // The ff..ff frame is not ARP, so the kernel never hands it to an ARP socket.
    expect(after.malformedFrames - before.malformedFrames).toBe(2);
    expect(fixture!.child.exitCode).toBeNull();
    // And it still answers.
    triggerResolution("198.51.100.14");
    await waitFor(
      "neighbour entry for 198.51.100.14",
      () => (neighbour("198.51.100.14")?.lladdr === srvMac ? true : undefined),
      5000,
    );
  });

  /** Sends ARP requests from the client namespace: [senderMac, target, count] groups. */
  function sendRequests(groups: Array<[string, string, number]>): void {
    const out = runScript(
      NS_CLI,
      `const s = PacketSocket.open(${JSON.stringify(IF_CLI)}, "arp");
      let n = 0;
      for (const [mac, target, count] of ${JSON.stringify(groups)}) {
        const f = arpRequest(mac, "192.0.2.1", target);
        for (let i = 0; i < count; i++) {
          try { s.send(f); n++; } catch { /* queue full: resend */ i--; await new Promise((r) => setImmediate(r)); }
        }
      }
      s.close();
      console.log("sent " + n);`,
    );
    expect(out.trim()).toBe(`sent ${groups.reduce((a, g) => a + g[2], 0)}`);
  }
  const kernelPassed = async () =>
    ((await fixture!.call("stats")).stats as { packets: number }).packets;

  it("the kernel drops a flood of requests for IPs not owned before it reaches the process", async () => {
    await fixture!.call("announce", { ip: "198.51.100.20" });
    const passed0 = await kernelPassed();
    const c0 = await fixture!.counters();
    // 20,000 requests spread over 200 addresses nobody here owns, and 5 for the owned one.
    const groups: Array<[string, string, number]> = [];
    for (let i = 0; i < 200; i++) groups.push([cliMac, `198.51.100.${40 + i}`, 100]);
    groups.push([cliMac, "198.51.100.20", 5]);
    sendRequests(groups);
    await waitFor(
      "5 replies",
      async () => {
        const c = await fixture!.counters();
        return c.repliesSent - c0.repliesSent >= 5 ? true : undefined;
      },
      5000,
    );
    const c1 = await fixture!.counters();
    expect(c1.repliesSent - c0.repliesSent).toBe(5);
    expect(c1.requestsReceived - c0.requestsReceived).toBe(5);
    // The kernel's own count of frames handed to the socket: the 5, nothing of the flood.
    expect((await kernelPassed()) - passed0).toBe(5);
  });

  it("the production addon has no bench-only function; the tools build adds sendBatch", () => {
    const require = createRequire(import.meta.url);
    const names = (path: string) => Object.getOwnPropertyNames(require(path)).sort();
    const production = [
      "close",
      "linkDump",
      "open",
      "openLinkMonitor",
      // BFD's UDP socket that reports each datagram's TTL (src/bfd/ttl-socket.ts).
      "openUdp",
      "send",
      "setFilter",
      "stats",
      // BGP's TCP sockets with TCP-MD5 and GTSM (src/bgp/tcp-socket.ts).
      "tcpSocket",
      // The heartbeat socket's kernel filter (src/speaker/heartbeat-gate.ts).
      "udpSetFilter",
    ];
    expect(names(ADDON)).toEqual(production);
    expect(names(TOOLS_ADDON)).toEqual([...production, "sendBatch"].sort());
  });

  it("send and sendBatch refuse what is not an Ethernet frame; sendBatch puts `count` frames on the wire", async () => {
    await fixture!.call("announce", { ip: "198.51.100.22" });
    const p0 = await kernelPassed();
    const out = runScript(
      NS_CLI,
      `const s = openToolSocket(${JSON.stringify(IF_CLI)}, "arp");
      const f = arpRequest(${JSON.stringify(cliMac)}, "192.0.2.1", "198.51.100.22");
      for (const [what, call] of [
        ["send text", () => s.send("not a frame")],
        ["send short", () => s.send(Buffer.alloc(10))],
        ["batch text", () => sendBatch(s, "not a frame", 3)],
        ["batch short", () => sendBatch(s, Buffer.alloc(10), 3)],
        ["batch count", () => sendBatch(s, f, -1)],
      ]) {
        try { call(); console.log(what + ": sent"); } catch (e) { console.log(what + ": " + e.message); }
      }
      let n = 0;
      while (n < 40) n += sendBatch(s, f, 40 - n);
      s.close();
      try { s.send(f); } catch (e) { console.log("closed: " + e.message); }
      console.log("batched " + n);`,
    );
    expect(out.trim().split("\n")).toEqual([
      "send text: frame must be a Buffer",
      "send short: frame is shorter than an Ethernet header",
      "batch text: frame must be a Buffer",
      "batch short: frame is shorter than an Ethernet header",
      "batch count: count must be a non-negative integer",
      `closed: packet socket on ${IF_CLI} is closed`,
      "batched 40",
    ]);
    // The kernel handed the announcer's socket exactly the 40 (its filter passes the owned IP).
    await waitFor(
      "40 frames at the announcer",
      async () => ((await kernelPassed()) - p0 >= 40 ? true : undefined),
      5000,
    );
    expect((await kernelPassed()) - p0).toBe(40);
    await fixture!.call("withdraw", { ip: "198.51.100.22" });
  });

  it("the filter follows the owned set: announce lets requests in, withdraw shuts them out", async () => {
    // Requests that must not arrive are followed, on the same socket, by one for an owned
    // IP that must: once it has passed the filter, the ones before it have been judged.
    const canary = "198.51.100.23";
    await fixture!.call("announce", { ip: canary });
    const judged = async (from: number) =>
      waitFor(
        "the canary request past the filter",
        async () => ((await kernelPassed()) - from >= 1 ? true : undefined),
        5000,
      );
    const p0 = await kernelPassed();
    sendRequests([
      [cliMac, "198.51.100.21", 3],
      [cliMac, canary, 1],
    ]);
    await judged(p0);
    expect((await kernelPassed()) - p0).toBe(1);

    await fixture!.call("announce", { ip: "198.51.100.21" });
    const c0 = await fixture!.counters();
    sendRequests([[cliMac, "198.51.100.21", 3]]);
    await waitFor(
      "3 replies",
      async () => {
        const c = await fixture!.counters();
        return c.repliesSent - c0.repliesSent >= 3 ? true : undefined;
      },
      5000,
    );
    expect((await kernelPassed()) - p0).toBe(4); // the 3 and the canary before them

    await fixture!.call("withdraw", { ip: "198.51.100.21" });
    const p1 = await kernelPassed();
    sendRequests([
      [cliMac, "198.51.100.21", 3],
      [cliMac, canary, 1],
    ]);
    await judged(p1);
    expect((await kernelPassed()) - p1).toBe(1);
    await fixture!.call("withdraw", { ip: canary });
  });

  it("rate-limits replies per requester under a flood for an owned IP, and answers others", async () => {
    const flooder = "02:00:00:00:00:42";
    const c0 = await fixture!.counters();
    const k0 = (await fixture!.call("stats")).stats as { packets: number; drops: number };
    sendRequests([[flooder, "198.51.100.20", 2000]]);
    // Every request is either handled here or dropped by the kernel when the socket's
    // queue was full (it holds a few hundred frames): wait until all are accounted for.
    const handled = (c: AnnouncerCounters) =>
      c.repliesSent - c0.repliesSent + c.repliesRateLimited - c0.repliesRateLimited;
    let dropped = 0;
    await waitFor(
      "2000 requests accounted for",
      async () => {
        const k = (await fixture!.call("stats")).stats as { packets: number; drops: number };
        dropped = k.drops - k0.drops;
        return handled(await fixture!.counters()) + dropped >= 2000 ? true : undefined;
      },
      10_000,
    );
    const c1 = await fixture!.counters();
    const replies = c1.repliesSent - c0.repliesSent;
    // The flooder gets its burst (20) plus 20/s for the moment the flood lasts.
    expect(replies).toBeGreaterThanOrEqual(20);
    expect(replies).toBeLessThan(100);
    expect(c1.repliesRateLimited - c0.repliesRateLimited).toBe(2000 - dropped - replies);
    // At least a queue's worth (~400 frames here) got through to be refused.
    expect(c1.repliesRateLimited - c0.repliesRateLimited).toBeGreaterThan(150);

    // Another requester has its own bucket: the client's own request is answered.
    const out = runScript(
      NS_CLI,
      `const s = PacketSocket.open(${JSON.stringify(IF_CLI)}, "arp");
      const { decodeArpFrame } = await import(${JSON.stringify(`${ROOT}src/layer2/codec.ts`)});
      const answered = new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), 3000);
        s.onFrame((f) => {
          const d = decodeArpFrame(f);
          if (d?.arp.op === 2 && d.arp.senderIp === "198.51.100.20" && d.eth.dst === s.mac) {
            clearTimeout(t);
            resolve(true);
          }
        });
      });
      s.send(arpRequest(s.mac, "192.0.2.1", "198.51.100.20"));
      console.log(JSON.stringify({ answered: await answered }));
      s.close();`,
    );
    expect(JSON.parse(out.trim().split("\n").pop()!)).toEqual({ answered: true });
  });

  it("an NDP socket only receives neighbour solicitations and advertisements (BPF filter)", async () => {
    // Frames only, between two ends with IPv6 disabled: no kernel on either side acts on them.
    const receiver = spawn(
      "ip",
      [
        "netns",
        "exec",
        NS_SRV,
        NODE,
        "--input-type=module",
        "-e",
        `${SCRIPT_PRELUDE}
      const s = PacketSocket.open(${JSON.stringify(IF_SRV)}, "ndp");
      const seen = [];
      s.onFrame((f) => {
        const d = decodeNdpFrame(f);
        seen.push(d ? d.message.type : "other:" + f.length);
      });
      console.log("ready");
      setTimeout(() => { s.close(); console.log(JSON.stringify(seen)); }, 1500);`,
      ],
      { cwd: ROOT },
    );
    let stdout = "";
    receiver.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    const exited = new Promise((r) => receiver.once("exit", r));
    await waitFor("NDP receiver", () => (stdout.includes("ready") ? true : undefined), 5000);
    runScript(
      NS_CLI,
      `const s = PacketSocket.open(${JSON.stringify(IF_CLI)}, "ndp");
      const mac = s.mac;
      const ns = neighborSolicitation({ srcMac: mac, srcIp: "2001:db8::1", target: "2001:db8::7" });
      const na = unsolicitedNeighborAdvertisement(mac, "2001:db8::1");
      const echo = Buffer.from(ns); echo[14 + 40] = 128; // ICMPv6 echo request, same shape
      const udp = Buffer.from(ns); udp[14 + 6] = 17; // UDP, not ICMPv6
      const arp = arpRequest(mac, "192.0.2.1", "198.51.100.99");
      for (const f of [echo, ns, udp, na, arp]) s.send(f);
      s.close();`,
    );
    await exited;
    const seen = JSON.parse(stdout.split("\n")[1] ?? "[]") as string[];
    expect(seen).toEqual(["solicitation", "advertisement"]);
  });

  it("reports missing interfaces and missing privileges with clear errors", () => {
    const out = runScript(
      NS_SRV,
      `for (const name of ["ilbnosuch0"]) {
        try { PacketSocket.open(name, "arp"); } catch (e) { console.log(e.code + " " + e.message); }
      }`,
    );
    expect(out).toMatch(/^ENODEV no such interface: ilbnosuch0/);
    const unprivileged = execFileSync(
      "setpriv",
      [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        NODE,
        "--input-type=module",
        "-e",
        `${SCRIPT_PRELUDE}
        try { PacketSocket.open("lo", "arp"); } catch (e) { console.log(e.code + " " + e.message); }`,
      ],
      { encoding: "utf8", cwd: ROOT },
    );
    expect(unprivileged).toMatch(/^EPERM opening a packet socket needs CAP_NET_RAW/);
  });

  it("an interface going down reaches the socket's listeners as an error with code and errno", () => {
    // A pair of this namespace's own, so that the client interface the other tests use stays up.
    ipc("link", "add", "ilbdn0", "type", "veth", "peer", "name", "ilbdn1");
    ipc("link", "set", "ilbdn0", "up");
    try {
      const out = runScript(
        NS_CLI,
        `import { execFileSync } from "node:child_process";
        const s = PacketSocket.open("ilbdn0", "arp");
        s.on("error", (e) => { console.log(e.code + " " + typeof e.errno + " " + e.message); s.close(); });
        execFileSync("ip", ["link", "set", "ilbdn0", "down"]);`,
      );
      // Thrown errors carried errno, errors handed to listeners did not: one helper makes both.
      expect(out.trim()).toMatch(/^ENETDOWN number receiving on packet socket failed \(ENETDOWN: /);
    } finally {
      ipc("link", "del", "ilbdn0");
    }
  });
});
