// BFD's receive socket: UDP on a local address and port 3784 whose datagrams come with the
// TTL / hop limit they arrived with, so that single-hop BFD can drop what was not sent from
// the link itself (RFC 5881 §5: received TTL must be 255). node:dgram cannot read a
// datagram's TTL and the kernel does not enforce IP_MINTTL for UDP (bgp-facts §3), so the
// socket comes from the project's addon (src/layer2/native/udp_socket.c: IP_RECVTTL /
// IPV6_RECVHOPLIMIT and recvmsg), polled on the calling thread's event loop (the BFD
// worker's own). Sending stays with node:dgram (udp.ts).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

interface Handle {
  readonly __brand: "UdpSocketHandle";
}

interface UdpBinding {
  openUdp(
    family: 4 | 6,
    address: string,
    port: number,
    cb: (err: Error | null, datagram: Buffer | null, ttl: number, from: string | null) => void,
  ): { handle: Handle };
  close(handle: Handle): void;
}

// The addon is src/layer2/native's; relative to this module from src/bfd, from the image's
// dist/bfd (the image puts it in dist/layer2/native), and from a dist/bfd built beside src.
const addonPaths = [
  "../layer2/native/build/Release/ironlb_packet.node",
  "../layer2/native/build/Debug/ironlb_packet.node",
  "../../src/layer2/native/build/Release/ironlb_packet.node",
];

let binding: UdpBinding | undefined;

function addon(): UdpBinding {
  if (binding !== undefined) return binding;
  if (process.platform !== "linux") {
    throw new Error(`BFD needs Linux (received TTL check); this is ${process.platform}`);
  }
  const require = createRequire(import.meta.url);
  for (const rel of addonPaths) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (!existsSync(path)) continue;
    const b = require(path) as Partial<UdpBinding>;
    if (typeof b.openUdp !== "function") {
      throw new Error(`the addon at ${path} has no openUdp (an old build): run \`npm run build\``);
    }
    binding = b as UdpBinding;
    return binding;
  }
  throw new Error(
    "the native addon is not built (expected src/layer2/native/build/Release/ironlb_packet.node); run `npm run build`",
  );
}

export interface TtlDatagram {
  data: Buffer;
  /** The TTL (IPv4) or hop limit (IPv6) it was received with; -1 when the kernel gave none. */
  ttl: number;
  from: string;
}

export interface TtlSocket {
  close(): void;
}

/**
 * Binds UDP `address:port` (throws with the errno name as `code`, e.g. EADDRINUSE) and hands
 * every datagram to `onDatagram`, receive errors to `onError`.
 */
export function openTtlSocket(
  address: string,
  port: number,
  onDatagram: (d: TtlDatagram) => void,
  onError: (err: Error) => void,
): TtlSocket {
  const b = addon();
  const { handle } = b.openUdp(
    address.includes(":") ? 6 : 4,
    address,
    port,
    (err, data, ttl, from) => {
      if (err !== null) onError(err);
      else if (data !== null) onDatagram({ data, ttl, from: from ?? "" });
    },
  );
  let closed = false;
  return {
    close() {
      if (closed) return;
      closed = true;
      b.close(handle);
    },
  };
}
