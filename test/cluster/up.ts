// From nothing to "IP reached": the Kubernetes binaries and images, the cluster, ironlb by
// `helm install`, the echo Deployment and its two LoadBalancer Services answered at the
// LAN client. What `npm run lab`, the cluster e2e test and the cluster benchmark share.
// With `bgp`, also BGP mode: the router and its routed client (router.ts), the chart's BGP
// values, and both IPs answered at the routed client as well.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBinaries } from "../controlplane/controlplane.ts";
import { RealCluster } from "./cluster.ts";
import { buildLabImages, ironlbImage } from "./images.ts";
import {
  CLUSTER_SVC,
  createPool,
  deployEcho,
  installIronlb,
  LOCAL_SVC,
  waitAnswer,
  waitExternalIP,
} from "./ironlb.ts";
import { bgpValues, LabRouter } from "./router.ts";

export interface UpOptions {
  /** Folder of the cluster's state and logs (replaced). */
  dir: string;
  /** Folder of the Kubernetes binaries (default: build.sh's, built when missing). */
  binDir?: string;
  log: (msg: string) => void;
  /** BGP mode too: a router peered with the nodes, and a client behind it. */
  bgp?: boolean;
  /** Chart values for `helm install` (`--set`), e.g. READINESS_VALUES. */
  values?: string[];
}

export interface LabUp {
  cluster: RealCluster;
  /** External IPs of the echo Services (externalTrafficPolicy Cluster and Local). */
  ipCluster: string;
  ipLocal: string;
  image: { archive: string; ref: string; tag: string };
  /** With `bgp`: the router (its routes, its routed client). */
  router?: LabRouter;
  /** With `bgp`: the values file `helm install` was given. */
  bgpValuesFile?: string;
  /** Milliseconds from the call to: nodes Ready, ironlb and echo Ready, both IPs answered. */
  ms: { nodesReady: number; installed: number; ipReached: number };
}

export async function upWithIronlb(opts: UpOptions): Promise<LabUp> {
  const t0 = performance.now();
  const [binDir, images, image] = await Promise.all([
    opts.binDir ?? ensureBinaries(opts.log),
    buildLabImages(opts.log),
    ironlbImage(opts.log),
  ]);
  const cluster = await RealCluster.create({
    dir: opts.dir,
    binDir,
    nodes: 3,
    // ironlb's image too, before the kubelets start: imported while they register, the
    // import competed with them for the two cores and finished later (measured).
    images: [images.pause, images.echo, image.archive],
    log: opts.log,
  });
  try {
    const nodesReady = performance.now() - t0;
    let router: LabRouter | undefined;
    let bgpValuesFile: string | undefined;
    if (opts.bgp) {
      router = await LabRouter.create(cluster);
      bgpValuesFile = join(opts.dir, "values-bgp.yaml");
      writeFileSync(bgpValuesFile, bgpValues());
    }
    await Promise.all([
      (async () => {
        await installIronlb(
          cluster,
          image,
          opts.values ?? [],
          false,
          bgpValuesFile ? [bgpValuesFile] : [],
        );
        await createPool(cluster);
      })(),
      deployEcho(cluster),
    ]);
    const installed = performance.now() - t0;
    const ipCluster = await waitExternalIP(cluster, CLUSTER_SVC);
    const ipLocal = await waitExternalIP(cluster, LOCAL_SVC);
    // A finished rollout is not yet a synced kube-proxy: the first answer is the proof.
    await Promise.all([
      waitAnswer(cluster, ipLocal),
      waitAnswer(cluster, ipCluster),
      router?.waitAnswer(ipLocal),
      router?.waitAnswer(ipCluster),
    ]);
    const ipReached = performance.now() - t0;
    return {
      cluster,
      ipCluster,
      ipLocal,
      image,
      ...(router ? { router } : {}),
      ...(bgpValuesFile ? { bgpValuesFile } : {}),
      ms: { nodesReady, installed, ipReached },
    };
  } catch (err) {
    await cluster.destroy();
    throw err;
  }
}
