import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { V1CustomResourceDefinition } from "@kubernetes/client-node";
import { load } from "js-yaml";
import { describe, expect, it } from "vitest";
import { crdExpectations } from "../../scripts/gen-crds.ts";
import { BUILD_CRDS, CRD_FIX, checkCrds, schemaFields } from "./doctor-crds.ts";

const dir = join(import.meta.dirname, "../../config/crd");
const shipped = readdirSync(dir)
  .filter((f) => f.endsWith(".yaml"))
  .map((f) => load(readFileSync(join(dir, f), "utf8")) as V1CustomResourceDefinition);

describe("BUILD_CRDS", () => {
  it("is what config/crd holds (after changing a CRD: npm run gen:crds)", () => {
    expect(BUILD_CRDS).toEqual(crdExpectations());
  });
});

/** The shipped CRDs, changed by `edit` (deep copies). */
function installed(edit: (crds: V1CustomResourceDefinition[]) => void = () => {}) {
  const crds = structuredClone(shipped);
  edit(crds);
  return crds;
}
const named = (crds: V1CustomResourceDefinition[], name: string) =>
  crds.find((c) => c.metadata?.name === name)!;
const pools = "ipaddresspools.ironlb.dev";

describe("checkCrds", () => {
  it("all of this build's CRDs: one ok finding", () => {
    const f = checkCrds(installed());
    expect(f).toEqual([expect.objectContaining({ severity: "ok", check: "crds" })]);
    expect(f[0]!.cause).toContain(`${BUILD_CRDS.length} ironlb CRDs installed`);
  });

  it("a CRD missing: a problem with the command that installs them", () => {
    const f = checkCrds(installed((c) => c.splice(c.indexOf(named(c, "bgppeers.ironlb.dev")), 1)));
    expect(f).toEqual([
      {
        severity: "problem",
        check: "crds",
        subject: "crd bgppeers.ironlb.dev",
        cause: "not installed: ironlb cannot read or write BGPPeer objects",
        fix: CRD_FIX,
      },
    ]);
    expect(CRD_FIX).toContain(
      "kubectl apply --server-side --force-conflicts -f charts/ironlb/crds/",
    );
  });

  it("an older CRD (the chart upgraded, not its CRDs): names the fields it lacks", () => {
    const f = checkCrds(
      installed((c) => {
        const spec = named(c, pools).spec.versions[0]!.schema!.openAPIV3Schema!.properties!.spec!;
        delete spec.properties!.serviceAllocation;
        delete spec.properties!.autoAssign;
      }),
    );
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ severity: "problem", subject: `crd ${pools}`, fix: CRD_FIX });
    expect(f[0]!.cause).toMatch(
      /^older than this build: its v1beta1 schema lacks spec\.autoAssign, spec\.serviceAllocation,/,
    );
    expect(f[0]!.cause).toContain("upgraded without its CRDs");
  });

  it("this build's version not served: a problem listing the versions", () => {
    const f = checkCrds(
      installed((c) => {
        named(c, pools).spec.versions[0]!.served = false;
      }),
    );
    expect(f).toEqual([
      expect.objectContaining({
        severity: "problem",
        cause: "does not serve v1beta1, the version this build uses",
        evidence: "versions: v1beta1 (not served) (storage)",
      }),
    ]);
  });

  it("stored as another version: a warning", () => {
    const f = checkCrds(
      installed((c) => {
        const crd = named(c, pools);
        crd.spec.versions[0]!.storage = false;
        crd.spec.versions.push({ ...crd.spec.versions[0]!, name: "v1", storage: true });
      }),
    );
    expect(f).toEqual([
      expect.objectContaining({
        severity: "warning",
        cause: "stores objects as another version than v1beta1, the one this build uses",
      }),
    ]);
  });

  it("a newer CRD (fields this build does not know): a warning", () => {
    const f = checkCrds(
      installed((c) => {
        const spec = named(c, pools).spec.versions[0]!.schema!.openAPIV3Schema!.properties!.spec!;
        spec.properties!.futureField = { type: "string" };
      }),
    );
    expect(f).toEqual([
      expect.objectContaining({
        severity: "warning",
        subject: `crd ${pools}`,
        cause: expect.stringContaining("fields this ironlb does not know (spec.futureField)"),
      }),
    ]);
  });

  it("schemaFields walks objects and array items", () => {
    expect(
      schemaFields({
        properties: {
          spec: {
            properties: {
              a: { type: "string" },
              list: { type: "array", items: { properties: { b: { type: "string" } } } },
            },
          },
          status: { properties: { c: { type: "integer" } } },
        },
      }),
    ).toEqual(["spec.a", "spec.list", "spec.list[].b", "status.c"]);
  });
});
