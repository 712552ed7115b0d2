// The control plane of the benchmarks that build a netns lab (speaker, dataplane): refused
// when the lab's subnet is in use on this host, reachable from the node namespaces at the
// uplink address, in a temporary folder that stop() removes with it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ControlPlaneState,
  startControlPlane,
  stopControlPlane,
} from "../test/controlplane/controlplane.ts";
import { LAB_SERVICE_CIDRS } from "../test/lab/addresses.ts";
import { rootNamespaceClash, uplinkAddress } from "../test/lab/lab.ts";

export interface BenchControlPlane {
  /** The benchmark's temporary folder (the control plane lives in its `cp`). */
  dir: string;
  state: ControlPlaneState;
  stop(): Promise<void>;
}

export async function startLabControlPlane(
  subnet: string,
  name: string,
): Promise<BenchControlPlane> {
  const clash = await rootNamespaceClash(subnet);
  if (clash) throw new Error(`${subnet} is in use on this host (${clash}); set BENCH_SUBNET`);
  const dir = mkdtempSync(join(tmpdir(), `ironlb-bench-${name}-`));
  const state = await startControlPlane({
    dir: join(dir, "cp"),
    bindAddress: "0.0.0.0",
    advertiseAddress: uplinkAddress(subnet),
    log: () => {},
    serviceCIDRs: LAB_SERVICE_CIDRS,
  });
  return {
    dir,
    state,
    async stop() {
      await stopControlPlane(state);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
