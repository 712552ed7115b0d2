// Pieces for in-process tests of the speaker: a frame socket in memory and a membership of
// one live node. Not in the production build (tsconfig.build.json excludes testkit.ts).
import type { FrameSocket, PacketSocketKind } from "../layer2/packet-socket.ts";
import { PACKET_BROADCAST } from "../layer2/packet-socket.ts";
import type { MembershipView } from "./decision.ts";
import type { Membership } from "./membership.ts";

/** A packet socket in memory: frames sent are kept in `sent`, `deliver` plays one received. */
export class MemorySocket implements FrameSocket {
  readonly listeners = new Set<(f: Buffer, t: number) => void>();
  readonly ifname: string;
  readonly kind: PacketSocketKind;
  readonly mac = "02:00:00:00:01:00";
  readonly sent: Buffer[];
  constructor(ifname: string, kind: PacketSocketKind, sent: Buffer[] = []) {
    this.ifname = ifname;
    this.kind = kind;
    this.sent = sent;
  }
  send(frame: Buffer): void {
    this.sent.push(frame);
  }
  onFrame(l: (f: Buffer, t: number) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  close(): void {}
  deliver(frame: Buffer): void {
    for (const l of this.listeners) l(frame, PACKET_BROADCAST);
  }
}

/** Membership stubbed to `node` alone, live, settled, with quorum: no peers, no heartbeats. */
export function soloMembership(node: string): Membership {
  const view: MembershipView = { self: node, live: new Set([node]), settled: true, quorum: true };
  return {
    onChange: () => {},
    onRejoin: () => {},
    noticeStall: () => {},
    linkRejoin: () => {},
    view: () => ({ ...view }),
    live: () => view.live,
    publishLinks: () => undefined,
    publishedLinks: () => new Map<string, string>(),
  } as unknown as Membership;
}
