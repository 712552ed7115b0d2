// The sharing rule on its own: one row per reason two Services may or may not share an IP.
import { describe, expect, it } from "vitest";
import { type SharingPool, sharingConflict } from "./sharing.ts";
import { svc } from "./testkit.ts";
import type { ServiceRequest } from "./types.ts";

const closed: SharingPool = { name: "p" };
const open: SharingPool = { name: "p", allowSharingAcrossNamespaces: true };
const holder = svc("bank/a", { sharingKey: "k" });
const other = (key: string, extra: Partial<ServiceRequest> = {}) =>
  svc(key, { sharingKey: "k", ports: [{ protocol: "TCP", port: 443 }], ...extra });

describe("sharingConflict", () => {
  it.each<[string, ServiceRequest, SharingPool, string | undefined]>([
    ["same namespace, same key, other port", other("bank/b"), closed, undefined],
    [
      "another namespace, pool does not allow it",
      other("evil/b"),
      closed,
      "SharingRefused: bank/a is in namespace bank, not evil, and pool p does not allow sharing across namespaces (set spec.serviceAllocation.allowSharingAcrossNamespaces: true to allow it)",
    ],
    [
      "another namespace, allowSharingAcrossNamespaces false",
      other("evil/b"),
      { name: "p", allowSharingAcrossNamespaces: false },
      "SharingRefused: bank/a is in namespace bank, not evil, and pool p does not allow sharing across namespaces (set spec.serviceAllocation.allowSharingAcrossNamespaces: true to allow it)",
    ],
    ["another namespace, pool allows it", other("evil/b"), open, undefined],
    [
      "another namespace, pool allows it, but the key differs",
      other("evil/b", { sharingKey: "x" }),
      open,
      'SharingRefused: sharing key "x" differs from "k" of bank/a',
    ],
    [
      "another namespace, pool allows it, but the port is taken",
      other("evil/b", { ports: [{ protocol: "TCP", port: 80 }] }),
      open,
      "SharingRefused: port 80/TCP already used by bank/a",
    ],
    [
      "another namespace without a key: plainly in use",
      other("evil/b", { sharingKey: undefined }),
      closed,
      "IPInUse: in use by bank/a",
    ],
  ])("%s", (_name, wanting, pool, want) => {
    const c = sharingConflict(wanting, holder, holder.key, pool);
    expect(c === undefined ? undefined : `${c.reason}: ${c.why}`).toBe(want);
    // The rule is symmetric: the holder could not have joined the other either.
    expect(sharingConflict(holder, wanting, wanting.key, pool) === undefined).toBe(
      want === undefined,
    );
  });
});
