// Loading credentials and telling API errors apart.
import { KubeConfig } from "@kubernetes/client-node";

/**
 * Loads a kubeconfig: the given file, else $KUBECONFIG / ~/.kube/config, else the
 * in-cluster ServiceAccount (what the Helm chart's pods use).
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return reuseConnections(kc);
}

/**
 * Makes every API call of this KubeConfig share one connection pool. client-node 2.0
 * builds a new undici Agent, and so a new TLS connection, for every request: at a few
 * hundred requests per second that costs most of the CPU and hundreds of MiB of memory.
 * The method is private in its typings, hence the cast; if a later client-node renames
 * it, this does nothing and calls still work, only slower.
 */
export function reuseConnections(kc: KubeConfig): KubeConfig {
  const target = kc as unknown as {
    createDispatcher?: (cluster: unknown, opts: unknown) => unknown;
  };
  const original = target.createDispatcher;
  if (typeof original !== "function") return kc;
  const cache = new Map<string, unknown>();
  target.createDispatcher = (cluster: unknown, opts: unknown) => {
    const c = cluster as { name?: string; server?: string } | null;
    const key = JSON.stringify([c?.name, c?.server, kc.getCurrentUser()?.name]);
    if (!cache.has(key)) cache.set(key, original.call(kc, cluster, opts));
    return cache.get(key);
  };
  return kc;
}

/** The HTTP status of an error thrown by @kubernetes/client-node, if it has one. */
export function httpStatus(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e?.code === "number") return e.code;
  if (typeof e?.statusCode === "number") return e.statusCode;
  return undefined;
}

/** A short, log-friendly description of an API error (status and the server's message). */
export function describeError(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string };
  let msg = e?.message ?? String(err);
  if (typeof e?.body === "string") {
    try {
      const body = JSON.parse(e.body) as { message?: string };
      if (body.message) msg = body.message;
    } catch {
      // not JSON: keep the client's message
    }
  } else if (e?.body && typeof e.body === "object" && "message" in e.body) {
    msg = String((e.body as { message: unknown }).message);
  }
  return e?.code ? `HTTP ${e.code}: ${msg}` : msg;
}

/** An RFC 3339 string from a timestamp as client-node gives it (Date from lists, string from watches). */
export function timestamp(t: Date | string | undefined): string {
  if (t === undefined) return "";
  return typeof t === "string" ? t : t.toISOString();
}
