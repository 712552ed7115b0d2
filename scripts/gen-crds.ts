// Writes src/cli/doctor-crds-build.ts, the property paths of every CRD in config/crd that
// `ironlb doctor` compares with the cluster's: run after changing a CRD (`npm run gen:crds`).
// The doctor's unit test fails while the file is stale.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { V1CustomResourceDefinition } from "@kubernetes/client-node";
import { load } from "js-yaml";
import { type CrdExpectation, schemaFields } from "../src/cli/crd-fields.ts";

const root = join(import.meta.dirname, "..");

/** The build's expectation of each CRD in `dir`, sorted by name. */
export function crdExpectations(dir = join(root, "config/crd")): CrdExpectation[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => load(readFileSync(join(dir, f), "utf8")) as V1CustomResourceDefinition)
    .map((c) => {
      const v = c.spec.versions.find((x) => x.storage)!;
      return {
        name: c.metadata!.name!,
        kind: c.spec.names.kind,
        version: v.name,
        fields: schemaFields(v.schema?.openAPIV3Schema),
      };
    })
    .sort((a, b) => (a.name < b.name ? -1 : 1));
}

if (import.meta.main) {
  const out = join(root, "src/cli/doctor-crds-build.ts");
  writeFileSync(
    out,
    `// Generated from config/crd by \`npm run gen:crds\` (scripts/gen-crds.ts): do not edit.
import type { CrdExpectation } from "./crd-fields.ts";

/** The CRDs of this build (config/crd), with their schemas' property paths. */
export const BUILD_CRDS: readonly CrdExpectation[] = ${JSON.stringify(crdExpectations())};
`,
  );
  execFileSync(join(root, "node_modules/.bin/biome"), ["format", "--write", out], {
    stdio: "inherit",
  });
}
