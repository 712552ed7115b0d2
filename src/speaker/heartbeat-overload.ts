// What a heartbeat flood may and may not make a speaker believe. Pure decisions.
//
// A LAN host can send datagrams with a peer's address as source (UDP source addresses
// prove nothing). Such a flood costs the flooded speaker two ways: the per-source budget of
// MAC checks (membership.ts) is spent on forgeries, and the kernel drops datagrams, forged
// and real alike, once the socket buffer is full. Either way the real beats of that peer
// are lost *here*, and its silence says nothing about the peer. So:
//   - a datagram that continues what the peer last sent (same incarnation, a seq a little
//     above the last one accepted) pays from a budget of its own: a blind spoofer does not
//     know the incarnation (a start time in ms plus a random part), so its datagrams fall
//     in the other budget and cannot starve the real beats of MAC checks;
//   - a peer that falls silent while this node lost datagrams since its last beat (its
//     socket overflowed, or a budget refused some) is not declared dead on its silence:
//     the peer's Lease, renewed through the API server and not through this socket, is
//     asked as a second witness. Suspect before convicting.

/**
 * How far above the last accepted seq a datagram may claim to be and still count as that
 * peer's next beat: 10,000 beats, over 16 minutes at the default interval.
 */
export const MAX_SEQ_STEP = 10_000;

/** Which budget pays for a datagram's MAC check. */
export type BeatLane = "continuing" | "other";

/**
 * "continuing" when the datagram claims the incarnation of the source's last accepted beat
 * and a seq just above it: the peer's next beat, or a forger who knows its incarnation.
 * Everything else (a restart, a peer not heard before, a blind forgery) is "other".
 */
export function beatLane(
  last: { incarnation: number; seq: number } | undefined,
  claimed: { incarnation: number; seq: number } | undefined,
): BeatLane {
  if (last === undefined || claimed === undefined) return "other";
  if (claimed.incarnation !== last.incarnation) return "other";
  return claimed.seq > last.seq && claimed.seq - last.seq <= MAX_SEQ_STEP ? "continuing" : "other";
}

/**
 * Datagrams per second from one published source that get a MAC check, as a multiple of
 * the beat rate (stall and refutation beats come on top of the regular ones), and the
 * burst: about what a socket buffer holds, so that the beats queued while the process was
 * stopped all count. A flood with a peer's address as source then costs a bounded number of
 * MACs and silences that peer only, not every peer.
 */
export const SOURCE_RATE_FACTOR = 10;
export const SOURCE_BURST = 200;

/**
 * Token buckets of MAC checks, two per source (one per BeatLane): a blind forger spends
 * only the one its datagrams fall in. Pure: time comes in as `nowMs` (a monotonic clock).
 */
export class SourceBudgets {
  readonly #perMs: number;
  readonly #buckets = new Map<string, Record<BeatLane, { tokens: number; at: number }>>();

  constructor(intervalMs: number) {
    this.#perMs = SOURCE_RATE_FACTOR / Math.max(1, intervalMs);
  }

  /** Takes a token from `source`'s bucket for `lane`, if it has one. */
  admit(source: string, lane: BeatLane, nowMs: number): boolean {
    let lanes = this.#buckets.get(source);
    if (!lanes) {
      lanes = {
        continuing: { tokens: SOURCE_BURST, at: nowMs },
        other: { tokens: SOURCE_BURST, at: nowMs },
      };
      this.#buckets.set(source, lanes);
    }
    const b = lanes[lane];
    b.tokens = Math.min(SOURCE_BURST, b.tokens + (nowMs - b.at) * this.#perMs);
    b.at = nowMs;
    if (b.tokens < 1) return false;
    b.tokens--;
    return true;
  }

  /** Forgets the sources `keep` refuses (nodes whose Lease is gone). */
  keepOnly(keep: (source: string) => boolean): void {
    for (const source of this.#buckets.keys()) if (!keep(source)) this.#buckets.delete(source);
  }
}

/** A peer heard over UDP, at one check of membership.ts. */
export interface SilenceFacts {
  /** An accepted beat of the peer arrived within its deadline. */
  heard: boolean;
  /** Silent at the previous check (suspected). */
  suspected: boolean;
  /** Declared dead at an earlier check (and not heard since). */
  dead: boolean;
  /**
   * This node lost heartbeat datagrams since the peer's last accepted beat: the kernel
   * dropped some at the full socket, or a per-source budget refused some unread.
   */
  lostHere: boolean;
  /** The peer's Lease is current. */
  leaseAlive: boolean;
}

/**
 * "alive": heard. "doubted": silent, but its beats may be among the datagrams this node
 * lost and its Lease is current: alive, judged by the Lease while that lasts. "suspect":
 * silent at one check; "dead": silent at two in a row (or dead before and still silent).
 */
export type SilenceVerdict = "alive" | "doubted" | "suspect" | "dead";

/** What a check makes of a heard peer (see SilenceVerdict). */
export function judgeSilence(f: SilenceFacts): SilenceVerdict {
  if (f.heard) return "alive";
  if (f.dead) return "dead";
  if (f.lostHere && f.leaseAlive) return "doubted";
  return f.suspected ? "dead" : "suspect";
}
