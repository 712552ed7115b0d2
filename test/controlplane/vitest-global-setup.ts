// Starts one real control plane per test run for the integration and e2e tiers, and
// removes it afterwards (vitest calls the returned teardown also when tests fail).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { E2E_UPLINK_IP, LAB_SERVICE_CIDRS } from "../lab/addresses.ts";
import { startControlPlane, stopControlPlane } from "./controlplane.ts";

declare module "vitest" {
  export interface ProvidedContext {
    /** Path of an admin kubeconfig for the test control plane. */
    kubeconfig: string;
    /** Folder with the pinned kube-apiserver, etcd, kubectl and helm binaries. */
    binDir: string;
    /** The apiserver URL. */
    server: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), `ironlb-cp-${project.name}-`));
  // e2e: processes in the lab's network namespaces reach the apiserver on the lab uplink,
  // whose address the serving certificate must name (test/lab/addresses.ts).
  const e2e = project.name === "e2e";
  const state = await startControlPlane({
    dir,
    bindAddress: e2e ? "0.0.0.0" : "127.0.0.1",
    advertiseAddress: e2e ? E2E_UPLINK_IP : "127.0.0.1",
    // e2e: kube-proxy runs in the lab's node namespaces and programs these ClusterIPs.
    ...(e2e ? { serviceCIDRs: LAB_SERVICE_CIDRS } : {}),
  });
  project.provide("kubeconfig", state.kubeconfig);
  project.provide("binDir", state.binDir);
  project.provide("server", state.server);
  return async () => {
    await stopControlPlane(state);
  };
}
