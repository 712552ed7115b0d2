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
import { cachedFileToken, kubeconfigPaths, loadKubeconfigs } from "./kubeconfig.ts";

// Not `import ... from "node:http"`: an ES module import of node:http reads all its exports,
// lazy ones included (WebSocket, EventSource...), which loads undici, tls, http2 and zlib:
// +13 MiB RSS in every component (bench/RESULTS.md). getBuiltinModule reads only what is used.
const { Agent: HttpAgent, request: httpRequest } = process.getBuiltinModule("node:http");

export { fromKubeconfig } from "./kubeconfig.ts";

/** An error answer of the API server: `code` is the HTTP status, `body` the Status object. */
export class ApiError extends Error {
  readonly code: number;
  readonly body: unknown;
  constructor(code: number, body: unknown, message: string) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.body = body;
  }
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

/** TCP keepalive probes on watch connections start after this much idle time. */
const WATCH_KEEPALIVE_MS = 30_000;
const REQUEST_TIMEOUT_MS = 30_000;

/** JSON over HTTPS (or HTTP, e.g. kubectl proxy) with connection reuse; one instance per process. */
export class KubeClient {
  readonly config: ApiConfig;
  readonly #agent: Agent;
  readonly #watchAgent: Agent;
  readonly #url: URL;
  readonly #request: typeof httpRequest;
  readonly #fence: WriteFence | undefined;
  /** Informers started on this client report here, so health checks can see all of them. */
  readonly watches: Set<WatchHealth>;
  readonly watchSettings: WatchSettings;
  /** When (performance.now()) the API server last answered anything: health checks use it. */
  get lastAnswerAt(): number {
    return this.#answers.at;
  }
  readonly #answers: { at: number };

  /** `shared` and `fence` are fenced()'s: a view sharing connections, guarding writes. */
  constructor(config: ApiConfig, shared?: KubeClient, fence?: WriteFence) {
    this.config = config;
    this.#url = new URL(config.server);
    this.#fence = fence;
    if (shared) {
      this.#agent = shared.#agent;
      this.#watchAgent = shared.#watchAgent;
      this.#request = shared.#request;
      this.watches = shared.watches;
      this.watchSettings = shared.watchSettings;
      this.#answers = shared.#answers;
      return;
    }
    this.watches = new Set();
    this.#answers = { at: Number.NEGATIVE_INFINITY };
    this.watchSettings = { silenceTimeoutMs: 180_000 };
    if (this.#url.protocol === "http:") {
      this.#request = httpRequest;
      this.#agent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
      this.#watchAgent = new HttpAgent({ keepAlive: false });
      return;
    }
    const tls = {
      ca: config.ca,
      cert: config.cert,
      key: config.key,
      rejectUnauthorized: !config.insecureSkipTLSVerify,
    };
    this.#request = httpsRequest as unknown as typeof httpRequest;
    this.#agent = new HttpsAgent({ ...tls, keepAlive: true, maxSockets: 64 });
    // Watches hold their connection for minutes: a pool of their own, so they never
    // take the sockets that short requests queue for.
    this.#watchAgent = new HttpsAgent({ ...tls, keepAlive: false });
  }

  /**
   * A view of this client (same connections, watches and settings) whose writes pass the
   * fence: refused when it says so, aborted when it closes.
   */
  fenced(fence: WriteFence): KubeClient {
    return new KubeClient(this.config, this, fence);
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

  /** One request; resolves with the parsed JSON body, rejects with ApiError on >= 400. */
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
        agent: this.#agent,
        timeout: REQUEST_TIMEOUT_MS,
        signal,
      };
      const req = this.#request(this.#target(path, opts.query), options, (res) => {
        readBody(res).then((body) => {
          this.#answered();
          const status = res.statusCode ?? 0;
          if (status >= 400) reject(apiError(status, body, `${method} ${path}`));
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
    const req = this.#request(
      this.#target(path, { ...query, watch: true, allowWatchBookmarks: true }),
      { method: "GET", headers, agent: this.#watchAgent },
      (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          readBody(res).then(
            (body) => finish(apiError(res.statusCode ?? 0, body, `watch ${path}`)),
            (err: Error) => finish(err),
          );
          return;
        }
        this.#answered();
        if (!done) onOpen?.();
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          let nl = buf.indexOf("\n");
          while (nl >= 0 && !done) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            nl = buf.indexOf("\n");
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
              finish(new Error(`watch ${path}: malformed event`));
              return;
            }
            if (ev.type === "ERROR") {
              const st = ev.object as { code?: number; message?: string };
              req.destroy();
              finish(new ApiError(st.code ?? 500, st, `watch ${path}: ${st.message ?? "error"}`));
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
    this.#answers.at = performance.now();
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

/** A response body: parsed JSON, the text when it is not JSON (a proxy's error page), or undefined. */
function readBody(res: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("error", reject);
    res.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      if (text === "") return resolve(undefined);
      try {
        resolve(JSON.parse(text));
      } catch {
        resolve(text);
      }
    });
  });
}

/** An ApiError carrying the server's own message (a Status object's), when it sent one. */
function apiError(status: number, body: unknown, what: string): ApiError {
  const msg =
    (body as { message?: string } | undefined)?.message ??
    (typeof body === "string" ? body.slice(0, 200) : "");
  return new ApiError(status, body, `${what}: HTTP ${status}: ${msg}`);
}
