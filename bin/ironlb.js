#!/usr/bin/env node
// The ironlb command. It runs the compiled JavaScript in dist/ (`npm run build:js`, what the
// image ships) when that is at least as new as every source file, else the TypeScript
// sources directly (Node >= 24 strips types), so a stale dist/ is never run by mistake.
// IRONLB_FROM_SOURCE=1 forces the sources.
import { readdirSync, statSync } from "node:fs";

const root = new URL("../", import.meta.url);
const compiled = new URL("dist/cli/main.js", root);

function compiledIsCurrent() {
  if (process.env.IRONLB_FROM_SOURCE === "1") return false;
  let built;
  try {
    built = statSync(compiled).mtimeMs;
  } catch {
    return false;
  }
  let files;
  try {
    files = readdirSync(new URL("src/", root), { recursive: true });
  } catch {
    return true; // the image: dist/ without src/
  }
  for (const f of files) {
    if (f.endsWith(".ts") && statSync(new URL(`src/${f}`, root)).mtimeMs > built) return false;
  }
  return true;
}

await import(compiledIsCurrent() ? compiled.href : new URL("src/cli/main.ts", root).href);
