// DESIGN.md's table of what each folder may import, for the rules a slip would break
// silently: the pure core (net, allocator, api) has no I/O and no Kubernetes, and the
// speaker never reaches into the controller. Type-only imports count: they are
// dependencies of the design too.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const src = join(import.meta.dirname, "../../src");

/** Every module a source text imports or re-exports, as written (static and dynamic). */
function imports(source: string): string[] {
  const re =
    /^\s*(?:import|export)\s[^;]*?\sfrom\s+["']([^"']+)["']|^\s*import\s+["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']\s*\)/gm;
  return [...source.matchAll(re)].map((m) => (m[1] ?? m[2] ?? m[3]) as string);
}

/** What the non-test files of a src folder import from outside that folder. */
function outsideImports(folder: string): { file: string; spec: string }[] {
  return readdirSync(join(src, folder), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .flatMap((f) =>
      imports(readFileSync(join(src, folder, f), "utf8"))
        .filter((spec) => !spec.startsWith("./"))
        .map((spec) => ({ file: `src/${folder}/${f}`, spec })),
    );
}

/** The imports of `folder` that no rule allows. */
function violations(folder: string, allowed: (spec: string) => boolean): string[] {
  return outsideImports(folder)
    .filter(({ spec }) => !allowed(spec))
    .map(({ file, spec }) => `${file}: ${spec}`);
}

const net = (s: string) => s.startsWith("../net/");

describe("layering (DESIGN.md)", () => {
  it("finds static, type, re-export and dynamic imports", () => {
    expect(
      imports(`import type { V1Service } from "@kubernetes/client-node";
import {
  a,
  b,
} from "../net/address.ts";
export { z } from "zod";
import "side-effect";
const m = await import("../controller/x.ts");`),
    ).toEqual([
      "@kubernetes/client-node",
      "../net/address.ts",
      "zod",
      "side-effect",
      "../controller/x.ts",
    ]);
  });

  it("src/net imports nothing", () => {
    expect(violations("net", () => false)).toEqual([]);
  });

  it("src/allocator imports only net", () => {
    expect(violations("allocator", net)).toEqual([]);
  });

  it("src/api imports only net (its checkers are its own: no zod at run time)", () => {
    expect(outsideImports("api").length).toBeGreaterThan(0);
    expect(violations("api", net)).toEqual([]);
  });

  it("src/bgp imports only net, and only its TCP edge (session.ts) opens sockets or logs", () => {
    expect(outsideImports("bgp").length).toBeGreaterThan(0);
    const edge = new Set(["node:net", "pino"]);
    const bad = outsideImports("bgp")
      .filter(({ file, spec }) => !(net(spec) || (file === "src/bgp/session.ts" && edge.has(spec))))
      .map(({ file, spec }) => `${file}: ${spec}`);
    expect(bad).toEqual([]);
  });

  it("src/speaker never imports the controller", () => {
    expect(outsideImports("speaker").length).toBeGreaterThan(0);
    expect(violations("speaker", (s) => !s.startsWith("../controller/"))).toEqual([]);
  });
});
