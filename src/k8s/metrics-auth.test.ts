import { describe, expect, it } from "vitest";
import type { KubeClient } from "./client.ts";
import { ApiError } from "./client.ts";
import { kubeMetricsAuthorizer } from "./metrics-auth.ts";

/** A fake API answering TokenReviews from `users` and SubjectAccessReviews from `allowed`. */
function fakeApi(users: Record<string, string>, allowed: Set<string>) {
  const calls: { path: string; body: unknown }[] = [];
  let down = false;
  const api = {
    async request(_method: string, path: string, opts: { body?: unknown }) {
      calls.push({ path, body: opts.body });
      if (down) throw new ApiError(503, {}, "the server is unavailable");
      const spec = (opts.body as { spec: Record<string, unknown> }).spec;
      if (path.endsWith("/tokenreviews")) {
        const user = users[spec.token as string];
        return {
          status: user
            ? { authenticated: true, user: { username: user, groups: ["g"] } }
            : { authenticated: false, error: "invalid bearer token" },
        };
      }
      return { status: { allowed: allowed.has(spec.user as string) } };
    },
  };
  return {
    api: api as unknown as KubeClient,
    calls,
    setDown(v: boolean) {
      down = v;
    },
  };
}

describe("kubeMetricsAuthorizer", () => {
  it("asks for a bearer token, checks it, then checks get on /metrics for its user", async () => {
    const f = fakeApi(
      { good: "system:serviceaccount:mon:prom", nobody: "alice" },
      new Set(["system:serviceaccount:mon:prom"]),
    );
    const auth = kubeMetricsAuthorizer(f.api);
    expect(await auth(undefined)).toMatchObject({ allowed: false, status: 401 });
    expect(await auth("Basic Zm9vOmJhcg==")).toMatchObject({ allowed: false, status: 401 });
    expect(f.calls).toHaveLength(0);
    expect(await auth("Bearer bad")).toEqual({
      allowed: false,
      status: 401,
      reason: "the token is not valid: invalid bearer token",
    });
    expect(await auth("Bearer nobody")).toMatchObject({ allowed: false, status: 403 });
    expect(await auth("Bearer good")).toEqual({
      allowed: true,
      user: "system:serviceaccount:mon:prom",
    });
    const sar = f.calls.at(-1)!;
    expect(sar.path).toBe("/apis/authorization.k8s.io/v1/subjectaccessreviews");
    expect(sar.body).toMatchObject({
      spec: {
        user: "system:serviceaccount:mon:prom",
        groups: ["g"],
        nonResourceAttributes: { path: "/metrics", verb: "get" },
      },
    });
  });

  it("reuses an answer for a while, and never caches an API failure", async () => {
    let t = 0;
    const f = fakeApi({ good: "prom" }, new Set(["prom"]));
    const auth = kubeMetricsAuthorizer(f.api, { cacheMs: 1000, now: () => t });
    await auth("Bearer good");
    await auth("Bearer good");
    expect(f.calls).toHaveLength(2); // one TokenReview, one SubjectAccessReview
    t = 1500;
    f.setDown(true);
    expect(await auth("Bearer good")).toMatchObject({ allowed: false, status: 503 });
    f.setDown(false);
    expect(await auth("Bearer good")).toMatchObject({ allowed: true });
    expect(f.calls).toHaveLength(5);
  });

  it("remembers a bounded number of tokens", async () => {
    const f = fakeApi({}, new Set());
    const auth = kubeMetricsAuthorizer(f.api, { maxCached: 2 });
    for (const t of ["a", "b", "c"]) await auth(`Bearer ${t}`);
    const before = f.calls.length;
    await auth("Bearer c"); // cached
    expect(f.calls.length).toBe(before);
    await auth("Bearer a"); // evicted: asked again
    expect(f.calls.length).toBe(before + 1);
  });
});
