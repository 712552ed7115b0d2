// Prometheus metrics in the text exposition format (version 0.0.4): counters, gauges and
// histograms with labels, and the process figures (CPU, RSS, heap, GC, event-loop lag).
// ironlb's own instead of prom-client, which costs ~9 MiB RSS per component at load
// (bench/RESULTS.md) for the few metric kinds used here.

/** Label values by label name. */
export type Labels = Record<string, string | number>;

interface Family {
  /** Appends this family's HELP, TYPE and samples. */
  render(out: string[]): void;
}

/** The metrics of one component; `metrics()` renders them all. */
export class Registry {
  readonly contentType = "text/plain; version=0.0.4; charset=utf-8";
  readonly #families: Family[] = [];
  readonly #names = new Set<string>();
  readonly #collectors: Array<() => void> = [];

  register(name: string, family: Family): void {
    if (this.#names.has(name)) throw new Error(`metric ${name} is registered twice`);
    this.#names.add(name);
    this.#families.push(family);
  }

  /** `collect` runs before every render (to refresh gauges read from the process). */
  onCollect(collect: () => void): void {
    this.#collectors.push(collect);
  }

  async metrics(): Promise<string> {
    for (const c of this.#collectors) c();
    const out: string[] = [];
    for (const f of this.#families) f.render(out);
    return out.join("");
  }
}

const namePattern = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const labelPattern = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const escapeHelp = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
const escapeValue = (s: string) =>
  s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

/** A sample value as the format writes it (+Inf, -Inf, NaN). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

interface Options {
  name: string;
  help: string;
  labelNames?: readonly string[];
  registry: Registry;
}

/** What counters, gauges and histograms share: a name, help, label names, one series per label set. */
abstract class Metric<S> implements Family {
  readonly name: string;
  readonly #help: string;
  readonly #type: string;
  protected readonly labelNames: readonly string[];
  /** Series by their rendered label set (`{a="x",b="y"}` or ""). */
  protected readonly series = new Map<string, S>();

  constructor(type: string, o: Options) {
    if (!namePattern.test(o.name)) throw new Error(`invalid metric name ${o.name}`);
    for (const l of o.labelNames ?? [])
      if (!labelPattern.test(l) || l === "le") throw new Error(`invalid label name ${l}`);
    this.name = o.name;
    this.#help = o.help;
    this.#type = type;
    this.labelNames = o.labelNames ?? [];
    o.registry.register(o.name, this);
  }

  /** The series' key: its labels rendered in the declared order; unknown labels throw. */
  protected key(labels: Labels | undefined): string {
    if (labels === undefined || this.labelNames.length === 0) {
      if (labels && Object.keys(labels).length > 0)
        throw new Error(`${this.name} has no labels, got ${Object.keys(labels).join(", ")}`);
      return "";
    }
    for (const k of Object.keys(labels))
      if (!this.labelNames.includes(k)) throw new Error(`${this.name} has no label ${k}`);
    const parts = this.labelNames
      .filter((l) => labels[l] !== undefined)
      .map((l) => `${l}="${escapeValue(String(labels[l]))}"`);
    return parts.length === 0 ? "" : `{${parts.join(",")}}`;
  }

  protected abstract samples(out: string[]): void;

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.#help)}\n# TYPE ${this.name} ${this.#type}\n`);
    this.samples(out);
  }

  /** Forgets one series (e.g. of a deleted pool), or all of them. */
  remove(labels?: Labels): void {
    if (labels === undefined) this.series.clear();
    else this.series.delete(this.key(labels));
  }
}

/** Splits prom-client-style arguments: (value?) or (labels, value?). */
function args(a?: Labels | number, b?: number): [Labels | undefined, number | undefined] {
  return typeof a === "object" ? [a, b] : [undefined, a];
}

/** Counters and gauges: one number per series, an unlabelled one reading 0 from the start. */
abstract class NumberMetric extends Metric<number> {
  constructor(type: string, o: Options) {
    super(type, o);
    // An unlabelled metric reads 0 before its first change, as prom-client's did.
    if (this.labelNames.length === 0) this.series.set("", 0);
  }

  protected add(labels: Labels | undefined, v: number): void {
    const k = this.key(labels);
    this.series.set(k, (this.series.get(k) ?? 0) + v);
  }

  get(labels?: Labels): number {
    return this.series.get(this.key(labels)) ?? 0;
  }

  protected samples(out: string[]): void {
    for (const [k, v] of this.series) out.push(`${this.name}${k} ${formatValue(v)}\n`);
  }
}

/** A value that only goes up. */
export class Counter extends NumberMetric {
  constructor(o: Options) {
    super("counter", o);
  }

  inc(labels?: Labels | number, value?: number): void {
    const [l, v = 1] = args(labels, value);
    if (!(v >= 0)) throw new Error(`${this.name}: a counter cannot decrease (got ${v})`);
    this.add(l, v);
  }
}

/** A value that goes up and down. */
export class Gauge extends NumberMetric {
  constructor(o: Options) {
    super("gauge", o);
  }

  set(labels: Labels | number, value?: number): void {
    const [l, v] = args(labels, value);
    this.series.set(this.key(l), v ?? 0);
  }

  inc(labels?: Labels | number, value?: number): void {
    const [l, v = 1] = args(labels, value);
    this.add(l, v);
  }
}

interface HistogramSeries {
  labels: string;
  /** Observations per bucket (not cumulative), then the +Inf bucket. */
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into buckets (cumulative `le` buckets, `_sum`, `_count`). */
export class Histogram extends Metric<HistogramSeries> {
  readonly #buckets: number[];

  constructor(o: Options & { buckets: readonly number[] }) {
    super("histogram", o);
    this.#buckets = [...o.buckets].sort((a, b) => a - b);
    if (this.labelNames.length === 0) this.#get("");
  }

  #get(key: string): HistogramSeries {
    let s = this.series.get(key);
    if (s === undefined) {
      // The series' own labels, to which each bucket adds le.
      s = { labels: key.slice(1, -1), counts: this.#buckets.map(() => 0), sum: 0, count: 0 };
      s.counts.push(0);
      this.series.set(key, s);
    }
    return s;
  }

  observe(labels: Labels | number, value?: number): void {
    const [l, v] = args(labels, value);
    if (v === undefined || Number.isNaN(v)) throw new Error(`${this.name}: observe needs a number`);
    const s = this.#get(this.key(l));
    let i = this.#buckets.findIndex((b) => v <= b);
    if (i < 0) i = this.#buckets.length;
    s.counts[i]! += 1;
    s.sum += v;
    s.count += 1;
  }

  /** Starts a timer; calling the result observes the seconds since (with `labels`, if given). */
  startTimer(labels?: Labels): (end?: Labels) => number {
    const t0 = performance.now();
    return (end?: Labels) => {
      const seconds = (performance.now() - t0) / 1000;
      this.observe({ ...labels, ...end }, seconds);
      return seconds;
    };
  }

  protected samples(out: string[]): void {
    for (const [k, s] of this.series) {
      const with_ = (le: string) => `{${s.labels === "" ? "" : `${s.labels},`}le="${le}"}`;
      let cumulative = 0;
      this.#buckets.forEach((b, i) => {
        cumulative += s.counts[i]!;
        out.push(`${this.name}_bucket${with_(formatValue(b))} ${cumulative}\n`);
      });
      out.push(`${this.name}_bucket${with_("+Inf")} ${s.count}\n`);
      out.push(`${this.name}_sum${k} ${formatValue(s.sum)}\n${this.name}_count${k} ${s.count}\n`);
    }
  }
}

/**
 * The process figures prom-client's default metrics gave, under the same names: CPU, RSS,
 * start time, open file descriptors, V8 heap, GC pauses by kind, event-loop lag. Read from
 * /proc and Node when scraped; GC pauses from a PerformanceObserver.
 */
export function processMetrics(registry: Registry): void {
  const g = (name: string, help: string, labelNames?: string[]) =>
    new Gauge({ name, help, labelNames, registry });
  const cpuUser = new Counter({
    name: "process_cpu_user_seconds_total",
    help: "Total user CPU time spent in seconds.",
    registry,
  });
  const cpuSystem = new Counter({
    name: "process_cpu_system_seconds_total",
    help: "Total system CPU time spent in seconds.",
    registry,
  });
  const cpu = new Counter({
    name: "process_cpu_seconds_total",
    help: "Total user and system CPU time spent in seconds.",
    registry,
  });
  const start = g(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
  );
  start.set(Math.round((Date.now() - process.uptime() * 1000) / 1000));
  const rss = g("process_resident_memory_bytes", "Resident memory size in bytes.");
  const fds = g("process_open_fds", "Number of open file descriptors.");
  const heapTotal = g("nodejs_heap_size_total_bytes", "Process heap size from Node.js in bytes.");
  const heapUsed = g(
    "nodejs_heap_size_used_bytes",
    "Process heap size used from Node.js in bytes.",
  );
  const external = g("nodejs_external_memory_bytes", "Node.js external memory size in bytes.");
  const lag = g("nodejs_eventloop_lag_seconds", "Lag of event loop in seconds.");
  const lagP99 = g(
    "nodejs_eventloop_lag_p99_seconds",
    "The 99th percentile of the recorded event loop delays.",
  );
  const lagMax = g("nodejs_eventloop_lag_max_seconds", "The maximum recorded event loop delay.");
  const version = g("nodejs_version_info", "Node.js version info.", [
    "version",
    "major",
    "minor",
    "patch",
  ]);
  const [major, minor, patch] = process.versions.node.split(".");
  version.set({ version: process.version, major: major!, minor: minor!, patch: patch! }, 1);
  const gc = new Histogram({
    name: "nodejs_gc_duration_seconds",
    help: "Garbage collection duration by kind, one of major, minor, incremental or weakcb.",
    labelNames: ["kind"],
    buckets: [0.001, 0.01, 0.1, 1, 2, 5],
    registry,
  });
  const kinds: Record<number, string> = { 1: "minor", 2: "major", 4: "incremental", 8: "weakcb" };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = kinds[(e as { detail?: { kind?: number } }).detail?.kind ?? 0];
      if (kind) gc.observe({ kind }, e.duration / 1000);
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  const { monitorEventLoopDelay } = process.getBuiltinModule("node:perf_hooks");
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const { readdirSync } = process.getBuiltinModule("node:fs");
  let lastCpu = process.cpuUsage();
  cpuUser.inc(lastCpu.user / 1e6);
  cpuSystem.inc(lastCpu.system / 1e6);
  cpu.inc((lastCpu.user + lastCpu.system) / 1e6);
  registry.onCollect(() => {
    const now = process.cpuUsage();
    const user = Math.max(0, now.user - lastCpu.user) / 1e6;
    const system = Math.max(0, now.system - lastCpu.system) / 1e6;
    lastCpu = now;
    cpuUser.inc(user);
    cpuSystem.inc(system);
    cpu.inc(user + system);
    const m = process.memoryUsage();
    rss.set(m.rss);
    heapTotal.set(m.heapTotal);
    heapUsed.set(m.heapUsed);
    external.set(m.external);
    try {
      fds.set(readdirSync("/proc/self/fd").length - 1); // minus the one readdir opened
    } catch {
      // not Linux: leave it
    }
    // Delays are in nanoseconds; the histogram counts from the last scrape.
    lag.set(Number.isNaN(delay.mean) ? 0 : delay.mean / 1e9);
    lagP99.set(delay.percentile(99) / 1e9);
    lagMax.set(delay.max / 1e9);
    delay.reset();
  });
}

/**
 * The API client's counters (src/k8s ClientStats), read when scraped: requests the API
 * server answered 429, and exceptions of informer handlers that were contained.
 */
export function apiClientMetrics(
  registry: Registry,
  stats: { readonly throttledByServer: number; readonly informerErrors: number },
): void {
  const throttled = new Counter({
    name: "ironlb_api_throttled_total",
    help: "Requests the API server answered 429 (Too Many Requests); each is retried after its Retry-After.",
    registry,
  });
  const errors = new Counter({
    name: "ironlb_informer_handler_errors_total",
    help: "Exceptions thrown while handling a watched object (logged with its key); the watch carried on.",
    registry,
  });
  registry.onCollect(() => {
    throttled.inc(stats.throttledByServer - throttled.get());
    errors.inc(stats.informerErrors - errors.get());
  });
}
