// The Vagrant lab (lab/vagrant) cannot boot on the test machines (no hypervisor), so this
// checks what can be checked without one: the provisioning scripts pass shellcheck, Vagrant
// itself accepts the Vagrantfile and its address checks, and every version is pinned.
// shellcheck and vagrant are installed by test/install-deps.sh: a missing tool fails here.
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const exec = promisify(execFile);
const repo = join(import.meta.dirname, "../..");
const lab = join(repo, "lab/vagrant");
const scriptsDir = join(lab, "scripts");
const work = await mkdtemp(join(tmpdir(), "ironlb-vagrant-test-"));
afterAll(() => rm(work, { recursive: true, force: true }));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }) {
  try {
    const { stdout, stderr } = await exec(cmd, args, { ...opts, maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr } satisfies Run;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & Partial<Run>;
    if (err.code === "ENOENT") {
      throw new Error(`${cmd} is not installed: run bash test/install-deps.sh (as root)`);
    }
    return { code: Number(err.code ?? 1), stdout: err.stdout ?? "", stderr: err.stderr ?? "" };
  }
}

let validations = 0;
/**
 * `--ignore-provider`: without VirtualBox or vagrant-libvirt on the machine (the test
 * installs neither: hundreds of packages) Vagrant finds no usable default provider and
 * validates nothing; this way it validates all but the provider blocks.
 */
const VALIDATE = ["validate", "--ignore-provider"];
/** `vagrant validate` with Vagrant's state in a folder of this test, never in lab/vagrant. */
function vagrantValidate(extraEnv: NodeJS.ProcessEnv = {}) {
  const dir = join(work, `validate-${validations++}`);
  const env = {
    ...process.env,
    VAGRANT_CHECKPOINT_DISABLE: "1",
    VAGRANT_HOME: join(dir, "home"),
    VAGRANT_DOTFILE_PATH: join(dir, "dot"),
    ...extraEnv,
  };
  return run("vagrant", VALIDATE, { cwd: lab, env }).then((r) => ({
    ...r,
    dot: env.VAGRANT_DOTFILE_PATH,
  }));
}

const shellScripts = async () =>
  (await readdir(scriptsDir)).filter((f) => f.endsWith(".sh")).map((f) => join(scriptsDir, f));

/** The script lines with backslash continuations joined. */
const logicalLines = (text: string) => text.replace(/\\\n\s*/g, " ").split("\n");

/** The VERSIONS hash at the top of the Vagrantfile. */
function versions(vagrantfile: string): Record<string, string> {
  const block = /^VERSIONS = \{\n([\s\S]*?)^\}\.freeze/m.exec(vagrantfile);
  if (!block) throw new Error("no `VERSIONS = { ... }.freeze` block in the Vagrantfile");
  const out: Record<string, string> = {};
  for (const m of block[1]!.matchAll(/^\s*(\w+):\s*"([^"]*)",/gm)) out[m[1]!] = m[2]!;
  return out;
}

describe("Vagrant lab", () => {
  it("provisioning scripts pass shellcheck and stop on the first error", async () => {
    const scripts = await shellScripts();
    expect(scripts.map((s) => s.slice(scriptsDir.length + 1)).sort()).toEqual([
      "common.sh",
      "image.sh",
      "ironlb.sh",
      "lib.sh",
      "master.sh",
      "worker.sh",
    ]);
    const r = await run("shellcheck", ["--external-sources", "--severity=style", ...scripts], {
      cwd: repo,
    });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.code).toBe(0);
    for (const s of scripts) {
      if (s.endsWith("/lib.sh")) continue; // sourced by the others
      expect(await readFile(s, "utf8"), s).toMatch(
        /^#!\/usr\/bin\/env bash\n(#.*\n)*set -euo pipefail\n/,
      );
    }
  });

  it("vagrant validate accepts the Vagrantfile and keeps one kubeadm token per lab", async () => {
    const first = await vagrantValidate();
    expect(first.stderr).toBe("");
    expect(first.stdout).toContain("Vagrantfile validated successfully.");
    expect(first.code).toBe(0);
    const tokenFile = join(first.dot, "ironlb-bootstrap-token");
    const token = await readFile(tokenFile, "utf8");
    expect(token).toMatch(/^[a-z0-9]{6}\.[a-z0-9]{16}$/);

    // Same state folder: the same token (workers made later must join with it).
    const again = await run("vagrant", VALIDATE, {
      cwd: lab,
      env: {
        ...process.env,
        VAGRANT_CHECKPOINT_DISABLE: "1",
        VAGRANT_HOME: join(work, "again-home"),
        VAGRANT_DOTFILE_PATH: first.dot,
      },
    });
    expect(again.code).toBe(0);
    expect(await readFile(tokenFile, "utf8")).toBe(token);
  }, 60_000);

  it("vagrant validate refuses a malformed LAN or one that overlaps the pod range", async () => {
    const bad = await vagrantValidate({ IRONLB_VAGRANT_LAN: "300.0.2" });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("IRONLB_VAGRANT_LAN must be the first three octets of a /24");

    const overlap = await vagrantValidate({ IRONLB_VAGRANT_LAN: "198.51.100" });
    expect(overlap.code).not.toBe(0);
    expect(overlap.stderr).toContain("overlaps the pod (198.51.100.0/24)");

    const other = await vagrantValidate({ IRONLB_VAGRANT_LAN: "203.0.114" });
    expect(other.stdout).toContain("Vagrantfile validated successfully.");
    expect(other.code).toBe(0);
  }, 60_000);

  it("pins every version, the same Kubernetes and helm as the tests", async () => {
    const vagrantfile = await readFile(join(lab, "Vagrantfile"), "utf8");
    const v = versions(vagrantfile);
    expect(Object.keys(v).sort()).toEqual(
      [
        "agnhost",
        "box",
        "cni_plugins",
        "containerd",
        "helm",
        "kubernetes",
        "kubernetes_deb",
        "node_image",
        "runc",
      ].sort(),
    );
    const semver = /^\d+\.\d+\.\d+$/;
    for (const k of ["kubernetes", "containerd", "runc", "cni_plugins", "helm"]) {
      expect(v[k], k).toMatch(semver);
    }
    expect(v.box).toMatch(/^\d+\.\d{8}\.\d+$/);
    expect(vagrantfile).toMatch(/^\s*config\.vm\.box = "debian\/bookworm64"$/m);
    expect(vagrantfile).toMatch(/^\s*config\.vm\.box_version = VERSIONS\[:box\]$/m);
    expect(v.kubernetes_deb).toBe(`${v.kubernetes}-1.1`);
    expect(v.kubernetes).toMatch(/^1\.36\./);
    // Images by exact version tag, never a moving one.
    expect(v.node_image).toMatch(/^docker\.io\/library\/node:24\.\d+\.\d+-bookworm-slim$/);
    expect(v.agnhost).toMatch(/^registry\.k8s\.io\/e2e-test-images\/agnhost:\d+\.\d+(\.\d+)?$/);

    const build = await readFile(join(repo, "test/controlplane/build.sh"), "utf8");
    expect(`v${v.kubernetes}`).toBe(/^K8S_VERSION=(\S+)$/m.exec(build)?.[1]);
    expect(`v${v.helm}`).toBe(/^HELM_VERSION=(\S+)$/m.exec(build)?.[1]);

    // The README's version table says the same.
    const readme = await readFile(join(lab, "README.md"), "utf8");
    for (const k of [
      "box",
      "kubernetes",
      "kubernetes_deb",
      "containerd",
      "runc",
      "cni_plugins",
      "helm",
    ]) {
      expect(readme, `README mentions ${k} ${v[k]}`).toContain(v[k]!);
    }
    expect(readme).toContain(v.agnhost!);
    expect(readme).toContain(v.node_image!.replace("docker.io/library/", ""));
  });

  it("installs nothing unpinned: kube packages by exact version, downloads by versioned URL", async () => {
    const sources = [join(lab, "Vagrantfile"), ...(await shellScripts())];
    const kubePackages =
      /^"?(kubelet|kubeadm|kubectl|cri-tools|kubernetes-cni|containerd(\.io)?|runc|helm)\b/;
    let pinnedKube = 0;
    for (const file of sources) {
      const text = await readFile(file, "utf8");
      expect(text, `${file} says latest`).not.toMatch(/\blatest\b/i);
      for (const line of logicalLines(text)) {
        if (/apt-get install|apt_install /.test(line)) {
          for (const word of line.trim().split(/\s+/)) {
            if (!kubePackages.test(word)) continue;
            expect(word, `${file}: ${line.trim()}`).toMatch(/^"?[a-z.-]+=\$\{K8S_DEB_VERSION\}"?$/);
            pinnedKube++;
          }
        }
        for (const url of line.match(/https:\/\/(github\.com|get\.helm\.sh)\/[^\s"]+/g) ?? []) {
          expect(url, `${file}: ${url}`).toMatch(/\$\{[A-Z_]+_VERSION\}/);
        }
      }
    }
    expect(pinnedKube).toBe(3); // kubelet, kubeadm, kubectl
    const common = await readFile(join(scriptsDir, "common.sh"), "utf8");
    expect(common).toMatch(/^\s*apt-mark hold kubelet kubeadm kubectl/m);
    // Downloads are checked against their publisher's checksums.
    expect(common.match(/\$\(fetch "/g)?.length).toBe(3);
  });

  it("differs offline only in the fetch step, chosen by the Vagrantfile's FETCH", async () => {
    const vagrantfile = await readFile(join(lab, "Vagrantfile"), "utf8");
    expect(vagrantfile).toContain(
      'FETCH = ENV["IRONLB_VAGRANT_OFFLINE"] == "1" ? "offline" : "online"',
    );
    expect(vagrantfile).toMatch(/^\s*"FETCH" => FETCH,$/m);
    for (const [script, fns] of [
      ["common.sh", ["fetch_online", "fetch_offline"]],
      ["image.sh", ["image_online", "image_offline"]],
    ] as const) {
      const text = await readFile(join(scriptsDir, script), "utf8");
      expect(
        logicalLines(text).filter((l) => /^need .*\bFETCH$/.test(l)),
        script,
      ).toHaveLength(1);
      // One dispatch on FETCH, at the top level; an unknown value stops the provisioning.
      expect(text, script).toContain(
        `case $FETCH in\nonline) ${fns[0]} ;;\noffline) ${fns[1]} ;;\n*) die "FETCH must be online or offline (got '$FETCH')" ;;\nesac\n`,
      );
      // The downloads all live in the online function: nothing else reaches the network.
      const online = new RegExp(`^${fns[0]}\\(\\) \\{\\n([\\s\\S]*?)^\\}$`, "m").exec(text);
      expect(online, `${script}: ${fns[0]}() { ... }`).not.toBeNull();
      const outside = text.replace(online![0], "");
      expect(outside, script).not.toMatch(
        /\$\(fetch |curl -fsSL|apt-get update|apt_install|buildah bud/,
      );
    }
  });

  it("the offline lab's host scripts pass shellcheck", async () => {
    const dir = join(repo, "test/vagrant");
    const scripts = (await readdir(dir)).filter((f) => f.endsWith(".sh")).map((f) => join(dir, f));
    expect(scripts.length).toBeGreaterThanOrEqual(3);
    const r = await run("shellcheck", ["--severity=style", ...scripts], { cwd: repo });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("takes every address from the Vagrantfile, in documentation ranges", async () => {
    for (const file of await shellScripts()) {
      expect(await readFile(file, "utf8"), file).not.toMatch(/\b\d{1,3}(\.\d{1,3}){3}\b/);
    }
    const vagrantfile = await readFile(join(lab, "Vagrantfile"), "utf8");
    expect(vagrantfile).toContain('LAN = ENV.fetch("IRONLB_VAGRANT_LAN", "192.0.2")');
    expect(vagrantfile).toContain('POD_NET = "198.51.100"');
    expect(vagrantfile).toContain('SERVICE_CIDR = "203.0.113.0/24"');
    // No private (RFC 1918) addresses: the lab lives in documentation ranges.
    expect(vagrantfile).not.toMatch(/\b(10\.\d+|172\.(1[6-9]|2\d|3[01])|192\.168)\.\d+/);
  });
});
