// `npm run lab` (up) and `npm run lab -- down`: a real Kubernetes cluster on this machine
// (control plane, three kubelet nodes in network namespaces, kube-proxy, bridge CNI), ironlb
// installed by its Helm chart, an echo Deployment behind two LoadBalancer Services reached
// from a LAN client through real ARP, and measured failovers; then BGP mode: a router (FRR)
// peered with the three nodes, the same Services reached from a client behind it over one
// next hop per node, and a failover seen from the router. The cluster stays up after `up`
// exits; `down` removes all of it.
import { join } from "node:path";
import { cacheRoot } from "../controlplane/controlplane.ts";
import {
  CLIENT_IP,
  LAN_CIDR,
  NODE_ASN,
  POD_CIDR,
  POOL_CIDR,
  ROUTED_CIDR,
  ROUTED_CLIENT_IP,
  ROUTER_ASN,
  ROUTER_IP,
  SERVICE_CIDR_V4,
} from "./addresses.ts";
import { destroyCluster, type RealCluster, ROUTER_DIR } from "./cluster.ts";
import {
  APP_NAMESPACE,
  announcingNode,
  CLUSTER_SVC,
  clientEcho,
  deleteSpeakerPod,
  LOCAL_SVC,
  loseNode,
  NAMESPACE,
  sample,
  timeFailover,
  waitAnswer,
  waitSpeakersReady,
} from "./ironlb.ts";
import { type LabRouter, ROUTED_CLIENT_NS, ROUTER_NS, waitSessionsEstablished } from "./router.ts";
import { upWithIronlb } from "./up.ts";

const labDir = join(cacheRoot, "cluster-lab");
const t0 = performance.now();
const secs = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const say = (msg: string) => process.stdout.write(`[lab] ${msg}\n`);
/** A command's output, indented under the line that names it. */
const show = (text: string) =>
  process.stdout.write(
    `${text
      .trimEnd()
      .split("\n")
      .map((l) => `      ${l.trimEnd()}`)
      .join("\n")}\n`,
  );
const note = (msg: string) => process.stderr.write(`[lab] ${msg}\n`);

async function up(): Promise<void> {
  let cluster: RealCluster | undefined;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    note(`${sig}: removing what was created`);
    void destroyCluster(note).finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    const up = await upWithIronlb({ dir: labDir, log: note, bgp: true });
    cluster = up.cluster;
    const c = cluster;
    const { ipCluster, ipLocal } = up;
    const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    say(
      `3 nodes Ready at ${sec(up.ms.nodesReady)}; ironlb installed by helm (${up.image.ref}) and echo pods Running at ${sec(up.ms.installed)}; IPs reached at ${sec(up.ms.ipReached)}:`,
    );
    process.stdout.write(
      await c.kubectl(["get", "svc", "-n", APP_NAMESPACE, CLUSTER_SVC, LOCAL_SVC, "-o", "wide"]),
    );
    const first = await waitAnswer(c, ipLocal);
    const owner = (await announcingNode(c, LOCAL_SVC)) ?? first.node;
    say(
      `client ${CLIENT_IP} → http://${ipCluster}/ (externalTrafficPolicy: Cluster, masqueraded):`,
    );
    for (const a of await sample(c, ipCluster, 6))
      say(`  answered by ${a.pod} on ${a.node}, client address seen: ${a.client}`);
    say(
      `client ${CLIENT_IP} → http://${ipLocal}/ (externalTrafficPolicy: Local, announced by ${owner}):`,
    );
    for (const a of await sample(c, ipLocal, 3))
      say(`  answered by ${a.pod} on ${a.node}, client address seen: ${a.client}`);
    const n = await c.clientNeighbour(ipLocal);
    const byMac = n?.mac ? await c.nodeByMac(n.mac) : undefined;
    say(
      `client neighbour entry: ${ipLocal} lladdr ${n?.mac ?? "-"} ${n?.state.join(",") ?? "(none)"} (${byMac ?? "?"}'s eth0)`,
    );

    say("failover 1: delete the announcing node's speaker pod (kubectl delete pod)");
    const f1 = await timeFailover(c, ipLocal, (node) => deleteSpeakerPod(c, node));
    say(
      `  ${f1.from} → ${f1.to}: the client was answered by ${f1.to} after ${f1.ms.toFixed(0)} ms`,
    );
    await waitSpeakersReady(c);
    say("failover 2: node loss (SIGKILL to the announcing node's kubelet and speaker)");
    const f2 = await timeFailover(c, ipLocal, (node) => loseNode(c, node));
    say(
      `  ${f2.from} → ${f2.to}: the client was answered by ${f2.to} after ${f2.ms.toFixed(0)} ms`,
    );
    c.startKubelet(f2.from);
    await c.waitNodesReady(60_000);
    await waitSpeakersReady(c);
    const after = await clientEcho(c, ipLocal);
    say(
      `${f2.from}'s kubelet restarted, all speakers Ready; ${ipLocal} now answered by ${after?.node ?? "nobody"} (${secs()})`,
    );
    await showBgp(c, up.router!, ipCluster, ipLocal, up.bgpValuesFile!);
    const kubectl = `KUBECONFIG=${c.kubeconfig} ${c.kubectlBin}`;
    say("the cluster keeps running. Try:");
    say(`  ${kubectl} get nodes,pods -A -o wide`);
    say(`  ${kubectl} -n ${NAMESPACE} logs ds/ironlb-speaker`);
    say(`  ${kubectl} get bgpsessionstates -o wide`);
    say(`  nsenter --net=/run/netns/${c.client.ns} curl http://${ipLocal}/     (the LAN client)`);
    say(
      `  nsenter --net=/run/netns/${ROUTED_CLIENT_NS} curl http://${ipLocal}/     (the routed client)`,
    );
    say(`  vtysh --vty_socket ${ROUTER_DIR} -c 'show bgp summary'     (the router)`);
    say(
      `  addresses: LAN ${LAN_CIDR} (uplink ${c.nodes.length > 0 ? "198.51.100.1" : ""}, router ${ROUTER_IP}), pods ${POD_CIDR}, ClusterIPs ${SERVICE_CIDR_V4}, pool ${POOL_CIDR}, routed client ${ROUTED_CLIENT_IP} in ${ROUTED_CIDR}; logs in ${c.logsDir}`,
    );
    say("  remove it: npm run lab -- down");
  } catch (err) {
    if (interrupted) await new Promise(() => {});
    note(`FAILED: ${(err as Error).message}`);
    if (cluster) note(`logs were in ${cluster.logsDir}; removing everything the lab created`);
    await destroyCluster(note);
    process.exit(1);
  }
}

/** The BGP part: sessions, the router's ECMP route, the routed client, a failover. */
async function showBgp(
  c: RealCluster,
  router: LabRouter,
  ipCluster: string,
  ipLocal: string,
  valuesFile: string,
): Promise<void> {
  const nodeIPs = c.nodes.map((n) => n.ip);
  say(
    `BGP mode: router ${ROUTER_NS} (FRR, AS ${ROUTER_ASN}, ${ROUTER_IP} on the LAN) peers with the ${c.nodes.length} nodes (AS ${NODE_ASN}); the BGPPeer and BGPAdvertisement came with helm install -f ${valuesFile}. Client ${ROUTED_CLIENT_IP} sits behind the router, not on the LAN.`,
  );
  // After the node loss above, that node's session may still be coming back.
  await router.waitEstablished();
  await router.waitNextHops(ipCluster, nodeIPs, 60_000);
  await waitSessionsEstablished(c);
  say("kubectl get bgpsessionstates (one per node and peer, written by each node's speaker):");
  show(await c.kubectl(["get", "bgpsessionstates"]));
  say(
    `the router's route to ${ipCluster}, one next hop per node (vtysh -c 'show ip route ${ipCluster}'):`,
  );
  show(await router.showRoute(ipCluster));
  say(`and in the router's kernel (ip route show ${ipCluster}):`);
  show(await router.kernelRouteText(ipCluster));
  say(
    `routed client ${ROUTED_CLIENT_IP} → http://${ipCluster}/ (externalTrafficPolicy: Cluster), through the router:`,
  );
  for (const a of await router.sample(ipCluster, 3))
    say(`  answered by ${a.pod} on ${a.node}, client address seen: ${a.client}`);
  const n = 30;
  const spread = async () => {
    const answers = await router.sample(ipLocal, n);
    const by = new Map<string, number>();
    for (const a of answers) by.set(a.node, (by.get(a.node) ?? 0) + 1);
    const counts = [...by]
      .sort()
      .map(([node, k]) => `${node} ${k}`)
      .join(", ");
    const own = answers.every((a) => a.client === ROUTED_CLIENT_IP);
    return `${answers.length}/${n} answered: ${counts}${own ? `; every pod saw the client's own address ${ROUTED_CLIENT_IP}` : ""}`;
  };
  say(
    `routed client → http://${ipLocal}/ (externalTrafficPolicy: Local: each node sends to its own pod, so the pod's node is the one the router chose), ${n} connections; the router hashes on ports too (fib_multipath_hash_policy=1 in its namespace):`,
  );
  say(`  ${await spread()}`);
  const first = await router.waitAnswer(ipLocal);
  say(
    `BGP failover: delete ${first.node}'s speaker pod (it ends its session with a Cease NOTIFICATION)`,
  );
  const gone = c.node(first.node).ip;
  const ceaseRe = new RegExp(`NOTIFICATION: received from neighbor ${gone} `);
  const ceasesBefore = router.logLines(ceaseRe).length;
  const f = await router.failover(ipLocal, first.node, spread);
  say(
    `  the router withdrew ${gone} ${f.withdrawnMs.toFixed(0)} ms after kubectl delete; next hops now ${f.during.join(", ")}`,
  );
  for (const l of router.logLines(ceaseRe).slice(ceasesBefore))
    say(`  the router's log: ${l.replace(/^.*?%/, "%")}`);
  say(`  meanwhile, routed client → http://${ipLocal}/, ${n} connections: ${f.whileGone}`);
  say(
    `  ${f.node}'s new speaker pod established its session: next hop ${c.node(f.node).ip} back ${(f.backMs / 1000).toFixed(1)} s after the delete (${secs()})`,
  );
  say(`the router's kernel route now:`);
  show(await router.kernelRouteText(ipLocal));
}

const cmd = process.argv[2] ?? "up";
if (process.getuid?.() !== 0) {
  note("the lab creates network namespaces and cgroups and needs root: run it as root");
  process.exit(1);
}
if (cmd === "down") {
  if (!(await destroyCluster(say))) say("no lab was running");
} else if (cmd === "up") await up();
else {
  note(`unknown command "${cmd}": use \`npm run lab\` or \`npm run lab -- down\``);
  process.exit(2);
}
process.exit(0);
