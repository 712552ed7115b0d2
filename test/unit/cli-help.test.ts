// `ironlb --help` is the reference for flags; the README names some of them. Both must agree.
import { execFileSync, spawnSync } from "node:child_process";
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
  const commands = [...help().matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1] as string);
  const texts = commands.map((c) => help(c));

  it("lists the commands", () => {
    expect(commands).toEqual(
      expect.arrayContaining([
        "controller",
        "speaker",
        "cleanup",
        "status",
        "doctor",
        "migrate-from-metallb",
      ]),
    );
  });

  it("shows positional arguments and short flags", () => {
    const doctor = texts[commands.indexOf("doctor")] ?? "";
    expect(doctor).toMatch(/^Usage: ironlb doctor \[options\] \[SERVICE\]$/m);
    expect(doctor).toMatch(/^ {2}--output, -o <value> +table or json \(default table\)$/m);
    expect(doctor).toContain("exit status 3 when a problem is found");
    expect(texts[commands.indexOf("migrate-from-metallb")]).toMatch(/^ {2}--file, -f <value> /m);
  });

  it("refuses a bad doctor output format, or a bare SERVICE name without --namespace, before any API call", () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [join(root, "bin/ironlb.js"), ...args], {
        encoding: "utf8",
        env: { ...process.env, IRONLB_FROM_SOURCE: "1", KUBECONFIG: "/nonexistent" },
      });
    const bad = run("doctor", "-o", "yaml");
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--output must be table or json, got "yaml"');
    const bare = run("doctor", "web");
    expect(bare.status).toBe(2);
    expect(bare.stderr).toContain("SERVICE is namespace/name, or a name with --namespace");
    // A command without positionals still refuses them.
    expect(run("status", "web").status).toBe(2);
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
