// Builds the UPDATEs for a set of routes: prefixes with equal attributes share one UPDATE
// until it would pass 4096 bytes (MetalLB's native speaker sends one per prefix); IPv4 in
// the classic NLRI fields, IPv6 in MP_REACH/MP_UNREACH; End-of-RIB markers (RFC 4724).
// Pure.
import {
  type AttributeRuns,
  concat,
  encodeCommonAttributes,
  encodeMpReach,
  encodeMpUnreach,
  encodeNextHop,
  encodePrefix,
  mpReachHead,
  type Nlri,
} from "./attributes.ts";
import type { Family } from "./capabilities.ts";
import { frame, HEADER_LENGTH, MAX_MESSAGE_LENGTH, MSG_UPDATE } from "./messages.ts";
import type { BgpRoute } from "./types.ts";

/** What the attributes depend on besides the route itself. */
export interface UpdateContext {
  myASN: number;
  /** Same AS: empty AS_PATH and LOCAL_PREF; else AS_PATH [myASN] and no LOCAL_PREF. */
  internal: boolean;
  fourOctet: boolean;
  /** IPv4: the session's local address. IPv6: global, then optionally link-local (RFC 2545). */
  nextHops: Partial<Record<Family, readonly string[]>>;
}

/** The UPDATEs to send and the routes that could not go (and why). */
export interface PackResult {
  messages: Uint8Array[];
  skipped: { prefix: string; reason: string }[];
}

const TOO_LARGE = "its attributes do not fit a 4096-byte UPDATE";
// Withdrawn-length and attribute-length fields.
const FIXED = HEADER_LENGTH + 4;
const BUDGET = MAX_MESSAGE_LENGTH - FIXED;

function update(withdrawn: Uint8Array, attributes: Uint8Array, nlri: Uint8Array): Uint8Array {
  const body = new Uint8Array(4 + withdrawn.length + attributes.length + nlri.length);
  body[0] = withdrawn.length >> 8;
  body[1] = withdrawn.length & 0xff;
  body.set(withdrawn, 2);
  const a = 2 + withdrawn.length;
  body[a] = attributes.length >> 8;
  body[a + 1] = attributes.length & 0xff;
  body.set(attributes, a + 2);
  body.set(nlri, a + 2 + attributes.length);
  return frame(MSG_UPDATE, body);
}

/** Splits NLRI into runs whose byte sizes stay within `budget`. */
function chunks(nlri: readonly Nlri[], budget: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let run: Uint8Array[] = [];
  let size = 0;
  for (const p of nlri) {
    if (size + p.bytes.length > budget && run.length > 0) {
      out.push(concat(run));
      run = [];
      size = 0;
    }
    run.push(p.bytes);
    size += p.bytes.length;
  }
  if (run.length > 0) out.push(concat(run));
  return out;
}

/**
 * A key equal for routes whose attributes are equal. Built by hand, not with JSON: the
 * session computes it for every desired route on every change (10,000 Services).
 */
function attributeKey(r: BgpRoute, ctx: UpdateContext): string {
  const c = r.communities.length === 0 ? "" : normalisedCommunities(r.communities).join(",");
  const l =
    r.largeCommunities.length === 0
      ? ""
      : normalisedLarge(r.largeCommunities)
          .map((x) => x.join(":"))
          .join(",");
  return `${c}|${l}|${ctx.internal ? (r.localPref ?? "") : ""}`;
}

function normalisedCommunities(c: readonly number[]): number[] {
  return [...new Set(c.map((x) => x >>> 0))].sort((a, b) => a - b);
}

function normalisedLarge(
  l: readonly (readonly [number, number, number])[],
): [number, number, number][] {
  const seen = new Map<string, [number, number, number]>();
  for (const x of l) seen.set(x.join(":"), [x[0] >>> 0, x[1] >>> 0, x[2] >>> 0]);
  return [...seen.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
}

/** A route's attribute identity: equal strings mean nothing to resend. */
export function routeFingerprint(r: BgpRoute, ctx: UpdateContext): string {
  return attributeKey(r, ctx);
}

function runsFor(r: BgpRoute, ctx: UpdateContext): AttributeRuns {
  return encodeCommonAttributes({
    prependASN: ctx.internal ? undefined : ctx.myASN,
    fourOctet: ctx.fourOctet,
    localPref: ctx.internal ? r.localPref : undefined,
    communities: normalisedCommunities(r.communities),
    largeCommunities: normalisedLarge(r.largeCommunities),
  });
}

/**
 * The UPDATEs announcing `routes`, all of family `family` (others are skipped), grouped by
 * equal attributes and packed up to 4096 bytes each.
 */
export function packAnnouncements(
  family: Family,
  routes: readonly BgpRoute[],
  ctx: UpdateContext,
): PackResult {
  const skipped: PackResult["skipped"] = [];
  const groups = new Map<string, { runs: AttributeRuns; nlri: Nlri[]; prefixes: string[] }>();
  for (const r of routes) {
    const nlri = encodePrefix(r.prefix);
    if (nlri === undefined) {
      skipped.push({ prefix: r.prefix, reason: "not a prefix" });
      continue;
    }
    if (nlri.family !== family) {
      skipped.push({ prefix: r.prefix, reason: `not ${family}` });
      continue;
    }
    const key = attributeKey(r, ctx);
    let g = groups.get(key);
    if (g === undefined) {
      g = { runs: runsFor(r, ctx), nlri: [], prefixes: [] };
      groups.set(key, g);
    }
    g.nlri.push(nlri);
    g.prefixes.push(r.prefix);
  }
  const hops = ctx.nextHops[family];
  const messages: Uint8Array[] = [];
  for (const g of groups.values()) {
    if (hops === undefined || hops.length === 0) {
      skipped.push(...g.prefixes.map((prefix) => ({ prefix, reason: `no ${family} next hop` })));
      continue;
    }
    const fixed = g.runs.head.length + g.runs.mid.length + g.runs.tail.length;
    if (family === "ipv4-unicast") {
      const attrs = concat([
        g.runs.head,
        encodeNextHop(hops[0] as string),
        g.runs.mid,
        g.runs.tail,
      ]);
      const budget = BUDGET - attrs.length;
      if (budget < 5) {
        skipped.push(...g.prefixes.map((prefix) => ({ prefix, reason: TOO_LARGE })));
        continue;
      }
      for (const run of chunks(g.nlri, budget))
        messages.push(update(new Uint8Array(0), attrs, run));
    } else {
      const head = mpReachHead(family, hops);
      // MP_REACH's own header, always counted as extended (4 bytes).
      const budget = BUDGET - fixed - 4 - head.length;
      if (budget < 17) {
        skipped.push(...g.prefixes.map((prefix) => ({ prefix, reason: TOO_LARGE })));
        continue;
      }
      for (const run of chunks(g.nlri, budget)) {
        const attrs = concat([g.runs.head, g.runs.mid, encodeMpReach(head, run), g.runs.tail]);
        messages.push(update(new Uint8Array(0), attrs, new Uint8Array(0)));
      }
    }
  }
  return { messages, skipped };
}

/** The UPDATEs withdrawing `prefixes` of `family` (others are ignored). */
export function packWithdrawals(family: Family, prefixes: readonly string[]): Uint8Array[] {
  const nlri = prefixes
    .map(encodePrefix)
    .filter((n): n is Nlri => n !== undefined && n.family === family);
  if (family === "ipv4-unicast") {
    return chunks(nlri, BUDGET).map((w) => update(w, new Uint8Array(0), new Uint8Array(0)));
  }
  // MP_UNREACH: 4-byte attribute header, AFI and SAFI.
  return chunks(nlri, BUDGET - 7).map((w) =>
    update(new Uint8Array(0), encodeMpUnreach(family, w), new Uint8Array(0)),
  );
}

/** RFC 4724 End-of-RIB: an empty UPDATE (IPv4) or one with an empty MP_UNREACH (others). */
export function endOfRib(family: Family): Uint8Array {
  if (family === "ipv4-unicast")
    return update(new Uint8Array(0), new Uint8Array(0), new Uint8Array(0));
  return update(new Uint8Array(0), encodeMpUnreach(family, new Uint8Array(0)), new Uint8Array(0));
}
