// ironlb's BFD with BIRD 2 as the router (`protocol bfd`, `bfd on` in the BGP protocol): the
// session comes Up at 100 ms × 3, and a node that goes silent (an nftables drop inside it,
// the link still up) loses its route at BIRD within BFD's detection time, while the BGP hold
// time (9 s) alone would take seconds.
//
// Namespaces: ilb-bfdbird-{node,bird}-<random>; nothing in the root namespace changes.
// Addresses: 192.0.2.192/29 (BIRD .193, node .194); advertised 192.0.2.200/32; monitor marker
// 192.0.2.201/32. ASNs: BIRD 64505, node 64511.
import { execFileSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BgpPeerConfig } from "../../src/bgp/types.ts";
import { waitFor } from "../support/kube.ts";
import { kernelRoute, RouterLab, RouteWatch } from "./fixtures/routers.ts";

const ROUTER = "192.0.2.193";
const NODE = "192.0.2.194";
const PREFIX = "192.0.2.200/32";
const MARKER = "192.0.2.201/32";
const BFD = { desiredMinTxMs: 100, requiredMinRxMs: 100, detectMultiplier: 3 };

const PEER: BgpPeerConfig = {
  name: "bird",
  myASN: 64511,
  peerASN: 64505,
  peerAddress: ROUTER,
  peerPort: 179,
  sourceAddress: NODE,
  // Hold 9 s: only BFD can explain a withdrawal within a second.
  holdTime: 9,
  keepaliveTime: 3,
  connectTime: 2,
  routerID: NODE,
};

const BIRD_CONF = (dir: string) => `log "${dir}/bird.log" all;
router id ${ROUTER};
protocol device { }
protocol kernel { ipv4 { import none; export all; }; }
protocol bfd {
  interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
protocol bgp node {
  local ${ROUTER} as 64505; neighbor ${NODE} as 64511;
  passive on; error wait time 1,2; hold time 9;
  bfd on;
  ipv4 { import all; export none; };
}
`;

const DROP = `table inet ilbbfdbird {
  chain in { type filter hook input priority -300; policy drop; }
  chain out { type filter hook output priority -300; policy drop; }
}
`;

const lab = new RouterLab("bfdbird", {
  bird: {
    conf: BIRD_CONF,
    nodeDev: "ethbird",
    nodeAddrs: [`${NODE}/29`],
    routerAddrs: [`${ROUTER}/29`],
  },
});

describe("BFD against BIRD's bfd (network namespaces)", () => {
  const nft = (args: string[], input?: string) =>
    execFileSync("ip", ["netns", "exec", lab.ns.node, "nft", ...args], {
      input,
      stdio: ["pipe", "pipe", "pipe"],
    });

  beforeAll(async () => {
    await lab.start();
    await lab.sessions.start(PEER, { ...BFD, localAddress: NODE });
    await lab.sessions.routes("bird", [{ prefix: PREFIX, communities: [], largeCommunities: [] }]);
  });

  afterAll(() => lab.stop());

  it("comes Up with BIRD, and BIRD drops a silent node's route within BFD time, not the hold time", async () => {
    await waitFor(
      "BIRD's BFD session Up",
      async () => /\bUp\b/.test(await lab.bird.birdc("show", "bfd", "sessions")),
      30_000,
    );
    await waitFor(
      `${PREFIX} in BIRD's kernel`,
      async () => (await kernelRoute(lab.ns.bird, PREFIX.replace("/32", "")))?.gateway === NODE,
      30_000,
    );
    const watch = new RouteWatch(lab.ns.bird, [PREFIX], MARKER);
    lab.onStop(() => watch.stop());
    await watch.ready;
    const t0 = Date.now();
    nft(["-f", "-"], DROP);
    try {
      await waitFor(`${PREFIX} gone at BIRD`, async () => watch.deletions()[0], 8000, 20);
    } finally {
      nft(["delete", "table", "inet", "ilbbfdbird"]);
    }
    const after = watch.deletions()[0]!.at - t0;
    console.log(`BFD 100 ms × 3, node dropped -> BIRD kernel route gone after ${after} ms`);
    // Detection 300 ms plus BIRD's work; the hold time (9 s) would be far later.
    expect(after).toBeLessThan(1000);
    // The node saw BFD go Down too (its own detection time, 300 ms, may end after BIRD's
    // withdrawal) and ended its BGP session at once: Cease 6/10, not its 9 s hold timer.
    const st = await waitFor(
      "the node's BFD Down",
      async () => {
        const s = await lab.sessions.status("bird");
        return s.lastNotification?.code === 6 ? s : undefined;
      },
      3000,
    );
    expect(st.lastNotification).toMatchObject({ direction: "sent", code: 6, subcode: 10 });
    expect(st.lastError).toMatch(/^BFD down: Control Detection Time Expired/);
    // And it all comes back.
    await waitFor(
      `${PREFIX} back at BIRD`,
      async () => (await kernelRoute(lab.ns.bird, PREFIX.replace("/32", "")))?.gateway === NODE,
      30_000,
    );
  });
});
