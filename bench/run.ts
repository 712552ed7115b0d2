// `npm run bench [-- NAME...]`: runs the benchmarks (allocator, modules, controller, speaker,
// dataplane, cluster, bgp, peers) and
// prints their figures with the machine they ran on. Record results in bench/RESULTS.md.
import { spawnSync } from "node:child_process";
import { cpus, totalmem } from "node:os";

const all = [
  "allocator",
  "modules",
  "controller",
  "speaker",
  "dataplane",
  "cluster",
  "bgp",
  "peers",
];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const names = wanted.length > 0 ? wanted : all;
for (const n of names)
  if (!all.includes(n)) throw new Error(`unknown benchmark "${n}"; known: ${all.join(", ")}`);

console.log(
  `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`,
);
let failed = false;
for (const name of names) {
  console.log(`\n== ${name}`);
  // Each benchmark in its own process: clean heap, and --expose-gc for memory figures.
  const r = spawnSync(
    process.execPath,
    ["--expose-gc", new URL(`./${name}-main.ts`, import.meta.url).pathname],
    { stdio: "inherit" },
  );
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
