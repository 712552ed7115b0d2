// Starts one real control plane per test run for the integration and e2e tiers, and
// removes it afterwards (vitest calls the returned teardown also when tests fail).
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
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
  // e2e: processes in the lab's network namespaces reach the apiserver on the lab uplink.
  const e2e = project.name === "e2e";
  const state = await startControlPlane({
    dir,
    bindAddress: e2e ? "0.0.0.0" : "127.0.0.1",
    advertiseAddress: e2e ? (process.env.IRONLB_LAB_UPLINK_IP ?? "192.0.2.1") : "127.0.0.1",
  });
  project.provide("kubeconfig", state.kubeconfig);
  project.provide("binDir", state.binDir);
  project.provide("server", state.server);
  return async () => {
    await stopControlPlane(state);
  };
}
