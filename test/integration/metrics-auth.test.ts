// /metrics behind the API server's authentication and authorisation (issue 16: the
// speaker serves on the node's network, reachable from the LAN). Against the real
// apiserver (RBAC): a real controller process with --metrics-auth kubernetes, and
// ServiceAccount tokens issued by the apiserver's TokenRequest API.
import { RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type Component,
  clients,
  createNamespace,
  healthPortOf,
  startController,
  waitFor,
} from "../support/cluster.ts";

describe("--metrics-auth kubernetes", () => {
  let ctrl: Component;
  let url: string;
  const { kc } = clients();
  const rbac = () => kc.makeApiClient(RbacAuthorizationV1Api);
  const tokens: Record<string, string> = {};
  const role = `ironlb-metrics-reader-${process.pid}`;

  beforeAll(async () => {
    const ns = await createNamespace("metrics");
    const { core } = clients();
    for (const name of ["prometheus", "stranger"]) {
      await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
      const tr = await core.createNamespacedServiceAccountToken({
        name,
        namespace: ns,
        body: { spec: { audiences: [], expirationSeconds: 600 } },
      });
      tokens[name] = tr.status?.token ?? "";
    }
    await rbac().createClusterRole({
      body: {
        metadata: { name: role },
        rules: [{ nonResourceURLs: ["/metrics"], verbs: ["get"] }],
      },
    });
    await rbac().createClusterRoleBinding({
      body: {
        metadata: { name: role },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
        subjects: [{ kind: "ServiceAccount", name: "prometheus", namespace: ns }],
      },
    });
    ctrl = startController(["--no-leader-elect", "--metrics-auth", "kubernetes"]);
    const port = await healthPortOf(ctrl);
    url = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await ctrl?.stop();
    await rbac()
      .deleteClusterRoleBinding({ name: role })
      .catch(() => undefined);
    await rbac()
      .deleteClusterRole({ name: role })
      .catch(() => undefined);
  });

  const get = async (path: string, token?: string) => {
    const res = await fetch(`${url}${path}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: res.status, text: await res.text() };
  };

  it("serves a token allowed to get /metrics, and refuses everyone else", async () => {
    const ok = await get("/metrics", tokens.prometheus);
    expect(ok.status).toBe(200);
    expect(ok.text).toContain("# TYPE ");
    const none = await get("/metrics");
    expect(none.status).toBe(401);
    const forged = await get("/metrics", `${tokens.prometheus!.slice(0, -4)}AAAA`);
    expect(forged.status).toBe(401);
    expect(forged.text).toMatch(/^the token is not valid/);
    const stranger = await get("/metrics", tokens.stranger);
    expect(stranger.status).toBe(403);
    expect(stranger.text).toContain(":stranger may not get /metrics");
    // The kubelet's probes carry no token and must keep working.
    expect((await get("/healthz")).status).toBe(200);
    // Each refusal reason is logged once (the log reaches its file after the answer).
    const refused = await waitFor("the three refusals logged", async () => {
      const lines = ctrl.logs().filter((l) => l.msg === "metrics request refused");
      return lines.length >= 3 ? lines : undefined;
    });
    expect(refused.map((l) => l.status).sort()).toEqual([401, 401, 403]);
  });
});
