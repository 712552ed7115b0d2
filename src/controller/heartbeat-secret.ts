// The key that authenticates the speakers' UDP heartbeats, kept by the controller: created
// once with random bytes when missing, never changed afterwards. Made at run time rather
// than by the chart, so that rendering the chart (`helm template` in GitOps tools, which
// cannot `lookup`) gives the same manifests every time and upgrades never rotate it. The
// speakers mount the Secret; the kubelet retries the mount until the Secret exists.
import { randomBytes } from "node:crypto";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import type { Logger } from "../observability/log.ts";

export interface HeartbeatSecretRef {
  namespace: string;
  name: string;
  /** The data key the speakers read (a file of that name in their mount). */
  key: string;
}

/** The speakers refuse keys shorter than this (src/speaker/main.ts). */
export const MIN_KEY_BYTES = 16;

export type HeartbeatSecretResult =
  | { outcome: "created" | "exists" }
  /** The Secret exists but its key is missing or short: left alone (it may be the user's). */
  | { outcome: "invalid"; reason: string };

interface SecretObject {
  metadata?: { name?: string };
  data?: Record<string, string>;
}

/** A new key: 32 random bytes as 43 printable characters (no trailing newline to trim). */
export function newHeartbeatKey(): string {
  return randomBytes(32).toString("base64url");
}

/** Creates the Secret if it does not exist; an existing one is checked, never changed. */
export async function ensureHeartbeatSecret(
  api: KubeClient,
  ref: HeartbeatSecretRef,
): Promise<HeartbeatSecretResult> {
  const path = `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets`;
  const check = (s: SecretObject): HeartbeatSecretResult => {
    const b64 = s.data?.[ref.key];
    if (b64 === undefined) return { outcome: "invalid", reason: `it has no key "${ref.key}"` };
    const bytes = Buffer.from(b64, "base64").length;
    if (bytes < MIN_KEY_BYTES)
      return {
        outcome: "invalid",
        reason: `its key "${ref.key}" has ${bytes} bytes, speakers need at least ${MIN_KEY_BYTES}`,
      };
    return { outcome: "exists" };
  };
  try {
    return check(await api.get<SecretObject>(`${path}/${encodeURIComponent(ref.name)}`));
  } catch (err) {
    if (httpStatus(err) !== 404) throw err;
  }
  try {
    await api.create(path, {
      apiVersion: "v1",
      kind: "Secret",
      metadata: {
        name: ref.name,
        namespace: ref.namespace,
        labels: {
          "app.kubernetes.io/part-of": "ironlb",
          "app.kubernetes.io/component": "speaker",
          "app.kubernetes.io/managed-by": "ironlb-controller",
        },
      },
      type: "Opaque",
      data: { [ref.key]: Buffer.from(newHeartbeatKey()).toString("base64") },
    });
    return { outcome: "created" };
  } catch (err) {
    // Another replica made it first: the same outcome for the speakers.
    if (httpStatus(err) !== 409) throw err;
    return check(await api.get<SecretObject>(`${path}/${encodeURIComponent(ref.name)}`));
  }
}

/**
 * Ensures the Secret in the background until it succeeds once, retrying API errors with a
 * capped backoff; logs the outcome. Every replica does this at start (not only the leader),
 * so the speakers get their key even while the leader election is still undecided.
 */
export function keepHeartbeatSecret(
  api: KubeClient,
  ref: HeartbeatSecretRef,
  log: Logger,
  opts: { retryMs?: number; maxRetryMs?: number } = {},
): { done: Promise<HeartbeatSecretResult>; stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const secret = `${ref.namespace}/${ref.name}`;
  const done = (async () => {
    let delay = opts.retryMs ?? 1000;
    for (;;) {
      try {
        const r = await ensureHeartbeatSecret(api, ref);
        if (r.outcome === "invalid")
          log.error(
            { secret, reason: r.reason },
            "heartbeat Secret is unusable and left unchanged: fix or delete it",
          );
        else log.info({ secret, outcome: r.outcome }, "heartbeat Secret ready");
        return r;
      } catch (err) {
        if (stopped) throw err;
        log.warn(
          { secret, err: describeError(err), retryMs: delay },
          "cannot ensure heartbeat Secret",
        );
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, delay);
      });
      if (stopped) throw new Error("stopped");
      delay = Math.min(delay * 2, opts.maxRetryMs ?? 30_000);
    }
  })();
  // The caller may never await it; a rejection after stop() is expected.
  done.catch(() => {});
  return {
    done,
    stop() {
      stopped = true;
      clearTimeout(timer);
      wake?.();
    },
  };
}
