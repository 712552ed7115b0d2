// Loading credentials and telling API errors apart.
import { KubeClient } from "./rest.ts";

/**
 * A client for the given kubeconfig file, else $KUBECONFIG / ~/.kube/config, else the
 * in-cluster ServiceAccount (what the Helm chart's pods use).
 */
export function loadClient(path?: string): KubeClient {
  return KubeClient.load(path);
}

/** The HTTP status of an API error, if it has one. */
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
  if (e?.body && typeof e.body === "object" && "message" in e.body) {
    msg = String((e.body as { message: unknown }).message);
  }
  return typeof e?.code === "number" ? `HTTP ${e.code}: ${msg}` : msg;
}

/** An RFC 3339 string from a timestamp (a string on the wire; a Date in client-node objects). */
export function timestamp(t: Date | string | undefined): string {
  if (t === undefined) return "";
  return typeof t === "string" ? t : t.toISOString();
}
