// Compiles the sources to JavaScript with tsc into a temporary folder (as the image ships
// them: no type stripping at run time), for benchmarks that compare the two.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");

/** Returns the folder holding src/**.js and bin/ironlb.js; the caller removes it. */
export function compileToJs(): string {
  const out = mkdtempSync(join(tmpdir(), "ironlb-bench-js-"));
  // Type errors elsewhere (tests) do not stop the emit; a missing output is checked below.
  spawnSync(
    join(root, "node_modules/.bin/tsc"),
    [
      "-p",
      join(root, "tsconfig.json"),
      "--noEmit",
      "false",
      "--rewriteRelativeImportExtensions",
    ].concat(["--outDir", out, "--rootDir", root]),
    { encoding: "utf8" },
  );
  if (!existsSync(join(out, "src/cli/main.js"))) throw new Error("tsc emitted no src/cli/main.js");
  symlinkSync(join(root, "node_modules"), join(out, "node_modules"));
  writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
  mkdirSync(join(out, "bin"), { recursive: true });
  writeFileSync(join(out, "bin/ironlb.js"), 'await import("../src/cli/main.js");\n');
  return out;
}
