/**
 * Linux AF_PACKET socket bound to one interface, for ARP or for IPv6 neighbour discovery,
 * backed by the project's own Node-API addon in ./native. Frames are whole Ethernet frames
 * in both directions. Receiving is event driven (libuv poll on the socket), never polled.
 */
import { EventEmitter } from "node:events";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { endianness } from "node:os";
import { fileURLToPath } from "node:url";
import { type BpfInstruction, encodeFilter } from "./bpf-filter.ts";
import { applyLinkChanges, decodeLinkMessages } from "./link-state.ts";

export type PacketSocketKind = "arp" | "ndp";

/** Link-layer packet type from the kernel (sll_pkttype). */
export const PACKET_HOST = 0;
export const PACKET_BROADCAST = 1;
export const PACKET_OTHERHOST = 3;

/** What a PacketSocket needs from the transport; the announcer depends only on this. */
export interface FrameSocket {
  readonly ifname: string;
  readonly mac: string;
  send(frame: Buffer): void;
  onFrame(listener: (frame: Buffer, pktType: number) => void): () => void;
  /**
   * Installs a kernel filter (see bpf-filter.ts) in place of the current one, atomically;
   * null restores the socket's default. Optional: sockets without it receive everything.
   */
  setFilter?(program: readonly BpfInstruction[] | null): void;
  close(): void;
}

export interface NativeHandle {
  readonly __brand: "PacketSocketHandle";
}

/** The production addon's functions (native/packet_socket.c says what each does). */
export interface NativeBinding {
  open(
    ifname: string,
    kind: 0 | 1,
    cb: (err: Error | null, frame: Buffer | null, pktType: number) => void,
  ): { handle: NativeHandle; ifindex: number; mac: Buffer };
  send(handle: NativeHandle, frame: Buffer): number;
  setFilter(handle: NativeHandle, program: Buffer | null): void;
  stats(handle: NativeHandle): { packets: number; drops: number };
  close(handle: NativeHandle): void;
  openLinkMonitor(cb: (err: Error | null, datagram: Buffer | null) => void): {
    handle: NativeHandle;
  };
  linkDump(handle: NativeHandle): void;
  /** A classic BPF program on this process's UDP socket bound to address:port (null: none). */
  udpSetFilter(address: string, port: number, program: Buffer | null): void;
}

// Relative to this module: beside it in src/layer2, and from the compiled dist/layer2 the
// addon that `npm run build` left in src/layer2 (the image puts it beside dist/layer2).
const addonPaths = (name: string) => [
  `./native/build/Release/${name}.node`,
  `./native/build/Debug/${name}.node`,
  `../../src/layer2/native/build/Release/${name}.node`,
];

const bindings = new Map<string, NativeBinding>();

/**
 * Loads an addon once, with errors that say what to do: the production one by default;
 * tests and benchmarks load the superset built for them (test/support/packet-tools.ts).
 */
export function loadAddon<T extends NativeBinding = NativeBinding>(name = "ironlb_packet"): T {
  const loaded = bindings.get(name);
  if (loaded !== undefined) return loaded as T;
  if (process.platform !== "linux") {
    throw new Error(
      `packet sockets (AF_PACKET) are Linux-only; ironlb's speaker cannot run on ${process.platform}`,
    );
  }
  const require = createRequire(import.meta.url);
  for (const rel of addonPaths(name)) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (!existsSync(path)) continue;
    const binding = require(path) as T;
    bindings.set(name, binding);
    return binding;
  }
  throw new Error(
    `the packet socket addon is not built (expected src/layer2/native/build/Release/${name}.node); run \`npm run build\``,
  );
}

/** An error from the addon, thrown or emitted: the errno name as `code`, its number as `errno`. */
export interface PacketSocketError extends Error {
  code?: string;
  errno?: number;
}

/**
 * A packet socket on one interface. Events: "frame" (frame: Buffer, pktType: number) and
 * "error" (err: PacketSocketError), e.g. when the interface disappears; "close".
 *
 * Like a listening server, an open socket keeps the event loop alive and is not garbage
 * collected: call close() when done.
 */
export class PacketSocket extends EventEmitter implements FrameSocket {
  readonly ifname: string;
  readonly kind: PacketSocketKind;
  /** Kernel interface index. */
  readonly ifindex: number;
  /** Interface MAC, lowercase `aa:bb:cc:dd:ee:ff`. */
  readonly mac: string;
  readonly macBytes: Buffer;
  #handle: NativeHandle | undefined;
  readonly #native: NativeBinding;
  readonly #stats = { packets: 0, drops: 0 };

  private constructor(
    ifname: string,
    kind: PacketSocketKind,
    native: NativeBinding,
    opened: { handle: NativeHandle; ifindex: number; mac: Buffer },
  ) {
    super();
    this.#native = native;
    this.ifname = ifname;
    this.kind = kind;
    this.#handle = opened.handle;
    this.ifindex = opened.ifindex;
    this.macBytes = Buffer.from(opened.mac);
    this.mac = [...this.macBytes].map((b) => b.toString(16).padStart(2, "0")).join(":");
  }

  /**
   * Opens a socket on `ifname` for ARP frames ("arp") or ICMPv6 neighbour solicitations and
   * advertisements ("ndp"). Throws with `code` EPERM without CAP_NET_RAW, ENODEV for an
   * unknown interface. `native` is the addon to open it with (tests: the tools build).
   */
  static open(
    ifname: string,
    kind: PacketSocketKind,
    native: NativeBinding = loadAddon(),
  ): PacketSocket {
    // The native callback fires before the constructor returns only in theory (the poll
    // starts on the next loop turn), but route it through a holder to be safe.
    let target: PacketSocket | undefined;
    const opened = native.open(ifname, kind === "arp" ? 0 : 1, (err, frame, pktType) => {
      const sock = target;
      if (sock === undefined) return;
      if (err !== null) {
        if (sock.listenerCount("error") > 0) sock.emit("error", err);
        return;
      }
      if (frame === null) return;
      try {
        sock.emit("frame", frame, pktType);
      } catch (e) {
        // A listener bug must not become an uncaught exception in the addon's poll callback.
        if (sock.listenerCount("error") > 0) sock.emit("error", e);
      }
    });
    target = new PacketSocket(ifname, kind, native, opened);
    return target;
  }

  /** Sends one complete Ethernet frame. Throws if closed or if the kernel refuses it. */
  send(frame: Buffer): void {
    this.#native.send(this.#open(), frame);
  }

  /**
   * Replaces the kernel filter atomically (null: the default of the socket kind, i.e. all
   * ARP frames or all neighbour solicitations and advertisements). Throws if the kernel
   * refuses the program; the previous filter then stays.
   */
  setFilter(program: readonly BpfInstruction[] | null): void {
    const h = this.#open();
    this.#native.setFilter(
      h,
      program === null ? null : encodeFilter(program, endianness() === "LE"),
    );
  }

  /**
   * Kernel counters since the socket opened: frames that passed the filter (`packets`)
   * and those of them dropped because the receive queue was full (`drops`).
   */
  stats(): { packets: number; drops: number } {
    const s = this.#native.stats(this.#open());
    // The kernel resets its counters on every read: keep the running totals here.
    this.#stats.packets += s.packets;
    this.#stats.drops += s.drops;
    return { ...this.#stats };
  }

  /** The addon's handle of the open socket, for the tools build's own functions. */
  handle(): NativeHandle {
    return this.#open();
  }

  #open(): NativeHandle {
    if (this.#handle === undefined) {
      const e: PacketSocketError = new Error(`packet socket on ${this.ifname} is closed`);
      e.code = "EBADF";
      throw e;
    }
    return this.#handle;
  }

  /** Subscribes to received frames; returns an unsubscribe function. */
  onFrame(listener: (frame: Buffer, pktType: number) => void): () => void {
    this.on("frame", listener);
    return () => this.off("frame", listener);
  }

  /** Stops receiving and closes the socket. Safe to call more than once. */
  close(): void {
    const h = this.#handle;
    if (h === undefined) return;
    this.#handle = undefined;
    this.#native.close(h);
    this.emit("close");
  }
}

/**
 * The host's links as the kernel reports them (a NETLINK_ROUTE socket subscribed to link
 * changes, event driven like the packet sockets). Event "change" (links: ReadonlyMap of
 * interface name -> usable, i.e. up with carrier) after the first full list and after
 * every change; "error" (err) for receive failures. Lost events (the kernel's queue
 * overflowed) are repaired by asking for the full list again.
 */
export class LinkMonitor extends EventEmitter {
  #handle: NativeHandle | undefined;
  #links = new Map<number, { name: string; usable: boolean }>();

  private constructor() {
    super();
  }

  static open(): LinkMonitor {
    const native = loadAddon();
    const m = new LinkMonitor();
    const le = endianness() === "LE";
    const opened = native.openLinkMonitor((err, datagram) => {
      if (m.#handle === undefined) return;
      if (err !== null) {
        if ((err as PacketSocketError).code === "ENOBUFS") {
          try {
            native.linkDump(m.#handle);
          } catch (e) {
            if (m.listenerCount("error") > 0) m.emit("error", e);
          }
        }
        if (m.listenerCount("error") > 0) m.emit("error", err);
        return;
      }
      if (datagram === null) return;
      const changes = decodeLinkMessages(datagram, le);
      if (changes.length === 0) return;
      const before = m.#links;
      m.#links = applyLinkChanges(before, changes);
      if (sameLinks(before, m.#links)) return;
      try {
        m.emit("change", m.links());
      } catch (e) {
        if (m.listenerCount("error") > 0) m.emit("error", e);
      }
    });
    m.#handle = opened.handle;
    return m;
  }

  /** Interface name -> usable, as last reported. */
  links(): Map<string, boolean> {
    return new Map([...this.#links.values()].map((l) => [l.name, l.usable]));
  }

  close(): void {
    const h = this.#handle;
    if (h === undefined) return;
    this.#handle = undefined;
    loadAddon().close(h);
  }
}

function sameLinks(
  a: ReadonlyMap<number, { name: string; usable: boolean }>,
  b: ReadonlyMap<number, { name: string; usable: boolean }>,
): boolean {
  if (a.size !== b.size) return false;
  for (const [i, x] of a) {
    const y = b.get(i);
    if (!y || y.name !== x.name || y.usable !== x.usable) return false;
  }
  return true;
}
