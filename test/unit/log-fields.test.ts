// pino writes its own "msg" key from the message argument: a `msg` field in the object
// gives a line with two "msg" keys, and readers keep only one of them (the reason is lost).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../../src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sources(join(dir, e.name))
      : e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")
        ? [join(dir, e.name)]
        : [],
  );
}

describe("log calls", () => {
  it("never put msg in the log object", () => {
    const files = sources(root);
    expect(files.length).toBeGreaterThan(20);
    // A log call whose first argument is an object literal with a `msg` key.
    const call = /\.(trace|debug|info|warn|error|fatal)\(\s*\{[^{}]*\bmsg\s*:/g;
    const offenders = files.flatMap((f) =>
      [...readFileSync(f, "utf8").matchAll(call)].map((m) => `${f}: ${m[0].replace(/\s+/g, " ")}`),
    );
    expect(offenders).toEqual([]);
  });
});
