// End-to-end: real speakers (`ironlb speaker`, one per node namespace) and a real
// controller against a real control plane, seen from a client on a LAN made of network
// namespaces: its kernel ARPs for Service IPs, connects, and follows gratuitous ARP.
//
// Addresses (test/lab/addresses.ts): LAN 203.0.113.128/25 (uplink .129 in the root namespace),
// a second LAN 203.0.113.0/25 inside the test's namespaces, Service IPs 198.51.100.64/26.
// Behind each Service are real pods (namespaces) and a real kube-proxy on every node: the
// node a connection entered through is told by the address the pod saw (entryNode).

import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoordinationV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { chooseOwner } from "../../src/speaker/election.ts";
import { LINKS_ANNOTATION, linksContain, parseLinks } from "../../src/speaker/links.ts";
import { E2E_SECOND_SUBNET, E2E_SUBNET, POOL_CIDR } from "../lab/addresses.ts";
import {
  figures,
  type GratuitousFrame,
  ipAnnouncement,
  watchArp,
  watchGratuitous,
} from "../lab/faults.ts";
import {
  destroyStale,
  Lab,
  type LabService,
  type LabServiceOptions,
  randomPrefix,
} from "../lab/lab.ts";
import { listNetns, run, tryRun } from "../lab/net.ts";
import { clientsFor, repoRoot, sleep, waitFor } from "../support/kube.ts";

// This tier needs root (network namespaces, packet sockets): without it, it fails loudly.
if (process.platform !== "linux" || process.getuid?.() !== 0) {
  throw new Error("the e2e tier needs Linux and root (network namespaces): run it as root");
}

const ZONE = "lab.ironlb.dev/zone";
const EXCLUDE = "node.kubernetes.io/exclude-from-external-load-balancers";

describe("speaker on a LAN of network namespaces", () => {
  const prefix = randomPrefix("ilbe2e");
  let lab: Lab;
  let workDir = "";
  let nextPort = 8000;
  let svcCounter = 0;

  /** A Service (its own port, so that answers are never mixed up). */
  /** The Services the tests made, for the one test that needs the lab to itself. */
  const created: LabService[] = [];
  async function service(
    o: Omit<LabServiceOptions, "port"> = {},
  ): Promise<{ svc: LabService; ip: string }> {
    const svc = await lab.createService(`svc${++svcCounter}`, { port: nextPort++, ...o });
    created.push(svc);
    return { svc, ip: await lab.waitForIP(svc) };
  }

  /** Which node answers the client at ip:port (retrying while nobody answers yet). */
  async function answeringNode(ip: string, port: number, timeoutMs = 15_000): Promise<string> {
    return waitFor(
      `a node answering ${ip}:${port}`,
      () => lab.tryEntryNode(ip, port, 500),
      timeoutMs,
      50,
    );
  }

  /** Waits until the client is answered by `node` (an announcement that moved). */
  async function waitAnsweredBy(
    ip: string,
    port: number,
    node: string,
    timeoutMs = 15_000,
  ): Promise<void> {
    await waitFor(
      `${node} answering ${ip}:${port}`,
      async () => (await lab.tryEntryNode(ip, port, 500)) === node,
      timeoutMs,
      50,
    );
  }

  /** Waits until every node's speaker has logged a line `msg` about `ip` with `fields`. */
  const everySpeakerLogged = (msg: string, ip: string, fields: Record<string, unknown>) =>
    waitFor(
      `every speaker to log "${msg}" for ${ip}`,
      () =>
        lab.nodes.every((n) =>
          lab
            .speaker(n.name)
            ?.logs()
            .some(
              (l) =>
                l.msg === msg &&
                l.ip === ip &&
                Object.entries(fields).every(([k, v]) => l[k] === v),
            ),
        ),
      10_000,
      50,
    );

  /** Running speakers whose log says they currently announce `ip`. */
  function announcersFromLogs(ip: string): string[] {
    const out: string[] = [];
    for (const n of lab.nodes) {
      const p = lab.speaker(n.name);
      if (!p?.running()) continue;
      let last: string | undefined;
      for (const l of p.logs()) {
        if (l.ip === ip && (l.msg === "announcing" || l.msg === "stopped announcing")) last = l.msg;
      }
      if (last === "announcing") out.push(n.name);
    }
    return out;
  }

  /** Client's view after fresh ARP: who answers, and that its neighbour entry has that MAC. */
  async function resolveFresh(ip: string, port: number): Promise<string> {
    await lab.clientForget(ip);
    const owner = await answeringNode(ip, port);
    const n = await lab.clientNeighbour(ip);
    expect(n?.mac).toBe(await lab.macOf(owner));
    return owner;
  }

  /** Kills (or stops) the owner's speaker and measures how the client follows. */
  async function failover(signal: NodeJS.Signals) {
    const { svc, ip } = await service();
    const owner = await resolveFresh(ip, svc.port);
    const ownerMac = await lab.macOf(owner);
    // The client has a neighbour entry with the owner's MAC: gratuitous ARP must update it
    // (Linux only updates existing entries from unsolicited ARP, arp_accept=0).
    expect((await lab.clientNeighbour(ip))?.mac).toBe(ownerMac);
    const t0 = performance.now();
    const stopped = lab.stopSpeaker(owner, signal);
    const neighbourMoved = waitFor(
      "the client's neighbour entry to change",
      async () => {
        const n = await lab.clientNeighbour(ip);
        return n?.mac && n.mac !== ownerMac
          ? { mac: n.mac, ms: performance.now() - t0 }
          : undefined;
      },
      20_000,
      5,
    );
    const curlMoved = waitFor(
      "another node to answer",
      async () => {
        const who = await lab.tryEntryNode(ip, svc.port, 300);
        return who !== undefined && who !== owner ? { who, ms: performance.now() - t0 } : undefined;
      },
      20_000,
      10,
    );
    const [stop, neigh, curl] = await Promise.all([stopped, neighbourMoved, curlMoved]);
    const newOwner = await lab.nodeByMac(neigh.mac);
    console.info(
      `${signal} of ${owner}'s speaker: exit after ${stop.ms.toFixed(0)} ms; neighbour → ${newOwner} after ${neigh.ms.toFixed(0)} ms; curl answered by ${curl.who} after ${curl.ms.toFixed(0)} ms`,
    );
    expect(newOwner).toBeDefined();
    expect(newOwner).not.toBe(owner);
    expect(curl.who).toBe(newOwner);
    // Exactly one node answers after the takeover.
    expect(await lab.arpingFromClient(ip)).toEqual([neigh.mac]);
    // Back to full strength for the next test.
    lab.startSpeaker(owner);
    await lab.waitSpeakersReady();
    return { neighMs: neigh.ms, curlMs: curl.ms, owner, newOwner };
  }

  beforeAll(async () => {
    // Leftovers of an earlier run that crashed (its vitest is gone); live runs are kept.
    await destroyStale("ilbe2e");
    workDir = mkdtempSync(join(tmpdir(), "ironlb-e2e-lab-"));
    lab = await Lab.create({
      prefix,
      subnet: E2E_SUBNET,
      secondSubnet: E2E_SECOND_SUBNET,
      poolCIDR: POOL_CIDR,
      nodes: 3,
      kubeconfig: inject("kubeconfig"),
      binDir: inject("binDir"),
      workDir,
      // Short conflict back-off, so that the conflict test sees the retry succeed;
      // IRONLB_E2E_SPEAKER_ARGS adds flags when investigating a failure.
      speakerArgs: [
        "--conflict-retry",
        "2",
        ...(process.env.IRONLB_E2E_SPEAKER_ARGS?.split(" ").filter((a) => a !== "") ?? []),
      ],
    });
    lab.startController();
    for (const n of lab.nodes) lab.startSpeaker(n.name);
    await lab.waitSpeakersReady(60_000);
    // The default pool: every Service without a pool annotation; announced everywhere.
    await lab.createPool("e2e", ["198.51.100.74-198.51.100.103"]);
    await lab.createL2Advertisement("e2e", { ipAddressPools: ["e2e"] });
    // Interface selection: announced on eth1 (the second LAN) only.
    await lab.createPool("e2e-if", ["198.51.100.104-198.51.100.113"], { autoAssign: false });
    await lab.createL2Advertisement("e2e-if", { ipAddressPools: ["e2e-if"], interfaces: ["eth1"] });
    // Node selectors: announced only by nodes in zone b.
    await lab.createPool("e2e-sel", ["198.51.100.114-198.51.100.123"], { autoAssign: false });
    await lab.createL2Advertisement("e2e-sel", {
      ipAddressPools: ["e2e-sel"],
      nodeSelectors: [{ matchLabels: { [ZONE]: "b" } }],
    });
  });

  // On failure, the speakers' own complaints (warnings and errors, once each) usually say why.
  afterEach((ctx) => {
    if (ctx.task.result?.state !== "fail" || !lab) return;
    const lines: string[] = [];
    for (const n of lab.nodes) {
      const seen = new Set<string>();
      for (const l of lab.speaker(n.name)?.logs() ?? []) {
        if (typeof l.level !== "number" || l.level < 40) continue;
        const text = `${l.msg}${l.err ? `: ${String(l.err)}` : ""}`;
        if (seen.has(text)) continue;
        seen.add(text);
        lines.push(`  ${n.name}: ${text}`);
      }
    }
    if (lines.length > 0) console.error(`speaker warnings and errors:\n${lines.join("\n")}`);
  });

  afterAll(async () => {
    try {
      await lab?.destroy();
    } finally {
      if (workDir && !process.env.IRONLB_KEEP_LOGS)
        rmSync(workDir, { recursive: true, force: true });
    }
    expect((await listNetns()).filter((n) => n.startsWith(prefix))).toEqual([]);
  });

  it("the client resolves the Service IP to the owning node's MAC, and only that node answers", async () => {
    const { svc, ip } = await service();
    const owner = await resolveFresh(ip, svc.port);
    // Every ARP request gets exactly one answer, from the owner's eth0.
    expect(await lab.arpingFromClient(ip)).toEqual([await lab.macOf(owner)]);
    // The speakers agree: one announces it, and records so in its IPAnnouncement (not on
    // the Service, which the speakers may not modify).
    await waitFor(
      "one speaker logging the announcement",
      () => announcersFromLogs(ip).length === 1,
    );
    expect(announcersFromLogs(ip)).toEqual([owner]);
    const rec = await waitFor("the IPAnnouncement naming the owner", async () => {
      const r = await ipAnnouncement(lab, ip);
      return r?.status?.node === owner ? r : undefined;
    });
    expect(rec.status).toMatchObject({
      ip,
      // No interface's subnet holds the pool IP: "auto" announces on every LAN interface.
      interfaces: ["eth0", "eth1"],
      services: [`default/${svc.name}`],
    });
    expect((await lab.getService(svc.name)).metadata?.annotations ?? {}).not.toHaveProperty(
      "ironlb.dev/announcing-node",
    );
    // The kernel itself never answers: the IP is on no interface.
    for (const n of lab.nodes)
      expect(JSON.stringify(await lab.nodeAddresses(n.name))).not.toContain(ip);
  });

  describe("externalTrafficPolicy Local", () => {
    it("only nodes with a ready local endpoint are chosen", async () => {
      // One Service per node, each with its only ready endpoint there and not-ready ones
      // elsewhere: a speaker ignoring endpoints picks the right node by chance 1 in 3 each.
      for (const target of [...lab.nodes, ...lab.nodes]) {
        const endpoints = lab.nodes.map((n) => ({ node: n.name, ready: n.name === target.name }));
        const { svc, ip } = await service({ externalTrafficPolicy: "Local", endpoints });
        expect(await resolveFresh(ip, svc.port)).toBe(target.name);
        expect(await lab.arpingFromClient(ip, { count: 2 })).toEqual([
          await lab.macOf(target.name),
        ]);
      }
    });

    it("moving the endpoint moves the announcement, and the client follows", async () => {
      const [a, b] = [lab.nodes[0]!.name, lab.nodes[1]!.name];
      const { svc, ip } = await service({ externalTrafficPolicy: "Local", endpoints: [a] });
      expect(await resolveFresh(ip, svc.port)).toBe(a);
      await lab.setEndpoints(svc, [b]);
      // No flush: the existing neighbour entry must be updated by b's gratuitous ARP.
      await waitFor(
        "the client's neighbour entry to move to b",
        async () => (await lab.clientNeighbour(ip))?.mac === (await lab.macOf(b)),
        10_000,
      );
      await waitAnsweredBy(ip, svc.port, b);
      expect(await lab.arpingFromClient(ip, { count: 2 })).toEqual([await lab.macOf(b)]);
    });

    it("a Service without a ready endpoint is answered by nobody", async () => {
      const endpoints = lab.nodes.map((n) => ({ node: n.name, ready: false }));
      const { svc, ip } = await service({ externalTrafficPolicy: "Local", endpoints });
      // Every speaker has seen the Service and decided: each logs why nobody announces it.
      await everySpeakerLogged("IP not announced by any node", ip, {
        reason: "no ready endpoints",
      });
      await lab.clientForget(ip);
      expect(await lab.tryEntryNode(ip, svc.port, 1500)).toBeUndefined();
      const n = await lab.clientNeighbour(ip);
      expect(n?.mac).toBeUndefined();
      expect(n?.state.some((s) => s === "FAILED" || s === "INCOMPLETE")).toBe(true);
      expect(await lab.arpingFromClient(ip, { count: 2 })).toEqual([]);
      expect(announcersFromLogs(ip)).toEqual([]);
      // The speakers were watching: one ready endpoint, and its node answers.
      const c = lab.nodes[2]!.name;
      await lab.setEndpoints(svc, [
        ...endpoints.filter((e) => e.node !== c),
        { node: c, ready: true },
      ]);
      await lab.clientForget(ip);
      expect(await answeringNode(ip, svc.port)).toBe(c);
      // ...and every speaker says the reason it logged is gone, not only the one that answers.
      await everySpeakerLogged("IP announceable again", ip, { was: "no ready endpoints" });
    });
  });

  describe("failover", () => {
    it("SIGTERM of the owner's speaker: another node takes over at once", async () => {
      const r = await failover("SIGTERM");
      expect(r.neighMs).toBeLessThan(1000);
      expect(r.curlMs).toBeLessThan(1500);
    });

    it("SIGKILL of the owner's speaker: another node takes over within seconds", async () => {
      const r = await failover("SIGKILL");
      expect(r.neighMs).toBeLessThan(3000);
      expect(r.curlMs).toBeLessThan(3500);
    });
  });

  it("ironlb drain: the drained node answers ARP until the new owner does, every new connection is accepted, the client follows, the drained node goes quiet; undrain moves nothing", async () => {
    // A node drains completely only when another node may take each of its IPs: earlier
    // tests' Services (a Local one whose only endpoint is there) would stay on it, and the
    // command would rightly report them. This test starts from its own Service alone.
    for (const s of created.splice(0)) await lab.deleteService(s).catch(() => undefined);
    const { svc, ip } = await service();
    const owner = await resolveFresh(ip, svc.port);
    const ownerMac = await lab.macOf(owner);
    const others = lab.nodes.filter((n) => n.name !== owner);
    const cli = (...args: string[]) =>
      new Promise<{ code: number; stdout: string }>((resolve) =>
        execFile(
          process.execPath,
          [join(repoRoot, "bin/ironlb.js"), ...args, "--kubeconfig", inject("kubeconfig")],
          { env: { ...process.env, IRONLB_FROM_SOURCE: "1" } },
          (err, stdout) =>
            resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout }),
        ),
      );
    // The other nodes learn of the drain late (a slow watch, a busy API server): nothing
    // from the API server reaches them while this table is in place. Make-before-break is
    // what keeps the IP answered meanwhile: the drained node may stop only once the new
    // owner has it. (Without it, the drained node falls silent at once, for all of HOLD_MS.)
    const HOLD_MS = 2000;
    const HOLD_TABLE = "ilbe2e-drain-hold";
    const hold = `table ip ${HOLD_TABLE} {\n  chain in {\n    type filter hook input priority 0;\n    ip saddr ${lab.uplinkIP} drop\n  }\n}\n`;
    const release = () =>
      Promise.all(
        others.map((n) =>
          tryRun("ip", ["netns", "exec", n.ns, "nft", "delete", "table", "ip", HOLD_TABLE]),
        ),
      );
    /** Whether a new TCP connection from the client to ip:port completes its handshake. */
    const connects = (ip: string, port: number) =>
      run(
        "ip",
        [
          "netns",
          "exec",
          lab.client.ns,
          "timeout",
          "2",
          "bash",
          "-c",
          `exec 3<>/dev/tcp/${ip}/${port}`,
        ],
        { timeoutMs: 4000 },
      ).then(
        () => true,
        () => false,
      );
    // Who answers ARP for the IP, every 20 ms, from requesters the client kernel ignores.
    const arp = watchArp(lab, [ip]);
    await arp.ready;
    // A stream of new TCP connections for the whole handover, each judged by its
    // handshake: a connection whose SYN nobody forwards fails. (An exchange still open when
    // the client's neighbour entry moves continues through the new owner, which knows
    // nothing of it and resets it: the reconnect every move costs, not a missing answer.)
    let on = true;
    let total = 0;
    const failed: number[] = [];
    const stream = (async () => {
      while (on) {
        const ok = await connects(ip, svc.port);
        total++;
        if (!ok) failed.push(total);
      }
    })();
    let undrained = false;
    try {
      await waitFor("the stream running", () => total >= 3, 20_000, 20);
      for (const n of others)
        await run("ip", ["netns", "exec", n.ns, "nft", "-f", "-"], { input: hold });
      const draining = cli("drain", owner, "--timeout", "60");
      await waitFor(
        `${owner}'s speaker to start handing ${ip} over`,
        () =>
          lab
            .speaker(owner)
            ?.logs()
            .some((l) => l.msg === "drained: handing over" && l.ip === ip),
        20_000,
        20,
      );
      await sleep(HOLD_MS); // the fault's own duration
      await release();
      const drained = await draining;
      // The client's neighbour entry follows the new owner's gratuitous ARP.
      const mac = await waitFor(
        "the client's neighbour entry to move",
        async () => {
          const n = await lab.clientNeighbour(ip);
          return n?.mac && n.mac !== ownerMac ? n.mac : undefined;
        },
        20_000,
        20,
      );
      const after = total + 5;
      await waitFor("five more connections", () => total >= after, 30_000, 20);
      on = false;
      await stream;
      const watched = figures(await arp.stop(), ip);
      const newOwner = await lab.nodeByMac(mac);
      console.info(
        `drain of ${owner}: ${total} new connections, ${failed.length} failed; ARP answered by ${watched.owners.join(" -> ")}, both for ${watched.maxDualMs} ms, nobody for ${watched.maxSilentMs} ms`,
      );
      expect(newOwner).toBeDefined();
      expect(newOwner).not.toBe(owner);
      // Some node answered ARP for the IP throughout: the drained node until the new owner
      // did, then the new owner only. A client asks again after 1 s (retrans_time): a round
      // or two unanswered on a busy host costs it nothing; the drained node falling silent
      // before the new owner answers costs it the whole hold.
      expect(watched.owners).toEqual([ownerMac, mac]);
      expect(watched.maxSilentMs).toBeLessThan(1000);
      expect({ failed, total }).toEqual({ failed: [], total: expect.any(Number) });
      expect(drained.stdout).toContain(`${ip}: moved to ${newOwner}`);
      expect(drained.stdout).toContain(`${owner} announces nothing: drained`);
      expect(drained.code).toBe(0);
      // Make-before-break: the drained node let go only on evidence that the new owner had
      // the IP (its takeover ARP heard on the LAN, or its record), not on the timeout.
      const handed = await waitFor(
        `${owner}'s speaker to hand ${ip} over`,
        () =>
          lab
            .speaker(owner)
            ?.logs()
            .find((l) => l.msg === "drained: handed over" && l.ip === ip),
        10_000,
        50,
      );
      expect(handed).toMatchObject({
        to: newOwner,
        evidence: expect.stringMatching(/^(claim heard|record)$/),
      });
      // Only the new owner answers ARP; the drained node answers none.
      expect(await lab.arpingFromClient(ip)).toEqual([mac]);
      expect(await lab.tryEntryNode(ip, svc.port)).toBe(newOwner);
      // Undrain: stickiness keeps the IP where it moved.
      expect((await cli("undrain", owner)).code).toBe(0);
      undrained = true;
      await waitFor(
        `${owner}'s speaker to see the undrain`,
        () =>
          lab
            .speaker(owner)
            ?.logs()
            .some((l) => l.msg === "undrained: may announce again"),
        10_000,
        50,
      );
      expect(await lab.arpingFromClient(ip)).toEqual([mac]);
    } finally {
      on = false;
      await stream;
      await release();
      await arp.stop().catch(() => undefined);
      // A failure above must not leave the node drained for the tests after this one.
      if (!undrained) await cli("undrain", owner);
    }
    await lab.deleteService(svc);
  });

  it("announces on the L2Advertisement's interfaces only", async () => {
    const { svc, ip } = await service({ pool: "e2e-if" });
    // On the second LAN: one answer, from some node's eth1.
    const macs = await waitFor(
      "an answer on the second LAN",
      async () => {
        const m = await lab.arpingFromClient(ip, { ifname: "eth1", count: 2 });
        return m.length > 0 ? m : undefined;
      },
      15_000,
    );
    expect(macs).toHaveLength(1);
    const eth1Macs = await Promise.all(lab.nodes.map((n) => lab.macOf(n.name, "eth1")));
    expect(eth1Macs).toContain(macs[0]);
    // On the first LAN (where the client routes the pool): silence.
    expect(await lab.arpingFromClient(ip, { ifname: "eth0", count: 2 })).toEqual([]);
    await lab.clientForget(ip);
    expect(await lab.tryEntryNode(ip, svc.port, 1000)).toBeUndefined();
    expect((await lab.clientNeighbour(ip))?.mac).toBeUndefined();
  });

  it("never lets a node without an interface in the IP's subnet announce it; a node on it does", async () => {
    // The first node leaves the second LAN's subnet (its eth1 keeps its link, loses its
    // address); a pool in that subnet, IPs the hash gives to that node among all three.
    const off = lab.nodes[0]!;
    const subnet2Bits = E2E_SECOND_SUBNET.split("/")[1];
    const ownAddr = `${off.ip2}/${subnet2Bits}`;
    await run("ip", ["-n", off.ns, "addr", "del", ownAddr, "dev", "eth1"]);
    try {
      const leases = lab.kc.makeApiClient(CoordinationV1Api);
      await waitFor(
        `${off.name}'s Lease to publish no address in the second LAN`,
        async () => {
          const lease = await leases.readNamespacedLease({
            name: `ironlb-speaker-${off.name}`,
            namespace: "ironlb-system",
          });
          // eth1 may vanish from the list: os.networkInterfaces() skips address-less links.
          const links = parseLinks(lease.metadata?.annotations?.[LINKS_ANNOTATION]);
          return links !== undefined && !linksContain(links, "203.0.113.32");
        },
        20_000,
        100,
      );
      await lab.createPool("e2e-sub", ["203.0.113.32-203.0.113.63"], { autoAssign: false });
      await lab.createL2Advertisement("e2e-sub", { ipAddressPools: ["e2e-sub"] });
      const all = lab.nodes.map((n) => n.name);
      const others = all.filter((n) => n !== off.name);
      const ips: string[] = [];
      for (let i = 32; i <= 63 && ips.length < 2; i++) {
        if (chooseOwner(`203.0.113.${i}`, all) === off.name) ips.push(`203.0.113.${i}`);
      }
      // One is all but certain among 32 (the node names change with each run's prefix).
      expect(ips.length).toBeGreaterThan(0);
      for (const want of ips) {
        const { svc, ip } = await service({ pool: "e2e-sub", ip: want });
        expect(ip).toBe(want);
        const owner = await answeringNode(ip, svc.port);
        expect(owner).toBe(chooseOwner(ip, others));
        expect((await lab.clientNeighbour(ip, "eth1"))?.mac).toBe(await lab.macOf(owner, "eth1"));
        const rec = await waitFor("the IPAnnouncement", () => ipAnnouncement(lab, ip), 10_000);
        expect(rec.status?.node).toBe(owner);
        expect(announcersFromLogs(ip)).toEqual([owner]);
        expect(
          lab
            .speaker(off.name)
            ?.logs()
            .some((l) => l.ip === ip && l.msg === "announcing"),
        ).toBe(false);
      }
    } finally {
      await run("ip", ["-n", off.ns, "addr", "add", ownAddr, "dev", "eth1"]);
    }
  });

  it("ironlb status says why when no node has an interface the L2Advertisement lists", async () => {
    await lab.createPool("e2e-noif", ["203.0.113.72-203.0.113.79"], { autoAssign: false });
    await lab.createL2Advertisement("e2e-noif", {
      ipAddressPools: ["e2e-noif"],
      interfaces: ["eth9"],
    });
    const { svc, ip } = await service({ pool: "e2e-noif" });
    const why = `no eligible node among ${lab.nodes.length}: ${lab.nodes.length} without any interface listed by L2Advertisement "e2e-noif"`;
    const line = await waitFor(
      "ironlb status to say why the IP is not announced",
      () =>
        execFileSync(
          process.execPath,
          [join(repoRoot, "bin/ironlb.js"), "status", "--kubeconfig", inject("kubeconfig")],
          { encoding: "utf8" },
        )
          .split("\n")
          .find((l) => l.startsWith(`${svc.namespace}/${svc.name} `) && l.includes(why)),
      15_000,
      200,
    );
    expect(line).toContain(ip);
    await everySpeakerLogged("IP not announced by any node", ip, { reason: why });
    expect(announcersFromLogs(ip)).toEqual([]);
  });

  it("announces from nodes the L2Advertisement's nodeSelectors match only", async () => {
    const [, b, c] = lab.nodes.map((n) => n.name);
    await lab.labelNode(b!, { [ZONE]: "b" });
    const svcs = [
      await service({ pool: "e2e-sel" }),
      await service({ pool: "e2e-sel" }),
      await service({ pool: "e2e-sel" }),
    ];
    for (const { svc, ip } of svcs) expect(await resolveFresh(ip, svc.port)).toBe(b);
    // The label moves to c: so do all announcements.
    await lab.labelNode(b!, { [ZONE]: null });
    await lab.labelNode(c!, { [ZONE]: "b" });
    for (const { svc, ip } of svcs) await waitAnsweredBy(ip, svc.port, c!);
    await lab.labelNode(c!, { [ZONE]: null });
  });

  it("never chooses a node labelled exclude-from-external-load-balancers", async () => {
    const { svc, ip } = await service();
    const owner = await resolveFresh(ip, svc.port);
    await lab.labelNode(owner, { [EXCLUDE]: "" });
    try {
      // The announcement leaves the excluded node; the client follows without flushing.
      const ownerMac = await lab.macOf(owner);
      await waitFor(
        "the neighbour entry to leave the excluded node",
        async () => {
          const m = (await lab.clientNeighbour(ip))?.mac;
          return m !== undefined && m !== ownerMac;
        },
        10_000,
      );
      const next = await answeringNode(ip, svc.port);
      expect(next).not.toBe(owner);
      // New Services avoid it too (1 in 3 chance each otherwise).
      for (let i = 0; i < 4; i++) {
        const s = await service();
        expect(await resolveFresh(s.ip, s.svc.port)).not.toBe(owner);
      }
    } finally {
      await lab.labelNode(owner, { [EXCLUDE]: null });
    }
  });

  it("does not announce an IP another host on the LAN uses, and says so on the Service", async () => {
    const ip = "198.51.100.103";
    // The client already holds the address: the speaker's probe gets the client's answer.
    await lab.clientAddAddress(`${ip}/32`);
    try {
      const svc = await lab.createService(`svc${++svcCounter}`, { port: nextPort++, ip });
      expect(await lab.waitForIP(svc)).toBe(ip);
      const ev = await waitFor(
        "a Warning Event about the conflict",
        async () =>
          (await lab.serviceEvents(svc.name)).find(
            (e) => e.type === "Warning" && e.message.includes(ip),
          ),
        15_000,
        200,
      );
      expect(ev.source).toContain("speaker");
      // No speaker answers for it: ARP requests for it get no answer at all.
      expect(await lab.arpingFromClient(ip, { count: 2 })).toEqual([]);
      expect(announcersFromLogs(ip)).toEqual([]);
      // Once the other host lets go, the next probe succeeds and a node announces it.
      await lab.clientDelAddress(`${ip}/32`);
      const owner = await answeringNode(ip, svc.port, 20_000);
      expect((await lab.clientNeighbour(ip))?.mac).toBe(await lab.macOf(owner));
    } finally {
      await lab.clientDelAddress(`${ip}/32`);
    }
  });

  it("does not announce a status IP outside the pool its Service names, and says so", async () => {
    const { svc, ip } = await service();
    await answeringNode(ip, svc.port);
    // In the lab's Service range but in no pool; the Service's annotation names pool e2e.
    const rogue = "198.51.100.70";
    const key = `${svc.namespace}/${svc.name}`;
    // Anyone with services/status can write it; the controller would put its IP back.
    await lab.controller?.stop();
    try {
      await clientsFor(lab.kc).core.patchNamespacedServiceStatus(
        {
          name: svc.name,
          namespace: svc.namespace,
          body: { status: { loadBalancer: { ingress: [{ ip: rogue, ipMode: "VIP" }] } } },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      await everySpeakerLogged(
        "IP is outside the pool its Service names: not announced for that Service",
        rogue,
        { service: key, pool: "e2e" },
      );
      const ev = await waitFor(
        "a Warning Event IPNotInPool",
        async () =>
          (await lab.serviceEvents(svc.name)).find(
            (e) => e.type === "Warning" && e.reason === "IPNotInPool",
          ),
        15_000,
        200,
      );
      expect(ev.source).toContain("speaker");
      expect(ev.message).toContain(
        `${rogue} is not in pool e2e, which ${key} names in ironlb.dev/ip-allocated-from-pool`,
      );
      // Exactly one speaker reports it, however many nodes there are. Every speaker has
      // logged it, and would have emitted its Event then: give those writes time to land
      // (there is no signal for an Event that is never written).
      await sleep(500);
      const events = (await lab.serviceEvents(svc.name)).filter((e) => e.reason === "IPNotInPool");
      expect(events).toHaveLength(1);
      // Nobody answers for it on the LAN, and the IP it had is let go.
      expect(await lab.arpingFromClient(rogue, { count: 2 })).toEqual([]);
      expect(announcersFromLogs(rogue)).toEqual([]);
      await waitFor("the old IP withdrawn", () => announcersFromLogs(ip).length === 0);
    } finally {
      lab.startController();
    }
  });

  // Before the API server freeze below, after which the controller takes a while to assign.
  it("with gratuitousInterval the owner repeats gratuitous ARP at that interval, without it only on takeover", async () => {
    const { svc, ip } = await service();
    const owner = await resolveFresh(ip, svc.port);
    const ownerMac = await lab.macOf(owner);
    /** Gratuitous rounds (a request and a reply each) seen by the client over `ms`. */
    const observe = async (
      ms: number,
    ): Promise<{ frames: GratuitousFrame[]; rounds: number[] }> => {
      const w = watchGratuitous(lab, [ip]);
      await w.ready;
      await sleep(ms); // the length of the measurement itself, not a wait for an event
      const frames = await w.stop();
      const rounds: number[] = [];
      for (const f of frames)
        if (rounds.length === 0 || f.t - rounds.at(-1)! > 500) rounds.push(f.t);
      return { frames, rounds };
    };

    // Not set: after the takeover burst (over 2 s after the announcement, which preceded
    // the client's answer) the IP stays quiet, however long.
    const quiet = await observe(13_000);
    expect(quiet.frames.filter((f) => f.t >= 2_500)).toEqual([]);

    await lab.createL2Advertisement("e2e-garp", {
      ipAddressPools: ["e2e"],
      gratuitousInterval: "5s",
    });
    try {
      const loud = await observe(17_000);
      console.info(`gratuitous rounds at ${loud.rounds.join(", ")} ms`);
      // Every 5 s: at least three rounds in 17 s, spaced by the interval (timer slack aside).
      expect(loud.rounds.length).toBeGreaterThanOrEqual(3);
      for (let i = 1; i < loud.rounds.length; i++) {
        const gap = loud.rounds[i]! - loud.rounds[i - 1]!;
        expect(gap).toBeGreaterThanOrEqual(4_500);
        expect(gap).toBeLessThanOrEqual(5_800);
      }
      // From the owner only, as a gratuitous request and reply each time.
      expect(new Set(loud.frames.map((f) => f.mac))).toEqual(new Set([ownerMac]));
      expect(new Set(loud.frames.map((f) => f.op))).toEqual(new Set([1, 2]));
    } finally {
      await lab.deleteL2Advertisement("e2e-garp");
    }
  });

  it("keeps announcing while the API server is unreachable", async () => {
    const { svc, ip } = await service();
    const owner = await resolveFresh(ip, svc.port);
    const ownerMac = await lab.macOf(owner);
    // Freeze kube-apiserver for twice the speakers' Lease duration (6 s): no Lease can be
    // renewed anywhere, but heartbeats keep flowing on the LAN, so nothing may change.
    const port = new URL(inject("server")).port;
    const pid = execFileSync("pgrep", ["-f", `kube-apiserver.*--secure-port=${port}`], {
      encoding: "utf8",
    })
      .trim()
      .split("\n")[0]!;
    process.kill(Number(pid), "SIGSTOP");
    const answers: (string | undefined)[] = [];
    try {
      const end = Date.now() + 12_000;
      while (Date.now() < end) {
        answers.push(await lab.tryEntryNode(ip, svc.port, 500));
        await sleep(500);
      }
    } finally {
      process.kill(Number(pid), "SIGCONT");
    }
    expect(answers.length).toBeGreaterThan(10);
    expect(answers.filter((a) => a !== owner)).toEqual([]);
    expect((await lab.clientNeighbour(ip))?.mac).toBe(ownerMac);
    expect(announcersFromLogs(ip)).toEqual([owner]);
  });
});
