// Compiles the sources to JavaScript as `npm run build:js` does (tsconfig.build.json: what
// the image ships, no type stripping at run time), into a temporary folder, for benchmarks
// that compare the two.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
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
  writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
  writeFileSync(join(out, "ironlb.js"), 'await import("./cli/main.js");\n');
  return out;
}
