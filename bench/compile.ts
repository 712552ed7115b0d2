// Compiles the sources to JavaScript as `npm run build:js` does (tsconfig.build.json: what
// the image ships, no type stripping at run time), into a temporary folder, for benchmarks
// that compare the two.
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");

/** Returns the folder holding cli/main.js etc. and ironlb.js (the command); the caller removes it. */
export function compileToJs(): string {
  const out = mkdtempSync(join(tmpdir(), "ironlb-bench-js-"));
  const r = spawnSync(
    join(root, "node_modules/.bin/tsc"),
    ["-p", join(root, "tsconfig.build.json"), "--outDir", out],
    { encoding: "utf8" },
  );
  if (!existsSync(join(out, "cli/main.js")))
    throw new Error(`tsc emitted no cli/main.js: ${r.stdout}${r.stderr}`);
  symlinkSync(join(root, "node_modules"), join(out, "node_modules"));
  // The packet-socket addon (`npm run build`), where the compiled layer2/packet-socket.js looks.
  mkdirSync(join(out, "layer2/native"), { recursive: true });
  symlinkSync(join(root, "src/layer2/native/build"), join(out, "layer2/native/build"));
  writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
  writeFileSync(join(out, "ironlb.js"), 'await import("./cli/main.js");\n');
  return out;
}

/**
 * How the image starts `node`: the flags of the Dockerfile's ENTRYPOINT (between "node" and
 * the script; the chart sets no command of its own, as test/integration/helm-chart.test.ts
 * checks) and the variables the runtime stage's ENV lines set. Read from the Dockerfile
 * itself, so that a benchmark runs the components exactly as the image does.
 */
export function imageRuntime(): { nodeArgs: string[]; env: Record<string, string> } {
  const text = readFileSync(join(root, "Dockerfile"), "utf8").replace(/\\\n/g, " ");
  const entry = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(text);
  if (!entry) throw new Error("the Dockerfile has no ENTRYPOINT [...] line");
  const argv = JSON.parse(entry[1]!) as string[];
  const script = argv.indexOf("bin/ironlb.js");
  if (argv[0] !== "node" || script < 0)
    throw new Error(
      `unexpected command ${JSON.stringify(argv)}: expected ["node", flags..., "bin/ironlb.js"]`,
    );
  const env: Record<string, string> = {};
  // Only the runtime stage's ENV (after the last FROM), not the build stage's.
  const runtime = text.slice(text.lastIndexOf("\nFROM "));
  for (const line of runtime.matchAll(/^ENV\s+(.+)$/gm)) {
    for (const kv of line[1]!.matchAll(/(\w+)=("[^"]*"|\S+)/g)) {
      if (kv[1] !== "PATH") env[kv[1]!] = kv[2]!.replace(/^"|"$/g, "");
    }
  }
  return { nodeArgs: argv.slice(1, script), env };
}
