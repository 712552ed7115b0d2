// Cost-against-N plots as PNG, with no dependency: a small RGB raster (lines, dots, a 3×5
// pixel font for labels) and a PNG writer (node:zlib's deflate and crc32), in memory: what the peers bench (peers-main.ts) draws into bench/peers.png.
import { crc32, deflateSync } from "node:zlib";
import { percentile } from "./stats.ts";

/** The figures of one N, as peers-main.ts records them (bench/peers-results.json). */
export interface PeerFigures {
  n: number;
  real: number;
  /** The simulated peers published heartbeat keys: beats both ways used pair keys. */
  paired?: boolean;
  cpuPct: number;
  /** The part of cpuPct spent in the kernel (stime). */
  sysPct?: number;
  simCpuPct: number;
  udpInPerS: number;
  udpOutPerS: number;
  rcvbufErrors: number;
  rssMiB: number;
  falseDeaths: number;
  /** The real speaker's own stalls past the dead time in the window (it rejoined). */
  stalls?: number;
  /** One peer's stall below the dead time and its flaps, and the deaths declared for them. */
  faults?: {
    shortStallMs: number;
    deathsAfterShortStall: number;
    flapMs: number;
    flaps: number;
    deathsAfterFlaps: number;
  };
  liveAfterMs: number;
  load: string;
  failoverMs: number[];
  /** Failover runs in which the real speaker judged the dead owner by its Lease. */
  failoverByLease?: number;
  at: string;
}

export type Rgb = readonly [number, number, number];

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function chunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/** An 8-bit RGB PNG of `width`×`height` pixels, `rgb` row by row (3 bytes a pixel). */
export function encodePng(width: number, height: number, rgb: Uint8Array): Buffer {
  if (rgb.length !== width * height * 3)
    throw new RangeError(`expected ${width * height * 3} bytes of RGB, got ${rgb.length}`);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  // compression, filter method, interlace: 0
  const raw = Buffer.alloc(height * (1 + width * 3));
  for (let y = 0; y < height; y++) {
    // Filter type 0 (none) before each row.
    raw.set(rgb.subarray(y * width * 3, (y + 1) * width * 3), y * (1 + width * 3) + 1);
  }
  return Buffer.concat([
    PNG_SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

// 3×5 glyphs, rows top to bottom, 3 bits each (4 = left column).
const FONT: Record<string, number[]> = {
  "0": [7, 5, 5, 5, 7],
  "1": [2, 6, 2, 2, 7],
  "2": [7, 1, 7, 4, 7],
  "3": [7, 1, 7, 1, 7],
  "4": [5, 5, 7, 1, 1],
  "5": [7, 4, 7, 1, 7],
  "6": [7, 4, 7, 5, 7],
  "7": [7, 1, 1, 2, 2],
  "8": [7, 5, 7, 5, 7],
  "9": [7, 5, 7, 1, 7],
  ".": [0, 0, 0, 0, 2],
  "/": [1, 1, 2, 4, 4],
  "%": [5, 1, 2, 4, 5],
  "=": [0, 7, 0, 7, 0],
  ":": [0, 2, 0, 2, 0],
  "-": [0, 0, 7, 0, 0],
  ",": [0, 0, 0, 2, 4],
  "(": [2, 4, 4, 4, 2],
  ")": [2, 1, 1, 1, 2],
  " ": [0, 0, 0, 0, 0],
  A: [2, 5, 7, 5, 5],
  B: [6, 5, 6, 5, 6],
  C: [7, 4, 4, 4, 7],
  D: [6, 5, 5, 5, 6],
  E: [7, 4, 6, 4, 7],
  F: [7, 4, 6, 4, 4],
  G: [7, 4, 5, 5, 7],
  H: [5, 5, 7, 5, 5],
  I: [7, 2, 2, 2, 7],
  K: [5, 5, 6, 5, 5],
  L: [4, 4, 4, 4, 7],
  M: [5, 7, 5, 5, 5],
  N: [5, 7, 7, 7, 5],
  O: [7, 5, 5, 5, 7],
  P: [7, 5, 7, 4, 4],
  R: [7, 5, 6, 5, 5],
  S: [7, 4, 7, 1, 7],
  T: [7, 2, 2, 2, 2],
  U: [5, 5, 5, 5, 7],
  V: [5, 5, 5, 5, 2],
  W: [5, 5, 7, 7, 5],
  X: [5, 5, 2, 5, 5],
  Y: [5, 5, 2, 2, 2],
};

/** An RGB raster with the few primitives a line chart needs. */
export class Raster {
  readonly width: number;
  readonly height: number;
  readonly pixels: Uint8Array;

  constructor(width: number, height: number, background: Rgb = [255, 255, 255]) {
    this.width = width;
    this.height = height;
    this.pixels = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.pixels.set(background, i * 3);
  }

  set(x: number, y: number, c: Rgb): void {
    const xi = Math.round(x);
    const yi = Math.round(y);
    if (xi < 0 || yi < 0 || xi >= this.width || yi >= this.height) return;
    this.pixels.set(c, (yi * this.width + xi) * 3);
  }

  /** A line `thick` pixels wide; `dash` > 0 leaves gaps of that length. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thick = 1, dash = 0): void {
    const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= steps; i++) {
      if (dash > 0 && Math.floor(i / dash) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * i) / steps;
      const y = y0 + ((y1 - y0) * i) / steps;
      for (let dx = 0; dx < thick; dx++)
        for (let dy = 0; dy < thick; dy++)
          this.set(x + dx - (thick >> 1), y + dy - (thick >> 1), c);
    }
  }

  dot(x: number, y: number, r: number, c: Rgb): void {
    for (let dx = -r; dx <= r; dx++)
      for (let dy = -r; dy <= r; dy++) if (dx * dx + dy * dy <= r * r) this.set(x + dx, y + dy, c);
  }

  /** Text in the 3×5 font, `scale` pixels per font pixel, from its top-left corner. */
  text(x: number, y: number, s: string, c: Rgb, scale = 2): void {
    let cx = x;
    for (const ch of s.toUpperCase()) {
      const g = FONT[ch] ?? FONT[" "]!;
      for (let row = 0; row < 5; row++)
        for (let col = 0; col < 3; col++)
          if (g[row]! & (4 >> col))
            for (let a = 0; a < scale; a++)
              for (let b = 0; b < scale; b++)
                this.set(cx + col * scale + a, y + row * scale + b, c);
      cx += 4 * scale;
    }
  }

  png(): Buffer {
    return encodePng(this.width, this.height, this.pixels);
  }
}

/** Width in pixels of `s` in the 3×5 font at `scale`. */
export function textWidth(s: string, scale = 2): number {
  return s.length * 4 * scale - scale;
}

/** A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

export interface Series {
  label: string;
  color: Rgb;
  points: [number, number][];
  /** A goal or reference: dashed, no dots. */
  dashed?: boolean;
}

const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [150, 150, 150];

/** One panel: axes from 0, ticks at quarters, the series, a title and a legend. */
export function drawPanel(
  r: Raster,
  box: { x: number; y: number; w: number; h: number },
  title: string,
  xMax: number,
  series: Series[],
): void {
  const ys = series.flatMap((s) => s.points.map(([, y]) => y));
  const yMax = niceMax(Math.max(...ys, 0));
  const left = box.x + 56;
  const bottom = box.y + box.h - 30;
  const top = box.y + 30;
  const right = box.x + box.w - 10;
  const px = (x: number) => left + ((right - left) * x) / xMax;
  const py = (y: number) => bottom - ((bottom - top) * Math.min(y, yMax * 1.05)) / yMax;
  r.text(box.x + (box.w - textWidth(title)) / 2, box.y + 6, title, BLACK);
  r.line(left, top, left, bottom, BLACK);
  r.line(left, bottom, right, bottom, BLACK);
  for (let i = 0; i <= 4; i++) {
    const xv = (xMax * i) / 4;
    const yv = (yMax * i) / 4;
    r.line(px(xv), bottom, px(xv), bottom + 4, BLACK);
    const xl = fmtTick(xv);
    r.text(px(xv) - textWidth(xl) / 2, bottom + 8, xl, BLACK);
    r.line(left - 4, py(yv), left, py(yv), BLACK);
    if (i > 0) r.line(left + 1, py(yv), right, py(yv), [225, 225, 225]);
    const yl = fmtTick(yv);
    r.text(left - 8 - textWidth(yl), py(yv) - 5, yl, BLACK);
  }
  r.text(right - textWidth("N"), bottom + 20, "N", BLACK);
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    for (let j = 1; j < pts.length; j++)
      r.line(
        px(pts[j - 1]![0]),
        py(pts[j - 1]![1]),
        px(pts[j]![0]),
        py(pts[j]![1]),
        s.color,
        2,
        s.dashed ? 6 : 0,
      );
    if (!s.dashed) for (const [x, y] of pts) r.dot(px(x), py(y), 3, s.color);
    r.line(left + 10, top + 8 + 14 * i, left + 26, top + 8 + 14 * i, s.color, 2, s.dashed ? 4 : 0);
    r.text(left + 32, top + 3 + 14 * i, s.label, s.color);
  });
}

function fmtTick(v: number): string {
  if (v === 0) return "0";
  if (Math.abs(v) >= 10_000) return `${Math.round(v / 1000)}K`;
  return Number.isInteger(v) ? String(v) : v.toFixed(v < 1 ? 2 : 1);
}

const BLUE: Rgb = [31, 90, 200];
const RED: Rgb = [200, 40, 40];
const GREEN: Rgb = [20, 140, 60];

/**
 * The peers bench's plot: one real speaker's CPU, its UDP datagrams per second, and the
 * failover time, each against the number of simulated peers N, with the goals.
 */
export function peersPlot(figs: readonly PeerFigures[]): Buffer {
  const r = new Raster(1200, 360);
  const xMax = Math.ceil(Math.max(...figs.map((f) => f.n), 10) / 50) * 50;
  const w = 400;
  const cpu = figs.map((f) => [f.n, f.cpuPct] as [number, number]);
  drawPanel(r, { x: 0, y: 0, w, h: 360 }, "SPEAKER CPU, % OF A CORE", xMax, [
    { label: "MEASURED", color: BLUE, points: cpu },
    {
      label: "GOAL AT 250: 2",
      color: GREY,
      points: [
        [0, 2],
        [xMax, 2],
      ],
      dashed: true,
    },
  ]);
  // Logarithmic growth from the smallest N > 0 measured (its mean of in and out), for
  // comparison with the measured curves.
  const first = [...figs].filter((f) => f.n > 0).sort((a, b) => a.n - b.n)[0];
  const logRef: [number, number][] = [];
  if (first)
    for (let x = first.n; x <= xMax; x += Math.max(1, xMax / 50))
      logRef.push([
        x,
        (((first.udpInPerS + first.udpOutPerS) / 2) * Math.log2(x + 1)) / Math.log2(first.n + 1),
      ]);
  drawPanel(r, { x: w, y: 0, w, h: 360 }, "SPEAKER UDP DATAGRAMS/S", xMax, [
    { label: "IN", color: BLUE, points: figs.map((f) => [f.n, f.udpInPerS]) },
    { label: "OUT", color: RED, points: figs.map((f) => [f.n, f.udpOutPerS]) },
    { label: "LOG GROWTH (GOAL)", color: GREY, points: logRef, dashed: true },
  ]);
  const withRuns = figs.filter((f) => f.failoverMs.length > 0);
  drawPanel(r, { x: 2 * w, y: 0, w, h: 360 }, "FAILOVER, MS", xMax, [
    { label: "P50", color: BLUE, points: withRuns.map((f) => [f.n, percentile(f.failoverMs, 50)]) },
    { label: "P99", color: RED, points: withRuns.map((f) => [f.n, percentile(f.failoverMs, 99)]) },
    {
      label: "GOAL P99: 500",
      color: GREEN,
      points: [
        [0, 500],
        [xMax, 500],
      ],
      dashed: true,
    },
  ]);
  return r.png();
}
