// How large the heartbeat socket's receive buffer should be. Pure.
//
// Every peer sends a beat per interval; while this speaker's event loop does not run (a GC
// pause, CPU starvation) they queue in the socket, and once its buffer is full the kernel
// drops the rest, real beats included. Each lost datagram makes a silent peer's death wait
// for its Lease (heartbeat-overload.ts: a silence may be ours), so failover slows from
// under a second to the Lease duration. The kernel's default buffer (net.core.rmem_default,
// often 208 KiB) holds about 250 beats: 100 ms of 250 peers' beats. Measured in
// bench/RESULTS.md ("Membership at scale").

/** The buffer holds this long of every peer's beats: well past the dead time. */
export const RECV_BUFFER_HOLD_MS = 1000;
/**
 * What one beat costs in the buffer: the kernel counts each datagram's whole allocation
 * (measured: 832 bytes for a 68-byte datagram on loopback), not its payload.
 */
export const RECV_BUFFER_PER_BEAT = 1024;
/** No larger request than this (16 MiB), whatever the peer count. */
export const RECV_BUFFER_MAX = 16 << 20;

/**
 * The SO_RCVBUF to ask for with `peers` peers beating every `intervalMs` (the kernel
 * grants, and reports, twice what is asked, capped by net.core.rmem_max).
 */
export function recvBufferBytes(peers: number, intervalMs: number): number {
  const beatsPerS = 1000 / Math.max(1, intervalMs);
  const bytes = Math.ceil(
    (Math.max(0, peers) * beatsPerS * RECV_BUFFER_HOLD_MS * RECV_BUFFER_PER_BEAT) / 1000,
  );
  return Math.min(RECV_BUFFER_MAX, bytes);
}
