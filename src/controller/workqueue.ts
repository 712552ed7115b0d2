// A keyed work queue: a key is processed by one worker at a time, a key added while it is
// being processed runs again afterwards, and failures come back with exponential backoff.
// This is what keeps reconciles of one Service ordered while many Services run in parallel.

/** Processes keys with bounded concurrency. */
export class WorkQueue {
  readonly #handler: (key: string) => Promise<void>;
  readonly #concurrency: number;
  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #active = new Set<string>();
  /** Keys added again while active: re-queued when their current run ends. */
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #onError: (key: string, err: unknown) => void;
  #running = 0;
  #paused = true;
  #idleWaiters: (() => void)[] = [];

  constructor(
    handler: (key: string) => Promise<void>,
    concurrency: number,
    onError: (key: string, err: unknown) => void,
  ) {
    this.#handler = handler;
    this.#concurrency = concurrency;
    this.#onError = onError;
  }

  /** Adds a key (no-op if it is already waiting). */
  add(key: string): void {
    if (this.#active.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#pump();
  }

  /** Adds a key after a backoff that doubles with each consecutive failure (100 ms .. 30 s). */
  retry(key: string): void {
    const n = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, n);
    const delay = Math.min(100 * 2 ** (n - 1), 30_000);
    clearTimeout(this.#timers.get(key));
    const t = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delay);
    t.unref();
    this.#timers.set(key, t);
  }

  /** Clears the failure count of a key after it succeeded. */
  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Starts (or resumes) processing. The queue starts paused so that start-up can fill it first. */
  start(): void {
    this.#paused = false;
    this.#pump();
  }

  /** Stops taking new work; running handlers finish. */
  pause(): void {
    this.#paused = true;
  }

  get length(): number {
    return this.#queue.length + this.#active.size;
  }

  /** Resolves when nothing is queued or running (used by tests and benchmarks). */
  idle(): Promise<void> {
    if (this.length === 0) return Promise.resolve();
    return new Promise((r) => this.#idleWaiters.push(r));
  }

  #pump(): void {
    while (!this.#paused && this.#running < this.#concurrency && this.#queue.length > 0) {
      const key = this.#queue.shift()!;
      this.#queued.delete(key);
      this.#active.add(key);
      this.#running++;
      this.#handler(key)
        .catch((err: unknown) => this.#onError(key, err))
        .finally(() => {
          this.#active.delete(key);
          this.#running--;
          if (this.#dirty.delete(key)) this.add(key);
          this.#pump();
          if (this.length === 0) for (const w of this.#idleWaiters.splice(0)) w();
        });
    }
  }
}
