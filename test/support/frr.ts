// FRR (zebra + bgpd, Debian's `frr`) as a router inside a network namespace that a test
// created: private pid files, zapi and vty sockets in a folder of its own (owned by user
// frr, as the daemons drop to it), no TCP vty; never `-n` (bgp-facts §5.2). zebra installs
// the routes bgpd selects into the namespace's kernel, where a test judges them.
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../lab/net.ts";
import { waitFor } from "./kube.ts";

const FRR_BIN = "/usr/lib/frr";

/** Fails loudly (never skips) when FRR is not installed. */
export function requireFrr(): void {
  for (const tool of [`${FRR_BIN}/zebra`, `${FRR_BIN}/bgpd`, "/usr/bin/vtysh"]) {
    if (!existsSync(tool))
      throw new Error(`${tool} is missing: run bash test/install-deps.sh (Debian package frr)`);
  }
}

export interface FrrRouter {
  dir: string;
  /** Runs vtysh commands against this router; returns their output. */
  vtysh(...cmds: string[]): Promise<string>;
  /** One `... json` command, parsed. */
  json<T>(cmd: string): Promise<T>;
  /** The namespace's kernel route to `dst` ("198.51.100.7/32"), as `ip -j route` prints it. */
  kernelRoute(dst: string): Promise<KernelRoute | undefined>;
  /** Kills the daemons and removes the folder. */
  stop(): Promise<void>;
}

export interface KernelRoute {
  dst: string;
  gateway?: string;
  protocol?: string;
  nexthops?: { gateway?: string; dev?: string }[];
}

/** The next hops of a kernel route (one for a plain route, several for ECMP), sorted. */
export function nextHops(r: KernelRoute | undefined): string[] {
  if (r === undefined) return [];
  const hops = r.nexthops?.map((h) => h.gateway ?? "") ?? (r.gateway ? [r.gateway] : []);
  return hops.sort();
}

/**
 * Starts zebra and bgpd in `ns` with `bgpdConf` (a bgpd.conf text; `DIR` is replaced).
 * `dir`: the router's folder (made afresh; the daemons, as user frr, must be able to reach
 * it), by default a new one under the system's temporary folder.
 */
export async function startFrr(
  ns: string,
  bgpdConf: string,
  opts: { dir?: string } = {},
): Promise<FrrRouter> {
  requireFrr();
  let dir: string;
  if (opts.dir) {
    dir = opts.dir;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
  } else dir = mkdtempSync(join(tmpdir(), "ironlb-frr-"));
  writeFileSync(join(dir, "zebra.conf"), `hostname ${ns}\nlog file ${dir}/zebra.log\n`);
  writeFileSync(join(dir, "bgpd.conf"), bgpdConf.replaceAll("DIR", dir));
  const frr = frrIds();
  if (frr)
    for (const f of ["", "zebra.conf", "bgpd.conf"]) chownSync(join(dir, f), frr.uid, frr.gid);
  const common = ["-d", "-z", join(dir, "zserv.api"), "--vty_socket", dir, "-P", "0"];
  const pids = () =>
    ["bgpd", "zebra"].flatMap((d) => {
      try {
        return [Number(readFileSync(join(dir, `${d}.pid`), "utf8").trim())];
      } catch {
        return [];
      }
    });
  const stop = async () => {
    for (const pid of pids()) {
      try {
        process.kill(pid, "SIGCONT");
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const d of ["zebra", "bgpd"]) {
      await run("ip", [
        "netns",
        "exec",
        ns,
        `${FRR_BIN}/${d}`,
        ...common,
        "-f",
        join(dir, `${d}.conf`),
        "-i",
        join(dir, `${d}.pid`),
      ]);
      await waitFor(`FRR ${d} in ${ns}`, () => existsSync(join(dir, `${d}.vty`)), 10_000);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const vtysh = (...cmds: string[]) =>
    run("vtysh", ["--vty_socket", dir, ...cmds.flatMap((c) => ["-c", c])], { timeoutMs: 10_000 });
  return {
    dir,
    vtysh,
    json: async <T>(cmd: string) => JSON.parse(await vtysh(cmd)) as T,
    kernelRoute: async (dst: string) => {
      const v6 = dst.includes(":");
      const out = await run("ip", [
        "-n",
        ns,
        "-j",
        ...(v6 ? ["-6"] : []),
        "route",
        "show",
        "exact",
        dst,
      ]);
      return (JSON.parse(out || "[]") as KernelRoute[])[0];
    },
    stop,
  };
}

function frrIds(): { uid: number; gid: number } | undefined {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("frr:"));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}
