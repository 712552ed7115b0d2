// The test control plane itself: the pinned version, TLS with client certificates, RBAC on,
// and ServiceAccount tokens that authenticate (what the chart's pods rely on).
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { KubeClient } from "../../src/k8s/client.ts";
import { freePort, startControlPlane, stopControlPlane } from "../controlplane/controlplane.ts";
import { clients, createNamespace } from "../support/cluster.ts";

describe("test control plane", () => {
  const admin = KubeClient.load(inject("kubeconfig"));

  it("reports the pinned Kubernetes version, not v0.0.0-master", async () => {
    const v = await admin.get<{ gitVersion: string; major: string; minor: string }>("/version");
    expect(v.gitVersion).toBe("v1.36.3");
    expect(`${v.major}.${v.minor}`).toBe("1.36");
  });

  it("rejects clients without a certificate or token", async () => {
    const anonymous = new KubeClient({ server: admin.config.server, ca: admin.config.ca });
    await expect(anonymous.get("/api/v1/namespaces")).rejects.toMatchObject({ code: 401 });
  });

  it("authenticates ServiceAccount tokens and authorizes them with RBAC", async () => {
    const ns = await createNamespace("cp");
    const { core } = clients();
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: "probe" } },
    });
    const tr = await core.createNamespacedServiceAccountToken({
      name: "probe",
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const token = tr.status?.token;
    expect(token).toBeTruthy();
    const sa = new KubeClient({
      server: admin.config.server,
      ca: admin.config.ca,
      token: () => token,
    });
    // Authenticated (not 401), but RBAC grants a fresh ServiceAccount nothing.
    await expect(sa.get(`/api/v1/namespaces/${ns}/services`)).rejects.toMatchObject({ code: 403 });
    const review = await sa.create<{ status: { userInfo: { username: string } } }>(
      "/apis/authentication.k8s.io/v1/selfsubjectreviews",
      { apiVersion: "authentication.k8s.io/v1", kind: "SelfSubjectReview" },
    );
    expect(review.status.userInfo.username).toBe(`system:serviceaccount:${ns}:probe`);
    expect(readFileSync(inject("kubeconfig"), "utf8")).toContain("client-certificate-data");
  });

  it("starts etcd and the apiserver again on other ports when theirs are taken", async () => {
    // A port someone else holds, handed out as if it were free: first to etcd, then (after
    // etcd's second try took two ports) to the apiserver.
    const holder: Server = createServer();
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const taken = (holder.address() as { port: number }).port;
    let calls = 0;
    const pickPort = async () => {
      calls++;
      return calls === 1 || calls === 5 ? taken : freePort();
    };
    const messages: string[] = [];
    const dir = mkdtempSync(join(tmpdir(), "ironlb-cp-ports-"));
    try {
      const state = await startControlPlane({ dir, pickPort, log: (m) => messages.push(m) });
      try {
        expect(state.port).not.toBe(taken);
        const client = KubeClient.load(state.kubeconfig);
        const v = await client.get<{ gitVersion: string }>("/version");
        expect(v.gitVersion).toBe("v1.36.3");
      } finally {
        await stopControlPlane(state);
      }
    } finally {
      holder.close();
    }
    expect(messages.filter((m) => m.includes("lost its port"))).toEqual([
      "etcd lost its port to another process (attempt 1); starting it on other ports",
      "kube-apiserver lost its port to another process (attempt 1); starting it on other ports",
    ]);
  });
});
