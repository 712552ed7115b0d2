// `ironlb --help` is the reference for flags; the README names some of them. Both must agree.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "../..");

function help(...args: string[]): string {
  return execFileSync(process.execPath, [join(root, "bin/ironlb.js"), ...args, "--help"], {
    encoding: "utf8",
    env: { ...process.env, IRONLB_FROM_SOURCE: "1" },
  });
}

describe("ironlb --help", () => {
  const commands = [...help().matchAll(/^ {2}([a-z]+) {2,}/gm)].map((m) => m[1] as string);
  const texts = commands.map((c) => help(c));

  it("lists the commands", () => {
    expect(commands).toEqual(expect.arrayContaining(["controller", "speaker", "cleanup"]));
  });

  it("shows no empty default", () => {
    expect(texts.join("\n")).not.toContain("(default )");
  });

  it("has every flag the README names in its prose", () => {
    // Inline code outside fenced blocks (those are kubectl/helm commands).
    const prose = readFileSync(join(root, "README.md"), "utf8").replace(/```[\s\S]*?```/g, "");
    const named = [...prose.matchAll(/`(--[a-z][a-z-]*)/g)].map((m) => m[1] as string);
    expect(named.length).toBeGreaterThan(3);
    const flags = new Set(
      texts.flatMap((t) => [...t.matchAll(/^ {2}(--[a-z-]+)/gm)].map((m) => m[1])),
    );
    const missing = named.filter((f) => !flags.has(f) && !flags.has(f.replace(/^--no-/, "--")));
    expect(missing).toEqual([]);
  });
});
