// The IPv4 addresses this host relies on beyond its own routes: its nameservers and
// gateways, the peers of its open TCP connections, and the hosts its package tools (npm, Go,
// apt) fetch from. A lab uplink whose subnet holds one of them would pull that traffic into
// the lab (seen on a machine whose package mirrors sit in 203.0.113.0/24), so labs refuse it.
import { lookup } from "node:dns/promises";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { tryRun } from "./net.ts";

export interface HostDependency {
  addr: string;
  why: string;
}

const ipv4 = /^(\d{1,3}\.){3}\d{1,3}$/;

/** Host names out of URLs in a text (apt sources, GOPROXY lists, npm's registry). */
export function urlHosts(text: string): string[] {
  const hosts = new Set<string>();
  for (const m of text.matchAll(/\bhttps?:\/\/([^/\s:,|"']+)/g)) hosts.add(m[1]!.toLowerCase());
  return [...hosts];
}

/** `nameserver` lines of a resolv.conf. */
export function nameservers(resolvConf: string): string[] {
  return resolvConf
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((w) => w[0] === "nameserver" && ipv4.test(w[1] ?? ""))
    .map((w) => w[1]!);
}

/** Remote IPv4 addresses in `ss -Htn state established` output. */
export function tcpPeers(ssOutput: string): string[] {
  const peers = new Set<string>();
  for (const line of ssOutput.split("\n")) {
    const cols = line.trim().split(/\s+/);
    const peer = cols[cols.length - 1] ?? "";
    const addr = peer
      .replace(/:\d+$/, "")
      .replace(/^\[(.*)\]$/, "$1")
      .replace(/^::ffff:/, "");
    if (ipv4.test(addr) && !addr.startsWith("127.")) peers.add(addr);
  }
  return [...peers];
}

function aptSources(): string {
  const files = ["/etc/apt/sources.list"];
  const dir = "/etc/apt/sources.list.d";
  if (existsSync(dir)) for (const f of readdirSync(dir)) files.push(join(dir, f));
  return files
    .map((f) => {
      try {
        return readFileSync(f, "utf8");
      } catch {
        return "";
      }
    })
    .join("\n");
}

async function resolve4(host: string): Promise<string[]> {
  if (ipv4.test(host)) return [host];
  const timeout = new Promise<string[]>((r) => setTimeout(() => r([]), 2000).unref());
  const answer = lookup(host, { all: true, family: 4 })
    .then((as) => as.map((a) => a.address))
    .catch(() => []);
  return Promise.race([answer, timeout]);
}

/** What this host relies on now (best effort: a source that cannot be read adds nothing). */
export async function hostDependencies(): Promise<HostDependency[]> {
  const deps: HostDependency[] = [];
  const resolv = existsSync("/etc/resolv.conf") ? readFileSync("/etc/resolv.conf", "utf8") : "";
  for (const a of nameservers(resolv)) deps.push({ addr: a, why: "a nameserver of this host" });
  const routes = await tryRun("ip", ["-4", "route", "show", "default"]);
  for (const m of (routes ?? "").matchAll(/\bvia (\S+)/g))
    deps.push({ addr: m[1]!, why: "a gateway of this host" });
  for (const a of tcpPeers((await tryRun("ss", ["-Htn", "state", "established"])) ?? ""))
    deps.push({ addr: a, why: "a peer of an open TCP connection of this host" });
  const toolText = [
    aptSources(),
    (await tryRun("npm", ["config", "get", "registry"], { timeoutMs: 5000 })) ?? "",
    (await tryRun("go", ["env", "GOPROXY"], { timeoutMs: 5000 })) ?? "",
  ].join("\n");
  const hosts = urlHosts(toolText);
  const resolved = await Promise.all(hosts.map(resolve4));
  hosts.forEach((h, i) => {
    for (const a of resolved[i]!)
      deps.push({ addr: a, why: `the address of ${h}, used by this host's package tools` });
  });
  return deps;
}
