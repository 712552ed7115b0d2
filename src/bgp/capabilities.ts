// Capabilities in an OPEN (RFC 5492): multiprotocol (RFC 4760), route refresh (RFC 2918),
// graceful restart (RFC 4724) and 4-octet AS numbers (RFC 6793). Unknown capabilities are
// skipped, as RFC 5492 asks. Pure.

export const CAP_MULTIPROTOCOL = 1;
export const CAP_ROUTE_REFRESH = 2;
export const CAP_GRACEFUL_RESTART = 64;
export const CAP_FOUR_OCTET_AS = 65;

export const AFI_IPV4 = 1;
export const AFI_IPV6 = 2;
export const SAFI_UNICAST = 1;

export type Family = "ipv4-unicast" | "ipv6-unicast";

/** What ironlb reads from, or writes into, an OPEN's capabilities. */
export interface Capabilities {
  families: Family[];
  routeRefresh: boolean;
  /** The 4-octet AS number, when the capability is present. */
  fourOctetAS?: number;
  /**
   * A Graceful Restart capability with no restart time and no families (RFC 4724 §3): it
   * says only that End-of-RIB markers are understood, so the peer keeps no route of ours
   * across a restart. Routers show "End-of-RIB received" only to a peer that sent it.
   */
  endOfRibAware?: boolean;
  /**
   * Additive: a full Graceful Restart capability (RFC 4724 §3). Sent instead of the bare
   * End-of-RIB form when set; read from every GR capability a peer sends.
   */
  gracefulRestart?: GracefulRestart;
}

/** RFC 4724 §3: restart flags, restart time, and the families whose routes may be kept. */
export interface GracefulRestart {
  /** R bit: the sender has restarted; its peer must not wait for its End-of-RIB. */
  restarting: boolean;
  /** Seconds the peer keeps the sender's routes after the session ends, 0..4095 (12 bits). */
  restartTime: number;
  /** F bit per family: forwarding for its routes was kept across the restart. */
  families: { family: Family; forwardingPreserved: boolean }[];
}

/** The restart time's 12 bits. */
export const MAX_RESTART_TIME = 4095;
const RESTART_STATE_BIT = 0x80;
const FORWARDING_STATE_BIT = 0x80;

export function familyOf(afi: number, safi: number): Family | undefined {
  if (safi !== SAFI_UNICAST) return undefined;
  if (afi === AFI_IPV4) return "ipv4-unicast";
  if (afi === AFI_IPV6) return "ipv6-unicast";
  return undefined;
}

export function afiOf(f: Family): number {
  return f === "ipv4-unicast" ? AFI_IPV4 : AFI_IPV6;
}

/** The value of one Capabilities optional parameter (a sequence of code/length/value). */
export function encodeCapabilities(c: Capabilities): Uint8Array {
  const out: number[] = [];
  for (const f of c.families) out.push(CAP_MULTIPROTOCOL, 4, 0, afiOf(f), 0, SAFI_UNICAST);
  if (c.routeRefresh) out.push(CAP_ROUTE_REFRESH, 0);
  if (c.gracefulRestart !== undefined) out.push(...encodeGracefulRestart(c.gracefulRestart));
  else if (c.endOfRibAware) out.push(CAP_GRACEFUL_RESTART, 2, 0, 0);
  if (c.fourOctetAS !== undefined) {
    const a = c.fourOctetAS >>> 0;
    out.push(CAP_FOUR_OCTET_AS, 4, a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff);
  }
  return Uint8Array.from(out);
}

/**
 * Adds the capabilities in one parameter value to `into`. Returns an error text when a
 * capability's length runs past the parameter or a known capability has the wrong length.
 */
export function decodeCapabilities(b: Uint8Array, into: Capabilities): string | undefined {
  let i = 0;
  while (i < b.length) {
    if (i + 2 > b.length) return "capability header runs past its parameter";
    const code = b[i] ?? 0;
    const len = b[i + 1] ?? 0;
    const v = b.subarray(i + 2, i + 2 + len);
    if (v.length !== len) return `capability ${code} runs past its parameter`;
    if (code === CAP_MULTIPROTOCOL) {
      if (len !== 4) return `multiprotocol capability of length ${len}`;
      const f = familyOf(((v[0] ?? 0) << 8) | (v[1] ?? 0), v[3] ?? 0);
      if (f !== undefined && !into.families.includes(f)) into.families.push(f);
    } else if (code === CAP_ROUTE_REFRESH) {
      into.routeRefresh = true;
    } else if (code === CAP_GRACEFUL_RESTART) {
      into.endOfRibAware = true;
      into.gracefulRestart = decodeGracefulRestart(v);
    } else if (code === CAP_FOUR_OCTET_AS) {
      if (len !== 4) return `4-octet AS capability of length ${len}`;
      into.fourOctetAS =
        (((v[0] ?? 0) << 24) | ((v[1] ?? 0) << 16) | ((v[2] ?? 0) << 8) | (v[3] ?? 0)) >>> 0;
    }
    i += 2 + len;
  }
  return undefined;
}

/** The whole Graceful Restart capability (code, length, value); the N bit is never set. */
export function encodeGracefulRestart(gr: GracefulRestart): number[] {
  // Out-of-range times are clamped rather than spilling into the flag bits.
  const time = Math.min(Math.max(Math.trunc(gr.restartTime) || 0, 0), MAX_RESTART_TIME);
  const flags = gr.restarting ? RESTART_STATE_BIT : 0;
  const out = [CAP_GRACEFUL_RESTART, 2 + 4 * gr.families.length, flags | (time >> 8), time & 0xff];
  for (const f of gr.families) {
    out.push(0, afiOf(f.family), SAFI_UNICAST, f.forwardingPreserved ? FORWARDING_STATE_BIT : 0);
  }
  return out;
}

/**
 * A Graceful Restart capability's value. Lenient on purpose: ironlb only reports what the
 * peer offers (it keeps no routes of the peer), so a short value reads as "no restart time,
 * no families" and a trailing partial tuple or a family ironlb does not speak is skipped,
 * rather than refusing the router's OPEN.
 */
export function decodeGracefulRestart(v: Uint8Array): GracefulRestart {
  const gr: GracefulRestart = { restarting: false, restartTime: 0, families: [] };
  if (v.length < 2) return gr;
  gr.restarting = ((v[0] ?? 0) & RESTART_STATE_BIT) !== 0;
  gr.restartTime = (((v[0] ?? 0) & 0x0f) << 8) | (v[1] ?? 0);
  for (let i = 2; i + 4 <= v.length; i += 4) {
    const f = familyOf(((v[i] ?? 0) << 8) | (v[i + 1] ?? 0), v[i + 2] ?? 0);
    if (f === undefined || gr.families.some((x) => x.family === f)) continue;
    gr.families.push({
      family: f,
      forwardingPreserved: ((v[i + 3] ?? 0) & FORWARDING_STATE_BIT) !== 0,
    });
  }
  return gr;
}
