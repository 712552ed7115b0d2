// BGP mode through the real speaker process (`ironlb speaker`, as the chart runs it) against
// the real apiserver: it reads BGPPeers and BGPAdvertisements, opens a session with each
// peer that selects its node, and writes one BGPSessionState per session, which a user reads
// with `kubectl get bgpsessionstates`. The peer here refuses the TCP connection (a closed
// port on loopback), so the object says so; sessions with real routers are test/e2e's.
// A peer's TCP-MD5 passwordSecret is read from the speaker's namespace: while it is
// unusable the node does not connect and says why; once fixed, it connects with the key.
import { createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { bgpSessionStateName } from "../../src/api/bgpsessionstate.ts";
import { ipAnnouncementName } from "../../src/api/ipannouncement.ts";
import { KubeClient } from "../../src/k8s/client.ts";
import { BGP_SESSION_STATES_PATH } from "../../src/speaker/bgp-status.ts";
import {
  applyCRDs,
  type Component,
  createNamespace,
  createPool,
  deletePool,
  startComponent,
  waitFor,
} from "../support/cluster.ts";

const NODE = `bgp-int-${process.pid}`;
const POOL = `bgp-int-${process.pid}`;
// No other integration file's pool holds these (pools outlive their files).
const POOL_CIDR = "192.0.2.232/29";
const IP = "192.0.2.233";
const PEERS = "/apis/ironlb.dev/v1beta1/bgppeers";
const ADS = "/apis/ironlb.dev/v1beta1/bgpadvertisements";
const PROFILES = "/apis/ironlb.dev/v1beta1/bfdprofiles";
const RECORDS = "/apis/ironlb.dev/v1beta1/ipannouncements";

interface RecordObject {
  metadata: { name: string; managedFields?: { manager?: string }[] };
  status?: {
    ip: string;
    node?: string;
    interfaces?: string[];
    bgp?: { node: string; peers: string[]; since?: string }[];
  };
}

interface StateObject {
  metadata: { name: string };
  status?: {
    node: string;
    peer: string;
    peerAddress?: string;
    state: string;
    lastError?: string;
    prefixesSent?: number;
    bfdState?: string;
    bfdError?: string;
  };
}

/** A loopback port nobody listens on: connecting to it is refused at once. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe("speaker: BGP mode against the real apiserver", () => {
  const api = KubeClient.load(inject("kubeconfig"));
  const peer = `refusing-${process.pid}`;
  const elsewhere = `other-rack-${process.pid}`;
  const ad = `bgp-int-${process.pid}`;
  const profile = `bfd-int-${process.pid}`;
  const md5Peer = `md5-${process.pid}`;
  const md5Secret = `bgp-md5-${process.pid}`;
  const SECRETS = "/api/v1/namespaces/default/secrets";
  let ns: string;
  let speaker: Component;
  let port: number;
  const stateOf = (p: string) =>
    api
      .get<StateObject>(`${BGP_SESSION_STATES_PATH}/${bgpSessionStateName(NODE, p)}`)
      .catch(() => undefined);
  const peerBody = (name: string, spec: Record<string, unknown>) => ({
    apiVersion: "ironlb.dev/v1beta1",
    kind: "BGPPeer",
    metadata: { name },
    spec: { myASN: 64512, peerASN: 64500, peerAddress: "127.0.0.1", ...spec },
  });

  beforeAll(async () => {
    await applyCRDs();
    ns = await createNamespace("bgp-int");
    port = await closedPort();
    await createPool(POOL, { addresses: [POOL_CIDR] });
    await api.create("/api/v1/nodes", { metadata: { name: NODE, labels: { rack: "r1" } } });
    await api.create(PEERS, peerBody(peer, { peerPort: port, connectTime: "1s" }));
    // Selects another rack: no session on NODE, no object.
    await api.create(
      PEERS,
      peerBody(elsewhere, { peerPort: port, nodeSelectors: [{ matchLabels: { rack: "r2" } }] }),
    );
    await api.create(ADS, {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "BGPAdvertisement",
      metadata: { name: ad },
      spec: { ipAddressPools: [POOL], communities: ["no-export"] },
    });
    // A Service holding IP as the controller would write it, with a ready endpoint elsewhere.
    await api.create(`/api/v1/namespaces/${ns}/services`, {
      metadata: { name: "web", annotations: { "ironlb.dev/ip-allocated-from-pool": POOL } },
      spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }] },
    });
    await api.mergePatch(`/api/v1/namespaces/${ns}/services/web/status`, {
      status: { loadBalancer: { ingress: [{ ip: IP, ipMode: "VIP" }] } },
    });
    await api.create(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
      metadata: { name: "web-1", labels: { "kubernetes.io/service-name": "web" } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready: true }, nodeName: "n9" }],
      ports: [{ port: 8080, protocol: "TCP" }],
    });
    speaker = startComponent([
      "speaker",
      "--kubeconfig",
      inject("kubeconfig"),
      "--namespace",
      "default",
      "--node-name",
      NODE,
      "--heartbeat-port",
      "0",
      "--health-port",
      "0",
      "--health-address",
      "127.0.0.1",
    ]);
  });

  afterAll(async () => {
    await speaker?.stop();
    for (const p of [
      `${PEERS}/${peer}`,
      `${PEERS}/${elsewhere}`,
      `${ADS}/${ad}`,
      `${PROFILES}/${profile}`,
      `${PEERS}/${md5Peer}`,
      `${SECRETS}/${md5Secret}`,
    ])
      await api.delete(p).catch(() => undefined);
    await api.delete(`/api/v1/nodes/${NODE}`).catch(() => undefined);
    await deletePool(POOL).catch(() => undefined);
  });

  it("writes a BGPSessionState saying the session is not established, and why", async () => {
    const st = await waitFor(
      "a BGPSessionState with the refusal",
      async () => {
        const o = await stateOf(peer);
        return o?.status?.lastError ? o : undefined;
      },
      20_000,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}\nspeaker log:\n${speaker
          .logs()
          .map((l) => JSON.stringify(l))
          .join("\n")}`,
      );
    });
    expect(st.status).toMatchObject({
      node: NODE,
      peer,
      peerAddress: "127.0.0.1",
      prefixesSent: 0,
    });
    expect(st.status?.state).not.toBe("Established");
    expect(st.status?.lastError).toContain("ECONNREFUSED");
    // The plan gives the session the Service's route; it waits for Established to send it.
    expect(
      speaker
        .logs()
        .some(
          (l) =>
            l.msg === "IP advertised over BGP" &&
            l.ip === IP &&
            JSON.stringify(l.peers) === JSON.stringify({ [peer]: [`${IP}/32`] }),
        ),
    ).toBe(true);
    // A peer whose nodeSelectors leave this node out gets no session and no object.
    expect(await stateOf(elsewhere)).toBeUndefined();
    expect(
      speaker.logs().some((l) => l.msg === "BGP session starting" && l.peer === elsewhere),
    ).toBe(false);
  });

  it("records who advertises the IP to whom in its IPAnnouncement: its own entry beside other nodes' and the Layer 2 owner's, gone when it stops", async () => {
    const record = `${RECORDS}/${ipAnnouncementName(IP)}`;
    const read = () => api.get<RecordObject>(record).catch(() => undefined);
    const bgpOf = async () => (await read())?.status?.bgp ?? [];
    const ours = await waitFor("this node's BGP entry", async () => {
      const e = (await bgpOf()).find((x) => x.node === NODE);
      return e?.peers.length ? e : undefined;
    });
    expect(ours).toMatchObject({ node: NODE, peers: [peer] });
    expect(Date.parse(ours.since ?? "")).toBeGreaterThan(Date.now() - 120_000);
    // Written by server-side apply under a field manager of this node's own.
    expect((await read())?.metadata.managedFields?.map((f) => f.manager)).toContain(
      `ironlb-bgp-${NODE}`,
    );

    // Another node's entry (its own manager) and the Layer 2 owner (a merge patch) join it.
    const other = `bgp-other-${process.pid}`;
    const applyAs = (node: string, bgp?: unknown[]) =>
      api.request("PATCH", record, {
        body: {
          apiVersion: "ironlb.dev/v1beta1",
          kind: "IPAnnouncement",
          metadata: { name: ipAnnouncementName(IP) },
          status: { ip: IP, ...(bgp ? { bgp } : {}) },
        },
        contentType: "application/apply-patch+yaml",
        query: { fieldManager: `ironlb-bgp-${node}`, force: true },
      });
    await applyAs(other, [{ node: other, peers: ["router-x"] }]);
    await api.mergePatch(record, { status: { node: "n9", interfaces: ["eth0"] } });
    const setAdPools = (pools: string[]) =>
      api.mergePatch(`${ADS}/${ad}`, { spec: { ipAddressPools: pools } });
    try {
      // No longer advertised: its entry goes, the others' and the Layer 2 fields stay.
      await setAdPools([`not-${POOL}`]);
      const after = await waitFor("this node's entry removed", async () => {
        const r = await read();
        return r && !r.status?.bgp?.some((x) => x.node === NODE) ? r : undefined;
      });
      expect(after.status).toMatchObject({
        ip: IP,
        node: "n9",
        interfaces: ["eth0"],
        bgp: [{ node: other, peers: ["router-x"] }],
      });
      // Advertised again: back, beside the other node's.
      await setAdPools([POOL]);
      await waitFor("this node's entry back", async () =>
        (await bgpOf()).some((x) => x.node === NODE) ? true : undefined,
      );
      expect((await bgpOf()).map((x) => x.node).sort()).toEqual([NODE, other].sort());
      // Level-triggered: a record deleted under it is written again.
      await api.delete(record);
      await waitFor("the record rewritten", async () =>
        (await bgpOf()).some((x) => x.node === NODE) ? true : undefined,
      );
      // Its entry is the last: once it stops advertising, the record goes.
      await setAdPools([`not-${POOL}`]);
      await waitFor("the record deleted", async () =>
        (await read()) === undefined ? true : undefined,
      );
    } finally {
      await setAdPools([POOL]);
    }
    // The speaker's log names no failed write.
    expect(speaker.logs().filter((l) => /could not/.test(String(l.msg)))).toEqual([]);
  });

  it("reports a BGPPeer's missing BFDProfile (status, Event) and runs BGP on; clears it when the profile appears", async () => {
    await api.mergePatch(`${PEERS}/${peer}`, { spec: { bfdProfile: profile } });
    const st = await waitFor(
      "a BGPSessionState naming the missing profile",
      async () => {
        const o = await stateOf(peer);
        return o?.status?.bfdError ? o : undefined;
      },
      20_000,
    );
    expect(st.status?.bfdError).toBe(`BFDProfile "${profile}" not found`);
    // BGP goes on without BFD: the same session, still trying.
    expect(st.status?.lastError).toContain("ECONNREFUSED");
    const events = await waitFor("a BFDProfileNotFound Event on the BGPPeer", async () => {
      const list = await api.get<{ items: { reason?: string; message?: string }[] }>(
        "/api/v1/namespaces/default/events",
        { fieldSelector: `involvedObject.name=${peer},involvedObject.kind=BGPPeer` },
      );
      const found = list.items.filter((e) => e.reason === "BFDProfileNotFound");
      return found.length > 0 ? found : undefined;
    });
    expect(events[0]?.message).toBe(
      `Node ${NODE} runs its BGP session without BFD: BFDProfile "${profile}" not found`,
    );
    await api.create(PROFILES, {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "BFDProfile",
      metadata: { name: profile },
      spec: { transmitInterval: 100, receiveInterval: 100 },
    });
    // Found now; no BFD session yet (the refused connection gave no local address to run
    // it from), so no bfdState either.
    const fixed = await waitFor("the bfdError cleared", async () => {
      const o = await stateOf(peer);
      return o?.status && o.status.bfdError === undefined ? o : undefined;
    });
    expect(fixed.status?.bfdState).toBeUndefined();
    expect(
      speaker.logs().filter((l) => l.msg === "BGP session starting" && l.peer === peer),
    ).toHaveLength(1);
  });

  it("does not connect while the passwordSecret is unusable (status, Event), and connects with the key once it is fixed", async () => {
    const events = (reason: string) =>
      api
        .get<{ items: { reason?: string; message?: string }[] }>(
          "/api/v1/namespaces/default/events",
          { fieldSelector: `involvedObject.name=${md5Peer},involvedObject.kind=BGPPeer` },
        )
        .then((l) => l.items.filter((e) => e.reason === reason));
    const lastErrorOf = async (want: string) =>
      waitFor(
        `lastError containing ${want}`,
        async () => {
          const o = await stateOf(md5Peer);
          return o?.status?.lastError?.includes(want) ? o : undefined;
        },
        // A Secret the watch cannot see (another type) is read again every 10 s.
        30_000,
      );
    const where = `passwordSecret default/${md5Secret}`;
    await api.create(
      PEERS,
      peerBody(md5Peer, { peerPort: port, connectTime: "1s", passwordSecret: { name: md5Secret } }),
    );
    try {
      const missing = await lastErrorOf(`${where}: no such Secret`);
      expect(missing.status?.lastError).toBe(
        `invalid peer configuration: ${where}: no such Secret`,
      );
      expect(missing.status?.state).toBe("Idle");
      const ev = await waitFor("a PasswordSecretUnusable Event", async () => {
        const found = await events("PasswordSecretUnusable");
        return found.length > 0 ? found : undefined;
      });
      expect(ev[0]?.message).toBe(
        `Node ${NODE} does not connect to ${md5Peer}: ${where}: no such Secret`,
      );

      // Another type: the watch (basic-auth Secrets only) misses it, the speaker's GET does not.
      await api.create(SECRETS, {
        metadata: { name: md5Secret },
        type: "Opaque",
        stringData: { password: "s3cret" },
      });
      await lastErrorOf(
        `${where}: the Secret is of type Opaque; it must be kubernetes.io/basic-auth`,
      );
      await api.delete(`${SECRETS}/${md5Secret}`);
      await api.create(SECRETS, {
        metadata: { name: md5Secret },
        type: "kubernetes.io/basic-auth",
        stringData: { username: "ironlb" },
      });
      const noKey = await lastErrorOf(`${where}: the Secret has no key "password"`);
      // Never tried: a connection to the closed port would have said ECONNREFUSED.
      expect(noKey.status?.state).toBe("Idle");
      expect(
        speaker
          .logs()
          .some((l) => l.peer === md5Peer && JSON.stringify(l).includes("ECONNREFUSED")),
      ).toBe(false);

      // Fixed: a new session connects, with the key. The closed port's reset carries no
      // signature, so the kernel drops it: the connection times out, and the status says a
      // password mismatch may be why (without a key it would be refused at once).
      await api.mergePatch(`${SECRETS}/${md5Secret}`, { stringData: { password: "s3cret" } });
      const fixed = await lastErrorOf("may be a TCP-MD5 password mismatch");
      expect(fixed.status?.lastError).toMatch(/^no TCP connection within 1 s: /);
      expect(fixed.status?.lastError).not.toContain("passwordSecret");
      // The password never reaches the log.
      expect(speaker.logs().some((l) => JSON.stringify(l).includes("s3cret"))).toBe(false);
    } finally {
      // Its BGPSessionState goes too: the next test expects none of this node's left.
      await api.delete(`${PEERS}/${md5Peer}`);
      await waitFor(
        "the md5 peer's BGPSessionState to go",
        async () => (await stateOf(md5Peer)) === undefined,
      );
    }
  });

  it("deletes the BGPSessionState when the peer is deleted", async () => {
    await api.delete(`${PEERS}/${peer}`);
    await waitFor("the BGPSessionState to go", async () => (await stateOf(peer)) === undefined);
    expect(speaker.logs().some((l) => l.msg === "BGP session removed" && l.peer === peer)).toBe(
      true,
    );
    const all = await api.get<{ items: StateObject[] }>(BGP_SESSION_STATES_PATH);
    expect(all.items.filter((o) => o.status?.node === NODE)).toEqual([]);
  });

  it("stops cleanly", async () => {
    expect(await speaker.stop()).toBe(0);
  });
});
