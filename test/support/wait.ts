// Waiting in tests and labs, without dependencies (plain Node, vitest or not): poll for a
// condition with a deadline, or pause where there is nothing to wait for.

/**
 * Polls `fn` until it returns a value other than undefined/false, or fails with `what`
 * after `timeoutMs`. An exception counts as "not yet"; the last one is in the failure.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
      lastErr = undefined; // only an error of the latest attempts explains the timeout
    } catch (err) {
      lastErr = err;
    }
    await sleep(intervalMs);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? ` (last error: ${String((lastErr as Error).message ?? lastErr)})` : ""}`,
  );
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
