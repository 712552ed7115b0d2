import { describe, expect, it } from "vitest";
import { RECV_BUFFER_MAX, recvBufferBytes } from "./heartbeat-buffer.ts";

describe("recvBufferBytes", () => {
  it.each([
    // peers, interval ms, bytes asked: one second of every peer's beats at 1 KiB each
    [0, 100, 0],
    [1, 100, 10 * 1024],
    [10, 100, 100 * 1024],
    [250, 100, 2500 * 1024],
    [250, 200, 1250 * 1024],
    [100, 50, 2000 * 1024],
  ])("%i peers every %i ms → %i bytes", (peers, intervalMs, bytes) => {
    expect(recvBufferBytes(peers, intervalMs)).toBe(bytes);
  });

  it("grows linearly with the peers, up to the cap", () => {
    expect(recvBufferBytes(500, 100)).toBe(2 * recvBufferBytes(250, 100));
    expect(recvBufferBytes(100_000, 100)).toBe(RECV_BUFFER_MAX);
    expect(recvBufferBytes(100, 0)).toBe(RECV_BUFFER_MAX); // a 0 ms interval counts as 1 ms
  });
});
