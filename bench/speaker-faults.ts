// Speaker fault figures (issue 9), in a running lab (3 nodes, a client), judged from the
// client: an ARP watcher in its namespace asks for every Service IP every 20 ms and reads
// its kernel's neighbour entries as netlink reports them (test/lab/arp-watch.ts).
//   - failover after SIGKILL of the owner's speaker and after the owner's link goes down,
//     p50/p99 over `runs` runs each: until the client's neighbour entry names another node;
//   - a 1 s stall of the owner (SIGSTOP/SIGCONT) and a 6 s link outage with link up after,
//     10 runs each;
//   - false ownership changes per minute with each speaker in a cpu cgroup with a 50m share
//     (cpu.shares 51) next to a 2-CPU hog;
//   - for every fault: the longest window with two answerers for one IP, the longest time
//     the client's entry named a node that did not answer while another did (stranded);
//   - cold start of all speakers: from the last speaker's "speaker ready" to every IP
//     answered.

import {
  answeredOver,
  figures,
  setLink,
  stallSpeaker,
  starveSpeakers,
  type WatchResult,
  watchArp,
} from "../test/lab/faults.ts";
import type { Lab, LabService } from "../test/lab/lab.ts";
import { sleep, waitFor } from "../test/support/kube.ts";
import { percentile } from "./stats.ts";

const fmt = (xs: number[]) =>
  `p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${percentile(xs, 99).toFixed(0)} ms (n=${xs.length})`;

interface Worst {
  dualMs: number;
  strandedMs: number;
  /** The watch timeline of the IP with the longest stranded window, when there was one. */
  strandedStory?: string;
}

export async function speakerFaults(L: Lab, runs: number): Promise<void> {
  const svcs: { svc: LabService; ip: string }[] = [];
  await L.createPool("faults", ["198.51.100.100-198.51.100.119"], { autoAssign: false });
  await L.createL2Advertisement("faults", { ipAddressPools: ["faults"] });
  for (let i = 0; i < 6; i++) {
    const svc = await L.createService(`flt${i}`, { port: 9000 + i, pool: "faults" });
    svcs.push({ svc, ip: await L.waitForIP(svc, 30_000) });
  }
  const ips = svcs.map((s) => s.ip);
  const macs = new Map<string, string>();
  for (const n of L.nodes) macs.set(await L.macOf(n.name), n.name);
  const macOf = (node: string) => [...macs].find(([, n]) => n === node)![0];

  const nodeOf = (mac: string) => macs.get(mac) ?? mac;
  const worst = (w: WatchResult, acc: Worst) => {
    for (const ip of ips) {
      const f = figures(w, ip);
      acc.dualMs = Math.max(acc.dualMs, f.maxDualMs);
      if (f.maxStrandedMs > acc.strandedMs) {
        acc.strandedMs = f.maxStrandedMs;
        // What stranded the client, for the reader of the figure: who answered when, and
        // where the client's entry pointed (ms since the watch began).
        acc.strandedStory = `${ip}: answers ${(w.answers[ip] ?? [])
          .map(([t, m]) => `${t}:${m.map(nodeOf).join("+") || "-"}`)
          .join(" ")}; client's entry ${(w.neighbour[ip] ?? [])
          .map(([t, m]) => `${t}:${nodeOf(m)}`)
          .join(" ")}`;
      }
    }
  };
  const answeredBy = async (ip: string) =>
    ((await answeredOver(L, [ip])).get(ip) ?? []).map((m) => macs.get(m) ?? m);
  const owner = (ip: string) =>
    waitFor(
      `one node answering ${ip}`,
      async () => {
        const a = await answeredBy(ip);
        return a.length === 1 ? a[0] : undefined;
      },
      30_000,
      100,
    );
  const logs = (node: string) => L.speaker(node)?.logs() ?? [];
  const settledAfter = (node: string, from: number) =>
    waitFor(
      `${node} settled`,
      () =>
        logs(node)
          .slice(from)
          .some((l) => l.msg === "membership settled"),
      30_000,
      20,
    );
  /**
   * `node` is back: every peer counts it live again, and if it noticed the outage itself
   * (it rejoins only after a stall or after hearing no peer), it has settled since.
   */
  const backAfter = async (node: string, from: number) => {
    await waitFor(
      `peers to count ${node} live`,
      () =>
        L.nodes
          .filter((n) => n.name !== node)
          .every((n) => {
            const live = logs(n.name).findLast((l) => l.msg === "live speakers changed")?.live;
            return Array.isArray(live) && live.includes(node);
          }),
      30_000,
      20,
    );
    const rejoin = logs(node)
      .slice(from)
      .findIndex((l) => l.msg === "rejoining");
    if (rejoin >= 0) await settledAfter(node, from + rejoin);
  };
  /** The client's neighbour entry for ip names a node other than `old` (fresh ARP first). */
  const clientOn = async (ip: string, port: number, node: string) => {
    await waitFor(
      `client entry for ${ip} on ${node}`,
      async () => {
        await L.tryEntryNode(ip, port, 500);
        return (await L.clientNeighbour(ip))?.mac === macOf(node);
      },
      15_000,
      20,
    );
  };
  const ip = ips[0]!;
  const port = svcs[0]!.svc.port;

  // --- failover after SIGKILL and after link down
  const out: Record<string, number[]> = { SIGKILL: [], "link down": [] };
  const acc: Record<string, Worst> = {};
  for (const fault of ["SIGKILL", "link down"] as const) {
    acc[fault] = { dualMs: 0, strandedMs: 0 };
    for (let i = 0; i < runs; i++) {
      const node = await owner(ip);
      await clientOn(ip, port, node);
      const mac = macOf(node);
      const w = watchArp(L, ips);
      await w.ready;
      const t0 = performance.now();
      if (fault === "SIGKILL") void L.stopSpeaker(node, "SIGKILL");
      else await setLink(L, node, false);
      await waitFor(
        "the client's entry to move",
        async () => {
          const n = await L.clientNeighbour(ip);
          return n?.mac !== undefined && n.mac !== mac;
        },
        30_000,
        2,
      );
      out[fault]!.push(performance.now() - t0);
      const from = logs(node).length;
      if (fault === "SIGKILL") {
        await L.speaker(node)!.exited;
        L.startSpeaker(node);
        await L.waitSpeakersReady(30_000);
        await settledAfter(node, 0);
      } else {
        await setLink(L, node, true);
        await backAfter(node, from);
      }
      await sleep(500); // anything the returning node would wrongly claim, it claims now
      worst(await w.stop(), acc[fault]!);
    }
  }

  // --- a 1 s stall of the owner, and a 6 s link outage (10 runs each). Runs follow each
  // other closely: a stall then often hits the node that took the IP over in the run before
  // while its gratuitous burst is still going on.
  for (const fault of ["1 s stall", "6 s link outage"] as const) {
    acc[fault] = { dualMs: 0, strandedMs: 0 };
    for (let i = 0; i < 10; i++) {
      const node = await owner(ip);
      await clientOn(ip, port, node);
      const w = watchArp(L, ips);
      await w.ready;
      const from = logs(node).length;
      if (fault === "1 s stall") await stallSpeaker(L, node, 1000);
      else {
        await setLink(L, node, false);
        await sleep(6000);
        await setLink(L, node, true);
      }
      await backAfter(node, from);
      await sleep(500);
      worst(await w.stop(), acc[fault]!);
    }
  }

  // --- starvation: 60 s, each speaker in its own 50m-share cgroup, a 2-CPU hog beside
  const starveMs = 60_000;
  let starved: { stop(): Promise<void> } | undefined;
  const sw = watchArp(L, ips);
  const deathsBefore = L.nodes.map((n) => logs(n.name).length);
  try {
    await sw.ready;
    starved = starveSpeakers(
      `ironlb-${L.prefix}`,
      L.nodes.map((n) => L.speaker(n.name)!.proc.pid!),
    );
    await sleep(starveMs);
  } finally {
    await starved?.stop();
  }
  const sr = await sw.stop();
  acc.starvation = { dualMs: 0, strandedMs: 0 };
  worst(sr, acc.starvation);
  const moves = ips.reduce((n, x) => n + figures(sr, x).moves, 0);
  const deaths = L.nodes.reduce(
    (n, node, i) =>
      n +
      logs(node.name)
        .slice(deathsBefore[i])
        .filter((l) => l.msg === "peer silent: dead").length,
    0,
  );
  const silent = Math.max(...ips.map((x) => figures(sr, x).maxSilentMs));

  // --- cold start: all speakers killed, started together
  await Promise.all(L.nodes.map((n) => L.stopSpeaker(n.name, "SIGKILL")));
  const cw = watchArp(L, ips);
  await cw.ready;
  const spawnedAt = Date.now();
  for (const n of L.nodes) L.startSpeaker(n.name);
  await L.waitSpeakersReady(60_000);
  await waitFor(
    "every IP answered again",
    async () => (await Promise.all(ips.map(answeredBy))).every((a) => a.length === 1),
    30_000,
    100,
  );
  const cr = await cw.stop();
  const readyAt = Math.max(
    ...L.nodes.map((n) =>
      Date.parse(String(logs(n.name).find((l) => l.msg === "speaker ready")?.time)),
    ),
  );
  const servedAt = Math.max(
    ...ips.map((x) => {
      const first = (cr.answers[x] ?? []).find(([, m]) => m.length > 0);
      return first ? cr.wallStartMs + first[0] : Number.NaN;
    }),
  );
  const cold: Worst = { dualMs: 0, strandedMs: 0 };
  worst(cr, cold);

  console.log(`failover after SIGKILL of the owner's speaker: ${fmt(out.SIGKILL!)}`);
  console.log(`failover after the owner's link goes down: ${fmt(out["link down"]!)}`);
  for (const [k, v] of Object.entries(acc)) {
    console.log(
      `  ${k}: longest two-answerer window ${v.dualMs} ms, longest stranded client ${v.strandedMs} ms`,
    );
    if (v.strandedStory) console.log(`    stranded: ${v.strandedStory}`);
  }
  console.log(
    `starvation (50m share, 2-CPU hog, ${starveMs / 1000} s): ${((moves * 60_000) / starveMs).toFixed(1)} ownership changes per minute, ${deaths} peers declared dead, longest unanswered ${silent} ms`,
  );
  console.log(
    `cold start of all speakers: every IP answered ${(servedAt - readyAt).toFixed(0)} ms after the last speaker logged "speaker ready" (${(servedAt - spawnedAt).toFixed(0)} ms after the processes were started); two answerers ${cold.dualMs} ms`,
  );
}
