// The image installs only package.json "dependencies" (npm ci --omit=dev): a value import of
// a dev dependency in the running code would pass every test and crash in the cluster.
// Type-only imports are erased by the compiler and may name anything.
import { readdirSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** Bare module names a file imports as values (static, re-exports and dynamic imports). */
function valueImports(source: string): string[] {
  const names = new Set<string>();
  const statement =
    /^\s*(?:import|export)\s+(?!type\b)([^;]*?)\s+from\s+["']([^"'.][^"']*)["']|^\s*import\s+["']([^"'.][^"']*)["']|\bimport\(\s*["']([^"'.][^"']*)["']\s*\)/gm;
  for (const m of source.matchAll(statement)) {
    const clause = m[1];
    const spec = m[2] ?? m[3] ?? m[4];
    if (!spec) continue;
    // `import { type A, type B } from "x"` is erased too.
    if (clause && /^\{[^}]*\}$/.test(clause.trim())) {
      const parts = clause
        .trim()
        .slice(1, -1)
        .split(",")
        .map((p) => p.trim())
        .filter(Boolean);
      if (parts.every((p) => p.startsWith("type "))) continue;
    }
    names.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
  }
  return [...names];
}

describe("runtime imports", () => {
  it("finds value imports and skips type-only ones", () => {
    expect(
      valueImports(`import type { V1Service } from "@kubernetes/client-node";
import { type A, type B } from "typed-only";
import { load } from "js-yaml";
import pino from "pino";
export { z } from "zod/v4";
import "side-effect";
const m = await import("prom-client");
import { x } from "./local.ts";
import { readFileSync } from "node:fs";`).sort(),
    ).toEqual(["js-yaml", "node:fs", "pino", "prom-client", "side-effect", "zod"].sort());
  });

  it("the components import only runtime dependencies and Node built-ins", () => {
    const files = readdirSync(join(root, "src"), { recursive: true })
      .map(String)
      .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.endsWith("testkit.ts"));
    expect(files.length).toBeGreaterThan(20);
    const allowed = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
    const offending = files.flatMap((f) =>
      valueImports(readFileSync(join(root, "src", f), "utf8"))
        .filter((m) => !allowed.has(m.replace(/^node:/, "")))
        .map((m) => `src/${f}: ${m}`),
    );
    expect(offending).toEqual([]);
    expect(pkg.dependencies["@kubernetes/client-node"]).toBeUndefined();
    expect(pkg.devDependencies["@kubernetes/client-node"]).toBeDefined();
  });
});
