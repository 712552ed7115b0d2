// Small helpers for the lab: running commands, IPv4 arithmetic, and reading the kernel's
// view (links, neighbours, routes) through `ip -j`.
import { spawn } from "node:child_process";

export interface RunOptions {
  /** Written to the command's stdin. */
  input?: string;
  timeoutMs?: number;
}

/** Runs a command; resolves with its stdout, rejects with its stderr in the message. */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
    });
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} ${args.join(" ")}: ${e.message}`));
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else {
        const why = signal ? `killed by ${signal}` : `exit ${code}`;
        const e = new Error(
          `${cmd} ${args.join(" ")} failed (${why}): ${err.trim() || out.trim()}`,
        );
        Object.assign(e, { code, stdout: out, stderr: err });
        reject(e);
      }
    });
    if (child.stdin) {
      // A command that exits without reading its input must not crash the caller.
      child.stdin.on("error", () => {});
      child.stdin.end(opts.input);
    }
  });
}

/** Like `run`, but never rejects: undefined when the command failed. */
export async function tryRun(
  cmd: string,
  args: string[],
  opts: RunOptions = {},
): Promise<string | undefined> {
  try {
    return await run(cmd, args, opts);
  } catch {
    return undefined;
  }
}

export function parseIPv4(s: string): number {
  const parts = s.split(".");
  if (parts.length !== 4) throw new Error(`not an IPv4 address: ${s}`);
  let n = 0;
  for (const p of parts) {
    const b = Number(p);
    if (!/^\d{1,3}$/.test(p) || b > 255) throw new Error(`not an IPv4 address: ${s}`);
    n = n * 256 + b;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");
}

export interface CIDR {
  /** Network address as a number. */
  base: number;
  bits: number;
  /** Number of addresses. */
  size: number;
}

export function parseCIDR(s: string): CIDR {
  const [addr, len] = s.split("/");
  const bits = Number(len ?? "32");
  if (addr === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32)
    throw new Error(`not an IPv4 CIDR: ${s}`);
  const size = 2 ** (32 - bits);
  const base = parseIPv4(addr) - (parseIPv4(addr) % size);
  return { base, bits, size };
}

export function overlaps(a: CIDR, b: CIDR): boolean {
  return a.base < b.base + b.size && b.base < a.base + a.size;
}

/** The `offset`-th address of a subnet; throws when it lies outside the usable range. */
export function hostAddress(subnet: CIDR, offset: number): string {
  if (offset <= 0 || offset >= subnet.size - 1)
    throw new Error(
      `address #${offset} does not fit in ${formatIPv4(subnet.base)}/${subnet.bits} (use a /25 or larger)`,
    );
  return formatIPv4(subnet.base + offset);
}

/** `ip` in a namespace (root namespace when `ns` is undefined), JSON output parsed. */
export async function ipJson<T>(ns: string | undefined, args: string[]): Promise<T[]> {
  const out = await run("ip", [...(ns ? ["-n", ns] : []), "-j", ...args]);
  return out.trim() === "" ? [] : (JSON.parse(out) as T[]);
}

export interface NeighbourEntry {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

export interface LinkEntry {
  ifname: string;
  address?: string;
  operstate?: string;
}

/** Names of the network namespaces that exist. */
export async function listNetns(): Promise<string[]> {
  const out = await run("ip", ["netns", "list"]);
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter((n) => n !== "");
}

/** PIDs of the processes running in a network namespace. */
export async function netnsPids(ns: string): Promise<number[]> {
  const out = await tryRun("ip", ["netns", "pids", ns]);
  return (out ?? "")
    .split("\n")
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Sends SIGKILL to each pid and waits (briefly) until they are gone. */
export async function killAll(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
