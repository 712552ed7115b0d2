// `npm run lab:netns` (up) and `npm run lab:netns -- down`: a control plane plus a
// three-node LAN in network namespaces with kube-proxy, pods and ironlb running; a Service
// answered by a pod through real ARP and kube-proxy, a measured failover, and a second
// Service with externalTrafficPolicy Local whose pod sees the client's own address.
// The lab stays up after `up` exits; `down` removes all of it.
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  type ControlPlaneState,
  cacheRoot,
  readState,
  startControlPlane,
  stopControlPlane,
} from "../controlplane/controlplane.ts";
import { sleep, waitFor } from "../support/kube.ts";
import { LAB_FALLBACK_SUBNET, LAB_SERVICE_CIDRS, LAB_SUBNET, POOL_CIDR } from "./addresses.ts";
import { destroyStale, Lab, rootNamespaceClash, uplinkAddress } from "./lab.ts";

const PREFIX = "ilblab-";
// The fallback is for hosts that sit in the default subnet themselves: the lab must not
// shadow the host's own network (its gateway, even).
const DEFAULT_SUBNET = LAB_SUBNET;
const FALLBACK_SUBNET = LAB_FALLBACK_SUBNET;
const POOL_RANGE = "198.51.100.74-198.51.100.114";
const labDir = join(cacheRoot, "lab");
const cpDir = join(labDir, "controlplane");
const workDir = join(labDir, "work");

const say = (msg: string) => process.stdout.write(`[lab] ${msg}\n`);
const note = (msg: string) => process.stderr.write(`[lab] ${msg}\n`);

async function down(): Promise<void> {
  const removed = await destroyStale(PREFIX, true);
  const state = readState(cpDir);
  if (state) await stopControlPlane(state);
  rmSync(labDir, { recursive: true, force: true });
  say(
    removed.length > 0 || state
      ? `removed the lab (${removed.join(", ") || "no namespaces"}) and its control plane`
      : "no lab was running",
  );
}

async function chooseSubnet(): Promise<string> {
  const asked = process.env.IRONLB_LAB_SUBNET;
  if (asked) return asked;
  const clash = await rootNamespaceClash(DEFAULT_SUBNET);
  if (!clash) return DEFAULT_SUBNET;
  note(
    `this host uses ${DEFAULT_SUBNET} itself (${clash}); the lab uses ${FALLBACK_SUBNET} instead`,
  );
  return FALLBACK_SUBNET;
}

async function up(): Promise<void> {
  let state: ControlPlaneState | undefined;
  let lab: Lab | undefined;
  const cleanup = async () => {
    await lab?.destroy();
    await destroyStale(PREFIX, true);
    if (state) await stopControlPlane(state);
    rmSync(labDir, { recursive: true, force: true });
  };
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    note(`${sig}: removing what was created`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // A programming error must not leave namespaces and a control plane behind either.
  process.on("uncaughtException", (err) => {
    note(`FAILED: ${err.stack ?? err.message}`);
    void cleanup().finally(() => process.exit(1));
  });

  try {
    // A previous lab (running or crashed) is replaced.
    await destroyStale(PREFIX, true);
    const old = readState(cpDir);
    if (old) await stopControlPlane(old);
    mkdirSync(labDir, { recursive: true });

    const subnet = await chooseSubnet();
    const uplinkIP = uplinkAddress(subnet); // checks the subnet before anything starts
    state = await startControlPlane({
      dir: cpDir,
      bindAddress: "0.0.0.0",
      advertiseAddress: uplinkIP,
      detached: true,
      log: note,
      serviceCIDRs: LAB_SERVICE_CIDRS,
    });
    lab = await Lab.create({
      prefix: PREFIX,
      subnet,
      poolCIDR: POOL_CIDR,
      nodes: 3,
      kubeconfig: state.kubeconfig,
      workDir,
      binDir: state.binDir,
      log: say,
    });
    say("starting the controller and one speaker per node");
    lab.startController();
    for (const n of lab.nodes) lab.startSpeaker(n.name);
    await lab.waitSpeakersReady(60_000);

    await lab.createPool("lab-pool", [POOL_RANGE]);
    await lab.createL2Advertisement("lab");
    const svc = await lab.createService("web", { port: 80 });
    const ip = await lab.waitForIP(svc, 30_000);
    const kubectl = join(state.binDir, "kubectl");
    const kubectlArgs = ["--kubeconfig", state.kubeconfig];
    say(`Service default/web got ${ip}:`);
    process.stdout.write(
      execFileSync(kubectl, [...kubectlArgs, "get", "svc", "web", "-o", "wide"], {
        encoding: "utf8",
      }),
    );

    const answer = await waitFor(
      `an answer from ${ip}:80 at the client`,
      () => lab!.tryClientRequest(ip, 80, 500),
      15_000,
      100,
    );
    const first = answer.via;
    const n1 = await lab.clientNeighbour(ip);
    say(
      `client curl http://${ip}/ → pod ${answer.pod} on ${answer.node} answered; it saw ${answer.client} (Cluster: masqueraded by ${first}, the announcing node)`,
    );
    say(
      `client neighbour entry: ${ip} lladdr ${n1?.mac ?? "-"} ${n1?.state.join(",") ?? "(none)"} (${first}'s eth0 is ${await lab.macOf(first)})`,
    );

    const ownerMac = await lab.macOf(first);
    say(`SIGKILL to the speaker of ${first}`);
    const t0 = performance.now();
    void lab.stopSpeaker(first, "SIGKILL");
    const curlTook = (async () => {
      for (;;) {
        const who = await lab!.tryEntryNode(ip, 80, 300);
        if (who !== undefined && who !== first) return { ms: performance.now() - t0, who };
        if (performance.now() - t0 > 30_000) throw new Error("no other node answered within 30 s");
        await sleep(20);
      }
    })();
    const neighTook = (async () => {
      for (;;) {
        const n = await lab!.clientNeighbour(ip);
        if (n?.mac && n.mac !== ownerMac) return { ms: performance.now() - t0, n };
        if (performance.now() - t0 > 30_000)
          throw new Error("the neighbour entry did not change within 30 s");
        await sleep(5);
      }
    })();
    const [c, nb] = await Promise.all([curlTook, neighTook]);
    const newOwner = (await lab.nodeByMac(nb.n.mac!)) ?? "?";
    say(`failover: curl answered by ${c.who} after ${c.ms.toFixed(0)} ms`);
    say(
      `failover: client neighbour entry → ${nb.n.mac} (${newOwner}) ${nb.n.state.join(",")} after ${nb.ms.toFixed(0)} ms`,
    );
    lab.startSpeaker(first);
    say(`restarted the speaker of ${first}`);

    // externalTrafficPolicy Local: one pod, on node2; only node2 announces, no masquerade.
    const local = await lab.createService("web-local", {
      port: 8080,
      externalTrafficPolicy: "Local",
      endpoints: [lab.nodes[1]!.name],
    });
    const lip = await lab.waitForIP(local, 30_000);
    const la = await waitFor(
      `an answer from ${lip}:8080`,
      () => lab!.tryClientRequest(lip, 8080, 500),
      15_000,
      100,
    );
    say(
      `Service default/web-local (externalTrafficPolicy Local) got ${lip}: pod ${la.pod} on ${la.node} answered and saw ${la.client} (the client is ${lab.client.ip})`,
    );
    say(`the lab keeps running (logs in ${workDir})`);
    say(
      `use it: KUBECONFIG=${state.kubeconfig} ${kubectl} get svc -A   |   client: ip netns exec ${lab.client.ns} curl http://${ip}/   |   remove: npm run lab:netns -- down`,
    );
  } catch (err) {
    // An interrupted run fails as its namespaces vanish: the signal handler reports and exits.
    if (interrupted) await new Promise(() => {});
    note(`FAILED: ${(err as Error).message}`);
    note("removing everything the lab created");
    await cleanup();
    process.exit(1);
  }
}

const cmd = process.argv[2] ?? "up";
if (process.getuid?.() !== 0) {
  note("the lab creates network namespaces and needs root: run it as root");
  process.exit(1);
}
if (cmd === "down") await down();
else if (cmd === "up") await up();
else {
  note(`unknown command "${cmd}": use \`npm run lab:netns\` or \`npm run lab:netns -- down\``);
  process.exit(2);
}
// Kubernetes client sockets would keep the process alive; the lab's processes are detached.
process.exit(0);
