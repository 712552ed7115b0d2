import * as prom from "prom-client";
import { describe, expect, it } from "vitest";
import { controllerMetrics } from "../controller/metrics.ts";
import { speakerMetrics } from "../speaker/metrics.ts";
import { Counter, Gauge, Histogram, processMetrics, Registry } from "./metrics.ts";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface ParsedFamily {
  help: string;
  type: string;
  samples: Sample[];
}

/**
 * A strict reader of the Prometheus text format 0.0.4: every line is a HELP, a TYPE, a
 * sample or empty; a family's HELP and TYPE come once, before its samples; samples of a family are
 * contiguous; names, label names, escapes and values follow the grammar. Throws otherwise.
 */
function parseExposition(text: string): Map<string, ParsedFamily> {
  const families = new Map<string, ParsedFamily>();
  if (text !== "" && !text.endsWith("\n")) throw new Error("the text must end with a newline");
  const name = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  // Go's ParseFloat, which Prometheus uses, takes Inf and NaN in any case.
  const value = "[-+]?(?:[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN])";
  const labelValue = '"((?:[^"\\\\\\n]|\\\\[\\\\n"])*)"';
  const sampleRe = new RegExp(`^(${name})(?:\\{(.*)\\})? (${value})$`);
  const labelRe = new RegExp(`^([a-zA-Z_][a-zA-Z0-9_]*)=${labelValue}(,|$)`);
  let current: string | undefined;
  const closed = new Set<string>();
  const familyOf = (sample: string) => {
    for (const suffix of ["_bucket", "_sum", "_count", ""]) {
      const base = suffix ? sample.slice(0, -suffix.length) : sample;
      if (sample.endsWith(suffix) && families.has(base)) {
        const t = families.get(base)!.type;
        if (suffix === "" || t === "histogram" || t === "summary") return base;
      }
    }
    throw new Error(`sample ${sample} has no HELP/TYPE before it`);
  };
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") continue; // the format ignores empty lines (prom-client writes them)
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, n, rest] = meta as unknown as [string, string, string, string];
      if (!new RegExp(`^${name}$`).test(n)) throw new Error(`bad metric name ${n}`);
      if (closed.has(n)) throw new Error(`${n} appears twice`);
      if (current !== undefined && current !== n) closed.add(current);
      current = n;
      const f = families.get(n) ?? { help: "", type: "", samples: [] };
      families.set(n, f);
      if (kind === "HELP") {
        if (f.help) throw new Error(`two HELP lines for ${n}`);
        f.help = rest.replace(/\\n/g, "\n").replace(/\\\\/g, "\\");
      } else {
        if (f.type || f.samples.length) throw new Error(`TYPE of ${n} repeated or after samples`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest))
          throw new Error(`bad type ${rest}`);
        f.type = rest;
      }
      continue;
    }
    const m = sampleRe.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const fam = familyOf(m[1]!);
    if (fam !== current) throw new Error(`samples of ${fam} are not contiguous`);
    const labels: Record<string, string> = {};
    let rest = m[2] ?? "";
    while (rest !== "") {
      const l = labelRe.exec(rest);
      if (!l) throw new Error(`bad labels in ${line}`);
      if (l[1]! in labels) throw new Error(`label ${l[1]} twice in ${line}`);
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      rest = rest.slice(l[0].length);
    }
    const v = m[3]!;
    families.get(fam)!.samples.push({
      name: m[1]!,
      labels,
      value: /inf$/i.test(v) ? (v.startsWith("-") ? -Infinity : Infinity) : Number(v),
    });
  }
  for (const [n, f] of families) if (!f.type) throw new Error(`${n} has no TYPE`);
  return families;
}

describe("Prometheus text exposition", () => {
  it("renders counters, gauges and histograms as the format says", async () => {
    const registry = new Registry();
    const c = new Counter({ name: "t_total", help: 'a "counter"\\ with\nnewline', registry });
    const cl = new Counter({ name: "t_by_total", help: "h", labelNames: ["reason"], registry });
    const g = new Gauge({ name: "t_gauge", help: "h", labelNames: ["pool", "family"], registry });
    const h = new Histogram({
      name: "t_seconds",
      help: "h",
      labelNames: ["kind"],
      buckets: [0.1, 1, 0.01],
      registry,
    });
    c.inc();
    c.inc(2.5);
    cl.inc({ reason: "NoIP" });
    cl.inc({ reason: 'we"ird\\\nvalue' }, 3);
    g.set({ pool: "a", family: "IPv4" }, 7);
    g.set({ family: "IPv6", pool: "a" }, Number.MAX_SAFE_INTEGER);
    g.set({ pool: "b", family: "IPv4" }, Number.POSITIVE_INFINITY);
    for (const v of [0.005, 0.05, 0.5, 5, 0.1]) h.observe({ kind: "minor" }, v);
    const text = await registry.metrics();
    const f = parseExposition(text);
    expect(f.get("t_total")).toEqual({
      help: 'a "counter"\\ with\nnewline',
      type: "counter",
      samples: [{ name: "t_total", labels: {}, value: 3.5 }],
    });
    expect(f.get("t_by_total")!.samples).toEqual([
      { name: "t_by_total", labels: { reason: "NoIP" }, value: 1 },
      { name: "t_by_total", labels: { reason: 'we"ird\\\nvalue' }, value: 3 },
    ]);
    // Labels in declared order whatever order they were given in; one series per label set.
    expect(f.get("t_gauge")!.samples).toEqual([
      { name: "t_gauge", labels: { pool: "a", family: "IPv4" }, value: 7 },
      { name: "t_gauge", labels: { pool: "a", family: "IPv6" }, value: Number.MAX_SAFE_INTEGER },
      { name: "t_gauge", labels: { pool: "b", family: "IPv4" }, value: Infinity },
    ]);
    expect(text).toContain('t_gauge{pool="a",family="IPv4"} 7\n');
    const hs = f.get("t_seconds")!;
    expect(hs.type).toBe("histogram");
    const buckets = hs.samples.filter((s) => s.name === "t_seconds_bucket");
    // Sorted, cumulative, +Inf last and equal to the count.
    expect(buckets.map((s) => [s.labels.le, s.value])).toEqual([
      ["0.01", 1],
      ["0.1", 3],
      ["1", 4],
      ["+Inf", 5],
    ]);
    expect(buckets.every((s) => s.labels.kind === "minor")).toBe(true);
    expect(hs.samples.find((s) => s.name === "t_seconds_count")!.value).toBe(5);
    expect(hs.samples.find((s) => s.name === "t_seconds_sum")!.value).toBeCloseTo(5.655);
  });

  it("refuses what the format cannot carry", () => {
    const registry = new Registry();
    new Counter({ name: "dup_total", help: "h", registry });
    expect(() => new Counter({ name: "dup_total", help: "h", registry })).toThrow(/twice/);
    expect(() => new Gauge({ name: "bad-name", help: "h", registry })).toThrow(/invalid/);
    expect(() => new Gauge({ name: "g", help: "h", labelNames: ["le"], registry })).toThrow();
    const c = new Counter({ name: "c_total", help: "h", labelNames: ["a"], registry });
    expect(() => c.inc({ b: "x" })).toThrow(/no label b/);
    expect(() => c.inc({ a: "x" }, -1)).toThrow(/cannot decrease/);
  });

  it("the timer observes the seconds elapsed", async () => {
    const registry = new Registry();
    const h = new Histogram({ name: "d_seconds", help: "h", buckets: [10], registry });
    const end = h.startTimer();
    await new Promise((r) => setTimeout(r, 20));
    const s = end();
    expect(s).toBeGreaterThanOrEqual(0.015);
    const f = parseExposition(await registry.metrics());
    expect(f.get("d_seconds")!.samples.find((x) => x.name === "d_seconds_count")!.value).toBe(1);
  });

  it("process figures carry prom-client's names and types, and plausible values", async () => {
    const registry = new Registry();
    processMetrics(registry);
    globalThis.gc?.();
    const mine = parseExposition(await registry.metrics());
    const theirs = new prom.Registry();
    prom.collectDefaultMetrics({ register: theirs });
    const reference = parseExposition(await theirs.metrics());
    for (const [n, f] of mine) {
      expect(reference.get(n)?.type, n).toBe(f.type);
    }
    const value = (n: string) => mine.get(n)!.samples[0]!.value;
    expect(value("process_resident_memory_bytes")).toBeGreaterThan(10 * 2 ** 20);
    expect(value("nodejs_heap_size_used_bytes")).toBeGreaterThan(2 ** 20);
    expect(value("process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(value("process_open_fds")).toBeGreaterThan(2);
    expect(Math.abs(value("process_start_time_seconds") - Date.now() / 1000)).toBeLessThan(
      process.uptime() + 5,
    );
  });
});

describe("ironlb's metrics", () => {
  // What the chart's PrometheusRule and the README name: these must not change by accident.
  it("the controller's and speaker's families, with their types and labels", async () => {
    const c = controllerMetrics();
    c.poolAddresses.set({ pool: "p", family: "IPv4" }, 10);
    c.poolInUse.set({ pool: "p", family: "IPv4" }, 1);
    c.allocations.inc();
    c.failures.inc({ reason: "NoAddresses" });
    c.reconcile.startTimer()();
    c.leader.set(1);
    const f = parseExposition(await c.registry.metrics());
    const shape = (n: string) => [
      f.get(n)?.type,
      [...new Set(f.get(n)?.samples.flatMap((s) => Object.keys(s.labels)))].sort(),
    ];
    expect(shape("ironlb_pool_addresses")).toEqual(["gauge", ["family", "pool"]]);
    expect(shape("ironlb_pool_addresses_in_use")).toEqual(["gauge", ["family", "pool"]]);
    expect(shape("ironlb_allocations_total")).toEqual(["counter", []]);
    expect(shape("ironlb_allocation_failures_total")).toEqual(["counter", ["reason"]]);
    expect(shape("ironlb_reconcile_duration_seconds")).toEqual(["histogram", ["le"]]);
    expect(shape("ironlb_controller_leader")).toEqual(["gauge", []]);
    expect(f.get("ironlb_pool_addresses")!.help).toBe(
      "Usable addresses in a pool, per family (saturates at 2^53-1 for huge IPv6 pools).",
    );

    const s = speakerMetrics();
    s.announced.set(3);
    s.liveSpeakers.set(2);
    s.conflicts.inc();
    s.outsidePool.inc();
    s.count("repliesSent", "eth0");
    const sf = parseExposition(await s.registry.metrics());
    expect(sf.get("ironlb_speaker_announced_ips")!.samples[0]!.value).toBe(3);
    expect(sf.get("ironlb_speaker_live_speakers")!.type).toBe("gauge");
    expect(sf.get("ironlb_speaker_ip_conflicts_total")!.samples[0]!.value).toBe(1);
    expect(sf.get("ironlb_speaker_ips_outside_pool_total")).toMatchObject({
      type: "counter",
      samples: [{ labels: {}, value: 1 }],
    });
    expect(sf.get("ironlb_speaker_packets_total")!.samples).toEqual([
      {
        name: "ironlb_speaker_packets_total",
        labels: { interface: "eth0", kind: "replies_sent" },
        value: 1,
      },
    ]);
  });
});
