// The pure allocator: pools in, Services in, IPs out. No I/O and no Kubernetes types, so
// every rule is testable with tables and property tests. State per pool and family is a
// set of used addresses (runs of bigints), so memory follows assignments, never pool size.

import { formatIP, type IP, isUnspecified, parseIP, specialRanges } from "../net/address.ts";
import { parseAddressEntry } from "../net/range.ts";
import {
  countBuggy,
  type Interval,
  indexAtOrAfter,
  indexContaining,
  intersects,
  isBuggyIPv4,
  normalize,
  subtract,
} from "./intervals.ts";
import { RunSet } from "./runset.ts";
import { anySelectorMatches } from "./selectors.ts";
import { sharingConflict } from "./sharing.ts";
import type {
  AllocationResult,
  FailureReason,
  Family,
  PoolReport,
  PoolSpec,
  ServiceRequest,
} from "./types.ts";

const FAMILIES: readonly Family[] = ["IPv4", "IPv6"];

interface FamilyState {
  /** Usable addresses (overlap and network/broadcast already removed), normalized. */
  intervals: Interval[];
  /** Skip .0/.255: only ever true for IPv4. */
  avoidBuggy: boolean;
  /** Number of usable addresses, after every exclusion. */
  total: bigint;
  /** Addresses held by at least one Service. */
  used: RunSet;
  /** No free usable address lies below this: lets the lowest-free search skip the full prefix. */
  hint: bigint;
}

interface Pool {
  spec: PoolSpec;
  name: string;
  /** Full extent of the parsed entries: what an overlapping newer pool must keep out of. */
  raw: Record<Family, Interval[]>;
  fam: Record<Family, FamilyState>;
  invalid: string[];
  overlapsWith: string[];
  /** True when older pools hold every address this pool lists. */
  lostToOlder: boolean;
  /** Addresses that are legal but almost surely a mistake (loopback, multicast). */
  warnings: string[];
}

interface Assignment {
  req: ServiceRequest;
  pool: string;
  /** Addresses in the order of the Service's families. */
  addrs: IP[];
}

type Failure = { ok: false; reason: FailureReason; message: string };

type Plan =
  | { kind: "ok"; addrs: IP[]; shared: boolean }
  | { kind: "hard"; failure: Failure }
  | { kind: "exhausted"; family: Family }
  /** The pool is frozen and the Service holds nothing of `family` in it. */
  | { kind: "frozen"; family: Family };

function fail(reason: FailureReason, message: string): Failure {
  return { ok: false, reason, message };
}

function byName(a: { name: string }, b: { name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function age(spec: PoolSpec): number {
  const t = Date.parse(spec.creationTimestamp);
  // An unreadable timestamp counts as newest, so it can never take addresses from a pool
  // whose age is known.
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

function saturate(n: bigint): number {
  if (n <= 0n) return 0;
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}

function emptyFamilies<T>(make: () => T): Record<Family, T> {
  return { IPv4: make(), IPv6: make() };
}

/** Parses a pool's entries; overlap with other pools is resolved later, in setPools. */
function parsePool(spec: PoolSpec): Pool & { usable: Record<Family, Interval[]> } {
  const raw = emptyFamilies<Interval[]>(() => []);
  const usable = emptyFamilies<Interval[]>(() => []);
  const invalid: string[] = [];
  for (const text of spec.addresses) {
    const e = parseAddressEntry(text);
    if (e === undefined) {
      invalid.push(text);
      continue;
    }
    raw[e.family].push({ lo: e.first, hi: e.last });
    // /31 and /32 have no network or broadcast address (RFC 3021), so nothing to skip.
    const skipEnds =
      spec.excludeNetworkAndBroadcast &&
      e.family === "IPv4" &&
      e.prefix !== undefined &&
      e.prefix <= 30;
    usable[e.family].push(
      skipEnds ? { lo: e.first + 1n, hi: e.last - 1n } : { lo: e.first, hi: e.last },
    );
  }
  for (const f of FAMILIES) {
    raw[f] = normalize(raw[f]);
    usable[f] = subtract(normalize(usable[f]), UNSPECIFIED);
  }
  return {
    spec,
    name: spec.name,
    raw,
    usable,
    fam: emptyFamilies<FamilyState>(() => ({
      intervals: [],
      avoidBuggy: false,
      total: 0n,
      used: new RunSet(),
      hint: 0n,
    })),
    invalid,
    overlapsWith: [],
    lostToOlder: false,
    warnings: [],
  };
}

/** 0.0.0.0 and :: mean "any address" to a socket: never a Service's IP, whatever the pool says. */
const UNSPECIFIED: Interval[] = [{ lo: 0n, hi: 0n }];

const SPECIAL_WARNINGS = {
  loopback: "holds loopback addresses (127.0.0.0/8, ::1), which no client can reach",
  multicast:
    "holds multicast addresses (224.0.0.0/4, ff00::/8), which cannot be a unicast Service IP",
} as const;

function specialWarnings(usable: Record<Family, Interval[]>): string[] {
  const out: string[] = [];
  for (const kind of ["loopback", "multicast"] as const) {
    const hit = specialRanges[kind].some((r) =>
      intersects(usable[r.family], [{ lo: r.first, hi: r.last }]),
    );
    if (hit) out.push(SPECIAL_WARNINGS[kind]);
  }
  return out;
}

function familyState(intervals: Interval[], avoidBuggy: boolean): FamilyState {
  let total = 0n;
  for (const iv of intervals) {
    total += iv.hi - iv.lo + 1n;
    if (avoidBuggy) total -= countBuggy(iv.lo, iv.hi);
  }
  return { intervals, avoidBuggy, total, used: new RunSet(), hint: 0n };
}

/**
 * Assigns load-balancer IPs to Services from address pools. Deterministic: the same pools
 * and the same sequence of calls give the same IPs. All methods are synchronous and pure
 * (no I/O); the controller owns persistence (Service status) and calls `restore` after a
 * restart to rebuild the state from it.
 */
export class Allocator {
  #pools = new Map<string, Pool>();
  /** Pools in the order automatic allocation tries them: priority, then name. */
  #ordered: Pool[] = [];
  #assignments = new Map<string, Assignment>();
  /** Canonical IP -> keys of the Services holding it (more than one only when shared). */
  #holders = new Map<string, Set<string>>();
  /** Sharing key -> keys of Services that use it, to find IPs to share. */
  #byShareKey = new Map<string, Set<string>>();
  #invalidated = new Set<string>();

  /**
   * Replaces the set of pools and returns one report per pool, sorted by name.
   *
   * Entries that do not parse are listed in the report's `invalidAddresses`; the rest of
   * the pool works. Where pools overlap, the older one (creationTimestamp, then name) keeps
   * the overlap and the newer one lists it in `overlapsWith`. A pool name given twice: the
   * last spec wins.
   *
   * Existing assignments stay wherever each IP is still legal for its Service (in a pool
   * the Service may use, possibly another pool than before, and its requested pool if it
   * named one, and shared only where sharing is still legal); illegal IPs are dropped, and
   * the Service's key is queued for `invalidated()`. A pool's `autoAssign` does not affect
   * existing assignments, only new choices.
   */
  setPools(specs: PoolSpec[]): PoolReport[] {
    const unique = new Map<string, PoolSpec>();
    for (const s of specs) unique.set(s.name, s);
    const parsed = [...unique.values()]
      .map(parsePool)
      .sort((a, b) => age(a.spec) - age(b.spec) || byName(a, b));
    for (let i = 0; i < parsed.length; i++) {
      const pool = parsed[i]!;
      const unclaimed = { ...pool.raw };
      for (let j = 0; j < i; j++) {
        const older = parsed[j]!;
        let overlaps = false;
        for (const f of FAMILIES) {
          if (!intersects(pool.raw[f], older.raw[f])) continue;
          overlaps = true;
          pool.usable[f] = subtract(pool.usable[f], older.raw[f]);
          unclaimed[f] = subtract(unclaimed[f], older.raw[f]);
        }
        if (overlaps) pool.overlapsWith.push(older.name);
      }
      pool.lostToOlder =
        pool.overlapsWith.length > 0 && FAMILIES.every((f) => unclaimed[f].length === 0);
      pool.warnings = specialWarnings(pool.usable);
      pool.fam = {
        IPv4: familyState(pool.usable.IPv4, pool.spec.avoidBuggyIPs),
        IPv6: familyState(pool.usable.IPv6, false),
      };
    }
    this.#pools = new Map(parsed.map((p) => [p.name, p]));
    this.#ordered = [...parsed].sort(
      (a, b) =>
        (a.spec.priority ?? Number.POSITIVE_INFINITY) -
          (b.spec.priority ?? Number.POSITIVE_INFINITY) || byName(a, b),
    );

    for (const [key, a] of this.#assignments) {
      const legal: { addr: IP; pool: string }[] = [];
      for (const addr of a.addrs) {
        const p = this.#owner(addr);
        if (p === undefined || this.#refusal(p, a.req) !== undefined) continue;
        if (a.req.pool !== undefined && a.req.pool !== p.name) continue;
        legal.push({ addr, pool: p.name });
      }
      // All IPs of a Service come from one pool: prefer the pool it had.
      const pool = legal.some((l) => l.pool === a.pool) ? a.pool : legal[0]?.pool;
      const kept = legal.filter((l) => l.pool === pool).map((l) => l.addr);
      if (kept.length !== a.addrs.length || pool !== a.pool) this.#invalidated.add(key);
      if (pool === undefined || kept.length === 0) {
        this.#assignments.delete(key);
      } else {
        a.addrs = kept;
        a.pool = pool;
      }
    }
    this.#holders.clear();
    this.#byShareKey.clear();
    // A pool may have stopped allowing sharing across namespaces: of the Services sharing an
    // IP, those indexed first (restore goes oldest first) keep it; a later one loses that IP.
    for (const [key, a] of [...this.#assignments]) {
      const kept = a.addrs.filter((addr) => this.#conflict(a.req, addr) === undefined);
      if (kept.length !== a.addrs.length) {
        this.#invalidated.add(key);
        if (kept.length === 0) {
          this.#assignments.delete(key);
          continue;
        }
        a.addrs = kept;
      }
      this.#index(key, a);
    }
    return this.reports();
  }

  /**
   * Keys of Services whose assignment setPools changed (an IP dropped, or the pool that
   * owns its IPs renamed/replaced) since the last call; the list is cleared by reading it.
   * The controller should call `assign` for each (a Service that kept part of its IPs
   * keeps them where still legal).
   */
  invalidated(): string[] {
    const keys = [...this.#invalidated].sort();
    this.#invalidated.clear();
    return keys;
  }

  /**
   * Gives the Service its IPs, or says why not. Idempotent: a Service whose current IPs are
   * still legal and match its request keeps them (an IP never changes behind the user's
   * back); a PreferDualStack Service missing its second family gets it added when the pool
   * has one free. On failure the previous assignment, if any, is left in place: call
   * `release` to drop it.
   *
   * New choices: requested IPs fix the pool; otherwise the named pool, otherwise pools with
   * autoAssign in priority order then name, the lowest free address first; a Service with a
   * sharing key prefers the lowest IP it may legally share. All IPs come from one pool.
   */
  assign(req: ServiceRequest): AllocationResult {
    const requested = this.#validate(req);
    if (!(requested instanceof Map)) return requested;
    const old = this.#assignments.get(req.key);
    if (old !== undefined && this.#stillFits(old, req, requested)) {
      // The common reconcile: nothing to move, so skip the unlink/relink work.
      old.req = req;
      return { ok: true, ips: old.addrs.map(formatIP), pool: old.pool };
    }
    // Planning sees the Service's own IPs as free, so a changed request can reuse them.
    if (old !== undefined) this.#unlink(req.key);
    const chosen = this.#choose(req, requested, old);
    if (!chosen.ok) {
      if (old !== undefined) this.#link(req.key, old);
      return chosen;
    }
    const a: Assignment = { req, pool: chosen.pool, addrs: chosen.addrs };
    this.#link(req.key, a);
    return { ok: true, ips: a.addrs.map(formatIP), pool: a.pool };
  }

  /**
   * Re-registers IPs already in a Service's status (after a controller restart), without
   * moving anything. Succeeds when all IPs are in one pool the Service may use (and its
   * requested pool, if any) and none conflicts with another Service's IPs. It does not
   * check the request otherwise (families, requested IPs): a later `assign` adjusts that
   * while keeping what is legal. On failure nothing changes; the controller should release
   * and re-assign.
   */
  restore(req: ServiceRequest, ips: string[]): AllocationResult {
    const addrs: IP[] = [];
    for (const text of ips) {
      const a = parseIP(text);
      if (a === undefined) return fail("InvalidRequest", `"${text}" is not an IP address`);
      if (addrs.some((b) => b.family === a.family)) {
        return fail("InvalidRequest", `more than one ${a.family} address to restore`);
      }
      addrs.push(a);
    }
    if (addrs.length === 0) return fail("InvalidRequest", "no IP to restore");
    const rank = (f: Family) => {
      const i = req.families.findIndex((x) => x.family === f);
      return i < 0 ? req.families.length + FAMILIES.indexOf(f) : i;
    };
    addrs.sort((a, b) => rank(a.family) - rank(b.family));

    const old = this.#assignments.get(req.key);
    if (old !== undefined) this.#unlink(req.key);
    const checked = this.#checkRestore(req, addrs);
    if (!checked.ok) {
      if (old !== undefined) this.#link(req.key, old);
      return checked;
    }
    this.#link(req.key, { req, pool: checked.pool, addrs });
    return { ok: true, ips: addrs.map(formatIP), pool: checked.pool };
  }

  /**
   * After `assign` failed: keeps the Service's current IPs under its new request if they are
   * still legal for it — their pool still admits the Service (serviceAllocation), each IP is
   * of a family it asks for, and sharing with the other holders is still allowed. An edit
   * that cannot be met (a pool that does not exist, an IP in use) then costs a warning, not
   * the address. Fails, changing nothing, when the Service holds nothing or nothing it holds
   * is legal any more: call `release` then.
   */
  retain(req: ServiceRequest): AllocationResult {
    const old = this.#assignments.get(req.key);
    if (old === undefined) return fail("InvalidRequest", `${req.key} holds no IP`);
    const pool = this.#pools.get(old.pool);
    if (pool === undefined) return fail("PoolNotFound", `pool ${old.pool} does not exist`);
    const why = this.#refusal(pool, req);
    if (why !== undefined) {
      return fail("NoMatchingPool", `pool ${pool.name} may not be used by ${req.key}: ${why}`);
    }
    const kept = old.addrs.filter(
      (a) => req.families.some((f) => f.family === a.family) && this.#usableIn(pool, a),
    );
    if (kept.length === 0) {
      return fail(
        "FamilyUnavailable",
        `${req.key} holds no IP of the families it asks for (${req.families.map((f) => f.family).join(", ")})`,
      );
    }
    for (const addr of kept) {
      const conflict = this.#conflict(req, addr);
      if (conflict !== undefined) return conflict;
    }
    this.#unlink(req.key);
    this.#link(req.key, { req, pool: pool.name, addrs: kept });
    return { ok: true, ips: kept.map(formatIP), pool: pool.name };
  }

  /** Frees the Service's IPs (a shared IP stays held by the other Services). No-op if none. */
  release(key: string): void {
    this.#unlink(key);
  }

  /** The Service's current IPs (canonical text, in family order) and pool, if any. */
  get(key: string): { ips: string[]; pool: string } | undefined {
    const a = this.#assignments.get(key);
    return a === undefined ? undefined : { ips: a.addrs.map(formatIP), pool: a.pool };
  }

  /** Keys of the Services holding `ip` (any text form), sorted; empty if none or invalid. */
  holders(ip: string): string[] {
    const a = parseIP(ip);
    if (a === undefined) return [];
    return [...(this.#holders.get(formatIP(a)) ?? [])].sort();
  }

  /** Keys of all Services with an assignment, sorted. */
  services(): string[] {
    return [...this.#assignments.keys()].sort();
  }

  /**
   * The pool that may hand out `ip` (after overlap resolution and the pool's exclusions),
   * or undefined if no pool may, or `ip` does not parse.
   */
  poolOf(ip: string): string | undefined {
    const a = parseIP(ip);
    return a === undefined ? undefined : this.#owner(a)?.name;
  }

  /** Current figures per pool, sorted by name. `assigned*` counts addresses, not Services. */
  reports(): PoolReport[] {
    return [...this.#pools.values()].sort(byName).map((p) => {
      const v4 = p.fam.IPv4;
      const v6 = p.fam.IPv6;
      return {
        name: p.name,
        assignedIPv4: v4.used.size,
        assignedIPv6: v6.used.size,
        availableIPv4: saturate(v4.total - BigInt(v4.used.size)),
        availableIPv6: saturate(v6.total - BigInt(v6.used.size)),
        invalidAddresses: [...p.invalid],
        overlapsWith: [...p.overlapsWith],
        empty: v4.total === 0n && v6.total === 0n,
        warnings: [...p.warnings],
      };
    });
  }

  // --- request checks -------------------------------------------------------------------

  /** Returns the requested IPs by family, or why the request itself is malformed. */
  #validate(req: ServiceRequest): Map<Family, IP> | Failure {
    if (req.families.length === 0) return fail("InvalidRequest", "no IP family requested");
    const families = req.families.map((f) => f.family);
    if (new Set(families).size !== families.length) {
      return fail("InvalidRequest", `IP family listed twice: ${families.join(", ")}`);
    }
    if (!req.families.some((f) => f.required)) {
      return fail("InvalidRequest", "at least one IP family must be required");
    }
    const requested = new Map<Family, IP>();
    for (const text of req.requestedIPs) {
      const a = parseIP(text);
      if (a === undefined) return fail("InvalidRequest", `"${text}" is not an IP address`);
      if (requested.has(a.family)) {
        return fail("InvalidRequest", `more than one ${a.family} address requested`);
      }
      if (!families.includes(a.family)) {
        return fail(
          "InvalidRequest",
          `${formatIP(a)} is ${a.family}, a family the Service does not use (${families.join(", ")})`,
        );
      }
      requested.set(a.family, a);
    }
    return requested;
  }

  /**
   * Whether an assignment already is exactly what `req` would keep: one IP per wanted
   * family (optional ones included), all legal in its pool, requested IPs among them, and
   * sharing still legal. The full path gives the same answer, only slower.
   */
  #stillFits(old: Assignment, req: ServiceRequest, requested: Map<Family, IP>): boolean {
    const pool = this.#pools.get(old.pool);
    if (pool === undefined || old.req.sharingKey !== req.sharingKey) return false;
    if (req.pool !== undefined && req.pool !== pool.name) return false;
    if (this.#refusal(pool, req) !== undefined) return false;
    if (old.addrs.length !== req.families.length) return false;
    for (const [i, { family }] of req.families.entries()) {
      const addr = old.addrs[i];
      if (addr === undefined || addr.family !== family || !this.#usableIn(pool, addr)) return false;
      const want = requested.get(family);
      if (want !== undefined && want.value !== addr.value) return false;
      if (this.#conflict(req, addr) !== undefined) return false;
    }
    return true;
  }

  /**
   * Why `req` may not use `pool` (serviceAllocation), or undefined if it may. `namespaces`
   * and `namespaceSelectors` are alternatives, as in MetalLB (which merges both into one set
   * of namespaces): a Service passes if its namespace is listed or its labels match a
   * selector. `serviceSelectors` must hold as well.
   */
  #refusal(pool: Pool, req: ServiceRequest): string | undefined {
    const { namespaces, namespaceSelectors, serviceSelectors } = pool.spec;
    // An empty list means "not set", as for most optional Kubernetes lists.
    const listed = namespaces !== undefined && namespaces.length > 0;
    const bySelector = namespaceSelectors !== undefined && namespaceSelectors.length > 0;
    if (
      (listed || bySelector) &&
      !(listed && namespaces.includes(req.namespace)) &&
      !(bySelector && anySelectorMatches(namespaceSelectors, req.namespaceLabels))
    ) {
      if (!bySelector) return `namespace ${req.namespace} is not in its namespaces`;
      const labels = `the labels of namespace ${req.namespace} match none of its namespaceSelectors`;
      return listed ? `namespace ${req.namespace} is not in its namespaces and ${labels}` : labels;
    }
    if (
      serviceSelectors !== undefined &&
      serviceSelectors.length > 0 &&
      !anySelectorMatches(serviceSelectors, req.labels)
    ) {
      return "the Service's labels match none of its serviceSelectors";
    }
    return undefined;
  }

  /** The pool that may hand out `addr`: inside its usable intervals and not excluded. */
  #owner(addr: IP): Pool | undefined {
    for (const p of this.#ordered) {
      if (this.#usableIn(p, addr)) return p;
    }
    return undefined;
  }

  #usableIn(pool: Pool, addr: IP): boolean {
    const fs = pool.fam[addr.family];
    if (fs.avoidBuggy && isBuggyIPv4(addr.value)) return false;
    return indexContaining(fs.intervals, addr.value) >= 0;
  }

  /** Explains why no pool may hand out `addr`. */
  #notInPool(addr: IP): string {
    const ip = formatIP(addr);
    if (isUnspecified(addr)) return `${ip} is the unspecified address, which no Service can have`;
    for (const p of this.#ordered) {
      const fs = p.fam[addr.family];
      if (indexContaining(fs.intervals, addr.value) >= 0) {
        return `${ip} is excluded from pool ${p.name} (avoidBuggyIPs: it ends in .0 or .255)`;
      }
      if (indexContaining(p.raw[addr.family], addr.value) >= 0) {
        const owner = p.overlapsWith.find((o) =>
          this.#pools
            .get(o)
            ?.raw[addr.family].some((iv) => iv.lo <= addr.value && addr.value <= iv.hi),
        );
        return owner !== undefined
          ? `${ip} is in pool ${p.name}'s addresses but pool ${owner} (older) owns it and excludes it`
          : `${ip} is excluded from pool ${p.name} (network or broadcast address)`;
      }
    }
    return `${ip} is not in any pool`;
  }

  /** The conflict that keeps `req` from holding `addr` next to its current holders. */
  #conflict(req: ServiceRequest, addr: IP): Failure | undefined {
    const ip = formatIP(addr);
    const holders = this.#holders.get(ip);
    if (holders === undefined) return undefined;
    for (const h of [...holders].sort()) {
      if (h === req.key) continue;
      const other = this.#assignments.get(h);
      if (other === undefined) continue;
      // The holder's pool is the IP's pool: its setting decides across namespaces.
      const pool = this.#pools.get(other.pool)?.spec ?? { name: other.pool };
      const c = sharingConflict(req, other.req, h, pool);
      if (c === undefined) continue;
      return c.reason === "IPInUse"
        ? fail("IPInUse", `${ip} is ${c.why}`)
        : fail("SharingRefused", `cannot share ${ip}: ${c.why}`);
    }
    return undefined;
  }

  // --- choosing -------------------------------------------------------------------------

  #choose(
    req: ServiceRequest,
    requested: Map<Family, IP>,
    old: Assignment | undefined,
  ): { ok: true; pool: string; addrs: IP[] } | Failure {
    if (req.pool !== undefined && !this.#pools.has(req.pool)) {
      return fail("PoolNotFound", `pool ${req.pool} does not exist`);
    }
    let candidates: Pool[];
    if (requested.size > 0) {
      let pool: Pool | undefined;
      for (const addr of requested.values()) {
        const ip = formatIP(addr);
        const p = this.#owner(addr);
        if (p === undefined) return fail("IPNotInPool", this.#notInPool(addr));
        if (req.pool !== undefined && p.name !== req.pool) {
          return fail(
            "IPNotInPool",
            `${ip} is in pool ${p.name}, not in the requested pool ${req.pool}`,
          );
        }
        const why = this.#refusal(p, req);
        if (why !== undefined) {
          return fail(
            "IPNotInPool",
            `${ip} is in pool ${p.name}, which ${req.key} may not use: ${why}`,
          );
        }
        if (pool !== undefined && pool !== p) {
          return fail(
            "InvalidRequest",
            `requested IPs are in different pools (${pool.name}, ${p.name}); all IPs of a Service come from one pool`,
          );
        }
        if (p.spec.frozen && !old?.addrs.some((a) => a.value === addr.value)) {
          return fail("PoolFrozen", frozenMessage(p.name));
        }
        pool = p;
      }
      candidates = pool === undefined ? [] : [pool];
    } else if (req.pool !== undefined) {
      const p = this.#pools.get(req.pool)!;
      const why = this.#refusal(p, req);
      if (why !== undefined) {
        return fail("NoMatchingPool", `pool ${p.name} may not be used by ${req.key}: ${why}`);
      }
      candidates = [p];
    } else {
      candidates = this.#ordered.filter(
        (p) =>
          p.spec.autoAssign &&
          (!p.spec.frozen || p.name === old?.pool) &&
          this.#refusal(p, req) === undefined,
      );
    }

    // The pool the Service already has stays first, even with autoAssign off: keeping IPs
    // beats every other preference.
    const oldPool = old === undefined ? undefined : this.#pools.get(old.pool);
    if (
      old !== undefined &&
      oldPool !== undefined &&
      this.#refusal(oldPool, req) === undefined &&
      (req.pool === undefined || req.pool === oldPool.name) &&
      (requested.size === 0 || candidates[0] === oldPool) &&
      old.addrs.some(
        (a) => this.#usableIn(oldPool, a) && req.families.some((f) => f.family === a.family),
      )
    ) {
      candidates = [oldPool, ...candidates.filter((p) => p !== oldPool)];
    }

    if (candidates.length === 0) {
      const why = this.#ordered.map((p) =>
        !p.spec.autoAssign
          ? `${p.name}: autoAssign is off`
          : p.spec.frozen
            ? `${p.name}: it is frozen`
            : `${p.name}: ${this.#refusal(p, req)}`,
      );
      return fail(
        "NoMatchingPool",
        `no pool may be used by ${req.key}${why.length > 0 ? ` (${why.join("; ")})` : " (there are no pools)"}`,
      );
    }

    const required = req.families.filter((f) => f.required).map((f) => f.family);
    const offering = candidates.filter((p) => required.every((f) => p.fam[f].total > 0n));
    if (offering.length === 0) return this.#noFamily(req, candidates, required);

    const plans = new Map<Pool, Plan>();
    const planFor = (p: Pool): Plan => {
      let plan = plans.get(p);
      if (plan === undefined) {
        plan = this.#plan(p, req, requested, old);
        plans.set(p, plan);
      }
      return plan;
    };
    const accept = (p: Pool, plan: Plan & { kind: "ok" }) => ({
      ok: true as const,
      pool: p.name,
      addrs: plan.addrs,
    });

    const first = offering[0]!;
    if (first === oldPool) {
      const plan = planFor(first);
      if (plan.kind === "hard") return plan.failure;
      if (plan.kind === "ok") return accept(first, plan);
    }
    if (req.sharingKey !== undefined && this.#byShareKey.has(req.sharingKey)) {
      for (const p of offering) {
        const plan = planFor(p);
        if (plan.kind === "hard") return plan.failure;
        if (plan.kind === "ok" && plan.shared) return accept(p, plan);
      }
    }
    const full: string[] = [];
    for (const p of offering) {
      const plan = planFor(p);
      if (plan.kind === "hard") return plan.failure;
      if (plan.kind === "ok") return accept(p, plan);
      full.push(
        plan.kind === "frozen"
          ? `pool ${p.name} is frozen and gives no new ${plan.family} address`
          : `pool ${p.name} has no free ${plan.family} address`,
      );
    }
    if (offering.length === 1 && offering[0]!.spec.frozen) {
      return fail("PoolFrozen", frozenMessage(offering[0]!.name));
    }
    return fail("PoolExhausted", `no free address for ${req.key}: ${full.join("; ")}`);
  }

  /** Why none of `candidates` can give `req` its required families. */
  #noFamily(req: ServiceRequest, candidates: Pool[], required: Family[]): Failure {
    const families = (p: Pool) => FAMILIES.filter((f) => p.fam[f].total > 0n);
    const empty = candidates.filter((p) => families(p).length === 0);
    if (empty.length === candidates.length) {
      return fail("NoUsableAddresses", empty.map((p) => this.#whyEmpty(p)).join("; "));
    }
    const want = required.length > 1 ? `both ${required.join(" and ")}` : required.join("");
    const has = (p: Pool) => {
      const fs = families(p);
      return fs.length === 0 ? "no usable address" : `only ${fs.join(" and ")}`;
    };
    const only = candidates[0]!;
    if (req.pool !== undefined && candidates.length === 1 && only.name === req.pool) {
      return fail(
        "FamilyUnavailable",
        `pool ${only.name} has no ${want} addresses (it has ${has(only)})`,
      );
    }
    const pools = candidates.map((p) => `pool ${p.name} has ${has(p)}`).join("; ");
    return fail(
      "FamilyUnavailable",
      `no pool that ${req.key} may use has ${want} addresses (${pools})`,
    );
  }

  /** Explains a pool without a single usable address. */
  #whyEmpty(p: Pool): string {
    const head = `pool ${p.name} has no usable address`;
    const olders = `the older pool${p.overlapsWith.length > 1 ? "s" : ""} ${p.overlapsWith.join(", ")}`;
    if (p.lostToOlder) return `${head}: every address it lists belongs to ${olders}`;
    if (FAMILIES.every((f) => p.raw[f].length === 0)) {
      return `${head}: none of its entries is valid (${p.invalid.join(", ")})`;
    }
    const excluded =
      "excluded (avoidBuggyIPs, excludeNetworkAndBroadcast, or the unspecified address 0.0.0.0/::)";
    return p.overlapsWith.length > 0
      ? `${head}: what ${olders} do not hold is ${excluded}`
      : `${head}: every address it lists is ${excluded}`;
  }

  /** The IPs `req` would get from `pool`, without changing any state but search hints. */
  #plan(
    pool: Pool,
    req: ServiceRequest,
    requested: Map<Family, IP>,
    old: Assignment | undefined,
  ): Plan {
    const addrs: IP[] = [];
    let shared = false;
    for (const { family, required } of req.families) {
      const want = requested.get(family);
      if (want !== undefined) {
        const conflict = this.#conflict(req, want);
        if (conflict !== undefined) return { kind: "hard", failure: conflict };
        if (this.#holders.has(formatIP(want))) shared = true;
        addrs.push(want);
        continue;
      }
      const prev =
        old !== undefined && old.pool === pool.name
          ? old.addrs.find((a) => a.family === family)
          : undefined;
      if (prev !== undefined && this.#usableIn(pool, prev) && !this.#conflict(req, prev)) {
        addrs.push(prev);
        continue;
      }
      if (pool.spec.frozen) {
        if (required) return { kind: "frozen", family };
        continue;
      }
      if (req.sharingKey !== undefined) {
        const s = this.#lowestShareable(req, pool, family);
        if (s !== undefined) {
          addrs.push(s);
          shared = true;
          continue;
        }
      }
      const free = this.#lowestFree(pool.fam[family]);
      if (free !== undefined) {
        addrs.push({ family, value: free });
        continue;
      }
      if (required) return { kind: "exhausted", family };
    }
    return { kind: "ok", addrs, shared };
  }

  /** The lowest IP of `family` in `pool` held by Services `req` may share with. */
  #lowestShareable(req: ServiceRequest, pool: Pool, family: Family): IP | undefined {
    const keys = req.sharingKey === undefined ? undefined : this.#byShareKey.get(req.sharingKey);
    if (keys === undefined) return undefined;
    const candidates = new Map<bigint, IP>();
    for (const k of keys) {
      const a = this.#assignments.get(k);
      if (k === req.key || a === undefined || a.pool !== pool.name) continue;
      for (const addr of a.addrs) if (addr.family === family) candidates.set(addr.value, addr);
    }
    const sorted = [...candidates.values()].sort((x, y) =>
      x.value < y.value ? -1 : x.value > y.value ? 1 : 0,
    );
    return sorted.find((addr) => this.#conflict(req, addr) === undefined);
  }

  /**
   * The lowest usable, unused address, or undefined. Starts at the hint and jumps over
   * whole runs of used addresses, so the cost follows the runs crossed, not the addresses.
   */
  #lowestFree(fs: FamilyState): bigint | undefined {
    let c = fs.hint;
    let i = indexAtOrAfter(fs.intervals, c);
    while (i < fs.intervals.length) {
      const iv = fs.intervals[i]!;
      if (c < iv.lo) c = iv.lo;
      if (c > iv.hi) {
        i++;
        continue;
      }
      if (fs.avoidBuggy && isBuggyIPv4(c)) {
        c++;
        continue;
      }
      const end = fs.used.runEnd(c);
      if (end !== undefined) {
        c = end + 1n;
        continue;
      }
      fs.hint = c;
      return c;
    }
    fs.hint = c;
    return undefined;
  }

  #checkRestore(req: ServiceRequest, addrs: IP[]): { ok: true; pool: string } | Failure {
    let pool: Pool | undefined;
    for (const addr of addrs) {
      const ip = formatIP(addr);
      const p = this.#owner(addr);
      if (p === undefined) return fail("IPNotInPool", this.#notInPool(addr));
      if (pool !== undefined && p !== pool) {
        return fail(
          "IPNotInPool",
          `${ip} is in pool ${p.name}, the Service's other IPs in pool ${pool.name}`,
        );
      }
      pool = p;
    }
    if (pool === undefined) return fail("InvalidRequest", "no IP to restore");
    if (req.pool !== undefined && req.pool !== pool.name) {
      return fail(
        "IPNotInPool",
        `the IPs are in pool ${pool.name}, not in the requested pool ${req.pool}`,
      );
    }
    const why = this.#refusal(pool, req);
    if (why !== undefined) {
      return fail(
        "IPNotInPool",
        `the IPs are in pool ${pool.name}, which ${req.key} may not use: ${why}`,
      );
    }
    for (const addr of addrs) {
      const conflict = this.#conflict(req, addr);
      if (conflict !== undefined) return conflict;
    }
    return { ok: true, pool: pool.name };
  }

  // --- bookkeeping ----------------------------------------------------------------------

  #link(key: string, a: Assignment): void {
    this.#assignments.set(key, a);
    this.#index(key, a);
  }

  /** Adds an assignment to the holder, used-address and sharing-key indexes. */
  #index(key: string, a: Assignment): void {
    const pool = this.#pools.get(a.pool)!;
    for (const addr of a.addrs) {
      const ip = formatIP(addr);
      let hs = this.#holders.get(ip);
      if (hs === undefined) {
        hs = new Set();
        this.#holders.set(ip, hs);
        pool.fam[addr.family].used.add(addr.value);
      }
      hs.add(key);
    }
    if (a.req.sharingKey !== undefined) {
      let keys = this.#byShareKey.get(a.req.sharingKey);
      if (keys === undefined) {
        keys = new Set();
        this.#byShareKey.set(a.req.sharingKey, keys);
      }
      keys.add(key);
    }
  }

  #unlink(key: string): void {
    const a = this.#assignments.get(key);
    if (a === undefined) return;
    this.#assignments.delete(key);
    const pool = this.#pools.get(a.pool);
    for (const addr of a.addrs) {
      const ip = formatIP(addr);
      const hs = this.#holders.get(ip);
      hs?.delete(key);
      if (hs !== undefined && hs.size > 0) continue;
      this.#holders.delete(ip);
      if (pool !== undefined) {
        const fs = pool.fam[addr.family];
        fs.used.delete(addr.value);
        if (addr.value < fs.hint) fs.hint = addr.value;
      }
    }
    if (a.req.sharingKey !== undefined) {
      const keys = this.#byShareKey.get(a.req.sharingKey);
      keys?.delete(key);
      if (keys !== undefined && keys.size === 0) this.#byShareKey.delete(a.req.sharingKey);
    }
  }
}

function frozenMessage(pool: string): string {
  return `pool ${pool} cannot be read as it is (its Ready condition says why): it keeps the IPs it gave, and gives no new ones`;
}
