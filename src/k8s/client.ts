// A small Kubernetes REST client for the running components. client-node's generated API
// layer loads every API group and model of Kubernetes at start-up (about 120 MiB of
// resident memory before the first request) and deserializes every response through a
// type map; the controller and the speaker need a dozen calls. So they talk JSON over
// keep-alive HTTPS themselves and use client-node for types only (import type: erased).
import { readFileSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { Agent, request } from "node:https";
import { homedir } from "node:os";
import { join } from "node:path";
import { load as loadYaml } from "js-yaml";

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

/** A running watch; abort() ends it (onDone is then called with no error). */
export interface WatchHandle {
  abort(): void;
}

export type Query = Record<string, string | number | boolean | undefined>;

/** JSON over HTTPS with connection reuse; one instance per process. */
export class KubeClient {
  readonly config: ApiConfig;
  readonly #agent: Agent;
  readonly #watchAgent: Agent;
  readonly #url: URL;

  constructor(config: ApiConfig) {
    this.config = config;
    this.#url = new URL(config.server);
    const tls = {
      ca: config.ca,
      cert: config.cert,
      key: config.key,
      rejectUnauthorized: !config.insecureSkipTLSVerify,
    };
    this.#agent = new Agent({ ...tls, keepAlive: true, maxSockets: 64 });
    // Watches hold their connection for minutes: a pool of their own, so they never
    // take the sockets that short requests queue for.
    this.#watchAgent = new Agent({ ...tls, keepAlive: false });
  }

  /**
   * From a kubeconfig file (the given path, $KUBECONFIG, ~/.kube/config) or, in a pod,
   * the ServiceAccount. Certificates, keys and tokens may be inline or files; exec and
   * auth-provider plugins are not supported (run in the cluster, or use a token/cert).
   */
  static load(path?: string): KubeClient {
    const file = path ?? process.env.KUBECONFIG?.split(":")[0] ?? join(homedir(), ".kube/config");
    let text: string | undefined;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      if (path) throw new Error(`cannot read kubeconfig ${path}: ${(err as Error).message}`);
    }
    if (text !== undefined) return new KubeClient(fromKubeconfig(text, file));
    const host = process.env.KUBERNETES_SERVICE_HOST;
    const port = process.env.KUBERNETES_SERVICE_PORT ?? "443";
    if (!host)
      throw new Error(
        `no kubeconfig at ${file} and not running in a pod (KUBERNETES_SERVICE_HOST unset)`,
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
    opts: { query?: Query; body?: unknown; contentType?: string } = {},
  ): Promise<T> {
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = { accept: "application/json" };
    if (payload) {
      headers["content-type"] = opts.contentType ?? "application/json";
      headers["content-length"] = String(payload.length);
    }
    this.#auth(headers);
    return new Promise<T>((resolve, reject) => {
      const req = request(
        this.#target(path, opts.query),
        { method, headers, agent: this.#agent, timeout: 30_000 },
        (res) => {
          readBody(res).then((body) => {
            const status = res.statusCode ?? 0;
            if (status >= 400) reject(apiError(status, body, `${method} ${path}`));
            else resolve(body as T);
          }, reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
      req.on("error", reject);
      req.end(payload);
    });
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>("GET", path, { query });
  }
  create<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, { body });
  }
  replace<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PUT", path, { body });
  }
  /** A JSON merge patch (RFC 7386): null removes a field. */
  mergePatch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("PATCH", path, { body, contentType: "application/merge-patch+json" });
  }
  delete<T>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }

  /**
   * Watches a collection from `resourceVersion`; events arrive one by one as the server
   * streams them. onDone is called once, with an error unless the watch was aborted or the
   * server ended it normally (it does so every few minutes; the caller re-watches).
   */
  watch<T>(
    path: string,
    query: Query,
    onEvent: (ev: WatchEvent<T>) => void,
    onDone: (err?: Error) => void,
  ): WatchHandle {
    const headers: Record<string, string> = { accept: "application/json" };
    this.#auth(headers);
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      onDone(err);
    };
    const req = request(
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
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buf += chunk;
          let nl = buf.indexOf("\n");
          while (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            nl = buf.indexOf("\n");
            if (line.trim() === "") continue;
            let ev: WatchEvent<T>;
            try {
              ev = JSON.parse(line) as WatchEvent<T>;
            } catch {
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
            onEvent(ev);
          }
        });
        res.on("end", () => finish());
        res.on("error", (err) => finish(err));
        res.on("close", () => finish());
      },
    );
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

  #auth(headers: Record<string, string>): void {
    const token = this.config.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
  }
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

/** Reads a token file at most once a minute: ServiceAccount tokens are rotated in place. */
function cachedFileToken(file: string): () => string {
  let value = "";
  let readAt = 0;
  return () => {
    if (Date.now() - readAt > 60_000) {
      value = readFileSync(file, "utf8").trim();
      readAt = Date.now();
    }
    return value;
  };
}

interface Kubeconfig {
  "current-context"?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: {
    name: string;
    cluster: {
      server: string;
      "certificate-authority"?: string;
      "certificate-authority-data"?: string;
      "insecure-skip-tls-verify"?: boolean;
    };
  }[];
  users?: {
    name: string;
    user: {
      "client-certificate"?: string;
      "client-certificate-data"?: string;
      "client-key"?: string;
      "client-key-data"?: string;
      token?: string;
      tokenFile?: string;
      exec?: unknown;
      "auth-provider"?: unknown;
    };
  }[];
}

/** Parses a kubeconfig's current context into an ApiConfig. Exported for tests. */
export function fromKubeconfig(text: string, file: string): ApiConfig {
  let kc: Kubeconfig;
  try {
    kc = (loadYaml(text) ?? {}) as Kubeconfig;
  } catch (err) {
    throw new Error(`kubeconfig ${file} is not valid YAML: ${(err as Error).message}`);
  }
  const ctxName = kc["current-context"];
  const ctx = kc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctx) throw new Error(`kubeconfig ${file}: current-context "${ctxName ?? ""}" not found`);
  const cluster = kc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (!cluster?.server)
    throw new Error(`kubeconfig ${file}: cluster "${ctx.cluster}" has no server`);
  const user = kc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  if (user.exec || user["auth-provider"]) {
    throw new Error(
      `kubeconfig ${file}: user "${ctx.user}" uses an exec/auth-provider plugin, which ironlb does not run; use a token or client certificate`,
    );
  }
  const dataOrFile = (data?: string, path?: string) =>
    data ? Buffer.from(data, "base64") : path ? readFileSync(path) : undefined;
  const cfg: ApiConfig = {
    server: cluster.server,
    ca: dataOrFile(cluster["certificate-authority-data"], cluster["certificate-authority"]),
    cert: dataOrFile(user["client-certificate-data"], user["client-certificate"]),
    key: dataOrFile(user["client-key-data"], user["client-key"]),
    insecureSkipTLSVerify: cluster["insecure-skip-tls-verify"] === true,
  };
  if (user.token) {
    const t = user.token;
    cfg.token = () => t;
  } else if (user.tokenFile) {
    cfg.token = cachedFileToken(user.tokenFile);
  }
  return cfg;
}
