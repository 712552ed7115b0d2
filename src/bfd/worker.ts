// The BFD worker thread: runs every BFD session (udp.ts) on an event loop of its own, so a
// busy main thread (a large resync, garbage collection, CPU starvation of the speaker's
// work) cannot silence the packets a router uses to declare this node dead. Commands come
// from worker-client.ts; state changes go back as messages.
import { type MessagePort, parentPort } from "node:worker_threads";
import { BfdEndpoint } from "./udp.ts";
import type { WorkerReply, WorkerRequest } from "./worker-client.ts";

if (parentPort === null) throw new Error("bfd worker.ts runs as a worker thread only");
const port: MessagePort = parentPort;

const post = (m: WorkerReply) => port.postMessage(m);
const endpoint = new BfdEndpoint({
  onChange: (change) => post({ event: "change", change }),
  onProblem: (text, fields) => post({ event: "problem", text, fields }),
  onDrop: (reason, count) => post({ event: "drop", reason, count }),
});

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.op) {
    case "open":
      return endpoint.open(req.peer);
    case "close":
      return endpoint.close(req.name);
    case "counters":
      return endpoint.counters();
    case "stop":
      await endpoint.closeAll();
      port.close();
      return undefined;
    case "block": {
      // Test hook (e2e): a stall of this thread, to show what a router sees.
      const until = Date.now() + req.ms;
      while (Date.now() < until) {
        // busy
      }
      return undefined;
    }
  }
}

port.on("message", (req: WorkerRequest) => {
  handle(req).then(
    (result) => post({ id: req.id, result }),
    (err: Error) => post({ id: req.id, error: err.message }),
  );
});
