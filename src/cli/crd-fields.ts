// A CRD reduced to what `ironlb doctor` compares: its kind, version and the property paths
// of its spec and status schema. Shared by the doctor and scripts/gen-crds.ts. Pure.

export interface CrdExpectation {
  /** plural.group */
  name: string;
  kind: string;
  /** The version this build reads and writes (served, and the storage version). */
  version: string;
  /** Every property path of its spec and status schema ("spec.a.b", "spec.list[].c"). */
  fields: readonly string[];
}

/** The property paths under `spec` and `status` of a version's schema, sorted. */
export function schemaFields(openAPIV3Schema: unknown): string[] {
  const out: string[] = [];
  const walk = (s: Schema | undefined, prefix: string) => {
    if (!s) return;
    if (s.type === "array" && s.items) return walk(s.items, `${prefix}[]`);
    for (const [k, v] of Object.entries(s.properties ?? {})) {
      out.push(`${prefix}.${k}`);
      walk(v, `${prefix}.${k}`);
    }
  };
  const root = openAPIV3Schema as Schema | undefined;
  for (const top of ["spec", "status"]) walk(root?.properties?.[top], top);
  return out.sort();
}

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
}
