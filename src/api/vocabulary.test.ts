import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { keyOf, namespacedPath, PATHS } from "./vocabulary.ts";

// The manifests are the other place these facts live: a path the apiserver does not serve
// would only show up as 404s at run time.
const crd = (file: string) =>
  readFileSync(join(import.meta.dirname, "../../config/crd", file), "utf8");
const servedPath = (yaml: string) => {
  const field = (re: RegExp) => yaml.match(re)?.[1];
  const version = field(/^ {2}versions:\n {4}- name: (\S+)$/m);
  return `/apis/${field(/^ {2}group: (\S+)$/m)}/${version}/${field(/^ {4}plural: (\S+)$/m)}`;
};

describe("resource paths", () => {
  it.each([
    ["ironlb.dev_ipaddresspools.yaml", PATHS.ipAddressPools],
    ["ironlb.dev_l2advertisements.yaml", PATHS.l2Advertisements],
    ["ironlb.dev_ipannouncements.yaml", PATHS.ipAnnouncements],
  ])("%s is served at the path the components use", (file, path) => {
    expect(servedPath(crd(file))).toBe(path);
  });

  it("narrows Services and EndpointSlices to a namespace only when one is named", () => {
    expect(namespacedPath("services", undefined)).toBe(PATHS.services);
    expect(namespacedPath("services", "")).toBe(PATHS.services);
    expect(namespacedPath("services", "web")).toBe("/api/v1/namespaces/web/services");
    expect(namespacedPath("endpointSlices", "web")).toBe(
      "/apis/discovery.k8s.io/v1/namespaces/web/endpointslices",
    );
  });
});

describe("keyOf", () => {
  it("is namespace/name, with an empty namespace for cluster-scoped objects", () => {
    expect(keyOf({ metadata: { namespace: "default", name: "web" } })).toBe("default/web");
    expect(keyOf({ metadata: { name: "node-a" } })).toBe("/node-a");
  });
});
