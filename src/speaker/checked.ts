// ironlb's own objects as the speaker reads them: through the checkers of src/api, so that an
// object the API server let through (an older or newer CRD, another writer) is never taken
// for something it is not. Unknown fields (a newer CRD, a newer writer) are left out and
// said once; an object that cannot be read is said once per version (a Warning log line,
// not one per evaluation) and then frozen on its last good version where that is what keeps
// addresses announced (pools, advertisements), or skipped (records: who announces now).
import type { KubernetesObject } from "@kubernetes/client-node";
import { group, version } from "../api/group.ts";
import type { ParseOptions, ParseResult } from "../api/validate.ts";
import type { Logger } from "../observability/log.ts";

export interface CheckedKind<T> {
  /** The kind, as in `kind:` ("L2Advertisement"). */
  kind: string;
  parse: (obj: unknown, opts?: ParseOptions) => ParseResult<T>;
  /**
   * What to use of an object that fails its checks when no good version of it (same uid)
   * was seen: undefined skips it.
   */
  salvage?: (obj: KubernetesObject) => T | undefined;
  /** Keep using the last good version (same uid) of an object that becomes unreadable. */
  freeze: boolean;
}

interface Memo<T> {
  value: T | undefined;
}

/** Checks the objects of one kind from an informer's cache, once per object version. */
export class Checked<T> {
  readonly #k: CheckedKind<T>;
  readonly #log: Logger;
  /**
   * Per cached object (the informer replaces the object on every change): its checked
   * value. Checked once per version, and the value keeps its identity while the object is
   * unchanged (decision.ts caches parsed pool addresses by array identity).
   */
  readonly #memo = new WeakMap<object, Memo<T>>();
  /** uid -> the last version that passed the checks. */
  readonly #lastGood = new Map<string, T>();
  /**
   * uid (else name) -> the resourceVersion last reported: a relist hands over new objects
   * of the same versions, which are checked again but not reported again.
   */
  readonly #reported = new Map<string, string | undefined>();

  constructor(kind: CheckedKind<T>, log: Logger) {
    this.#k = kind;
    this.#log = log;
  }

  /** The checked value of one object, or undefined when it is skipped. */
  get(obj: KubernetesObject | undefined): T | undefined {
    if (obj === undefined) return undefined;
    let m = this.#memo.get(obj);
    if (m === undefined) {
      m = { value: this.#check(obj) };
      this.#memo.set(obj, m);
    }
    return m.value;
  }

  /** The checked values of the cached objects (skipped ones left out); forgets the gone. */
  list(objs: readonly KubernetesObject[]): T[] {
    const out: T[] = [];
    for (const o of objs) {
      const v = this.get(o);
      if (v !== undefined) out.push(v);
    }
    if (this.#lastGood.size > objs.length || this.#reported.size > objs.length) {
      const ids = new Set(objs.map(idOf));
      for (const id of this.#lastGood.keys()) if (!ids.has(id)) this.#lastGood.delete(id);
      for (const id of this.#reported.keys()) if (!ids.has(id)) this.#reported.delete(id);
    }
    return out;
  }

  #check(obj: KubernetesObject): T | undefined {
    const k = this.#k;
    const meta = obj.metadata;
    const where = {
      kind: k.kind,
      name: meta?.name,
      resourceVersion: meta?.resourceVersion,
    };
    // Lists of custom resources carry apiVersion and kind on every item; a cache that
    // dropped them still holds objects of this kind.
    const r = k.parse(
      { apiVersion: `${group}/${version}`, kind: k.kind, ...obj },
      {
        unknownFields: "ignore",
      },
    );
    const id = idOf(obj);
    const report = this.#reported.get(id) !== meta?.resourceVersion || !this.#reported.has(id);
    const noted = (r.ignored?.length ?? 0) > 0 || !r.ok;
    if (report && noted) this.#reported.set(id, meta?.resourceVersion);
    if (report && r.ignored && r.ignored.length > 0)
      this.#log.info({ ...where, fields: r.ignored }, "unknown fields ignored (a newer CRD?)");
    const uid = meta?.uid;
    if (r.ok) {
      if (uid !== undefined && k.freeze) this.#lastGood.set(uid, r.value);
      return r.value;
    }
    const good = k.freeze && uid !== undefined ? this.#lastGood.get(uid) : undefined;
    const value = good ?? k.salvage?.(obj);
    if (!report) return value;
    this.#log.warn(
      {
        ...where,
        errors: r.errors,
        using:
          good !== undefined
            ? "its last good version"
            : value !== undefined
              ? "what could be read of it"
              : "nothing: skipped",
      },
      `invalid ${k.kind}`,
    );
    return value;
  }
}

function idOf(o: KubernetesObject): string {
  return o.metadata?.uid ?? `name:${o.metadata?.name}`;
}
