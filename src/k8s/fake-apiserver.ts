// A tiny in-process HTTP server that plays the API server for unit tests of the edge:
// lists answer from a handler the test sets, watches stay open until the test sends
// events, ends them, or lets them hang. Real sockets, real KubeClient code paths.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface OpenWatch {
  path: string;
  query: URLSearchParams;
  res: ServerResponse;
  closed: boolean;
  send(type: string, object: unknown): void;
  /** Ends the watch as the server does when timeoutSeconds pass. */
  end(): void;
}

export type Answer = { status: number; body: unknown; headers?: Record<string, string> } | "hang";

export class FakeApiServer {
  readonly #server: Server;
  /** Every request seen: method, path and query. */
  readonly requests: { method: string; path: string; query: URLSearchParams }[] = [];
  readonly watches: OpenWatch[] = [];
  /** Answers GETs without watch=true (lists and gets); default 404. */
  onRequest: (method: string, path: string, query: URLSearchParams, body: string) => Answer =
    () => ({ status: 404, body: { kind: "Status", code: 404, message: "not found" } });
  /** How to answer a watch: "open" (stream), "hang" (no headers), or an error answer. */
  onWatch: (query: URLSearchParams) => "open" | Answer = () => "open";
  /** Called once a watch stream is open (a stateful fake replays what it missed). */
  onWatchOpened: (w: OpenWatch) => void = () => {};
  readonly #hanging = new Set<ServerResponse>();

  constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.#server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const w of this.watches) if (!w.closed) w.res.destroy();
    for (const r of this.#hanging) r.destroy();
    this.#server.closeAllConnections();
    await new Promise((r) => this.#server.close(r));
  }

  /** The watch requests still open. */
  openWatches(): OpenWatch[] {
    return this.watches.filter((w) => !w.closed);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    this.requests.push({ method: req.method ?? "", path: url.pathname, query: url.searchParams });
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      const reply = (a: Answer) => {
        if (a === "hang") {
          this.#hanging.add(res);
          res.on("close", () => this.#hanging.delete(res));
          return;
        }
        res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
        res.end(JSON.stringify(a.body));
      };
      if (url.searchParams.get("watch") !== "true")
        return reply(this.onRequest(req.method ?? "", url.pathname, url.searchParams, body));
      const how = this.onWatch(url.searchParams);
      if (how !== "open") return reply(how);
      res.writeHead(200, { "content-type": "application/json" });
      res.flushHeaders();
      const w: OpenWatch = {
        path: url.pathname,
        query: url.searchParams,
        res,
        closed: false,
        send: (type, object) => res.write(`${JSON.stringify({ type, object })}\n`),
        end: () => {
          w.closed = true;
          res.end();
        },
      };
      res.on("close", () => {
        w.closed = true;
      });
      this.watches.push(w);
      this.onWatchOpened(w);
    });
  }
}
