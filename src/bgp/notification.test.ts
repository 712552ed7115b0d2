import { describe, expect, it } from "vitest";
import { describeNotification, shutdownData, shutdownText } from "./notification.ts";

const none = new Uint8Array(0);

describe("describeNotification", () => {
  it.each([
    [4, 0, none, "Hold Timer Expired"],
    [2, 2, none, "OPEN Message Error/Bad Peer AS"],
    [2, 6, none, "OPEN Message Error/Unacceptable Hold Time"],
    [6, 10, none, "Cease/BFD Down"],
    [6, 4, none, "Cease/Administrative Reset"],
    [1, 0, none, "Message Header Error"],
    [9, 3, none, "code 9/subcode 3"],
    [
      6,
      2,
      shutdownData("maintenance of node-1"),
      'Cease/Administrative Shutdown: "maintenance of node-1"',
    ],
  ])("%i/%i reads as text", (code, subcode, data, text) => {
    expect(describeNotification({ code, subcode, data })).toBe(text);
  });
});

describe("RFC 9003 shutdown communication", () => {
  it("is a length octet and UTF-8", () => {
    expect([...shutdownData("bye ü")]).toEqual([6, 0x62, 0x79, 0x65, 0x20, 0xc3, 0xbc]);
  });

  it("is cut at 255 bytes without splitting a character", () => {
    const d = shutdownData("é".repeat(200)); // 400 bytes of 2-byte characters
    expect(d[0]).toBe(254);
    expect(d.length).toBe(255);
    expect(shutdownText({ code: 6, subcode: 2, data: d })).toBe("é".repeat(127));
  });

  it("is read only from Cease 6/2 and 6/4 with a consistent length and valid UTF-8", () => {
    const data = shutdownData("x");
    expect(shutdownText({ code: 6, subcode: 4, data })).toBe("x");
    expect(shutdownText({ code: 6, subcode: 3, data })).toBeUndefined();
    expect(shutdownText({ code: 6, subcode: 2, data: Uint8Array.of(5, 0x61) })).toBeUndefined();
    expect(shutdownText({ code: 6, subcode: 2, data: Uint8Array.of(1, 0xff) })).toBeUndefined();
    expect(describeNotification({ code: 6, subcode: 2, data: Uint8Array.of(1, 0xff) })).toBe(
      "Cease/Administrative Shutdown",
    );
  });
});
