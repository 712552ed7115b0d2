// Figures the benchmarks share: percentiles and a process's resident memory.
import { readFileSync } from "node:fs";

/** The p-th percentile (nearest rank) of a list of numbers, in any order. */
export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

/** Resident memory of a process, MiB (from /proc). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/**
 * A process's resident memory by kind (MiB, from /proc/PID/smaps): file-backed pages (the
 * node binary's code, shared libraries), malloc's main heap, and other anonymous memory
 * (V8's heap and code, malloc's thread arenas, thread stacks).
 */
export function rssParts(pid: number): { file: number; heap: number; anon: number } {
  const out = { file: 0, heap: 0, anon: 0 };
  let kind: keyof typeof out = "anon";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) {
      const path = head[2] ?? "";
      kind = path === "[heap]" ? "heap" : path.startsWith("/") ? "file" : "anon";
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out[kind] += Number(rss[1]) / 1024;
  }
  return out;
}
