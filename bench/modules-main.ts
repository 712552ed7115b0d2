// What each module costs at load: RSS and V8 heap after a full GC, each case in a fresh
// `node --expose-gc` process, minus a bare Node process. "compiled" cases import the same
// sources compiled to JavaScript by tsc (no type stripping), as the image ships them.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const out = mkdtempSync(join(tmpdir(), "ironlb-bench-js-"));
try {
  const tsc = spawnSync(
    join(root, "node_modules/.bin/tsc"),
    [
      "-p",
      join(root, "tsconfig.json"),
      "--noEmit",
      "false",
      "--rewriteRelativeImportExtensions",
      "--outDir",
      out,
      "--rootDir",
      root,
    ],
    { encoding: "utf8" },
  );
  // Type errors in tests would not stop the emit; only a missing output matters here.
  void tsc;
  symlinkSync(join(root, "node_modules"), join(out, "node_modules"));
  writeFileSync(join(out, "package.json"), '{ "type": "module" }\n');
  const cases: Array<[string, string]> = [
    ["bare Node", ""],
    ["type stripping (one tiny .ts module)", `${root}/src/api/group.ts`],
    ["zod", "zod"],
    ["zod + ironlb's schemas (src/api/ipaddresspool.ts)", `${root}/src/api/ipaddresspool.ts`],
    ["prom-client", "prom-client"],
    ["pino", "pino"],
    ["controller, all its modules (.ts)", `${root}/src/controller/main.ts`],
    ["controller, all its modules (compiled .js)", `${out}/src/controller/main.js`],
    ["speaker, all its modules (.ts)", `${root}/src/speaker/main.ts`],
    ["speaker, all its modules (compiled .js)", `${out}/src/speaker/main.js`],
  ];
  const measure = (spec: string) => {
    const script = `${spec ? `await import(${JSON.stringify(spec)});` : ""}
      for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); }
      const m = process.memoryUsage();
      console.log(JSON.stringify({ rss: m.rss, heap: m.heapUsed }));`;
    const runs = [0, 1, 2].map(() => {
      const r = spawnSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], {
        encoding: "utf8",
        cwd: root,
      });
      if (r.status !== 0) throw new Error(`loading ${spec} failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split("\n").pop()!) as { rss: number; heap: number };
    });
    // The median of three: the machine is shared.
    const med = (k: "rss" | "heap") => runs.map((x) => x[k]).sort((a, b) => a - b)[1]!;
    return { rss: med("rss") / 2 ** 20, heap: med("heap") / 2 ** 20 };
  };
  const base = measure("");
  console.log("| module(s) loaded | RSS MiB | + over bare Node | V8 heap MiB | + over bare Node |");
  console.log("| --- | --- | --- | --- | --- |");
  for (const [label, spec] of cases) {
    const m = spec === "" ? base : measure(spec);
    console.log(
      `| ${label} | ${m.rss.toFixed(1)} | ${(m.rss - base.rss).toFixed(1)} | ${m.heap.toFixed(1)} | ${(m.heap - base.heap).toFixed(1)} |`,
    );
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
