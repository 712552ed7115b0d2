// The key that authenticates the speakers' UDP heartbeats, kept by the controller: created
// once with random bytes when missing, never changed afterwards. Made at run time rather
// than by the chart, so that rendering the chart (`helm template` in GitOps tools, which
// cannot `lookup`) gives the same manifests every time and upgrades never rotate it. The
// speakers mount the Secret; the kubelet retries the mount until the Secret exists.
import { randomBytes } from "node:crypto";
import { MIN_HEARTBEAT_KEY_BYTES, secretsPath } from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import type { Logger } from "../observability/log.ts";

export interface HeartbeatSecretRef {
  namespace: string;
  name: string;
  /** The data key the speakers read (a file of that name in their mount). */
  key: string;
}

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
  const path = secretsPath(encodeURIComponent(ref.namespace));
  const check = (s: SecretObject): HeartbeatSecretResult => {
    const b64 = s.data?.[ref.key];
    if (b64 === undefined) return { outcome: "invalid", reason: `it has no key "${ref.key}"` };
    const bytes = Buffer.from(b64, "base64").length;
    if (bytes < MIN_HEARTBEAT_KEY_BYTES)
      return {
        outcome: "invalid",
        reason: `its key "${ref.key}" has ${bytes} bytes, speakers need at least ${MIN_HEARTBEAT_KEY_BYTES}`,
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
 * Ensures the Secret in the background: retries API errors with a capped backoff until the
 * first success (`done`), then checks again every `recheckMs`, so a Secret deleted later (by
 * a user rotating the key, or by `helm upgrade` from a chart version that rendered it) comes
 * back. Every replica does this (not only the leader), so the speakers get their key even
 * while the leader election is undecided; creating is idempotent (409 is success).
 */
export function keepHeartbeatSecret(
  api: KubeClient,
  ref: HeartbeatSecretRef,
  log: Logger,
  opts: { retryMs?: number; maxRetryMs?: number; recheckMs?: number } = {},
): { done: Promise<HeartbeatSecretResult>; stop(): void } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const secret = `${ref.namespace}/${ref.name}`;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
      timer.unref();
    });
  let first: ((r: HeartbeatSecretResult) => void) | undefined;
  let failed: ((err: unknown) => void) | undefined;
  const done = new Promise<HeartbeatSecretResult>((resolve, reject) => {
    first = resolve;
    failed = reject;
  });
  // The caller may never await it; a rejection after stop() is expected.
  done.catch(() => {});
  const minDelay = opts.retryMs ?? 1000;
  let last: string | undefined;
  void (async () => {
    let delay = minDelay;
    while (!stopped) {
      try {
        const r = await ensureHeartbeatSecret(api, ref);
        const summary = r.outcome === "invalid" ? `invalid: ${r.reason}` : r.outcome;
        // Log what changed, not every periodic check.
        if (summary !== last) {
          if (r.outcome === "invalid")
            log.error(
              { secret, reason: r.reason },
              "heartbeat Secret is unusable and left unchanged: fix or delete it",
            );
          else log.info({ secret, outcome: r.outcome }, "heartbeat Secret ready");
        }
        last = r.outcome === "created" ? "exists" : summary;
        first?.(r);
        first = undefined;
        delay = minDelay;
        await pause(opts.recheckMs ?? 30_000);
      } catch (err) {
        if (stopped) break;
        log.warn(
          { secret, err: describeError(err), retryMs: delay },
          "cannot ensure heartbeat Secret",
        );
        await pause(delay);
        delay = Math.min(delay * 2, opts.maxRetryMs ?? 30_000);
      }
    }
    failed?.(new Error("stopped"));
  })();
  return {
    done,
    stop() {
      stopped = true;
      clearTimeout(timer);
      wake?.();
    },
  };
}
