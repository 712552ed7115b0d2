// Real-cluster figures (test/cluster: kubelet nodes in network namespaces, kube-proxy,
// ironlb installed by helm from its image), as a LAN client lives them:
//   - warm start: from nothing running (binaries and images cached) to both echo Services'
//     IPs answered at the client, BENCH_CLUSTER_STARTS runs (default 3);
//   - failover after `kubectl delete pod` of the announcing node's speaker, and after a node
//     loss (SIGKILL to its kubelet and speaker): time until a pod on another node answers
//     the client (externalTrafficPolicy: Local, so only the announcing node's pod answers),
//     BENCH_CLUSTER_DELETES (default 10) and BENCH_CLUSTER_LOSSES (default 5) runs.
// Needs root; run it alone (flock /tmp/ironlb-netlab.lock npm run bench -- cluster).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster } from "../test/cluster/cluster.ts";
import { buildLabImages, ironlbImage } from "../test/cluster/images.ts";
import {
  announcingNode,
  deleteSpeakerPod,
  LOCAL_SVC,
  loseNode,
  NAMESPACE,
  speakerPod,
  timeFailover,
  waitAnswer,
  waitSpeakersReady,
} from "../test/cluster/ironlb.ts";
import { type LabUp, upWithIronlb } from "../test/cluster/up.ts";
import { ensureBinaries } from "../test/controlplane/controlplane.ts";
import { waitFor } from "../test/support/kube.ts";
import { percentile } from "./stats.ts";

const STARTS = Math.max(1, Number(process.env.BENCH_CLUSTER_STARTS ?? 3));
const DELETES = Math.max(1, Number(process.env.BENCH_CLUSTER_DELETES ?? 10));
const LOSSES = Math.max(1, Number(process.env.BENCH_CLUSTER_LOSSES ?? 5));
const quiet = () => {};
const fmt = (xs: number[], unit = "ms", scale = 1) =>
  `p50 ${(percentile(xs, 50) / scale).toFixed(unit === "s" ? 1 : 0)} ${unit}, p99 ${(percentile(xs, 99) / scale).toFixed(unit === "s" ? 1 : 0)} ${unit} (n=${xs.length}: ${xs.map((x) => (x / scale).toFixed(unit === "s" ? 1 : 0)).join(", ")})`;

if (process.getuid?.() !== 0) throw new Error("the cluster benchmark needs root");
const dir = mkdtempSync(join(tmpdir(), "ironlb-bench-cluster-"));
try {
  // Warm: binaries and images built before any timing.
  const [binDir] = await Promise.all([
    ensureBinaries(quiet),
    buildLabImages(quiet),
    ironlbImage(quiet),
  ]);
  const starts: number[] = [];
  let up: LabUp | undefined;
  for (let i = 0; i < STARTS; i++) {
    if (up) await up.cluster.destroy();
    up = await upWithIronlb({ dir: join(dir, "cluster"), binDir, log: quiet });
    starts.push(up.ms.ipReached);
    console.log(
      `start ${i + 1}: nodes Ready ${(up.ms.nodesReady / 1000).toFixed(1)} s, ironlb + echo Ready ${(up.ms.installed / 1000).toFixed(1)} s, IPs reached ${(up.ms.ipReached / 1000).toFixed(1)} s`,
    );
  }
  console.log(`warm start to "IP reached": ${fmt(starts, "s", 1000)}`);
  const c = up!.cluster;
  const ip = up!.ipLocal;
  // Settled: every speaker Ready, and the node that answers is the one ironlb records as
  // announcing (a returning speaker may still be taking its IPs back). When that does not
  // happen within 20 s (the client is served by a node that no longer announces), the run
  // goes on from the answering node and the mismatch is counted.
  let mismatches = 0;
  const settle = async () => {
    await waitSpeakersReady(c);
    try {
      await waitFor(
        "the answering node to be the announcing one",
        async () => (await waitAnswer(c, ip)).node === (await announcingNode(c, LOCAL_SVC)),
        20_000,
        200,
      );
    } catch {
      mismatches++;
    }
  };

  const deletes: number[] = [];
  for (let i = 0; i < DELETES; i++) {
    await settle();
    const f = await timeFailover(c, ip, (node) => deleteSpeakerPod(c, node));
    deletes.push(f.ms);
  }
  console.log(`failover after the speaker pod is deleted: ${fmt(deletes)}`);

  const losses: number[] = [];
  for (let i = 0; i < LOSSES; i++) {
    await settle();
    const f = await timeFailover(c, ip, (node) => loseNode(c, node));
    losses.push(f.ms);
    // Back to three healthy nodes. A fresh speaker pod, not a restart of the killed
    // container: restarts back off (10 s, 20 s, ...) across runs.
    c.startKubelet(f.from);
    await c.waitNodesReady(90_000);
    const pod = await speakerPod(c, f.from);
    await c.kubectl(["delete", "pod", "-n", NAMESPACE, pod, "--wait=false"]);
  }
  console.log(`failover after a node loss (kubelet and speaker SIGKILLed): ${fmt(losses)}`);
  console.log(
    `runs that started with the client served by a node other than the announcing one: ${mismatches} of ${DELETES + LOSSES}`,
  );
} finally {
  await destroyCluster(quiet);
}
