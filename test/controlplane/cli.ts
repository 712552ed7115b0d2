// `npm run cluster:up` / `npm run cluster:down`: a control plane that outlives the command,
// for trying ironlb by hand with kubectl.
import { join } from "node:path";
import { cacheRoot, readState, startControlPlane, stopControlPlane } from "./controlplane.ts";

const dir = join(cacheRoot, "cluster");
const cmd = process.argv[2];

if (cmd === "up") {
  const old = readState(dir);
  if (old) {
    process.stderr.write(
      "[controlplane] stopping the control plane left from an earlier `cluster:up`\n",
    );
    await stopControlPlane(old);
  }
  const state = await startControlPlane({ dir, detached: true });
  process.stderr.write(
    `[controlplane] kubectl is at ${join(state.binDir, "kubectl")}; stop with: npm run cluster:down\n`,
  );
  console.log(`KUBECONFIG=${state.kubeconfig}`);
} else if (cmd === "down") {
  const state = readState(dir);
  if (state) {
    await stopControlPlane(state);
    console.log("control plane stopped");
  } else {
    console.log("no control plane is running");
  }
} else {
  console.error("usage: node test/controlplane/cli.ts up|down");
  process.exit(2);
}
