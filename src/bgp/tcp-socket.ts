// The socket of a BGP session with a TCP-MD5 password (RFC 2385) or GTSM (RFC 5082). Node
// cannot set TCP_MD5SIG or IP_MINTTL before its connect() sends the SYN, so the project's
// addon (src/layer2/native/tcp_socket.c) creates the socket, installs the key for the
// peer's address and the TTL options, binds the source address, and returns the fd;
// net.Socket adopts it and connects. Sessions with neither use plain node:net (session.ts).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { Socket } from "node:net";
import { fileURLToPath } from "node:url";

interface TcpSocketBinding {
  tcpSocket(
    family: 4 | 6,
    md5Peer: string | null,
    md5Key: Buffer | null,
    bindAddress: string | null,
    minTtl?: number | null,
  ): number;
}

// The addon is src/layer2/native's (one binary for the node); relative to this module from
// src/bgp, from the image's dist/bgp (the image puts it in dist/layer2/native), and from a
// dist/bgp built beside src.
const addonPaths = [
  "../layer2/native/build/Release/ironlb_packet.node",
  "../layer2/native/build/Debug/ironlb_packet.node",
  "../../src/layer2/native/build/Release/ironlb_packet.node",
];

let binding: TcpSocketBinding | undefined;

function addon(): TcpSocketBinding {
  if (binding !== undefined) return binding;
  if (process.platform !== "linux") {
    throw new Error(`TCP-MD5 passwords and GTSM need Linux; this is ${process.platform}`);
  }
  const require = createRequire(import.meta.url);
  for (const rel of addonPaths) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (!existsSync(path)) continue;
    const b = require(path) as Partial<TcpSocketBinding>;
    if (typeof b.tcpSocket !== "function") {
      throw new Error(
        `the addon at ${path} has no tcpSocket (an old build): run \`npm run build\``,
      );
    }
    binding = b as TcpSocketBinding;
    return binding;
  }
  throw new Error(
    "the native addon is not built (expected src/layer2/native/build/Release/ironlb_packet.node); run `npm run build`",
  );
}

export interface AddonSocketOptions {
  /** The peer's IP address (the key applies to segments from and to it). */
  peerAddress: string;
  /** 1..80 bytes; absent: no TCP-MD5. */
  password?: string;
  /** Bind to this local address before connecting. */
  sourceAddress?: string;
  /** GTSM for a peer at most this many hops away (1..254): TTL 255 out, 256 - hops in. */
  ttlSecurityHops?: number;
}

/**
 * An unconnected net.Socket whose segments to and from `peerAddress` carry a TCP-MD5
 * signature with `password` and/or follow GTSM; call connect(port, peerAddress) on it.
 * Throws (with the errno name as `code`) when an option cannot be set or the source
 * address not bound.
 */
export function addonSocket(o: AddonSocketOptions): Socket {
  const family = o.peerAddress.includes(":") ? 6 : 4;
  const fd = addon().tcpSocket(
    family,
    o.peerAddress,
    o.password === undefined ? null : Buffer.from(o.password, "utf8"),
    o.sourceAddress ?? null,
    o.ttlSecurityHops === undefined ? null : 256 - o.ttlSecurityHops,
  );
  return new Socket({ fd });
}
