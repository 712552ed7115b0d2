// What the real cluster must leave as it found it in the root namespace: sysctls (minus the
// counters that change by themselves), the nftables ruleset and the routing tables.
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const exec = promisify(execFile);

/** Counters and random values that change on their own between two reads. */
const VOLATILE = [
  /^fs\.(dentry-state|inode-nr|inode-state|file-nr|aio-nr)$/,
  /^fs\.quota\./,
  /^kernel\.(ns_last_pid|random\.|pty\.nr)/,
  /^net\.netfilter\.nf_conntrack_count$/,
];

export interface HostSnapshot {
  sysctl: Map<string, string>;
  nft: string;
  routes: string;
}

async function out(cmd: string, args: string[]): Promise<string> {
  try {
    return (await exec(cmd, args, { maxBuffer: 64 * 2 ** 20 })).stdout;
  } catch (err) {
    // sysctl -a exits non-zero when a key cannot be read; what it read is still valid.
    const e = err as { stdout?: string };
    if (typeof e.stdout === "string" && e.stdout !== "") return e.stdout;
    throw err;
  }
}

async function sysctls(): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for (const line of (await out("sysctl", ["-a"])).split("\n")) {
    const i = line.indexOf(" = ");
    if (i < 0) continue;
    const key = line.slice(0, i);
    if (!VOLATILE.some((r) => r.test(key))) m.set(key, line.slice(i + 3));
  }
  return m;
}

/** The root namespace's state. */
export async function hostSnapshot(): Promise<HostSnapshot> {
  const [sysctl, nft, r4, r6] = await Promise.all([
    sysctls(),
    out("nft", ["list", "ruleset"]),
    out("ip", ["-4", "route", "show", "table", "all"]),
    out("ip", ["-6", "route", "show", "table", "all"]),
  ]);
  return { sysctl, nft, routes: `${r4}${r6}` };
}

/** Human-readable differences (empty when the host is as it was). */
export function hostSnapshotDiff(a: HostSnapshot, b: HostSnapshot): string[] {
  const diffs: string[] = [];
  for (const [k, v] of a.sysctl) {
    const w = b.sysctl.get(k);
    if (w === undefined) diffs.push(`sysctl ${k} disappeared (was ${v})`);
    else if (w !== v) diffs.push(`sysctl ${k}: ${v} → ${w}`);
  }
  for (const [k, w] of b.sysctl) if (!a.sysctl.has(k)) diffs.push(`sysctl ${k} appeared: ${w}`);
  if (a.nft !== b.nft)
    diffs.push(`nft ruleset changed:\n--- before\n${a.nft}\n--- after\n${b.nft}`);
  if (a.routes !== b.routes)
    diffs.push(`routes changed:\n--- before\n${a.routes}\n--- after\n${b.routes}`);
  return diffs;
}
