// Telling API errors apart, and timestamps as they come from the API.

/** The HTTP status of an API error, if it has one. */
export function httpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

/** A short, log-friendly description of an API error (status and the server's message). */
export function describeError(err: unknown): string {
  const e = err as { code?: number; body?: unknown; message?: string } | undefined;
  const serverMsg = (e?.body as { message?: unknown } | undefined)?.message;
  // ApiError's own message already names the status; the server's message is shorter.
  if (typeof e?.code === "number" && typeof serverMsg === "string")
    return `HTTP ${e.code}: ${serverMsg}`;
  return e?.message ?? String(err);
}

/** An RFC 3339 string from a timestamp (a string on the wire; a Date in client-node objects). */
export function timestamp(t: Date | string | undefined): string {
  if (t === undefined) return "";
  return typeof t === "string" ? t : t.toISOString();
}
