import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat } from "./heartbeat.ts";
import { HeartbeatKeyFiles, keyFingerprint, readHeartbeatKeys } from "./heartbeat-keys.ts";

const OLD = "old key, sixteen bytes or more";
const NEW = "new key, sixteen bytes or more";
const beat: Heartbeat = {
  node: "node-a",
  incarnation: 1,
  seq: 1,
  sentAtMs: 1,
  leaving: false,
};

describe("heartbeat key files", () => {
  let dir: string;
  let file: string;
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: "debug" }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "ironlb-keys-"));
    file = join(dir, "secret");
    lines.length = 0;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Whether a beat sent by `from` is accepted by `to`. */
  const hears = (from: HeartbeatKeyFiles, to: HeartbeatKeyFiles) =>
    decodeHeartbeat(encodeHeartbeat(beat, from.keys().send), to.keys().accept).ok;

  it("reads the key and the optional next and previous keys", () => {
    writeFileSync(file, OLD);
    expect(readHeartbeatKeys(file)).toEqual({
      keys: { send: Buffer.from(OLD), accept: [Buffer.from(OLD)] },
      problems: [],
    });
    writeFileSync(`${file}.next`, NEW);
    writeFileSync(`${file}.previous`, "short");
    const { keys, problems } = readHeartbeatKeys(file);
    expect(keys).toEqual({ send: Buffer.from(OLD), accept: [Buffer.from(OLD), Buffer.from(NEW)] });
    expect(problems).toEqual([`${file}.previous is shorter than 16 bytes`]);
    writeFileSync(file, "short");
    expect(() => readHeartbeatKeys(file)).toThrow(/shorter than 16 bytes/);
  });

  it("rotates in three steps without a moment where two speakers cannot hear each other", () => {
    writeFileSync(file, OLD);
    // Two nodes: each kubelet updates its copy of the Secret at its own time.
    const dirB = mkdtempSync(join(tmpdir(), "ironlb-keys-"));
    const fileB = join(dirB, "secret");
    writeFileSync(fileB, OLD);
    try {
      const a = new HeartbeatKeyFiles(file, log);
      const b = new HeartbeatKeyFiles(fileB, log);
      const steps: Array<Record<string, string | null>> = [
        { "": OLD, ".next": NEW, ".previous": null },
        { "": NEW, ".next": null, ".previous": OLD },
        { "": NEW, ".next": null, ".previous": null },
      ];
      const apply = (f: string, step: Record<string, string | null>) => {
        for (const [suffix, key] of Object.entries(step)) {
          if (key !== null) writeFileSync(f + suffix, key);
          else rmSync(f + suffix, { force: true });
        }
      };
      for (const step of steps) {
        apply(file, step);
        expect(a.reload()).toBe(true);
        // Only a has the step yet.
        expect(hears(a, b) && hears(b, a)).toBe(true);
        apply(fileB, step);
        b.reload();
        expect(hears(a, b) && hears(b, a)).toBe(true);
      }
      expect(a.keys()).toEqual({ send: Buffer.from(NEW), accept: [Buffer.from(NEW)] });
      expect(lines.filter((l) => l.msg === "heartbeat keys changed").length).toBe(6);
      expect(lines.find((l) => l.msg === "heartbeat keys changed")).toMatchObject({
        sendKey: keyFingerprint(Buffer.from(OLD)),
        acceptedKeys: [keyFingerprint(Buffer.from(OLD)), keyFingerprint(Buffer.from(NEW))],
      });
    } finally {
      rmSync(dirB, { recursive: true, force: true });
    }
  });

  it("keeps the keys in use when the key file disappears or is too short", () => {
    writeFileSync(file, OLD);
    const k = new HeartbeatKeyFiles(file, log);
    unlinkSync(file);
    expect(k.reload()).toBe(false);
    writeFileSync(file, "short");
    expect(k.reload()).toBe(false);
    expect(k.keys().send).toEqual(Buffer.from(OLD));
    const warnings = lines.filter((l) => l.msg === "heartbeat key files: problems");
    expect(warnings).toHaveLength(2);
    expect(String((warnings[1]!.problems as string[])[0])).toContain("keeping the keys in use");
    // Unchanged files: nothing changes, nothing more is logged.
    writeFileSync(file, OLD);
    expect(k.reload()).toBe(false);
    expect(lines.filter((l) => l.msg === "heartbeat keys changed")).toHaveLength(0);
  });

  it("a fingerprint names a key without giving it away", () => {
    expect(keyFingerprint(Buffer.from(OLD))).toMatch(/^[0-9a-f]{12}$/);
    expect(keyFingerprint(Buffer.from(OLD))).not.toBe(keyFingerprint(Buffer.from(NEW)));
  });
});
