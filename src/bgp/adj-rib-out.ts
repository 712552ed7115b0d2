// What the peer should be told: the difference between the desired routes and what was
// already advertised on the session (its Adj-RIB-Out), as packed UPDATEs. Pure: the session
// sends the messages and keeps the new advertised map.
import type { Family } from "./capabilities.ts";
import type { BgpRoute } from "./types.ts";
import {
  endOfRib,
  packAnnouncements,
  packWithdrawals,
  routeFingerprint,
  type UpdateContext,
} from "./update-packer.ts";

/** Prefix → the attribute fingerprint the peer has for it. */
export type Advertised = ReadonlyMap<string, string>;

export interface SyncPlan {
  /** UPDATEs in order: per family, withdrawals, announcements, [End-of-RIB]. */
  messages: Uint8Array[];
  /** What the peer has once the messages are sent. */
  advertised: Map<string, string>;
  announced: number;
  withdrawn: number;
  /** Desired prefixes that cannot go on this session, and why. */
  /**
   * Prefixes not sent, and why. `otherFamily`: the session did not negotiate the prefix's
   * family, the normal case of a dual-stack Service with one session per family.
   */
  ignored: { prefix: string; reason: string; otherFamily?: boolean }[];
}

/**
 * The UPDATEs that turn `advertised` into `desired` on a session carrying `families`;
 * with `endOfRib`, the End-of-RIB marker of each family after its routes (initial table).
 */
export function planSync(
  desired: ReadonlyMap<string, BgpRoute>,
  advertised: Advertised,
  families: readonly Family[],
  ctx: UpdateContext,
  endOfRibToo: boolean,
): SyncPlan {
  const next = new Map(advertised);
  const messages: Uint8Array[] = [];
  const ignored: SyncPlan["ignored"] = [];
  // The family by the text alone (cheap, on every change for every route); a text that is no
  // prefix at all is refused by packAnnouncements.
  const fam = familyOfText;
  let announced = 0;
  let withdrawn = 0;
  for (const family of families) {
    const gone = [...advertised.keys()].filter((p) => !desired.has(p) && fam(p) === family);
    messages.push(...packWithdrawals(family, gone));
    for (const p of gone) next.delete(p);
    withdrawn += gone.length;
    const changed = [...desired.values()].filter(
      (r) => fam(r.prefix) === family && advertised.get(r.prefix) !== routeFingerprint(r, ctx),
    );
    const packed = packAnnouncements(family, changed, ctx);
    messages.push(...packed.messages);
    ignored.push(...packed.skipped);
    const skipped = new Set(packed.skipped.map((s) => s.prefix));
    for (const r of changed) {
      if (skipped.has(r.prefix)) {
        // A route that no longer fits must not stay at the peer with its old attributes.
        if (next.has(r.prefix)) {
          messages.push(...packWithdrawals(family, [r.prefix]));
          next.delete(r.prefix);
          withdrawn++;
        }
      } else {
        next.set(r.prefix, routeFingerprint(r, ctx));
        announced++;
      }
    }
    if (endOfRibToo) messages.push(endOfRib(family));
  }
  for (const p of desired.keys()) {
    const f = fam(p);
    if (!families.includes(f))
      ignored.push({ prefix: p, reason: `the session does not carry ${f}`, otherFamily: true });
  }
  return { messages, advertised: next, announced, withdrawn, ignored };
}

function familyOfText(prefix: string): Family {
  return prefix.includes(":") ? "ipv6-unicast" : "ipv4-unicast";
}

/** `advertised` without the prefixes of `family`: the peer asked for them again. */
export function forgetFamily(advertised: Advertised, family: Family): Map<string, string> {
  return new Map([...advertised].filter(([p]) => familyOfText(p) !== family));
}
