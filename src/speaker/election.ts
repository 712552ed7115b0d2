// Which node announces a Service IP: rendezvous (highest-random-weight) hashing.
//
// Every speaker sees the same eligible node set (from leases, node objects and endpoint
// slices) and runs the same function, so they agree on the owner without talking. For
// each (node, IP) pair we compute a pseudo-random weight; the node with the highest weight
// owns the IP. Removing a node only moves the IPs that node owned (every other node's
// weight is unchanged, so the maximum over the remaining nodes is unchanged), and adding a
// node only takes IPs for itself. Weights are uniform, so the spread over nodes is even.
//
// Hash choice: FNV-1a 64 over the UTF-8 bytes of `node`, a 0x00 separator, then `ip`,
// computed exactly with two 32-bit halves (no bigint: this runs nodes × IPs times per
// resync), followed by a murmur3-style avalanche of both halves into a 53-bit weight.
// FNV-1a alone mixes the final bytes poorly into the high bits, and IPs of one pool differ
// mostly in their last characters, so the finaliser matters for evenness. Everything is
// integer arithmetic on 32-bit values (Math.imul, >>>), hence bit-identical on every
// platform and Node version. Ties (two nodes with the same 53-bit weight) go to the node
// whose name sorts first by UTF-16 code units, which is locale-independent.
//
// IPs are hashed as the strings given: callers pass them as written in the Service status,
// which every speaker reads identically. Changing anything here changes which node owns
// which IP for a cluster mid-upgrade, so treat the function as a wire format.

const FNV64_OFFSET_HI = 0xcbf29ce4;
const FNV64_OFFSET_LO = 0x84222325;
/** FNV-1a 64 prime is 2^40 + 0x1b3. */
const FNV64_PRIME_LO = 0x1b3;
const TWO_POW_32 = 0x1_0000_0000;

/** A 64-bit FNV state as two unsigned 32-bit halves. */
interface Fnv64State {
  hi: number;
  lo: number;
}

const encoder = new TextEncoder();

/** Folds `bytes` into `state` (FNV-1a 64), mutating it. */
function fnv1a64Update(state: Fnv64State, bytes: Uint8Array): void {
  let { hi, lo } = state;
  for (let i = 0; i < bytes.length; i++) {
    lo = (lo ^ bytes[i]!) >>> 0;
    // (hi·2^32 + lo) · (2^40 + 0x1b3) mod 2^64. lo·0x1b3 < 2^41 and hi·0x1b3 + carry +
    // (lo<<8) < 2^42 stay exact in a double; lo·2^40 only reaches the high half as lo<<8.
    const p = lo * FNV64_PRIME_LO;
    const carry = Math.floor(p / TWO_POW_32);
    hi = (hi * FNV64_PRIME_LO + carry + ((lo << 8) >>> 0)) >>> 0;
    lo = p >>> 0;
  }
  state.hi = hi;
  state.lo = lo;
}

/** murmur3's 32-bit finaliser: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Turns a 64-bit FNV state into a 53-bit weight (a safe integer, so `>` compares exactly). */
function weightOf(hi: number, lo: number): number {
  const a = fmix32((hi ^ Math.imul(lo, 0x9e3779b1)) >>> 0);
  const b = fmix32((lo ^ a) >>> 0);
  const c = fmix32((a ^ Math.imul(b, 0x27d4eb2f)) >>> 0);
  return c * 0x20_0000 + (b >>> 11);
}

/**
 * FNV-1a 64 of a string's UTF-8 bytes, as a 16-digit hex string. Exported for tests that
 * pin the hash against published FNV test vectors.
 */
export function fnv1a64Hex(text: string): string {
  const state = { hi: FNV64_OFFSET_HI, lo: FNV64_OFFSET_LO };
  fnv1a64Update(state, encoder.encode(text));
  return state.hi.toString(16).padStart(8, "0") + state.lo.toString(16).padStart(8, "0");
}

const SEPARATOR = new Uint8Array([0]);

/** The FNV state after `node` and the separator, reused for every IP. */
function nodePrefix(node: string): Fnv64State {
  const state = { hi: FNV64_OFFSET_HI, lo: FNV64_OFFSET_LO };
  fnv1a64Update(state, encoder.encode(node));
  fnv1a64Update(state, SEPARATOR);
  return state;
}

// Node prefixes are recomputed for every call otherwise; node names are few and stable.
// The cache is bounded so that node churn in a long-lived process cannot grow it forever.
const PREFIX_CACHE_LIMIT = 4096;
const prefixCache = new Map<string, Fnv64State>();

function cachedPrefix(node: string): Fnv64State {
  let prefix = prefixCache.get(node);
  if (prefix === undefined) {
    if (prefixCache.size >= PREFIX_CACHE_LIMIT) prefixCache.clear();
    prefix = nodePrefix(node);
    prefixCache.set(node, prefix);
  }
  return prefix;
}

/**
 * The rendezvous weight of `node` for `ip`: a uniformly distributed safe integer in
 * [0, 2^53). Exported for tests.
 */
export function rendezvousWeight(node: string, ip: string): number {
  return weightWithPrefix(cachedPrefix(node), encoder.encode(ip));
}

function weightWithPrefix(prefix: Fnv64State, ipBytes: Uint8Array): number {
  const state = { hi: prefix.hi, lo: prefix.lo };
  fnv1a64Update(state, ipBytes);
  return weightOf(state.hi, state.lo);
}

function pickOwner(
  ipBytes: Uint8Array,
  nodes: readonly string[],
  prefixes: readonly Fnv64State[],
): string | undefined {
  let best: string | undefined;
  let bestWeight = -1;
  for (let i = 0; i < nodes.length; i++) {
    const node = nodes[i]!;
    const w = weightWithPrefix(prefixes[i]!, ipBytes);
    if (w > bestWeight || (w === bestWeight && best !== undefined && node < best)) {
      best = node;
      bestWeight = w;
    }
  }
  return best;
}

/**
 * The node that announces `ip`: the eligible node with the highest rendezvous weight for
 * it (ties to the name that sorts first). Depends only on the set of names, not on their
 * order or duplicates. Undefined when no node is eligible.
 */
export function chooseOwner(ip: string, eligibleNodes: readonly string[]): string | undefined {
  if (eligibleNodes.length === 0) return undefined;
  return pickOwner(encoder.encode(ip), eligibleNodes, eligibleNodes.map(cachedPrefix));
}
