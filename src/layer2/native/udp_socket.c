/*
 * openUdp(family: 4 | 6, address: string, port: number,
 *         cb: (err, datagram: Buffer, ttl: number, from: string) => void) -> { handle }
 *
 * A UDP socket bound to address:port that hands every datagram to `cb` with the TTL (IPv4)
 * or hop limit (IPv6) it arrived with, -1 when the kernel gave none. BFD single hop (RFC 5881
 * §5) must drop control packets not received with 255, the proof that they were not
 * forwarded; node:dgram cannot read a datagram's TTL (libuv receives without ancillary
 * data), and IP_MINTTL is not enforced for UDP sockets (only TCP checks it), so the addon
 * asks for IP_RECVTTL / IPV6_RECVHOPLIMIT and reads with recvmsg. The socket is polled by
 * libuv on the calling thread's loop (a worker thread's own loop for BFD); close(handle)
 * closes it. Sending stays with node:dgram.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/filter.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"

#define KIND_UDP 3
#define MAX_DATAGRAMS_PER_WAKE 64
/* BFD control packets are 24 bytes (more with authentication); longer ones are cut and the
 * codec rejects them by their length field. */
#define UDP_BUF_SIZE 2048

static __thread unsigned char udp_buf[UDP_BUF_SIZE];

static void on_udp_readable(uv_poll_t* handle, int status, int events) {
  psock* s = (psock*)handle->data;
  napi_handle_scope scope;
  if (s->closed) return;
  if (napi_open_handle_scope(s->env, &scope) != napi_ok) return;
  for (int i = 0; i < MAX_DATAGRAMS_PER_WAKE && !s->closed; i++) {
    struct sockaddr_storage from;
    union {
      struct cmsghdr align;
      unsigned char buf[CMSG_SPACE(sizeof(int)) * 2];
    } control;
    struct iovec iov = {.iov_base = udp_buf, .iov_len = sizeof udp_buf};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n = recvmsg(s->fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) break;
      if (e == EINTR) continue;
      napi_value argv[4];
      argv[0] = ironlb_errno_error(s->env, e, "receiving on the UDP socket failed");
      napi_get_null(s->env, &argv[1]);
      napi_create_int32(s->env, -1, &argv[2]);
      napi_get_null(s->env, &argv[3]);
      ironlb_callback(s, 4, argv);
      break;
    }
    int ttl = -1;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
          (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
        memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
      }
    }
    char text[INET6_ADDRSTRLEN] = "";
    if (from.ss_family == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in*)&from)->sin_addr, text, sizeof text);
    } else if (from.ss_family == AF_INET6) {
      inet_ntop(AF_INET6, &((struct sockaddr_in6*)&from)->sin6_addr, text, sizeof text);
    }
    napi_value argv[4];
    void* data;
    napi_get_null(s->env, &argv[0]);
    if (napi_create_buffer_copy(s->env, (size_t)n, udp_buf, &data, &argv[1]) != napi_ok) break;
    napi_create_int32(s->env, ttl, &argv[2]);
    napi_create_string_utf8(s->env, text, NAPI_AUTO_LENGTH, &argv[3]);
    ironlb_callback(s, 4, argv);
  }
  napi_close_handle_scope(s->env, scope);
}

napi_value ironlb_open_udp(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    ironlb_throw_errno(env, EINVAL, "openUdp(family, address, port, cb) needs 4 arguments");
    return NULL;
  }
  int32_t fam = 0, port = -1;
  if (napi_get_value_int32(env, argv[0], &fam) != napi_ok || (fam != 4 && fam != 6)) {
    ironlb_throw_errno(env, EINVAL, "family must be 4 or 6");
    return NULL;
  }
  if (napi_get_value_int32(env, argv[2], &port) != napi_ok || port < 0 || port > 65535) {
    ironlb_throw_errno(env, EINVAL, "port must be 0 to 65535");
    return NULL;
  }
  char text[INET6_ADDRSTRLEN + 1];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[1], text, sizeof text, &len) != napi_ok ||
      len + 1 >= sizeof text) {
    ironlb_throw_errno(env, EINVAL, "address must be an IP address string");
    return NULL;
  }
  napi_valuetype cbtype;
  if (napi_typeof(env, argv[3], &cbtype) != napi_ok || cbtype != napi_function) {
    ironlb_throw_errno(env, EINVAL, "cb must be a function");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sslen;
  memset(&ss, 0, sizeof ss);
  int family = fam == 4 ? AF_INET : AF_INET6;
  int ok;
  if (family == AF_INET) {
    struct sockaddr_in* a = (struct sockaddr_in*)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    ok = inet_pton(AF_INET, text, &a->sin_addr) == 1;
    sslen = sizeof *a;
  } else {
    struct sockaddr_in6* a = (struct sockaddr_in6*)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    ok = inet_pton(AF_INET6, text, &a->sin6_addr) == 1;
    sslen = sizeof *a;
  }
  if (!ok) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s is not an IPv%d address", text, fam);
    ironlb_throw_errno(env, EINVAL, msg);
    return NULL;
  }
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) {
    ironlb_throw_errno(env, errno, "socket(SOCK_DGRAM) failed");
    return NULL;
  }
  int on = 1;
  int rc = family == AF_INET
               ? setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof on)
               : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on);
  if (rc == 0 && family == AF_INET6) {
    rc = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  if (rc < 0) {
    int e = errno;
    close(fd);
    ironlb_throw_errno(env, e, "asking for the received TTL (IP_RECVTTL) failed");
    return NULL;
  }
  if (bind(fd, (struct sockaddr*)&ss, sslen) < 0) {
    int e = errno;
    close(fd);
    char msg[160];
    snprintf(msg, sizeof msg, "binding UDP to %s port %d failed", text, port);
    ironlb_throw_errno(env, e, msg);
    return NULL;
  }
  napi_value external = ironlb_attach(env, fd, KIND_UDP, argv[3], "ironlb:UdpSocket",
                                      on_udp_readable);
  if (external == NULL) return NULL;
  napi_value result;
  if (napi_create_object(env, &result) != napi_ok ||
      napi_set_named_property(env, result, "handle", external) != napi_ok) {
    return NULL;
  }
  return result;
}

/*
 * udpSetFilter(address: string, port: number, program: Buffer | null) -> undefined
 *
 * Installs a classic BPF program (struct sock_filter[], host order) on this process's UDP
 * socket bound to address:port, or removes it with null. The heartbeat socket is a
 * node:dgram socket, which does not expose its descriptor: the socket is found among the
 * process's descriptors by its bound address (only one socket can be bound to it without
 * SO_REUSEPORT, which dgram does not set). SO_ATTACH_FILTER swaps programs atomically.
 * Throws ENOENT when no such socket is open.
 */
static int bound_to(int fd, const struct sockaddr_storage* want, socklen_t wantlen) {
  int type = 0, proto = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_DGRAM) return 0;
  len = sizeof proto;
  if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 || proto != IPPROTO_UDP) return 0;
  struct sockaddr_storage got;
  socklen_t gotlen = sizeof got;
  memset(&got, 0, sizeof got);
  if (getsockname(fd, (struct sockaddr*)&got, &gotlen) < 0 || got.ss_family != want->ss_family)
    return 0;
  if (want->ss_family == AF_INET) {
    const struct sockaddr_in* a = (const struct sockaddr_in*)&got;
    const struct sockaddr_in* b = (const struct sockaddr_in*)want;
    return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  const struct sockaddr_in6* a = (const struct sockaddr_in6*)&got;
  const struct sockaddr_in6* b = (const struct sockaddr_in6*)want;
  (void)wantlen;
  return a->sin6_port == b->sin6_port &&
         memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr) == 0;
}

static int find_udp_socket(const struct sockaddr_storage* want, socklen_t wantlen) {
  DIR* d = opendir("/proc/self/fd");
  if (d == NULL) return -1;
  int found = -1;
  int dirfd_ = dirfd(d);
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    char* end = NULL;
    long fd = strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == dirfd_) continue;
    if (bound_to((int)fd, want, wantlen)) {
      found = (int)fd;
      break;
    }
  }
  closedir(d);
  if (found < 0) errno = ENOENT;
  return found;
}

napi_value ironlb_udp_set_filter(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    ironlb_throw_errno(env, EINVAL, "udpSetFilter(address, port, program) needs 3 arguments");
    return NULL;
  }
  char text[INET6_ADDRSTRLEN + 1];
  size_t len = 0;
  int32_t port = -1;
  if (napi_get_value_string_utf8(env, argv[0], text, sizeof text, &len) != napi_ok ||
      len + 1 >= sizeof text) {
    ironlb_throw_errno(env, EINVAL, "address must be an IP address string");
    return NULL;
  }
  if (napi_get_value_int32(env, argv[1], &port) != napi_ok || port <= 0 || port > 65535) {
    ironlb_throw_errno(env, EINVAL, "port must be 1 to 65535");
    return NULL;
  }
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t sslen;
  if (inet_pton(AF_INET, text, &((struct sockaddr_in*)&ss)->sin_addr) == 1) {
    ss.ss_family = AF_INET;
    ((struct sockaddr_in*)&ss)->sin_port = htons((uint16_t)port);
    sslen = sizeof(struct sockaddr_in);
  } else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6*)&ss)->sin6_addr) == 1) {
    ss.ss_family = AF_INET6;
    ((struct sockaddr_in6*)&ss)->sin6_port = htons((uint16_t)port);
    sslen = sizeof(struct sockaddr_in6);
  } else {
    ironlb_throw_errno(env, EINVAL, "address must be an IP address string");
    return NULL;
  }
  napi_valuetype t;
  if (napi_typeof(env, argv[2], &t) != napi_ok) return NULL;
  void* data = NULL;
  size_t bytes = 0;
  if (t != napi_null) {
    bool is_buf = false;
    if (napi_is_buffer(env, argv[2], &is_buf) != napi_ok || !is_buf) {
      napi_throw_type_error(env, "EINVAL", "program must be a Buffer or null");
      return NULL;
    }
    if (napi_get_buffer_info(env, argv[2], &data, &bytes) != napi_ok) return NULL;
    if (bytes == 0 || bytes % sizeof(struct sock_filter) != 0 ||
        bytes / sizeof(struct sock_filter) > BPF_MAXINSNS) {
      napi_throw_range_error(env, "EINVAL",
                             "program must hold 1 to 4096 8-byte sock_filter instructions");
      return NULL;
    }
  }
  int fd = find_udp_socket(&ss, sslen);
  if (fd < 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "no UDP socket of this process is bound to %s port %d", text, port);
    ironlb_throw_errno(env, errno, msg);
    return NULL;
  }
  int rc;
  if (data == NULL) {
    rc = setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, NULL, 0);
    if (rc < 0 && errno == ENOENT) rc = 0; /* there was none */
  } else {
    /* The kernel copies and validates the program; an invalid one fails with EINVAL and
     * leaves the previous filter in place. */
    struct sock_fprog prog = {.len = (unsigned short)(bytes / sizeof(struct sock_filter)),
                              .filter = (struct sock_filter*)data};
    rc = setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog);
  }
  if (rc < 0) {
    ironlb_throw_errno(env, errno, "attaching the heartbeat socket's filter failed");
    return NULL;
  }
  return NULL;
}
