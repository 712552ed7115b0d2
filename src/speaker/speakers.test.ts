// Several real Speakers in one process (SpeakerCluster: informers on one stateful fake API
// server, announcers on one LAN in memory, membership set by the test): the scenarios the
// root-only netns tests prove on a real LAN, here at unit-test cost, each asserting the
// end state: who answers for the IP, what the IPAnnouncement says, which Events were written.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PATHS } from "../api/vocabulary.ts";
import { arpReply, arpRequest, decodeArpFrame } from "../layer2/codec.ts";
import { advertisement, pool, SpeakerCluster, service, slice, waitUntil } from "./testkit.ts";

const IP = "192.0.2.10";
const STRANGER = "02:00:00:00:00:66";

let c: SpeakerCluster;

beforeEach(async () => {
  c = new SpeakerCluster();
  await c.start();
});

afterEach(async () => {
  await c.close();
});

/** Pool, advertisement, Service web with IP and its endpoints on `endpointNodes`. */
function objects(endpointNodes: string[], policy: "Cluster" | "Local" = "Cluster"): void {
  c.api.put(PATHS.ipAddressPools, pool());
  c.api.put(PATHS.l2Advertisements, advertisement());
  c.api.put(PATHS.services, service("web", IP, policy));
  c.api.put(PATHS.endpointSlices, slice("web", endpointNodes));
}

async function twoNodes(): Promise<void> {
  c.putNode("node-a");
  c.putNode("node-b");
  await c.startSpeaker("node-a");
  await c.startSpeaker("node-b");
}

/** Waits until exactly one node announces IP and the record names it; returns it. */
async function oneOwner(ip = IP): Promise<string> {
  await waitUntil(() => c.announcing(ip).length === 1 && c.recordOf(ip) === c.announcing(ip)[0]);
  await c.settle();
  const who = c.announcing(ip);
  expect(who).toHaveLength(1);
  expect(c.recordOf(ip)).toBe(who[0]);
  return who[0]!;
}

const other = (n: string) => (n === "node-a" ? "node-b" : "node-a");

describe("Speakers in process: election and failover", () => {
  it("two speakers: exactly one announces, records it and says so in an Event", async () => {
    await twoNodes();
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    expect(c.events("NodeAnnouncing")).toEqual([
      expect.objectContaining({ object: "shop/web", host: owner }),
    ]);
    // Its gratuitous burst went on the wire from its MAC, for the IP.
    const mac = c.nodes.get(owner)!.mac;
    expect(
      c.lan.wire.some((w) => w.from === mac && decodeArpFrame(w.frame)?.arp.senderIp === IP),
    ).toBe(true);
  });

  it("the owner dies: the survivor takes over, rewrites the record and announces", async () => {
    await twoNodes();
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    const survivor = other(owner);
    await c.kill(owner);
    c.group.setLive([survivor]);
    await waitUntil(() => c.announcing(IP).includes(survivor) && c.recordOf(IP) === survivor);
    expect(
      c
        .events("NodeAnnouncing")
        .map((e) => e.host)
        .sort(),
    ).toEqual([owner, survivor].sort());
  });

  it("the old owner comes back: stickiness keeps the IP where it moved", async () => {
    await twoNodes();
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    const survivor = other(owner);
    c.group.setLive([survivor]);
    await waitUntil(() => c.announcing(IP).join() === survivor && c.recordOf(IP) === survivor);
    c.group.setLive(["node-a", "node-b"]);
    await c.settle();
    expect(c.announcing(IP)).toEqual([survivor]);
    expect(c.recordOf(IP)).toBe(survivor);
  });

  it("rejoin after a stall: the peer that took over is not fought, the stale owner lets go", async () => {
    await twoNodes();
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    const peer = other(owner);
    const mac = c.nodes.get(owner)!.mac;
    // The owner stalls: it sends nothing, hears nothing from the API server, notices
    // nothing. The peer declares it dead and takes the IP over.
    c.lan.unplug(mac);
    c.api.hold(owner, true);
    c.group.setLive([peer], [peer]);
    await waitUntil(() => c.recordOf(IP) === peer && c.announcing(IP).includes(peer));
    const back = c.lan.wire.length;
    // Back: both hear each other again, the owner rejoins and gets the backlog.
    c.lan.unplug(mac, false);
    c.group.setLive(["node-a", "node-b"], [peer]);
    c.group.rejoin(owner, "stall");
    c.api.hold(owner, false);
    await waitUntil(() => c.announcing(IP).join() === peer);
    await c.settle();
    expect(c.announcing(IP)).toEqual([peer]);
    expect(c.recordOf(IP)).toBe(peer);
    // It did not pull the clients back with gratuitous ARP, and nobody saw a conflict.
    expect(gratuitous(mac, IP, back)).toEqual([]);
    expect(c.events("IPConflict")).toEqual([]);
  });
});

describe("Speakers in process: planned handover (ironlb.dev/drain)", () => {
  /** Counts answerers on every turn of the event loop until `stop()`; returns the fewest. */
  function watchAnswerers(ip: string): { stop: () => number; seen: Set<string> } {
    let fewest = Number.POSITIVE_INFINITY;
    const seen = new Set<string>();
    let on = true;
    const tick = () => {
      const who = c.announcing(ip);
      fewest = Math.min(fewest, who.length);
      for (const n of who) seen.add(n);
      if (on) setImmediate(tick);
    };
    tick();
    return {
      stop: () => {
        on = false;
        return fewest;
      },
      seen,
    };
  }

  it("drain: the new owner announces first, the drained node lets go after; undrain keeps it there", async () => {
    await twoNodes();
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    const peer = other(owner);
    const drained = c.nodes.get(owner)!;
    // The peer hears of the drain late (its watch held): the drained node must keep
    // answering meanwhile instead of leaving the IP with nobody.
    c.api.hold(peer, true);
    const watch = watchAnswerers(IP);
    c.putNode(owner, {}, { "ironlb.dev/drain": "true" });
    // Either it keeps answering (handing over) or it let go of the IP at once (a gap).
    await waitUntil(() =>
      drained.lines.some(
        (l) => l.msg === "drained: handing over" || l.msg === "stopped announcing",
      ),
    );
    expect(c.announcing(IP)).toEqual([owner]);
    c.api.hold(peer, false);
    await waitUntil(() => c.announcing(IP).join() === peer && c.recordOf(IP) === peer);
    await c.settle();
    expect(watch.stop()).toBeGreaterThanOrEqual(1);
    expect(c.announcing(IP)).toEqual([peer]);
    expect(c.recordOf(IP)).toBe(peer);
    expect(drained.lines.find((l) => l.msg === "drained: handed over")).toEqual(
      expect.objectContaining({ ip: IP, to: peer }),
    );
    // The drained node answers no ARP request for the IP any more; the new owner does.
    const asked = c.lan.wire.length;
    c.lan.inject(arpRequest(STRANGER, "192.0.2.99", IP), "arp");
    await waitUntil(() => c.lan.wire.slice(asked).some((w) => w.from === c.nodes.get(peer)!.mac));
    await c.settle();
    expect(
      c.lan.wire
        .slice(asked)
        .filter((w) => w.from === drained.mac && decodeArpFrame(w.frame)?.arp.senderIp === IP),
    ).toEqual([]);
    // Undrain: stickiness keeps the IP on the peer (no move back, no second reconnect).
    c.putNode(owner);
    await c.settle();
    expect(c.announcing(IP)).toEqual([peer]);
    expect(c.recordOf(IP)).toBe(peer);
    expect(c.events("IPConflict")).toEqual([]);
  });

  it("drain with the only ready endpoint (Local) on the drained node: kept and said, force withdraws", async () => {
    await twoNodes();
    objects(["node-a"], "Local");
    expect(await oneOwner()).toBe("node-a");
    const a = c.nodes.get("node-a")!;
    c.putNode("node-a", {}, { "ironlb.dev/drain": "true" });
    await waitUntil(() =>
      a.lines.some(
        (l) => l.msg === "drained, but no other node can take this IP: still announcing it",
      ),
    );
    await c.settle();
    expect(c.announcing(IP)).toEqual(["node-a"]);
    c.putNode("node-a", {}, { "ironlb.dev/drain": "force" });
    await waitUntil(() => c.announcing(IP).length === 0);
    await c.settle();
    expect(c.announcing(IP)).toEqual([]);
  });
});

/** Gratuitous ARP for `ip` sent by `mac` since wire position `from`. */
function gratuitous(mac: string, ip: string, from: number): number[] {
  const out: number[] = [];
  c.lan.wire.forEach((w, i) => {
    const d = decodeArpFrame(w.frame);
    if (i >= from && w.from === mac && d?.arp.senderIp === ip && d.arp.targetIp === ip) out.push(i);
  });
  return out;
}

describe("Speakers in process with the real Membership (Leases)", () => {
  async function leasedPair(leaseMs: number): Promise<{ owner: string; peer: string }> {
    c.putNode("node-a");
    c.putNode("node-b");
    await c.startSpeaker("node-a", { leaseMs });
    await c.startSpeaker("node-b", { leaseMs });
    // Both Leases seen by both: the election has two candidates.
    await waitUntil(() =>
      ["node-a", "node-b"].every((n) => c.nodes.get(n)!.membership!.live().size === 2),
    );
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    return { owner, peer: other(owner) };
  }

  it("the owner's process is killed: only once its Lease expires does the peer take over", async () => {
    const { owner, peer } = await leasedPair(1000);
    // Killed: no goodbye reaches the API server (its Lease writes fail), so its Lease stays
    // until it expires.
    c.api.refuse(owner, (m, p) => (m !== "GET" && p.includes("/leases") ? 503 : undefined));
    const killedAt = performance.now();
    await c.kill(owner);
    await waitUntil(() => c.announcing(IP).join() === peer && c.recordOf(IP) === peer, 10_000);
    // Not before the Lease (1 s, renewed every 200 ms) has expired.
    expect(performance.now() - killedAt).toBeGreaterThan(700);
    expect([...c.nodes.get(peer)!.membership!.live()]).toEqual([peer]);
  }, 20_000);

  it("the owner shuts down: its Lease is deleted and the peer takes over at once", async () => {
    const { owner, peer } = await leasedPair(10_000);
    const stoppedAt = performance.now();
    await c.kill(owner);
    await waitUntil(() => c.announcing(IP).join() === peer && c.recordOf(IP) === peer);
    // Far less than the 10 s Lease.
    expect(performance.now() - stoppedAt).toBeLessThan(5000);
  }, 20_000);
});

describe("Speakers in process: probes and conflicts", () => {
  it("a probe answered by a peer after a rejoin is not a conflict: no burst, no Warning", async () => {
    await twoNodes();
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    const peer = other(owner);
    const mac = c.nodes.get(owner)!.mac;
    c.lan.unplug(mac);
    c.api.hold(owner, true);
    c.group.setLive([peer], [peer]);
    await waitUntil(() => c.recordOf(IP) === peer && c.announcing(IP).includes(peer));
    // Back, but the peer's record has not reached the owner (its watch lags and the fresh
    // list fails): only the LAN can tell it, by the peer answering its probe.
    c.api.refuse(owner, (m, p) => (m === "GET" && p === PATHS.ipAnnouncements ? 503 : undefined));
    const back = c.lan.wire.length;
    c.lan.unplug(mac, false);
    c.group.setLive(["node-a", "node-b"], [peer]);
    c.group.rejoin(owner, "stall");
    const lines = c.nodes.get(owner)!.lines;
    await waitUntil(() =>
      lines.some(
        (l) => l.msg === "rejoined: another host answers this IP, not re-announcing it yet",
      ),
    );
    expect(gratuitous(mac, IP, back)).toEqual([]);
    expect(c.events("IPConflict")).toEqual([]);
    // The record arrives: the owner lets go, without a burst or a conflict.
    c.api.refuse(owner, undefined);
    c.api.hold(owner, false);
    await waitUntil(() => c.announcing(IP).join() === peer);
    await c.settle();
    expect(c.announcing(IP)).toEqual([peer]);
    expect(c.recordOf(IP)).toBe(peer);
    expect(gratuitous(mac, IP, back)).toEqual([]);
    expect(c.events("IPConflict")).toEqual([]);
    // The peer's own takeover burst may be logged as a claim on an IP the owner still
    // held ("owned"); its answer to the probe must not be taken for a conflict.
    expect(lines.filter((l) => l.msg === "address conflict" && l.during === "probe")).toEqual([]);
  });

  it("a foreign MAC answers the probe of a new IP: not announced, a Warning names the host", async () => {
    c.putNode("node-a");
    await c.startSpeaker("node-a", { probeMs: 60 });
    // A host that is not a node uses the IP: it answers ARP probes for it.
    c.lan.hosts.push((frame, kind) => {
      const d = kind === "arp" ? decodeArpFrame(frame) : undefined;
      if (d && d.arp.targetIp === IP && d.arp.senderIp === "0.0.0.0")
        c.lan.inject(arpReply(STRANGER, IP, d.arp.senderMac, "0.0.0.0"), "arp");
    });
    objects(["node-a"]);
    await waitUntil(() => c.events("IPConflict").length > 0);
    await c.settle();
    expect(c.announcing(IP)).toEqual([]);
    expect(c.recordOf(IP)).toBeUndefined();
    expect(c.events("IPConflict")).toEqual([
      expect.objectContaining({
        object: "shop/web",
        message: expect.stringContaining(`host ${STRANGER}`),
      }),
    ]);
  });

  it("no host answers the probe of a new IP: announced after it", async () => {
    c.putNode("node-a");
    await c.startSpeaker("node-a", { probeMs: 60 });
    objects(["node-a"]);
    expect(await oneOwner()).toBe("node-a");
    expect(c.events("IPConflict")).toEqual([]);
  });
});

describe("Speakers in process: links, node selectors, traffic policy", () => {
  it("link flap: carrier lost on the owner's only LAN link moves the IP to the peer", async () => {
    await twoNodes();
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    const peer = other(owner);
    const o = c.nodes.get(owner)!;
    o.speaker.onLinks(new Map([["eth0", true]])); // the first link event: the baseline
    o.links.set("eth0", false);
    o.speaker.onLinks(new Map(o.links));
    // It stops answering at once, in the same call.
    expect(c.announcing(IP)).toEqual([]);
    // Its peers lose its heartbeats (the link carried them).
    c.group.setLive([peer]);
    await waitUntil(() => c.announcing(IP).join() === peer && c.recordOf(IP) === peer);
    // Carrier back: heartbeats again; stickiness keeps the IP on the peer.
    o.links.set("eth0", true);
    o.speaker.onLinks(new Map(o.links));
    c.group.setLive(["node-a", "node-b"]);
    await c.settle();
    expect(c.announcing(IP)).toEqual([peer]);
    expect(c.recordOf(IP)).toBe(peer);
  });

  it("node selector change: the owner leaves the advertisement's nodes, the IP moves", async () => {
    c.putNode("node-a", { zone: "a" });
    c.putNode("node-b", { zone: "b" });
    await c.startSpeaker("node-a");
    await c.startSpeaker("node-b");
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    const peer = other(owner);
    c.api.put(
      PATHS.l2Advertisements,
      advertisement([{ matchLabels: { zone: peer === "node-a" ? "a" : "b" } }]),
    );
    await waitUntil(() => c.announcing(IP).join() === peer && c.recordOf(IP) === peer);
    await c.settle();
    expect(c.announcing(IP)).toEqual([peer]);
  });

  it("node label change: the owner's label no longer matches, the IP moves", async () => {
    c.putNode("node-a", { lb: "yes" });
    c.putNode("node-b", { lb: "yes" });
    await c.startSpeaker("node-a");
    await c.startSpeaker("node-b");
    c.api.put(PATHS.ipAddressPools, pool());
    c.api.put(PATHS.l2Advertisements, advertisement([{ matchLabels: { lb: "yes" } }]));
    c.api.put(PATHS.services, service("web", IP));
    c.api.put(PATHS.endpointSlices, slice("web", ["node-a", "node-b"]));
    const owner = await oneOwner();
    const peer = other(owner);
    c.putNode(owner, { lb: "no" });
    await waitUntil(() => c.announcing(IP).join() === peer && c.recordOf(IP) === peer);
  });

  it("externalTrafficPolicy Cluster -> Local follows the endpoints, and back", async () => {
    await twoNodes();
    objects(["node-a", "node-b"]);
    const owner = await oneOwner();
    const peer = other(owner);
    // Local, the only endpoint on the peer: only the peer may announce.
    c.api.put(PATHS.endpointSlices, slice("web", [peer]));
    c.api.put(PATHS.services, service("web", IP, "Local"));
    await waitUntil(() => c.announcing(IP).join() === peer && c.recordOf(IP) === peer);
    // The endpoint moves to the first node: so does the IP.
    c.api.put(PATHS.endpointSlices, slice("web", [owner]));
    await waitUntil(() => c.announcing(IP).join() === owner && c.recordOf(IP) === owner);
    // Back to Cluster with endpoints on both: stickiness keeps it where it is.
    c.api.put(PATHS.endpointSlices, slice("web", ["node-a", "node-b"]));
    c.api.put(PATHS.services, service("web", IP, "Cluster"));
    await c.settle();
    expect(c.announcing(IP)).toEqual([owner]);
    expect(c.recordOf(IP)).toBe(owner);
  });

  it("the Service is deleted: nobody announces, the owner deletes its record", async () => {
    await twoNodes();
    objects(["node-a", "node-b"]);
    await oneOwner();
    c.api.remove(PATHS.services, "web", "shop");
    await waitUntil(() => c.announcing(IP).length === 0 && c.recordOf(IP) === undefined);
  });
});
