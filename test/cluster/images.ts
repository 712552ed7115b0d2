// The lab's own images, made without Docker or a registry: a static binary built from the
// sources beside this file, packed as a one-layer image archive (the `docker save` layout,
// which `ctr images import` reads), plus the path of ironlb's image from `npm run image`.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cacheRoot } from "../controlplane/controlplane.ts";
import { run } from "../lab/net.ts";
import { repoRoot } from "../support/kube.ts";

const here = import.meta.dirname;

/** References the nodes' containerd knows the lab images by. */
export const PAUSE_IMAGE = "localhost/ironlb-pause:lab";
export const ECHO_IMAGE = "localhost/ironlb-echo:lab";

export interface LabImages {
  /** Archive of the pod sandbox image (PAUSE_IMAGE). */
  pause: string;
  /** Archive of the echo server image (ECHO_IMAGE). */
  echo: string;
}

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Packs one executable as an image archive: a single layer holding `/<name>`, run as the
 * entrypoint. Deterministic (fixed owner and mtime), so the same binary gives the same digest.
 */
async function packImage(
  binary: string,
  name: string,
  ref: string,
  archive: string,
  env: string[] = [],
): Promise<void> {
  const work = `${archive}.d`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, "rootfs"), { recursive: true });
  writeFileSync(join(work, "rootfs", name), readFileSync(binary));
  chmodSync(join(work, "rootfs", name), 0o755);
  const tarFlags = ["--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "--sort=name"];
  await run("tar", [...tarFlags, "-cf", join(work, "layer.tar"), "-C", join(work, "rootfs"), name]);
  const layer = readFileSync(join(work, "layer.tar"));
  const diffId = `sha256:${sha256(layer)}`;
  const config = JSON.stringify({
    architecture: "amd64",
    os: "linux",
    created: "1970-01-01T00:00:00Z",
    config: { Entrypoint: [`/${name}`], Env: env, User: "65534:65534" },
    rootfs: { type: "layers", diff_ids: [diffId] },
    history: [{ created: "1970-01-01T00:00:00Z", created_by: `ironlb lab: /${name}` }],
  });
  const configName = `${sha256(config)}.json`;
  const layerDir = sha256(layer);
  mkdirSync(join(work, "out", layerDir), { recursive: true });
  writeFileSync(join(work, "out", configName), config);
  writeFileSync(join(work, "out", layerDir, "layer.tar"), layer);
  writeFileSync(
    join(work, "out", "manifest.json"),
    JSON.stringify([{ Config: configName, RepoTags: [ref], Layers: [`${layerDir}/layer.tar`] }]),
  );
  await run("tar", [...tarFlags, "-cf", archive, "-C", join(work, "out"), "."]);
  rmSync(work, { recursive: true, force: true });
}

/** Builds (or reuses, when the sources are unchanged) the pause and echo image archives. */
export async function buildLabImages(log: (msg: string) => void): Promise<LabImages> {
  const dir = join(cacheRoot, "cluster-images");
  mkdirSync(dir, { recursive: true });
  const pauseSrc = join(here, "pause", "pause.c");
  const echoSrc = [join(here, "echo", "main.go"), join(here, "echo", "go.mod")];
  const pauseHash = sha256(readFileSync(pauseSrc)).slice(0, 16);
  const echoHash = sha256(echoSrc.map((f) => readFileSync(f, "utf8")).join("\0")).slice(0, 16);
  const pause = join(dir, `pause-${pauseHash}.tar`);
  const echo = join(dir, `echo-${echoHash}.tar`);
  if (!existsSync(pause)) {
    log("building the pause image (gcc -static)");
    const bin = join(dir, "pause.bin");
    await run("gcc", ["-static", "-Os", "-s", "-o", bin, pauseSrc]);
    await packImage(bin, "pause", PAUSE_IMAGE, `${pause}.tmp`);
    await run("mv", [`${pause}.tmp`, pause]);
  }
  if (!existsSync(echo)) {
    log("building the echo server image (Go, standard library only)");
    const bin = join(dir, "echo.bin");
    await new Promise<void>((resolve, reject) => {
      const child = spawn("go", ["build", "-trimpath", "-ldflags=-s -w", "-o", bin, "."], {
        cwd: join(here, "echo"),
        stdio: ["ignore", "inherit", "inherit"],
        env: { ...process.env, CGO_ENABLED: "0", GOTOOLCHAIN: "local", GOFLAGS: "-mod=mod" },
      });
      child.once("error", reject);
      child.once("close", (c) =>
        c === 0 ? resolve() : reject(new Error(`go build of the echo server failed (exit ${c})`)),
      );
    });
    await packImage(bin, "echo", ECHO_IMAGE, `${echo}.tmp`);
    await run("mv", [`${echo}.tmp`, echo]);
  }
  return { pause, echo };
}

/**
 * ironlb's own image, from `npm run -s image` (its last stdout line is the archive, whose
 * reference is `localhost/ironlb:<package.json version>`). Builds it when the sources changed.
 */
export async function ironlbImage(
  log: (msg: string) => void,
): Promise<{ archive: string; ref: string; tag: string }> {
  const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    version: string;
    scripts: Record<string, string>;
  };
  // A prebuilt archive of this version (e.g. from another checkout) saves the build.
  const given = process.env.IRONLB_IMAGE_ARCHIVE;
  if (given) return { archive: given, ref: `localhost/ironlb:${pkg.version}`, tag: pkg.version };
  if (!pkg.scripts.image)
    throw new Error("package.json has no `image` script: ironlb's image cannot be built here");
  log("building or reusing ironlb's image (npm run image)");
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn("npm", ["run", "-s", "image"], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let text = "";
    child.stdout.on("data", (d: Buffer) => {
      text += d.toString();
    });
    child.once("error", reject);
    child.once("close", (c) =>
      c === 0
        ? resolve(text)
        : reject(new Error(`npm run image failed (exit ${c}); see the messages above`)),
    );
  });
  const archive = out.trim().split("\n").pop() ?? "";
  if (!archive.startsWith("/") || !existsSync(archive))
    throw new Error(
      `npm run image did not print an archive path as its last line (got "${archive}")`,
    );
  return { archive, ref: `localhost/ironlb:${pkg.version}`, tag: pkg.version };
}
