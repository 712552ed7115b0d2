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
#include <errno.h>
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
