// The packet socket's test- and bench-only functions. They live in the tools build of the
// addon (ironlb_packet_tools: the production source compiled with IRONLB_TOOLS, see
// src/layer2/native/binding.gyp), which `npm run build` makes beside the production one and
// the image leaves out: a speaker never carries a flood generator or a neighbour watcher.
import { endianness } from "node:os";
import {
  decodeNeighbourMessages,
  type NeighbourChange,
  RTMGRP_NEIGH,
} from "../../src/layer2/link-state.ts";
import {
  loadAddon,
  type NativeBinding,
  type NativeHandle,
  PacketSocket,
  type PacketSocketKind,
} from "../../src/layer2/packet-socket.ts";

interface ToolsBinding extends NativeBinding {
  sendBatch(handle: NativeHandle, frame: Buffer, count: number): number;
  openLinkMonitor(
    cb: (err: Error | null, datagram: Buffer | null) => void,
    groups?: number,
  ): { handle: NativeHandle };
}

const tools = () => loadAddon<ToolsBinding>("ironlb_packet_tools");
const toolSockets = new WeakSet<PacketSocket>();

/** A PacketSocket opened with the tools build, so that sendBatch can use it. */
export function openToolSocket(ifname: string, kind: PacketSocketKind): PacketSocket {
  const sock = PacketSocket.open(ifname, kind, tools());
  toolSockets.add(sock);
  return sock;
}

/**
 * Sends `frame` up to `count` times in sendmmsg batches; returns how many the kernel took
 * before its queue was full. For flood benchmarks: it outruns a JavaScript loop.
 */
export function sendBatch(sock: PacketSocket, frame: Buffer, count: number): number {
  if (!toolSockets.has(sock)) throw new Error("sendBatch needs a socket from openToolSocket");
  return tools().sendBatch(sock.handle(), frame, count);
}

/**
 * Changes of the kernel's IPv4 neighbour entries as they happen (RTMGRP_NEIGH), for tools
 * that judge what a host's ARP cache says (the lab's ARP watcher): `onChange` runs in the
 * same event loop as the packet sockets, so the order of events is the kernel's.
 */
export function watchNeighbours(onChange: (c: NeighbourChange) => void): { close(): void } {
  const native = tools();
  const le = endianness() === "LE";
  let open = true;
  const { handle } = native.openLinkMonitor((err, datagram) => {
    if (!open || err !== null || datagram === null) return;
    for (const c of decodeNeighbourMessages(datagram, le)) onChange(c);
  }, RTMGRP_NEIGH);
  return {
    close() {
      if (!open) return;
      open = false;
      native.close(handle);
    },
  };
}
