// Summarises a V8 CPU profile (`node --cpu-prof`, e.g. the real speaker's under
// BENCH_PEERS_CPU_PROF, bench/peers-main.ts): where the samples went, by function (self
// time) and by the project's own function each sample ran under (inclusive time: the
// innermost frame from src/ on the stack, so that node:crypto work done for decodeHeartbeat
// counts against it).
//   node bench/profile-summary.ts FILE.cpuprofile [SKIP_S] [TOP]
// SKIP_S (default 0) leaves out the first seconds of the profile (start-up).
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [file, skipArg, topArg] = process.argv.slice(2);
if (!file) throw new Error("usage: profile-summary.ts FILE.cpuprofile [SKIP_S] [TOP]");
const skipUs = Number(skipArg ?? 0) * 1e6;
const top = Number(topArg ?? 25);
const prof = JSON.parse(readFileSync(file, "utf8")) as Profile;

const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const short = (url: string) => url.replace(/^.*\/(src|bench|node_modules)\//, "$1/");
const label = (n: ProfileNode) => {
  const f = n.callFrame;
  const where = f.url ? `${short(f.url)}:${f.lineNumber + 1}` : "";
  return `${f.functionName || "(anonymous)"} ${where}`.trim();
};
const ours = (n: ProfileNode) => /\/(src|cli|speaker|k8s|layer2)\//.test(n.callFrame.url);

const self = new Map<string, number>();
const under = new Map<string, number>();
let t = 0;
let counted = 0;
let idle = 0;
for (const [i, id] of prof.samples.entries()) {
  t += prof.timeDeltas[i] ?? 0;
  if (t < skipUs) continue;
  const n = byId.get(id)!;
  const name = n.callFrame.functionName;
  if (name === "(idle)") {
    idle++;
    continue;
  }
  counted++;
  self.set(label(n), (self.get(label(n)) ?? 0) + 1);
  let m: ProfileNode | undefined = n;
  while (m && !ours(m)) m = byId.get(parent.get(m.id) ?? -1);
  const key = m ? label(m) : `(no project frame: ${name || "anonymous"})`;
  under.set(key, (under.get(key) ?? 0) + 1);
}
const secs = (prof.endTime - prof.startTime - skipUs) / 1e6;
const print = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top))
    console.log(`${((100 * v) / counted).toFixed(1).padStart(5)} %  ${k}`);
};
console.log(
  `${file}: ${secs.toFixed(1)} s profiled, ${counted} busy samples, ${idle} idle (${((100 * counted) / (counted + idle)).toFixed(1)} % busy)`,
);
print("self time, by function (% of busy samples)", self);
print("inclusive, by the innermost project function on the stack", under);
