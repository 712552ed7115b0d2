/*
 * ironlb packet socket addon: Linux AF_PACKET sockets for ARP and NDP, exposed through
 * Node-API only (node_api.h) plus libuv's uv_poll_t, so one binary works across Node
 * versions that share the Node-API level.
 *
 * JS surface (wrapped by ../packet-socket.ts):
 *   open(ifname: string, kind: 0 (ARP) | 1 (NDP), cb: (err, frame, pkttype) => void)
 *     -> { handle: External, ifindex: number, mac: Buffer }
 *   send(handle, frame: Buffer) -> number of bytes sent
 *   setFilter(handle, program: Buffer | null) -> undefined: installs a classic BPF program
 *     (struct sock_filter[], host order, compiled by ../bpf-filter.ts) or, with null, the
 *     socket's default one. SO_ATTACH_FILTER swaps programs atomically: no frame is ever
 *     judged by a half-installed filter, and none slips through between two programs.
 *   stats(handle) -> { packets, drops }: PACKET_STATISTICS since the previous call
 *     (frames that passed the filter, and those of them the full receive queue dropped).
 *   close(handle) -> undefined (idempotent)
 *   openLinkMonitor(cb: (err, datagram) => void) -> { handle }: a NETLINK_ROUTE socket
 *     subscribed to link changes, polled like the packet sockets; each datagram (one or
 *     more rtnetlink messages, parsed by ../link-state.ts) goes to cb as a Buffer. A dump
 *     of every link is requested at once, so the first datagrams say how every link is
 *     now. close(handle) closes it.
 *   linkDump(handle) -> undefined: requests that dump again (after ENOBUFS: the kernel
 *     dropped events because the socket's queue was full).
 *   tcpSocket(family, md5Peer, md5Key, bindAddress, minTtl) -> fd: a TCP socket with a
 *     TCP-MD5 key and/or GTSM for BGP (tcp_socket.c, wrapped by ../../bgp/tcp-socket.ts).
 *   openUdp(family, address, port, cb: (err, datagram, ttl, from) => void) -> { handle }: a
 *     UDP socket that reports each datagram's received TTL / hop limit, for BFD's RFC 5881
 *     check (udp_socket.c, wrapped by ../../bfd/ttl-socket.ts); close(handle) closes it.
 *   udpSetFilter(address, port, program: Buffer | null) -> undefined: a classic BPF program
 *     on this process's UDP socket bound to address:port (the speaker's node:dgram heartbeat
 *     socket, found by its address; udp_socket.c), or none with null.
 *
 * Built a second time with IRONLB_TOOLS as ironlb_packet_tools (binding.gyp), for tests,
 * the lab and benchmarks only (test/support/packet-tools.ts); the image ships without it:
 *   sendBatch(handle, frame: Buffer, count) -> frames sent: the same frame `count` times
 *     with sendmmsg(2), stopping early when the kernel's queue is full (a flood generator
 *     that outruns a JavaScript loop).
 *   openLinkMonitor(cb, groups) with other RTMGRP_* groups than link changes (the lab's
 *     ARP watcher asks for neighbour changes); the link dump only comes with RTMGRP_LINK.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <net/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "addon.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define KIND_ARP 0
#define KIND_NDP 1
#define KIND_LINK 2
/* KIND_UDP (3): udp_socket.c */
/* Level-triggered poll: stopping after a batch just yields to the loop, it loses nothing. */
#define MAX_FRAMES_PER_WAKE 64
#define RECV_BUF_SIZE 65536


/* Per thread, because worker threads may each load the addon. */
static __thread unsigned char recv_buf[RECV_BUF_SIZE];

/* ---- error helpers ------------------------------------------------------------------ */

/* An Error for errno `err`: message "msg (ENAME: strerror)", `code` the errno name and
 * `errno` libuv's negative number, whether it is thrown or handed to a callback. */
static napi_value make_errno_error(napi_env env, int err, const char* msg) {
  napi_value code, text, error, errno_val;
  const char* name = uv_err_name(-err);
  char full[512];
  snprintf(full, sizeof full, "%s (%s: %s)", msg, name, strerror(err));
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, full, NAPI_AUTO_LENGTH, &text);
  napi_create_error(env, code, text, &error);
  napi_create_int32(env, -err, &errno_val);
  napi_set_named_property(env, error, "errno", errno_val);
  return error;
}

static void throw_errno(napi_env env, int err, const char* msg) {
  napi_throw(env, make_errno_error(env, err, msg));
}

void ironlb_throw_errno(napi_env env, int err, const char* msg) { throw_errno(env, err, msg); }

napi_value ironlb_errno_error(napi_env env, int err, const char* msg) {
  return make_errno_error(env, err, msg);
}

#define NAPI_CALL(env, call)                                               \
  do {                                                                     \
    if ((call) != napi_ok) {                                               \
      bool pending = false;                                                \
      napi_is_exception_pending((env), &pending);                          \
      if (!pending) napi_throw_error((env), "EINTERNAL", "Node-API call failed: " #call); \
      return NULL;                                                         \
    }                                                                      \
  } while (0)

/* ---- lifecycle ---------------------------------------------------------------------- */

static void maybe_free(psock* s) {
  if (s->finalized && s->poll_released) free(s);
}

static void on_poll_closed(uv_handle_t* h) {
  psock* s = (psock*)h->data;
  s->poll_released = 1;
  maybe_free(s);
}

static void cleanup_hook(void* arg);

/* Releases the kernel and JS resources. Safe to call more than once. The struct itself
 * lives until both the uv handle is closed and the external is finalized. */
static void psock_close(psock* s, int from_teardown) {
  if (s->closed) return;
  s->closed = 1;
  if (s->poll_started) {
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t*)&s->poll, on_poll_closed);
  } else {
    s->poll_released = 1;
  }
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  if (s->callback != NULL) {
    napi_delete_reference(s->env, s->callback);
    s->callback = NULL;
  }
  if (s->async_ctx != NULL) {
    napi_async_destroy(s->env, s->async_ctx);
    s->async_ctx = NULL;
  }
  if (s->hook_added && !from_teardown) {
    napi_remove_env_cleanup_hook(s->env, cleanup_hook, s);
  }
  s->hook_added = 0;
}

/* Environment teardown (process exit, worker exit): close sockets nobody closed. */
static void cleanup_hook(void* arg) {
  psock* s = (psock*)arg;
  s->hook_added = 0;
  psock_close(s, 1);
}

static void finalize(napi_env env, void* data, void* hint) {
  psock* s = (psock*)data;
  psock_close(s, 0);
  s->finalized = 1;
  maybe_free(s);
}

/* ---- receive path ------------------------------------------------------------------- */

void ironlb_callback(psock* s, size_t argc, napi_value* argv) {
  napi_env env = s->env;
  napi_value cb, recv, result;
  if (s->callback == NULL) return;
  if (napi_get_reference_value(env, s->callback, &cb) != napi_ok || cb == NULL) return;
  napi_get_global(env, &recv); /* make_callback needs an object receiver */
  /* make_callback (not call_function) so that promise jobs and nextTicks queued by the
   * callback run before control returns to libuv. */
  napi_make_callback(env, s->async_ctx, recv, cb, argc, argv, &result);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) {
    /* Nobody up the stack can catch it: report it the way Node reports any uncaught
     * exception from a libuv callback. */
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
}

static void deliver(psock* s, napi_value err, napi_value frame, int pkttype) {
  napi_value argv[3];
  napi_get_null(s->env, &argv[0]);
  napi_get_null(s->env, &argv[1]);
  if (err != NULL) argv[0] = err;
  if (frame != NULL) argv[1] = frame;
  napi_create_int32(s->env, pkttype, &argv[2]);
  ironlb_callback(s, 3, argv);
}

static void on_readable(uv_poll_t* handle, int status, int events) {
  psock* s = (psock*)handle->data;
  napi_handle_scope scope;
  if (s->closed) return;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;

  for (int i = 0; i < MAX_FRAMES_PER_WAKE && !s->closed; i++) {
    struct sockaddr_ll from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(s->fd, recv_buf, sizeof recv_buf, MSG_DONTWAIT | MSG_TRUNC,
                         (struct sockaddr*)&from, &fromlen);
    if (n < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      if (e == EINTR) continue;
      /* A pending socket error (e.g. ENETDOWN, or ENODEV when the interface went away) is
       * reported once by the kernel; hand it to JS and stop this round. */
      deliver(s, make_errno_error(s->env, e, "receiving on packet socket failed"), NULL, -1);
      break;
    }
    if (from.sll_pkttype == PACKET_OUTGOING) continue; /* kernels without IGNORE_OUTGOING */
    size_t len = (size_t)n > sizeof recv_buf ? sizeof recv_buf : (size_t)n;
    napi_value buf;
    void* data;
    if (napi_create_buffer_copy(s->env, len, recv_buf, &data, &buf) != napi_ok) break;
    deliver(s, NULL, buf, from.sll_pkttype);
  }
  napi_close_handle_scope(s->env, scope);
}

/* Link monitor: every datagram is handed over whole; the parsing is TypeScript's. */
static void on_link_readable(uv_poll_t* handle, int status, int events) {
  psock* s = (psock*)handle->data;
  napi_handle_scope scope;
  if (s->closed) return;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
  for (int i = 0; i < MAX_FRAMES_PER_WAKE && !s->closed; i++) {
    ssize_t n = recv(s->fd, recv_buf, sizeof recv_buf, MSG_DONTWAIT);
    if (n < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      if (e == EINTR) continue;
      /* ENOBUFS: events were lost; JS asks for a fresh dump. */
      deliver(s, make_errno_error(s->env, e, "receiving link changes failed"), NULL, -1);
      break;
    }
    size_t len = (size_t)n > sizeof recv_buf ? sizeof recv_buf : (size_t)n;
    napi_value buf;
    void* data;
    if (napi_create_buffer_copy(s->env, len, recv_buf, &data, &buf) != napi_ok) break;
    deliver(s, NULL, buf, 0);
  }
  napi_close_handle_scope(s->env, scope);
}

static int request_link_dump(int fd) {
  struct {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof req.ifi);
  req.nh.nlmsg_type = RTM_GETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.ifi.ifi_family = AF_UNSPEC;
  struct sockaddr_nl to;
  memset(&to, 0, sizeof to);
  to.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, &req, req.nh.nlmsg_len, 0, (struct sockaddr*)&to, sizeof to);
  } while (n < 0 && errno == EINTR);
  return n < 0 ? -1 : 0;
}

/* ---- socket setup ------------------------------------------------------------------- */

/* Classic BPF over the whole Ethernet frame: IPv6, next header ICMPv6 (58), type 135
 * (neighbour solicitation) or 136 (neighbour advertisement). NDP messages carry no
 * extension headers in practice, so a fixed offset is enough; the codec re-validates. */
static struct sock_filter ndp_filter[] = {
    BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IPV6, 0, 6),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 20),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 58, 0, 4),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 54),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 135, 1, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 136, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, 0x40000),
    BPF_STMT(BPF_RET | BPF_K, 0),
};

static int attach_filter(int fd, struct sock_filter* f, unsigned short len) {
  struct sock_fprog prog = {.len = len, .filter = f};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
}

/*
 * Reads exactly `want` arguments into argv; false (with a TypeError naming `usage`
 * pending) when fewer were passed.
 */
static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv,
                     const char* usage) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    napi_throw_error(env, "EINTERNAL", "Node-API call failed: napi_get_cb_info");
    return false;
  }
  if (argc < want) {
    napi_throw_type_error(env, "EINVAL", usage);
    return false;
  }
  return true;
}

/*
 * Wraps an open fd in a new psock polled for reading by `on_read`, owned by a JS external
 * from then on: calls `callback` for what arrives, closed by the finalizer or the env
 * teardown. Returns the external (and the psock in *out when out is not NULL), or NULL with
 * a JS exception pending (the fd is closed then).
 */
static napi_value psock_attach(napi_env env, int fd, int kind, int ifindex, int proto,
                               napi_value callback, const char* name, uv_poll_cb on_read,
                               psock** out) {
  psock* s = calloc(1, sizeof *s);
  if (s == NULL) {
    close(fd);
    throw_errno(env, ENOMEM, "out of memory");
    return NULL;
  }
  s->fd = fd;
  s->kind = kind;
  s->ifindex = ifindex;
  s->proto = proto;
  napi_value external, resource, resource_name;
  s->env = env;
  s->poll.data = s;
  if (napi_create_external(env, s, finalize, NULL, &external) != napi_ok) {
    close(s->fd);
    free(s);
    napi_throw_error(env, "EINTERNAL", "napi_create_external failed");
    return NULL;
  }
  /* From here on the finalizer owns s; errors only need psock_close(). */
  napi_create_object(env, &resource);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  if (napi_async_init(env, resource, resource_name, &s->async_ctx) != napi_ok ||
      napi_create_reference(env, callback, 1, &s->callback) != napi_ok) {
    psock_close(s, 0);
    napi_throw_error(env, "EINTERNAL", "setting up the receive callback failed");
    return NULL;
  }
  uv_loop_t* loop = NULL;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == NULL) {
    psock_close(s, 0);
    napi_throw_error(env, "EINTERNAL", "no libuv event loop");
    return NULL;
  }
  int rc = uv_poll_init(loop, &s->poll, s->fd);
  if (rc != 0) {
    psock_close(s, 0);
    throw_errno(env, -rc, "uv_poll_init failed");
    return NULL;
  }
  s->poll_started = 1;
  rc = uv_poll_start(&s->poll, UV_READABLE, on_read);
  if (rc != 0) {
    psock_close(s, 0);
    throw_errno(env, -rc, "uv_poll_start failed");
    return NULL;
  }
  if (napi_add_env_cleanup_hook(env, cleanup_hook, s) == napi_ok) s->hook_added = 1;
  if (out != NULL) *out = s;
  return external;
}

napi_value ironlb_attach(napi_env env, int fd, int kind, napi_value callback, const char* name,
                         uv_poll_cb on_read) {
  return psock_attach(env, fd, kind, 0, 0, callback, name, on_read, NULL);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, "open(ifname, kind, callback) needs 3 arguments")) return NULL;
  char ifname[IFNAMSIZ + 1];
  size_t iflen = 0;
  if (napi_get_value_string_utf8(env, argv[0], ifname, sizeof ifname, &iflen) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "interface name must be a string");
    return NULL;
  }
  if (iflen == 0 || iflen >= IFNAMSIZ) {
    napi_throw_error(env, "EINVAL", "interface name is empty or longer than 15 bytes");
    return NULL;
  }
  int32_t kind = -1;
  if (napi_get_value_int32(env, argv[1], &kind) != napi_ok ||
      (kind != KIND_ARP && kind != KIND_NDP)) {
    napi_throw_type_error(env, "EINVAL", "kind must be 0 (ARP) or 1 (NDP)");
    return NULL;
  }
  napi_valuetype cbtype;
  NAPI_CALL(env, napi_typeof(env, argv[2], &cbtype));
  if (cbtype != napi_function) {
    napi_throw_type_error(env, "EINVAL", "callback must be a function");
    return NULL;
  }

  uint16_t proto = kind == KIND_ARP ? ETH_P_ARP : ETH_P_IPV6;
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    if (e == EPERM || e == EACCES)
      throw_errno(env, e,
                  "opening a packet socket needs CAP_NET_RAW (run as root or grant the "
                  "capability)");
    else
      throw_errno(env, e, "socket(AF_PACKET) failed");
    return NULL;
  }

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, iflen);
  if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
    int e = errno;
    close(fd);
    char msg[128];
    snprintf(msg, sizeof msg, "no such interface: %s", ifname);
    throw_errno(env, e, e == ENODEV ? msg : "reading the interface index failed");
    return NULL;
  }
  int ifindex = ifr.ifr_ifindex;
  if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "reading the interface MAC address failed");
    return NULL;
  }
  if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
    close(fd);
    char msg[128];
    snprintf(msg, sizeof msg, "interface %s is not an Ethernet interface", ifname);
    throw_errno(env, EINVAL, msg);
    return NULL;
  }
  unsigned char mac[6];
  memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);

  int one = 1;
  /* Best effort: older kernels lack it; the receive path also skips PACKET_OUTGOING. */
  setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);

  /* The socket was created with protocol 0, so it receives nothing until bind() below
   * names both the protocol and the interface: no frames from other interfaces can slip in,
   * and the NDP filter is in place before the first frame arrives. */
  int rc = 0;
  if (kind == KIND_NDP) rc = attach_filter(fd, ndp_filter, sizeof ndp_filter / sizeof ndp_filter[0]);
  if (rc < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "attaching the socket filter failed");
    return NULL;
  }

  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(proto);
  sll.sll_ifindex = ifindex;
  if (bind(fd, (struct sockaddr*)&sll, sizeof sll) < 0) {
    int e = errno;
    close(fd);
    char msg[128];
    snprintf(msg, sizeof msg, "no such interface: %s", ifname);
    throw_errno(env, e, e == ENODEV ? msg : "binding the packet socket failed");
    return NULL;
  }
  if (kind == KIND_NDP) {
    /* Neighbour solicitations go to solicited-node multicast groups; accept all multicast
     * rather than tracking one group per announced address. */
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = ifindex;
    mr.mr_type = PACKET_MR_ALLMULTI;
    if (setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) {
      int e = errno;
      close(fd);
      throw_errno(env, e, "joining all-multicast on the interface failed");
      return NULL;
    }
  }

  napi_value external = psock_attach(env, fd, kind, ifindex, proto, argv[2],
                                     "ironlb:PacketSocket", on_readable, NULL);
  if (external == NULL) return NULL;

  napi_value result, ifindex_val, mac_val;
  void* macdata;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_create_int32(env, ifindex, &ifindex_val));
  NAPI_CALL(env, napi_create_buffer_copy(env, 6, mac, &macdata, &mac_val));
  NAPI_CALL(env, napi_set_named_property(env, result, "handle", external));
  NAPI_CALL(env, napi_set_named_property(env, result, "ifindex", ifindex_val));
  NAPI_CALL(env, napi_set_named_property(env, result, "mac", mac_val));
  return result;
}

static napi_value js_open_link_monitor(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  size_t argc = 2;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, "EINVAL", "openLinkMonitor(callback[, groups]) needs a callback");
    return NULL;
  }
  uint32_t groups = RTMGRP_LINK;
#ifdef IRONLB_TOOLS
  if (argc >= 2) {
    napi_valuetype gt;
    NAPI_CALL(env, napi_typeof(env, argv[1], &gt));
    if (gt != napi_undefined && napi_get_value_uint32(env, argv[1], &groups) != napi_ok) {
      napi_throw_type_error(env, "EINVAL", "groups must be an RTMGRP_* bit mask");
      return NULL;
    }
  }
#endif
  napi_valuetype cbtype;
  NAPI_CALL(env, napi_typeof(env, argv[0], &cbtype));
  if (cbtype != napi_function) {
    napi_throw_type_error(env, "EINVAL", "callback must be a function");
    return NULL;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) {
    throw_errno(env, errno, "socket(AF_NETLINK) failed");
    return NULL;
  }
  /* Room for a burst of changes (a dump of many links) before the kernel drops some. */
  int rcvbuf = 1 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = groups;
  if (bind(fd, (struct sockaddr*)&sa, sizeof sa) < 0) {
    int e = errno;
    close(fd);
    throw_errno(env, e, "subscribing to link changes failed");
    return NULL;
  }
  psock* s = NULL;
  napi_value external = psock_attach(env, fd, KIND_LINK, 0, 0, argv[0], "ironlb:LinkMonitor",
                                     on_link_readable, &s);
  if (external == NULL) return NULL;
  if ((groups & RTMGRP_LINK) != 0 && request_link_dump(fd) < 0) {
    int e = errno;
    psock_close(s, 0);
    throw_errno(env, e, "requesting the list of links failed");
    return NULL;
  }
  napi_value result;
  NAPI_CALL(env, napi_create_object(env, &result));
  NAPI_CALL(env, napi_set_named_property(env, result, "handle", external));
  return result;
}

static psock* get_handle(napi_env env, napi_value v) {
  napi_valuetype t;
  void* data = NULL;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
      napi_get_value_external(env, v, &data) != napi_ok || data == NULL) {
    napi_throw_type_error(env, "EINVAL", "not a packet socket handle");
    return NULL;
  }
  return (psock*)data;
}

/* get_handle for calls that need the socket open: NULL (with EBADF thrown) once closed. */
static psock* get_open(napi_env env, napi_value v) {
  psock* s = get_handle(env, v);
  if (s == NULL) return NULL;
  if (s->closed) {
    throw_errno(env, EBADF, "packet socket is closed");
    return NULL;
  }
  return s;
}

/* A frame argument: a Buffer that holds at least an Ethernet header. Sets its bytes and
 * length, and `to`, the link-layer destination on s's interface that sendto/sendmmsg need.
 * Returns false with a JS exception thrown when it is not such a Buffer. */
static bool get_frame(napi_env env, napi_value v, const psock* s, void** data, size_t* len,
                      struct sockaddr_ll* to) {
  bool is_buf = false;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf) {
    napi_throw_type_error(env, "EINVAL", "frame must be a Buffer");
    return false;
  }
  if (napi_get_buffer_info(env, v, data, len) != napi_ok) {
    napi_throw_error(env, "EINTERNAL", "Node-API call failed: napi_get_buffer_info");
    return false;
  }
  if (*len < ETH_HLEN) {
    napi_throw_range_error(env, "EINVAL", "frame is shorter than an Ethernet header");
    return false;
  }
  const unsigned char* f = (const unsigned char*)*data;
  memset(to, 0, sizeof *to);
  to->sll_family = AF_PACKET;
  to->sll_ifindex = s->ifindex;
  to->sll_protocol = (uint16_t)(f[12] | (f[13] << 8)); /* already network order */
  to->sll_halen = ETH_ALEN;
  memcpy(to->sll_addr, f, ETH_ALEN);
  return true;
}

static napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "send(handle, frame) needs 2 arguments")) return NULL;
  psock* s = get_open(env, argv[0]);
  if (s == NULL) return NULL;
  void* data;
  size_t len;
  struct sockaddr_ll sll;
  if (!get_frame(env, argv[1], s, &data, &len, &sll)) return NULL;
  ssize_t n;
  do {
    n = sendto(s->fd, data, len, 0, (struct sockaddr*)&sll, sizeof sll);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    throw_errno(env, errno, "sending on packet socket failed");
    return NULL;
  }
  napi_value out;
  NAPI_CALL(env, napi_create_int64(env, (int64_t)n, &out));
  return out;
}

static napi_value js_set_filter(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv, "setFilter(handle, program) needs 2 arguments")) return NULL;
  psock* s = get_open(env, argv[0]);
  if (s == NULL) return NULL;
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, argv[1], &t));
  int rc;
  if (t == napi_null) {
    /* Back to what open() installed: the NDP filter, or nothing for ARP. */
    if (s->proto == ETH_P_IPV6) {
      rc = attach_filter(s->fd, ndp_filter, sizeof ndp_filter / sizeof ndp_filter[0]);
    } else {
      rc = setsockopt(s->fd, SOL_SOCKET, SO_DETACH_FILTER, NULL, 0);
      if (rc < 0 && errno == ENOENT) rc = 0; /* there was none */
    }
  } else {
    bool is_buf = false;
    NAPI_CALL(env, napi_is_buffer(env, argv[1], &is_buf));
    if (!is_buf) {
      napi_throw_type_error(env, "EINVAL", "program must be a Buffer or null");
      return NULL;
    }
    void* data;
    size_t len;
    NAPI_CALL(env, napi_get_buffer_info(env, argv[1], &data, &len));
    if (len == 0 || len % sizeof(struct sock_filter) != 0 ||
        len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
      napi_throw_range_error(env, "EINVAL",
                             "program must hold 1 to 4096 8-byte sock_filter instructions");
      return NULL;
    }
    /* The kernel copies and validates the program; an invalid one fails with EINVAL and
     * leaves the previous filter in place. */
    rc = attach_filter(s->fd, (struct sock_filter*)data,
                       (unsigned short)(len / sizeof(struct sock_filter)));
  }
  if (rc < 0) {
    throw_errno(env, errno, "attaching the socket filter failed");
    return NULL;
  }
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "stats(handle) needs 1 argument")) return NULL;
  psock* s = get_open(env, argv[0]);
  if (s == NULL) return NULL;
  struct tpacket_stats st;
  socklen_t len = sizeof st;
  if (getsockopt(s->fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) < 0) {
    throw_errno(env, errno, "reading packet socket statistics failed");
    return NULL;
  }
  napi_value out, packets, drops;
  NAPI_CALL(env, napi_create_object(env, &out));
  NAPI_CALL(env, napi_create_uint32(env, st.tp_packets, &packets));
  NAPI_CALL(env, napi_create_uint32(env, st.tp_drops, &drops));
  NAPI_CALL(env, napi_set_named_property(env, out, "packets", packets));
  NAPI_CALL(env, napi_set_named_property(env, out, "drops", drops));
  return out;
}

#ifdef IRONLB_TOOLS
static napi_value js_send_batch(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (!get_args(env, info, 3, argv, "sendBatch(handle, frame, count) needs 3 arguments"))
    return NULL;
  psock* s = get_open(env, argv[0]);
  if (s == NULL) return NULL;
  void* data;
  size_t len;
  struct sockaddr_ll sll;
  if (!get_frame(env, argv[1], s, &data, &len, &sll)) return NULL;
  int32_t count = 0;
  if (napi_get_value_int32(env, argv[2], &count) != napi_ok || count < 0) {
    napi_throw_type_error(env, "EINVAL", "count must be a non-negative integer");
    return NULL;
  }
  enum { BATCH = 256 };
  struct iovec iov = {.iov_base = data, .iov_len = len};
  struct mmsghdr msgs[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int i = 0; i < BATCH; i++) {
    msgs[i].msg_hdr.msg_name = &sll;
    msgs[i].msg_hdr.msg_namelen = sizeof sll;
    msgs[i].msg_hdr.msg_iov = &iov;
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int64_t sent = 0;
  while (sent < count) {
    unsigned int n = (unsigned int)(count - sent < BATCH ? count - sent : BATCH);
    int r = sendmmsg(s->fd, msgs, n, MSG_DONTWAIT);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == ENOBUFS) break;
      throw_errno(env, errno, "sending on packet socket failed");
      return NULL;
    }
    sent += r;
    if ((unsigned int)r < n) break;
  }
  napi_value out;
  NAPI_CALL(env, napi_create_int64(env, sent, &out));
  return out;
}

#endif

static napi_value js_link_dump(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "linkDump(handle) needs 1 argument")) return NULL;
  psock* s = get_handle(env, argv[0]);
  if (s == NULL) return NULL;
  if (s->closed || s->kind != KIND_LINK) {
    throw_errno(env, EBADF, "not an open link monitor");
    return NULL;
  }
  if (request_link_dump(s->fd) < 0) {
    throw_errno(env, errno, "requesting the list of links failed");
    return NULL;
  }
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv, "close(handle) needs 1 argument")) return NULL;
  psock* s = get_handle(env, argv[0]);
  if (s == NULL) return NULL;
  psock_close(s, 0);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"send", NULL, js_send, NULL, NULL, NULL, napi_default, NULL},
      {"setFilter", NULL, js_set_filter, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"openLinkMonitor", NULL, js_open_link_monitor, NULL, NULL, NULL, napi_default, NULL},
      {"linkDump", NULL, js_link_dump, NULL, NULL, NULL, napi_default, NULL},
      {"tcpSocket", NULL, ironlb_tcp_socket, NULL, NULL, NULL, napi_default, NULL},
      {"openUdp", NULL, ironlb_open_udp, NULL, NULL, NULL, napi_default, NULL},
      {"udpSetFilter", NULL, ironlb_udp_set_filter, NULL, NULL, NULL, napi_default, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
#ifdef IRONLB_TOOLS
  napi_property_descriptor tools[] = {
      {"sendBatch", NULL, js_send_batch, NULL, NULL, NULL, napi_default, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof tools / sizeof tools[0], tools));
#endif
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
