// A few checkers for JSON objects, composed like the CRDs' OpenAPI schemas, that word every
// problem as the apiserver does ("spec.addresses[1]: <message>"). ironlb's own instead of
// zod, which cost the controller ~13 MiB RSS at load (bench/RESULTS.md) for the handful of
// rules below. Each checker returns the value (defaults applied) or undefined after adding
// one message per problem to `errors`.

/** Checks `value` found at `path`; adds messages to `errors`; returns the checked value. */
export type Checker<T> = (value: unknown, path: string, errors: string[]) => T | undefined;

/**
 * The checked value, or apiserver-style errors. `ignored` lists the paths of unknown fields
 * left out of the value, when the parse was asked to ignore them (`unknownFields: "ignore"`).
 */
export type ParseResult<T> =
  | { ok: true; value: T; ignored?: string[] }
  | { ok: false; errors: string[]; ignored?: string[] };

export interface ParseOptions {
  /**
   * "reject" (default): an unknown field is an error, as `kubectl apply` with the apiserver's
   * Strict field validation says. "ignore": it is left out and listed in `ignored` — for
   * objects read back from the API, where an unknown field means a newer CRD or a newer
   * writer (version skew), never a reason to stop using the object.
   */
  unknownFields?: "reject" | "ignore";
}

const UNKNOWN_FIELD = 'unknown field "';
const isUnknownField = (message: string) => message.startsWith(UNKNOWN_FIELD);

/** Runs a checker on a whole object: the value, or apiserver-style errors. */
export function parseWith<T>(
  check: Checker<T>,
  obj: unknown,
  opts: ParseOptions = {},
): ParseResult<T> {
  let errors: string[] = [];
  const value = check(obj, "", errors);
  if (opts.unknownFields !== "ignore") {
    return errors.length === 0 ? { ok: true, value: value as T } : { ok: false, errors };
  }
  const ignored = errors.filter(isUnknownField).map((m) => m.slice(UNKNOWN_FIELD.length, -1));
  errors = errors.filter((m) => !isUnknownField(m));
  return errors.length === 0
    ? { ok: true, value: value as T, ignored }
    : { ok: false, errors, ignored };
}

const at = (path: string, msg: string) => (path === "" ? msg : `${path}: ${msg}`);
const child = (path: string, key: string) => (path === "" ? key : `${path}.${key}`);

function typeError(path: string, type: string, errors: string[]): undefined {
  errors.push(at(path, `must be of type ${type}`));
  return undefined;
}

export interface StringRules {
  min?: number;
  max?: number;
  /** The value must match; `message` says what in words (else the pattern is named). */
  pattern?: RegExp;
  message?: string;
  /** Further messages about a string of the right type and length. */
  refine?: (s: string) => string[];
}

export function string(rules: StringRules = {}): Checker<string> {
  return (v, path, errors) => {
    if (typeof v !== "string") return typeError(path, "string", errors);
    const before = errors.length;
    if (rules.min !== undefined && v.length < rules.min)
      errors.push(at(path, `should be at least ${rules.min} chars long`));
    if (rules.max !== undefined && v.length > rules.max)
      errors.push(at(path, `Too long: may not be more than ${rules.max} bytes`));
    if (rules.pattern && !rules.pattern.test(v))
      errors.push(at(path, rules.message ?? `should match '${rules.pattern.source}'`));
    if (rules.refine && errors.length === before)
      for (const m of rules.refine(v)) errors.push(at(path, m));
    return v;
  };
}

export function boolean(): Checker<boolean> {
  return (v, path, errors) => (typeof v === "boolean" ? v : typeError(path, "boolean", errors));
}

export function integer(min?: number, max?: number): Checker<number> {
  return (v, path, errors) => {
    if (typeof v !== "number" || !Number.isSafeInteger(v))
      return typeError(path, "integer", errors);
    if (min !== undefined && v < min)
      errors.push(at(path, `should be greater than or equal to ${min}`));
    if (max !== undefined && v > max)
      errors.push(at(path, `should be less than or equal to ${max}`));
    return v;
  };
}

/** One of a few strings (an enum, or a single constant such as apiVersion). */
export function oneOf<const T extends string>(...values: T[]): Checker<T> {
  return (v, path, errors) => {
    if (values.includes(v as T)) return v as T;
    if (typeof v !== "string") return typeError(path, "string", errors);
    const supported = values.map((x) => JSON.stringify(x)).join(", ");
    errors.push(
      at(path, `Unsupported value: ${JSON.stringify(v)}: supported values: ${supported}`),
    );
    return undefined;
  };
}

export interface ArrayRules {
  min?: number;
  max?: number;
  /** A set (x-kubernetes-list-type: set): each repeated item is a "Duplicate value". */
  unique?: boolean;
  /** A map keyed by this field (x-kubernetes-list-type: map): one item per key. */
  mapKey?: string;
}

export function array<T>(item: Checker<T>, rules: ArrayRules = {}): Checker<T[]> {
  return (v, path, errors) => {
    if (!Array.isArray(v)) return typeError(path, "array", errors);
    if (rules.min !== undefined && v.length < rules.min)
      errors.push(at(path, `should have at least ${rules.min} items`));
    if (rules.max !== undefined && v.length > rules.max)
      errors.push(at(path, `must have at most ${rules.max} items`));
    const out: T[] = [];
    const seen = new Set<unknown>();
    v.forEach((x, i) => {
      const p = `${path}[${i}]`;
      out.push(item(x, p, errors) as T);
      if (rules.unique) {
        if (seen.has(x)) errors.push(at(p, `Duplicate value: ${JSON.stringify(x)}`));
        seen.add(x);
      }
      if (rules.mapKey !== undefined) {
        const k = (x as Record<string, unknown> | null)?.[rules.mapKey];
        if (seen.has(k))
          errors.push(
            at(
              p,
              `Duplicate value: map[string]interface {}{${JSON.stringify(rules.mapKey)}:${JSON.stringify(k)}}`,
            ),
          );
        seen.add(k);
      }
    });
    return out;
  };
}

/** A map of string keys (each checked by `key`, which returns messages) to checked values. */
export function record<T>(
  value: Checker<T>,
  key?: (k: string) => string[],
  maxKeys?: number,
): Checker<Record<string, T>> {
  return (v, path, errors) => {
    if (typeof v !== "object" || v === null || Array.isArray(v))
      return typeError(path, "object", errors);
    const entries = Object.entries(v);
    if (maxKeys !== undefined && entries.length > maxKeys)
      errors.push(at(path, `Too many: ${entries.length}: must have at most ${maxKeys} items`));
    const out: Record<string, T> = {};
    for (const [k, x] of entries) {
      for (const m of key?.(k) ?? []) errors.push(at(path, m));
      out[k] = value(x, child(path, k), errors) as T;
    }
    return out;
  };
}

/** A field of an object: its checker, and whether it may be absent (or its default then). */
export interface Field<T> {
  check: Checker<T>;
  optional?: boolean;
  default?: T;
}

export const required = <T>(check: Checker<T>): Field<T> => ({ check });
export const optional = <T>(check: Checker<T>): Field<T> => ({ check, optional: true });
export const withDefault = <T>(check: Checker<T>, value: T): Field<T> => ({
  check,
  optional: true,
  default: value,
});

type Shape = Record<string, Field<unknown>>;

/**
 * An object with known fields; `strict` rejects others as `unknown field "<path>"` (the
 * apiserver's pruning with field validation Strict), else they are kept as they are.
 * `refine` adds messages about a well-typed object as a whole.
 */
export function object<T>(
  shape: Shape,
  opts: { strict: boolean; refine?: (o: T) => string[] } = { strict: true },
): Checker<T> {
  return (v, path, errors) => {
    if (typeof v !== "object" || v === null || Array.isArray(v))
      return typeError(path, "object", errors);
    const src = v as Record<string, unknown>;
    const out: Record<string, unknown> = opts.strict ? {} : { ...src };
    const before = errors.length;
    for (const [k, f] of Object.entries(shape)) {
      const p = child(path, k);
      if (src[k] === undefined) {
        if (f.default !== undefined) out[k] = f.default;
        else if (!f.optional) errors.push(at(p, "Required value"));
        continue;
      }
      out[k] = f.check(src[k], p, errors);
    }
    if (opts.strict)
      for (const k of Object.keys(src))
        if (!(k in shape)) errors.push(`${UNKNOWN_FIELD}${child(path, k)}"`);
    // An unknown field does not make the known ones unfit for the object's own rules.
    if (opts.refine && !errors.slice(before).some((m) => !isUnknownField(m)))
      for (const m of opts.refine(out as T)) errors.push(at(path, m));
    return out as T;
  };
}

// RFC 3339 date-time with an offset or Z, as metav1.Time is written.
const dateTimePattern =
  /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$/;

export function dateTime(): Checker<string> {
  return string({
    pattern: dateTimePattern,
    message: "must be an RFC 3339 date-time, like 2026-12-01T15:05:17Z",
  });
}
