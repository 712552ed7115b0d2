// Who may read /metrics: a bearer token that the API server authenticates (TokenReview) and
// authorises for `get` on the non-resource URL /metrics (SubjectAccessReview), as
// controller-runtime's secure metrics and kube-rbac-proxy do. The speaker serves on the
// node's network, where anything on the LAN can reach it: its metrics name Services, IPs
// and peers, and rendering them costs CPU.
import { createHash } from "node:crypto";
import type { KubeClient } from "./client.ts";
import { describeError } from "./errors.ts";

export type MetricsAuthResult =
  | { allowed: true; user: string }
  | { allowed: false; status: 401 | 403 | 503; reason: string };

/** Decides one request from its Authorization header. */
export type MetricsAuthorizer = (authorization: string | undefined) => Promise<MetricsAuthResult>;

export interface MetricsAuthOptions {
  /** How long an answer is reused for the same token (a scrape every 15–60 s: one review). */
  cacheMs?: number;
  /** Tokens remembered at most (a flood of made-up tokens must not grow the cache). */
  maxCached?: number;
  /** Monotonic milliseconds; injected by tests. */
  now?: () => number;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

/**
 * An authorizer backed by the API server. Answers, denials included, are cached per token
 * (by its SHA-256) for `cacheMs`; API errors are not cached and answer 503, so that a
 * scrape during an API outage fails visibly instead of being let through.
 */
export function kubeMetricsAuthorizer(
  api: KubeClient,
  opts: MetricsAuthOptions = {},
): MetricsAuthorizer {
  const cacheMs = opts.cacheMs ?? 60_000;
  const maxCached = opts.maxCached ?? 256;
  const now = opts.now ?? (() => performance.now());
  const cache = new Map<string, { at: number; result: MetricsAuthResult }>();

  return async (authorization) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
    if (!m) return { allowed: false, status: 401, reason: "a bearer token is required" };
    const token = m[1]!;
    const key = createHash("sha256").update(token).digest("base64");
    const hit = cache.get(key);
    const t = now();
    if (hit && t - hit.at < cacheMs) return hit.result;
    let result: MetricsAuthResult;
    try {
      result = await review(api, token);
    } catch (err) {
      return {
        allowed: false,
        status: 503,
        reason: `cannot check the token with the API server: ${describeError(err)}`,
      };
    }
    cache.delete(key);
    if (cache.size >= maxCached) cache.delete(cache.keys().next().value!);
    cache.set(key, { at: t, result });
    return result;
  };
}

async function review(api: KubeClient, token: string): Promise<MetricsAuthResult> {
  const tr = await api.request<{ status?: TokenReviewStatus }>(
    "POST",
    "/apis/authentication.k8s.io/v1/tokenreviews",
    { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } } },
  );
  const st = tr.status;
  if (!st?.authenticated || !st.user?.username) {
    return {
      allowed: false,
      status: 401,
      reason: `the token is not valid${st?.error ? `: ${st.error}` : ""}`,
    };
  }
  const user = st.user;
  const sar = await api.request<{ status?: { allowed?: boolean; reason?: string } }>(
    "POST",
    "/apis/authorization.k8s.io/v1/subjectaccessreviews",
    {
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: user.username,
          ...(user.uid ? { uid: user.uid } : {}),
          groups: user.groups ?? [],
          ...(user.extra ? { extra: user.extra } : {}),
          nonResourceAttributes: { path: "/metrics", verb: "get" },
        },
      },
    },
  );
  if (sar.status?.allowed) return { allowed: true, user: user.username! };
  return {
    allowed: false,
    status: 403,
    reason: `${user.username} may not get /metrics${sar.status?.reason ? `: ${sar.status.reason}` : ""}`,
  };
}
