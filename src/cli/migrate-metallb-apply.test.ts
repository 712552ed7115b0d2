import { describe, expect, it } from "vitest";
import type { ConvertedObject } from "./migrate-metallb.ts";
import { missingKinds } from "./migrate-metallb-apply.ts";

const obj = (apiVersion: string, kind: string): ConvertedObject => ({
  comments: [],
  object: { apiVersion, kind, metadata: { name: "x" } },
});
const objects = [
  obj("ironlb.dev/v1beta1", "IPAddressPool"),
  obj("ironlb.dev/v1beta1", "BGPPeer"),
  obj("v1", "Secret"),
];

describe("missingKinds (migrate-from-metallb --apply refuses without ironlb's CRDs)", () => {
  it("every kind of ironlb's group that discovery does not list; core kinds never", () => {
    expect(missingKinds(objects, undefined)).toEqual(["BGPPeer", "IPAddressPool"]);
    expect(
      missingKinds(objects, { resources: [{ name: "ipaddresspools", kind: "IPAddressPool" }] }),
    ).toEqual(["BGPPeer"]);
    expect(
      missingKinds(objects, {
        resources: [
          { name: "ipaddresspools", kind: "IPAddressPool" },
          { name: "bgppeers", kind: "BGPPeer" },
        ],
      }),
    ).toEqual([]);
  });
});
