// The peers bench's PNG writer and axis bounds (bench/plot.ts): a file any PNG reader accepts
// (signature, chunk lengths and CRCs, IHDR, pixels that inflate back to what was drawn).
import { crc32, inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { encodePng, niceMax, type PeerFigures, peersPlot, Raster } from "../../bench/plot.ts";

/** The chunks of a PNG, with each CRC checked. */
function chunks(png: Buffer): { type: string; data: Buffer }[] {
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const out: { type: string; data: Buffer }[] = [];
  let at = 8;
  while (at < png.length) {
    const len = png.readUInt32BE(at);
    const type = png.toString("latin1", at + 4, at + 8);
    const data = png.subarray(at + 8, at + 8 + len);
    expect(png.readUInt32BE(at + 8 + len), `CRC of ${type}`).toBe(
      crc32(png.subarray(at + 4, at + 8 + len)) >>> 0,
    );
    out.push({ type, data });
    at += 12 + len;
  }
  expect(at).toBe(png.length);
  return out;
}

describe("encodePng", () => {
  it("writes IHDR, IDAT and IEND with valid CRCs, and the pixels row by row", () => {
    const rgb = new Uint8Array([255, 0, 0, 0, 255, 0, 0, 0, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const c = chunks(encodePng(3, 2, rgb));
    expect(c.map((x) => x.type)).toEqual(["IHDR", "IDAT", "IEND"]);
    const ihdr = c[0]!.data;
    expect(ihdr.readUInt32BE(0)).toBe(3);
    expect(ihdr.readUInt32BE(4)).toBe(2);
    expect([...ihdr.subarray(8)]).toEqual([8, 2, 0, 0, 0]);
    // Each row: filter byte 0, then its RGB bytes.
    expect([...inflateSync(c[1]!.data)]).toEqual([0, ...rgb.subarray(0, 9), 0, ...rgb.subarray(9)]);
    expect(c[2]!.data.length).toBe(0);
  });

  it("refuses pixel data of the wrong size", () => {
    expect(() => encodePng(2, 2, new Uint8Array(11))).toThrow(RangeError);
  });
});

describe("niceMax", () => {
  it.each([
    [0, 1],
    [0.7, 1],
    [3, 5],
    [12, 20],
    [250, 500],
    [2490, 5000],
    [100, 100],
  ])("%d -> %d", (max, want) => expect(niceMax(max)).toBe(want));
});

describe("Raster and peersPlot", () => {
  it("draws a line's pixels and nothing outside it", () => {
    const r = new Raster(5, 5);
    r.line(0, 2, 4, 2, [0, 0, 0]);
    const px = (x: number, y: number) => [
      ...r.pixels.subarray((y * 5 + x) * 3, (y * 5 + x) * 3 + 3),
    ];
    for (let x = 0; x < 5; x++) expect(px(x, 2)).toEqual([0, 0, 0]);
    expect(px(2, 1)).toEqual([255, 255, 255]);
  });

  it("renders the figures as a 1200×360 PNG", () => {
    const fig = (n: number): PeerFigures => ({
      n,
      real: 1,
      cpuPct: n / 10,
      simCpuPct: 1,
      udpInPerS: 10 * n,
      udpOutPerS: 10 * n,
      rcvbufErrors: 0,
      rssMiB: 60,
      falseDeaths: 0,
      liveAfterMs: 100,
      load: "1 1 1",
      failoverMs: [400, 420],
      at: "2026-12-07T00:00:00Z",
    });
    const c = chunks(peersPlot([fig(10), fig(250)]));
    expect(c[0]!.data.readUInt32BE(0)).toBe(1200);
    expect(c[0]!.data.readUInt32BE(4)).toBe(360);
  });
});
