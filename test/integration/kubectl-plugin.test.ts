// The CLI as a kubectl plugin: installed (npm's bin entry) or linked under the name
// `kubectl-ironlb`, the real kubectl finds it on PATH and `kubectl ironlb status` runs it
// against the cluster kubectl would use; its usage lines name `kubectl ironlb`.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { applyCRDs, createNamespace, createService, repoRoot } from "../support/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "ironlb-plugin-"));
const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
  bin: Record<string, string>;
};
// Linked as npm links a package's bin entries.
symlinkSync(join(repoRoot, pkg.bin["kubectl-ironlb"] ?? "missing"), join(dir, "kubectl-ironlb"));

function kubectl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      join(inject("binDir"), "kubectl"),
      args,
      {
        // The plugin's Node (>= 24) first, as on a user's PATH; the kubeconfig as kubectl's.
        env: {
          ...process.env,
          PATH: `${dir}:${dirname(process.execPath)}:${process.env.PATH}`,
          KUBECONFIG: inject("kubeconfig"),
        },
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout, stderr }),
    );
  });
}

describe("kubectl ironlb", () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("is found by kubectl as a plugin", async () => {
    const r = await kubectl(["plugin", "list"]);
    expect(r.stdout).toContain(join(dir, "kubectl-ironlb"));
  });

  it("speaks as `kubectl ironlb` in its usage", async () => {
    const r = await kubectl(["ironlb", "status", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n")[0]).toBe("Usage: kubectl ironlb status [options]");
    const bad = await kubectl(["ironlb", "no-such-command"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('kubectl ironlb: unknown command "no-such-command"');
  });

  it("runs `status` against kubectl's cluster", async () => {
    await applyCRDs();
    const ns = await createNamespace("plugin");
    // No controller runs here: the Service is listed as waiting for an IP.
    await createService(ns, "web");
    const r = await kubectl(["ironlb", "status", "--namespace", ns]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^SERVICE\s+IP\s+POOL/m);
    expect(r.stdout).toContain(`${ns}/web`);
  });
});
