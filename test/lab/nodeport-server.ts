// Stand-in for a node's NodePort data path in the lab: answers every HTTP request with the
// node's name, so that a client can tell which node its connection reached.
// Started inside a node's network namespace; stdin takes one command per line:
//   "listen <port>" → replies "listening <port>" (or "error <port> <message>")
//   "close <port>"  → replies "closed <port>"
import { createServer, type Server } from "node:http";
import { createInterface } from "node:readline";

const nodeName = process.argv[2];
if (nodeName === undefined) {
  console.error("usage: nodeport-server.ts NODE_NAME");
  process.exit(2);
}

const servers = new Map<number, Server>();

function listen(port: number): void {
  if (servers.has(port)) {
    console.log(`listening ${port}`);
    return;
  }
  const srv = createServer((req, res) => {
    // No keep-alive: every client request must be a new connection that follows ARP.
    res.writeHead(200, { "content-type": "text/plain", connection: "close" });
    res.end(nodeName);
    req.resume();
  });
  srv.once("error", (err) => console.log(`error ${port} ${err.message}`));
  srv.listen(port, "0.0.0.0", () => {
    servers.set(port, srv);
    console.log(`listening ${port}`);
  });
}

createInterface({ input: process.stdin }).on("line", (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  const port = Number(arg);
  if (cmd === "listen" && Number.isInteger(port)) listen(port);
  else if (cmd === "close" && Number.isInteger(port)) {
    servers.get(port)?.close();
    servers.delete(port);
    console.log(`closed ${port}`);
  } else console.log(`error ${arg ?? ""} unknown command`);
});
// Keeps serving when stdin closes: `npm run lab` leaves the lab running after it exits.
// The lab removes the server by killing the processes of the node's namespace.
