// A small Kubernetes REST client for the running components. client-node's generated API
// layer loads every API group and model of Kubernetes at start-up (about 120 MiB of
// resident memory before the first request) and deserializes every response through a
// type map; the controller and the speaker need a dozen calls. So they talk JSON over
// keep-alive HTTPS themselves and use client-node for types only (import type: erased).
import { readFileSync } from "node:fs";
import type { Agent, IncomingMessage, RequestOptions } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { type Clock, monotonicClock } from "./clock.ts";
import { cachedFileToken, kubeconfigPaths, loadKubeconfigs } from "./kubeconfig.ts";
import { TokenBucket } from "./rate-limit.ts";

// Not `import ... from "node:http"`: an ES module import of node:http reads all its exports,
// lazy ones included (WebSocket, EventSource...), which loads undici, tls, http2 and zlib:
// +13 MiB RSS in every component (bench/RESULTS.md). getBuiltinModule reads only what is used.
const { Agent: HttpAgent, request: httpRequest } = process.getBuiltinModule("node:http");

export { fromKubeconfig } from "./kubeconfig.ts";

/** An error answer of the API server: `code` is the HTTP status, `body` the Status object. */
export class ApiError extends Error {
  readonly code: number;
  readonly body: unknown;
  /** The server's Retry-After (a 429), in milliseconds, bounded; undefined without one. */
  readonly retryAfterMs: number | undefined;
  constructor(code: number, body: unknown, message: string, retryAfterMs?: number) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.body = body;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * A response (or one watch event) larger than the client accepts: nothing the components
 * read is that big, and reading it whole could run the process out of memory.
 */
export class ResponseTooLargeError extends Error {
  readonly limitBytes: number;
  constructor(what: string, limitBytes: number) {
    super(`${what}: the answer is larger than the ${formatBytes(limitBytes)} cap; not read`);
    this.name = "ResponseTooLargeError";
    this.limitBytes = limitBytes;
  }
}

function formatBytes(n: number): string {
  return n % (1 << 20) === 0 ? `${n / (1 << 20)} MiB` : `${n} bytes`;
}

/** Where and how to reach the API server. */
export interface ApiConfig {
  server: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Bearer token; a function so that rotated ServiceAccount tokens are picked up. */
  token?: () => string | undefined;
  insecureSkipTLSVerify?: boolean;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** A watch event. */
export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

/** A running watch; abort() ends it (onDone is then not called). */
export interface WatchHandle {
  abort(): void;
}

export type Query = Record<string, string | number | boolean | undefined>;

/** Options of one request. */
export interface RequestOpts {
  query?: Query;
  body?: unknown;
  contentType?: string;
  /** Aborts the request (e.g. a lease renewal past its deadline). */
  signal?: AbortSignal;
  /** A lower cap on this answer than the client's (list pages: see list.ts). */
  maxBodyBytes?: number;
}

/**
 * Guards writes: a leader-elected component passes its elector, so that once it may no
 * longer lead no write leaves the process and writes in flight are cut off.
 */
export interface WriteFence {
  /** Throws when writes are not allowed now; else a signal that aborts when they stop being. */
  writeSignal(): AbortSignal;
}

/** How informers built on this client watch (the components set these from flags). */
export interface WatchSettings {
  /**
   * A watch that brings no event and no bookmark for this long is restarted; the API
   * server sends a bookmark about every minute (measured with 1.36: the first after two
   * minutes, then every 60 s), so the default is three minutes; a needless restart is cheap
   * (a re-watch from the last version, no re-list).
   */
  silenceTimeoutMs: number;
}

/** Limits of one client and the views made from it (the components set them from flags). */
export interface ClientOptions {
  /**
   * Requests a second on average, client-side (a token bucket; 0: none). Lease requests
   * do not wait for tokens: they are periodic by construction, and a renewal queued
   * behind a burst of other writes would cost a leadership or a node's membership.
   */
  qps?: number;
  /** Requests at once beyond the average. */
  burst?: number;
  /** Largest response body, and longest watch event, read (bytes). */
  maxBodyBytes?: number;
  /** Default: the process's monotonic clock and timers (waits for tokens and Retry-After). */
  clock?: Clock;
}

/** TCP keepalive probes on watch connections start after this much idle time. */
const WATCH_KEEPALIVE_MS = 30_000;
const REQUEST_TIMEOUT_MS = 30_000;
/**
 * Default cap on a response body. One object is at most etcd's request limit (1.5 MiB by
 * default) and lists are read in pages of at most 2 MiB (list.ts), so this refuses only
 * what no component needs, while bounding what one read can cost.
 */
export const DEFAULT_MAX_BODY_BYTES = 16 << 20;
/** A 429 is retried this many times, waiting as the server says, before it is an error. */
const MAX_429_RETRIES = 5;
/** Retry-After is obeyed up to this (a server asking for more is retried sooner anyway). */
const MAX_RETRY_AFTER_MS = 10_000;
/** Retry-After missing or unreadable on a 429. */
const DEFAULT_RETRY_AFTER_MS = 1_000;
/** Requests that do not wait for tokens (see ClientOptions.qps). */
const UNTHROTTLED = "/apis/coordination.k8s.io/";

/** What a client shares with its fenced views. */
interface Shared {
  agent: Agent;
  watchAgent: Agent;
  request: typeof httpRequest;
  watches: Set<WatchHealth>;
  watchSettings: WatchSettings;
  answers: { at: number };
  clock: Clock;
  bucket: TokenBucket;
  maxBodyBytes: number;
  stats: ClientStats;
}

/** Counters of a client (and its views), for metrics. */
export interface ClientStats {
  /** 429 answers received (each retried or, past the retries, an error). */
  throttledByServer: number;
  /** Exceptions thrown by informer handlers and transforms, contained. */
  informerErrors: number;
}

/** JSON over HTTPS (or HTTP, e.g. kubectl proxy) with connection reuse; one instance per process. */
export class KubeClient {
  readonly config: ApiConfig;
  readonly #url: URL;
  readonly #s: Shared;
  readonly #fence: WriteFence | undefined;
  /** Informers started on this client report here, so health checks can see all of them. */
  get watches(): Set<WatchHealth> {
    return this.#s.watches;
  }
  get watchSettings(): WatchSettings {
    return this.#s.watchSettings;
  }
  get stats(): ClientStats {
    return this.#s.stats;
  }
  /** When (performance.now()) the API server last answered anything: health checks use it. */
  get lastAnswerAt(): number {
    return this.#s.answers.at;
  }

  /** `view` is fenced()'s: a view sharing that client's state, guarding writes with the fence. */
  constructor(
    config: ApiConfig,
    opts: ClientOptions = {},
    view?: { of: KubeClient; fence: WriteFence },
  ) {
    this.config = config;
    this.#url = new URL(config.server);
    this.#fence = view?.fence;
    if (view) {
      this.#s = view.of.#s;
      return;
    }
    const clock = opts.clock ?? monotonicClock;
    const common = {
      watches: new Set<WatchHealth>(),
      watchSettings: { silenceTimeoutMs: 180_000 },
      answers: { at: Number.NEGATIVE_INFINITY },
      clock,
      bucket: new TokenBucket(opts.qps ?? 0, opts.burst ?? 1, clock),
      maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      stats: { throttledByServer: 0, informerErrors: 0 },
    };
    if (this.#url.protocol === "http:") {
      this.#s = {
        ...common,
        request: httpRequest,
        agent: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
        watchAgent: new HttpAgent({ keepAlive: false }),
      };
      return;
    }
    const tls = {
      ca: config.ca,
      cert: config.cert,
      key: config.key,
      rejectUnauthorized: !config.insecureSkipTLSVerify,
    };
    this.#s = {
      ...common,
      request: httpsRequest as unknown as typeof httpRequest,
      agent: new HttpsAgent({ ...tls, keepAlive: true, maxSockets: 64 }),
      // Watches hold their connection for minutes: a pool of their own, so they never
      // take the sockets that short requests queue for.
      watchAgent: new HttpsAgent({ ...tls, keepAlive: false }),
    };
  }

  /** Sets the client-side rate limit (ClientOptions.qps/burst) of this client and its views. */
  setRateLimit(qps: number, burst: number): void {
    this.#s.bucket = new TokenBucket(qps, burst, this.#s.clock);
  }

  /**
   * A view of this client (same connections, watches and settings) whose writes pass the
   * fence: refused when it says so, aborted when it closes.
   */
  fenced(fence: WriteFence): KubeClient {
    return new KubeClient(this.config, {}, { of: this, fence });
  }

  /**
   * From a kubeconfig (the given path, else every file in $KUBECONFIG merged as kubectl
   * does, else ~/.kube/config) or, in a pod, the ServiceAccount. Certificates, keys and
   * tokens may be inline or files; exec and auth-provider plugins are not supported (run
   * in the cluster, or use a token/cert).
   */
  static load(path?: string): KubeClient {
    if (path) {
      const cfg = loadKubeconfigs([path]);
      if (!cfg) throw new Error(`cannot read kubeconfig ${path}: no such file`);
      return new KubeClient(cfg);
    }
    const listed = kubeconfigPaths(process.env.KUBECONFIG);
    const files = listed.length > 0 ? listed : [join(homedir(), ".kube/config")];
    const cfg = loadKubeconfigs(files);
    if (cfg) return new KubeClient(cfg);
    const host = process.env.KUBERNETES_SERVICE_HOST;
    const port = process.env.KUBERNETES_SERVICE_PORT ?? "443";
    if (!host)
      throw new Error(
        `no kubeconfig at ${files.join(":")} and not running in a pod (KUBERNETES_SERVICE_HOST unset)`,
      );
    return new KubeClient({
      server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
      ca: readFileSync(join(SA_DIR, "ca.crt")),
      token: cachedFileToken(join(SA_DIR, "token")),
    });
  }

  /**
   * One request; resolves with the parsed JSON body, rejects with ApiError on >= 400. It
   * first waits for a token of the client's rate limit; a 429 is retried after the
   * server's Retry-After (bounded), a few times, before it is an error.
   */
  async request<T>(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    path: string,
    opts: RequestOpts = {},
  ): Promise<T> {
    const signals = opts.signal ? [opts.signal] : [];
    if (method !== "GET" && this.#fence) signals.push(this.#fence.writeSignal());
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    signal?.throwIfAborted();
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    for (let attempt = 0; ; attempt++) {
      if (!path.startsWith(UNTHROTTLED)) await this.#s.bucket.take(signal);
      try {
        return await this.#once<T>(method, path, opts, payload, signal);
      } catch (err) {
        if (!(err instanceof ApiError) || err.code !== 429) throw err;
        this.#s.stats.throttledByServer++;
        if (attempt >= MAX_429_RETRIES) throw err;
        await this.#sleep(err.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS, signal);
      }
    }
  }

  #once<T>(
    method: string,
    path: string,
    opts: RequestOpts,
    payload: Buffer | undefined,
    signal: AbortSignal | undefined,
  ): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (payload) {
      headers["content-type"] = opts.contentType ?? "application/json";
      headers["content-length"] = String(payload.length);
    }
    this.#auth(headers);
    return new Promise<T>((resolve, reject) => {
      const options: RequestOptions = {
        method,
        headers,
        agent: this.#s.agent,
        timeout: REQUEST_TIMEOUT_MS,
        signal,
      };
      const req = this.#s.request(this.#target(path, opts.query), options, (res) => {
        const cap = Math.min(this.#s.maxBodyBytes, opts.maxBodyBytes ?? Number.POSITIVE_INFINITY);
        readBody(res, cap, `${method} ${path}`).then((body) => {
          this.#answered();
          const status = res.statusCode ?? 0;
          if (status >= 400) reject(apiError(status, body, `${method} ${path}`, res));
          else resolve(body as T);
        }, reject);
      });
      req.on("timeout", () =>
        req.destroy(
          new Error(`${method} ${path}: no answer within ${REQUEST_TIMEOUT_MS / 1000} s`),
        ),
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  /** Waits on the client's clock; an abort of `signal` ends the wait with its reason. */
  #sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
    const clock = this.#s.clock;
    return new Promise<void>((resolve, reject) => {
      signal?.throwIfAborted();
      const onAbort = () => {
        clock.clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = clock.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
    return this.request<T>("GET", path, { query, signal });
  }
  create<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.request<T>("POST", path, { body, signal });
  }
  replace<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.request<T>("PUT", path, { body, signal });
  }
  /** A JSON merge patch (RFC 7386): null removes a field. */
  mergePatch<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    return this.request<T>("PATCH", path, {
      body,
      contentType: "application/merge-patch+json",
      signal,
    });
  }
  delete<T>(path: string, signal?: AbortSignal): Promise<T> {
    return this.request<T>("DELETE", path, { signal });
  }

  /**
   * Watches a collection from `resourceVersion` (with bookmarks); events arrive one by one
   * as the server streams them. onOpen is called when the server has accepted the watch.
   * onDone is called once, with an error unless the server ended the watch normally (it
   * does when `timeoutSeconds` pass; the caller re-watches); never after abort().
   * The connection has TCP keepalive, so a peer that vanished is noticed by the kernel;
   * a peer that is there but silent is the caller's to notice (see Informer).
   */
  watch<T>(
    path: string,
    query: Query,
    onEvent: (ev: WatchEvent<T>) => void,
    onDone: (err?: Error) => void,
    onOpen?: () => void,
  ): WatchHandle {
    const headers: Record<string, string> = { accept: "application/json" };
    this.#auth(headers);
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      onDone(err);
    };
    const what = `watch ${path}`;
    const limit = this.#s.maxBodyBytes;
    const req = this.#s.request(
      this.#target(path, { ...query, watch: true, allowWatchBookmarks: true }),
      { method: "GET", headers, agent: this.#s.watchAgent },
      (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          readBody(res, limit, what).then(
            (body) => finish(apiError(res.statusCode ?? 0, body, what, res)),
            (err: Error) => finish(err),
          );
          return;
        }
        this.#answered();
        if (!done) onOpen?.();
        // Lines are split on the byte 0x0A (never part of a multi-byte UTF-8 character);
        // the line not yet complete is kept as buffers and may not outgrow the cap.
        let pending: Buffer[] = [];
        let pendingBytes = 0;
        res.on("data", (chunk: Buffer) => {
          let from = 0;
          while (!done) {
            const nl = chunk.indexOf(10, from);
            if (nl < 0) {
              const rest = chunk.subarray(from);
              pendingBytes += rest.length;
              if (pendingBytes > limit) {
                req.destroy();
                finish(new ResponseTooLargeError(`${what}: an event`, limit));
                return;
              }
              if (rest.length > 0) pending.push(rest);
              return;
            }
            const part = chunk.subarray(from, nl);
            from = nl + 1;
            if (pendingBytes + part.length > limit) {
              req.destroy();
              finish(new ResponseTooLargeError(`${what}: an event`, limit));
              return;
            }
            const line =
              pending.length === 0
                ? part.toString("utf8")
                : Buffer.concat([...pending, part]).toString("utf8");
            pending = [];
            pendingBytes = 0;
            if (line.trim() === "") continue;
            let ev: WatchEvent<T> | undefined;
            try {
              ev = JSON.parse(line) as WatchEvent<T>;
            } catch {
              ev = undefined;
            }
            // Valid JSON can still be no event (a proxy's `null`, a truncated object): the
            // handlers read ev.object's metadata, and a throw here would crash the process.
            if (
              typeof ev?.type !== "string" ||
              typeof ev.object !== "object" ||
              ev.object === null
            ) {
              req.destroy();
              finish(new Error(`${what}: malformed event`));
              return;
            }
            if (ev.type === "ERROR") {
              const st = ev.object as { code?: number; message?: string };
              req.destroy();
              finish(new ApiError(st.code ?? 500, st, `${what}: ${st.message ?? "error"}`));
              return;
            }
            this.#answered();
            onEvent(ev);
          }
        });
        res.on("end", () => finish());
        res.on("error", (err) => finish(err));
        res.on("close", () => finish());
      },
    );
    req.on("socket", (socket) => socket.setKeepAlive(true, WATCH_KEEPALIVE_MS));
    req.on("error", (err) => finish(err));
    req.end();
    return {
      abort() {
        done = true;
        req.destroy();
      },
    };
  }

  #target(path: string, query?: Query): URL {
    const url = new URL(path, this.#url);
    for (const [k, v] of Object.entries(query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  #answered(): void {
    this.#s.answers.at = performance.now();
  }

  #auth(headers: Record<string, string>): void {
    const token = this.config.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
  }
}

/** What an informer tells health checks about itself. */
export interface WatchHealth {
  readonly what: string;
  /** Why this watch is not making progress, or undefined when it is. */
  stalled(): string | undefined;
}

/**
 * Problems of the watches started on a client: empty when every one makes progress.
 * With `onlyWhileApiAnswersMs`, stalled watches count only if the API server answered
 * something (a request, another watch) within that time: a component that keeps working
 * from its cache through an API outage (the speaker) should not be restarted for an
 * outage a restart cannot cure, but should be for a watch stuck while the API is fine.
 */
export function stalledWatches(
  client: KubeClient,
  opts: { onlyWhileApiAnswersMs?: number; now?: number } = {},
): string[] {
  const { onlyWhileApiAnswersMs, now = performance.now() } = opts;
  if (onlyWhileApiAnswersMs !== undefined && now - client.lastAnswerAt > onlyWhileApiAnswersMs)
    return [];
  const out: string[] = [];
  for (const w of client.watches) {
    const why = w.stalled();
    if (why) out.push(why);
  }
  return out;
}

/**
 * A response body: parsed JSON, the text when it is not JSON (a proxy's error page), or
 * undefined. One larger than `limit` bytes is not read: the connection is dropped and the
 * promise rejects with ResponseTooLargeError.
 */
function readBody(res: IncomingMessage, limit: number, what: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => {
      res.destroy();
      reject(new ResponseTooLargeError(what, limit));
    };
    if (Number(res.headers["content-length"]) > limit) return tooLarge();
    // Decoded as it comes: the text is then the only whole copy of the body (no buffer
    // of it as well), which matters for pages of large objects.
    const decoder = new StringDecoder("utf8");
    let text = "";
    let bytes = 0;
    res.on("data", (c: Buffer) => {
      bytes += c.length;
      if (bytes > limit) return tooLarge();
      text += decoder.write(c);
    });
    res.on("error", reject);
    res.on("end", () => {
      text += decoder.end();
      if (text === "") return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        resolve(text);
      }
    });
  });
}

/**
 * An ApiError carrying the server's own message (a Status object's), when it sent one, and
 * for a 429 the wait its Retry-After asks for.
 */
function apiError(status: number, body: unknown, what: string, res: IncomingMessage): ApiError {
  const msg =
    (body as { message?: string } | undefined)?.message ??
    (typeof body === "string" ? body.slice(0, 200) : "");
  const retryAfter = status === 429 ? retryAfterMs(res.headers["retry-after"]) : undefined;
  return new ApiError(status, body, `${what}: HTTP ${status}: ${msg}`, retryAfter);
}

/**
 * Retry-After in milliseconds, bounded to [0, MAX_RETRY_AFTER_MS]: delay-seconds (what the
 * API server sends) or an HTTP date; the default when missing or unreadable.
 */
export function retryAfterMs(header: string | undefined, now = Date.now()): number {
  if (header === undefined) return DEFAULT_RETRY_AFTER_MS;
  const text = header.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return DEFAULT_RETRY_AFTER_MS;
    ms = at - now;
  }
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, ms));
}
