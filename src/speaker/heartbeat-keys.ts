// The heartbeat keys, read from the mounted Secret and read again while the speaker runs
// (every 10 s, and on SIGHUP), so that a key rotation needs no restart and never splits the
// speakers.
//
// The file given (`--heartbeat-secret-file`, the Secret's data key) holds the key beats are
// sent with; `<file>.next` and `<file>.previous` (data keys `<key>.next`, `<key>.previous`),
// if present, hold keys accepted as well. The kubelet updates a mounted Secret on each node
// at its own time, up to a minute or two apart, so a rotation goes in steps, each waiting
// until every speaker has logged the keys of the step before (README: "Rotating the
// heartbeat key"): add the new key as `.next`; then make it the key and the old one
// `.previous`; then remove `.previous`.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { MIN_HEARTBEAT_KEY_BYTES } from "../api/vocabulary.ts";
import type { Logger } from "../observability/log.ts";
import type { HeartbeatKeys } from "./membership.ts";

/** How often the files are read again. The kubelet's own update delay is far longer. */
export const HEARTBEAT_KEY_RELOAD_MS = 10_000;

/** Names of the optional extra keys next to the key file. */
export const EXTRA_KEY_SUFFIXES = [".next", ".previous"] as const;

/** A short, non-secret name for a key in logs: the start of its SHA-256. */
export function keyFingerprint(key: Uint8Array): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 12);
}

/**
 * Reads the keys. Throws when the key file is unreadable or too short; an extra key that
 * is missing is skipped, one that is unreadable or too short is skipped with a reason in
 * `problems`.
 */
export function readHeartbeatKeys(file: string): { keys: HeartbeatKeys; problems: string[] } {
  const send = readFileSync(file);
  if (send.length < MIN_HEARTBEAT_KEY_BYTES) {
    throw new Error(`heartbeat secret in ${file} is shorter than ${MIN_HEARTBEAT_KEY_BYTES} bytes`);
  }
  const accept: Uint8Array[] = [send];
  const problems: string[] = [];
  for (const suffix of EXTRA_KEY_SUFFIXES) {
    let key: Buffer;
    try {
      key = readFileSync(file + suffix);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        problems.push(`${file + suffix}: ${(err as Error).message}`);
      continue;
    }
    if (key.length < MIN_HEARTBEAT_KEY_BYTES)
      problems.push(`${file + suffix} is shorter than ${MIN_HEARTBEAT_KEY_BYTES} bytes`);
    else if (!accept.some((k) => Buffer.compare(k, key) === 0)) accept.push(key);
  }
  return { keys: { send, accept }, problems };
}

/**
 * The current keys, read again every `reloadMs`. A read that fails keeps the keys in use
 * (a Warning says why), so a half-updated or deleted Secret never leaves a speaker keyless.
 */
export class HeartbeatKeyFiles {
  readonly #file: string;
  readonly #log: Logger;
  #keys: HeartbeatKeys;
  #summary: string;
  #lastProblem = "";
  #timer: NodeJS.Timeout | undefined;

  /** Reads the keys once; throws as readHeartbeatKeys does. */
  constructor(file: string, log: Logger) {
    this.#file = file;
    this.#log = log;
    const { keys, problems } = readHeartbeatKeys(file);
    this.#keys = keys;
    this.#summary = summary(keys);
    this.#report(problems);
    this.#log.info(this.#fields(), "heartbeat keys loaded");
  }

  /** The keys in use now. */
  keys(): HeartbeatKeys {
    return this.#keys;
  }

  /** Reads the files again; logs when the keys change. Returns whether they did. */
  reload(): boolean {
    let read: ReturnType<typeof readHeartbeatKeys>;
    try {
      read = readHeartbeatKeys(this.#file);
    } catch (err) {
      this.#report([`${(err as Error).message}; keeping the keys in use`]);
      return false;
    }
    this.#report(read.problems);
    const next = summary(read.keys);
    if (next === this.#summary) return false;
    this.#keys = read.keys;
    this.#summary = next;
    this.#log.info(this.#fields(), "heartbeat keys changed");
    return true;
  }

  /** Reloads every `reloadMs` until stop(). */
  start(reloadMs = HEARTBEAT_KEY_RELOAD_MS): void {
    this.stop();
    this.#timer = setInterval(() => this.reload(), reloadMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #fields() {
    return {
      file: this.#file,
      sendKey: keyFingerprint(this.#keys.send),
      acceptedKeys: this.#keys.accept.map(keyFingerprint),
    };
  }

  /** Warns about problems once each time they change. */
  #report(problems: string[]): void {
    const text = problems.join("; ");
    if (text === this.#lastProblem) return;
    this.#lastProblem = text;
    if (text) this.#log.warn({ file: this.#file, problems }, "heartbeat key files: problems");
  }
}

function summary(keys: HeartbeatKeys): string {
  return [keys.send, ...keys.accept].map(keyFingerprint).join(",");
}
