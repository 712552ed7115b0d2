// Fault injection for a running lab (test/lab/lab.ts): stall a speaker (SIGSTOP/SIGCONT),
// take a node's LAN link down and up, starve speakers of CPU (a cgroup v1 `cpu` group with
// a small cpu.shares next to a CPU hog), and watch from the client who answers ARP for the
// Service IPs and where the client's neighbour entries point (arp-watch.ts).
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { IPAnnouncement } from "../../src/api/ipannouncement.ts";
import { apiStatus, clientsFor, group, repoRoot, sleep, version } from "../support/kube.ts";
import type { Lab } from "./lab.ts";
import { run } from "./net.ts";

/** The IPAnnouncement the speakers keep for `ip`, if any. */
export async function ipAnnouncement(lab: Lab, ip: string): Promise<IPAnnouncement | undefined> {
  const { custom } = clientsFor(lab.kc);
  try {
    return (await custom.getClusterCustomObject({
      group,
      version,
      plural: "ipannouncements",
      name: ip.replace(/[.:]/g, "-"),
    })) as IPAnnouncement;
  } catch (err) {
    if (apiStatus(err) === 404) return undefined;
    throw err;
  }
}

function speakerPid(lab: Lab, node: string): number {
  const pid = lab.speaker(node)?.proc.pid;
  if (!pid || !lab.speaker(node)?.running())
    throw new Error(`the speaker of ${node} is not running`);
  return pid;
}

/** Stops a node's speaker process for `ms` (SIGSTOP), then lets it run again (SIGCONT). */
export async function stallSpeaker(lab: Lab, node: string, ms: number): Promise<void> {
  const pid = speakerPid(lab, node);
  process.kill(pid, "SIGSTOP");
  try {
    await sleep(ms); // the fault's own duration
  } finally {
    process.kill(pid, "SIGCONT");
  }
}

/** Takes a node's LAN interface down (or up) inside its namespace. */
export async function setLink(lab: Lab, node: string, up: boolean, ifname = "eth0") {
  await run("ip", ["-n", lab.node(node).ns, "link", "set", ifname, up ? "up" : "down"]);
  // Link down took the routes through eth0 with it: restore them as the host's network
  // configuration would, or traffic entering this node for pods elsewhere is lost.
  if (up && ifname === "eth0") await lab.restoreNodeRoutes(node);
}

const CPU_ROOT = "/sys/fs/cgroup/cpu";

/** A cgroup v1 `cpu` group of our own; remove() moves its tasks back and deletes it. */
export class CpuCgroup {
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  /** `shares`: cpu.shares (1024 = one default task); `cpus`: a CFS quota in CPUs, if any. */
  static create(name: string, o: { shares?: number; cpus?: number }): CpuCgroup {
    if (!existsSync(join(CPU_ROOT, "cpu.shares")))
      throw new Error(`no cgroup v1 cpu hierarchy at ${CPU_ROOT}: the starvation tests need it`);
    const path = join(CPU_ROOT, name);
    mkdirSync(path, { recursive: true });
    const g = new CpuCgroup(path);
    if (o.shares !== undefined) writeFileSync(join(path, "cpu.shares"), String(o.shares));
    if (o.cpus !== undefined) {
      writeFileSync(join(path, "cpu.cfs_period_us"), "100000");
      writeFileSync(join(path, "cpu.cfs_quota_us"), String(Math.round(o.cpus * 100_000)));
    }
    return g;
  }

  /** Moves a process (all its threads) into the group. */
  add(pid: number): void {
    writeFileSync(join(this.path, "cgroup.procs"), String(pid));
  }

  pids(): number[] {
    return readFileSync(join(this.path, "cgroup.procs"), "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map(Number);
  }

  /** Moves every task back to the root group and removes the directory. */
  remove(): void {
    if (!existsSync(this.path)) return;
    for (const pid of this.pids()) {
      try {
        writeFileSync(join(CPU_ROOT, "cgroup.procs"), String(pid));
      } catch {
        // exited meanwhile
      }
    }
    rmdirSync(this.path);
  }
}

/**
 * Weight of the group that holds the starvation scenario, against the rest of the host
 * (each process outside any group weighs 1024). The scenario is relative: speakers with
 * cpu.shares 51 next to a 2-CPU hog (shares 1024) get ~4 % of the CPUs. Other load on the
 * host (other tests, other users) would shrink that further and judge a harsher fault
 * than the one named; inside a group worth ten busy processes the scenario stays what it
 * says while the host is moderately busy.
 */
const SCENARIO_SHARES = 10_240;

/**
 * The CPU-starvation scenario of issue 9: each speaker in its own group with a 50m
 * request's share (cpu.shares 51), beside a group with `hogs` busy loops and a 2-CPU quota,
 * all inside one group of their own. stop() ends the hog and puts everything back.
 */
export function starveSpeakers(
  name: string,
  speakerPids: number[],
  hogs = 2,
): { stop(): Promise<void> } {
  const parent = CpuCgroup.create(name, { shares: SCENARIO_SHARES });
  const groups = speakerPids.map((_, i) => CpuCgroup.create(`${name}/speaker${i}`, { shares: 51 }));
  const hogGroup = CpuCgroup.create(`${name}/hog`, { cpus: 2 });
  let hog: { stop(): Promise<void> } | undefined;
  const stop = async () => {
    await hog?.stop();
    for (const g of [...groups, hogGroup, parent]) g.remove();
  };
  try {
    for (const [i, pid] of speakerPids.entries()) groups[i]!.add(pid);
    hog = startHog(hogGroup, hogs);
  } catch (err) {
    void stop();
    throw err;
  }
  return { stop };
}

/** `n` busy-looping processes in `group` (a CPU hog); stop() kills them. */
export function startHog(group: CpuCgroup, n: number): { stop(): Promise<void> } {
  const procs: ChildProcess[] = [];
  for (let i = 0; i < n; i++) {
    const p = spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" });
    procs.push(p);
    group.add(p.pid!);
  }
  return {
    async stop() {
      await Promise.all(
        procs.map(
          (p) =>
            new Promise<void>((resolve) => {
              if (p.exitCode !== null || p.signalCode !== null) return resolve();
              p.once("exit", () => resolve());
              p.kill("SIGKILL");
            }),
        ),
      );
    },
  };
}

/** What arp-watch.ts saw: per IP, who answered (timeline) and the client's entry. */
export interface WatchResult {
  intervalMs: number;
  /** Wall clock (ms since the epoch) of the watch's time 0. */
  wallStartMs: number;
  endMs: number;
  answers: Record<string, [number, string[]][]>;
  neighbour: Record<string, [number, string][]>;
}

/**
 * Starts one of the lab's watchers (`script` in test/lab) in the client namespace. It says
 * "ready" on stdout once it watches (it loads slowly on a busy host); stop() ends it with
 * SIGTERM and returns the JSON of its last line.
 */
function clientWatcher<T>(
  lab: Lab,
  script: string,
  args: string[],
): { ready: Promise<void>; stop(): Promise<T> } {
  const p = spawn(
    "ip",
    ["netns", "exec", lab.client.ns, process.execPath, join(repoRoot, "test/lab", script), ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  let err = "";
  p.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
  });
  p.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => p.once("exit", (code) => resolve(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const onData = () => {
      if (!out.includes("ready\n")) return;
      p.stdout!.off("data", onData);
      resolve();
    };
    p.stdout!.on("data", onData);
    void exited.then((code) => reject(new Error(`${script} exited ${code} early: ${err}`)));
  });
  ready.catch(() => {});
  return {
    ready,
    async stop() {
      await ready;
      p.kill("SIGTERM");
      const code = await exited;
      if (code !== 0) throw new Error(`${script} exited ${code}: ${err}`);
      return JSON.parse(out.trim().split("\n").pop()!) as T;
    },
  };
}

/**
 * Starts arp-watch.ts in the client namespace; stop() ends it and returns what it saw.
 * `ready` resolves once `readyRounds` rounds of requests are complete.
 */
export function watchArp(
  lab: Lab,
  ips: string[],
  o: { intervalMs?: number; readyRounds?: number } = {},
): { ready: Promise<void>; stop(): Promise<WatchResult> } {
  return clientWatcher<WatchResult>(lab, "arp-watch.ts", [
    "eth0",
    lab.watcherIP,
    String(o.intervalMs ?? 20),
    String(o.readyRounds ?? 3),
    ...ips,
  ]);
}

/** A gratuitous ARP frame the client saw (gratuitous-watch.ts). */
export interface GratuitousFrame {
  t: number;
  ip: string;
  mac: string;
  op: number;
}

/**
 * Starts gratuitous-watch.ts on the client's eth0; stop() ends it and returns the gratuitous
 * ARP frames for `ips` it saw, with their times (ms since `ready`, about).
 */
export function watchGratuitous(
  lab: Lab,
  ips: string[],
): { ready: Promise<void>; stop(): Promise<GratuitousFrame[]> } {
  return clientWatcher<GratuitousFrame[]>(lab, "gratuitous-watch.ts", ["eth0", ...ips]);
}

/**
 * Who answered each IP over a short watch of `rounds` rounds (20 ms each): the MACs seen
 * in any of them, sorted. One MAC for an IP means one node answered it throughout; a
 * reply late for its round still counts (a busy host is slow, not wrong).
 */
export async function answeredOver(
  lab: Lab,
  ips: string[],
  rounds = 10,
): Promise<Map<string, string[]>> {
  const w = watchArp(lab, ips, { readyRounds: rounds });
  await w.ready;
  const r = await w.stop();
  return new Map(
    ips.map((ip) => [ip, [...new Set((r.answers[ip] ?? []).flatMap(([, m]) => m))].sort()]),
  );
}

/** State at time t of a timeline of [t, value] changes (undefined before the first). */
function at<T>(timeline: [number, T][], t: number): T | undefined {
  let v: T | undefined;
  for (const [ts, x] of timeline) {
    if (ts > t) break;
    v = x;
  }
  return v;
}

export interface IpFigures {
  /** How often the single answering MAC changed to another one. */
  moves: number;
  /** The answering MACs in order (one entry per move). */
  owners: string[];
  /** Longest time two or more MACs answered the same round, ms. */
  maxDualMs: number;
  /** Longest time nobody answered, ms (after the first answer). */
  maxSilentMs: number;
  /** Longest time the client's entry named a MAC that did not answer while another did, ms. */
  maxStrandedMs: number;
}

/** Figures for one IP over a watch, optionally from `fromMs` on. */
export function figures(w: WatchResult, ip: string, fromMs = 0): IpFigures {
  const answers = (w.answers[ip] ?? []).filter(
    ([t], i, all) => t >= fromMs || (all[i + 1]?.[0] ?? Number.POSITIVE_INFINITY) > fromMs,
  );
  const owners: string[] = [];
  let maxDual = 0;
  let maxSilent = 0;
  for (let i = 0; i < answers.length; i++) {
    const [t, macs] = answers[i]!;
    const from = Math.max(t, fromMs);
    const until = answers[i + 1]?.[0] ?? w.endMs + w.intervalMs;
    if (macs.length >= 2) maxDual = Math.max(maxDual, until - from);
    if (macs.length === 0 && owners.length > 0) maxSilent = Math.max(maxSilent, until - from);
    if (macs.length === 1 && owners[owners.length - 1] !== macs[0]) owners.push(macs[0]!);
  }
  // Stranded: step through time at the round interval.
  let stranded = 0;
  let run_ = 0;
  const neigh = w.neighbour[ip] ?? [];
  for (let t = fromMs; t <= w.endMs; t += w.intervalMs) {
    const macs = at(answers, t) ?? [];
    const n = at(neigh, t) ?? "";
    if (n !== "" && macs.length > 0 && !macs.includes(n)) run_ += w.intervalMs;
    else run_ = 0;
    stranded = Math.max(stranded, run_);
  }
  return {
    moves: Math.max(0, owners.length - 1),
    owners,
    maxDualMs: maxDual,
    maxSilentMs: maxSilent,
    maxStrandedMs: stranded,
  };
}
