/*
 * tcpSocket(family: 4 | 6, md5Peer: string | null, md5Key: Buffer | null,
 *           bindAddress: string | null, minTtl?: number | null) -> fd
 *
 * A TCP socket, not yet connected, for BGP sessions with a TCP-MD5 password (RFC 2385).
 * Node's net.connect() creates and connects in one step, so there is no moment to set
 * TCP_MD5SIG before the SYN; here the key is installed first, the socket optionally bound
 * to a source address (port 0: the kernel's choice), and the fd handed back for
 * `new net.Socket({ fd }).connect(...)` (libuv adopts and connects it, and closes it).
 * With a null key no option is set. With minTtl (1..255), GTSM (RFC 5082): every segment
 * goes out with TTL / hop limit 255 and the kernel drops received segments whose TTL is
 * below minTtl (IP_MINTTL / IPV6_MINHOPCOUNT, enforced by TCP, also on the SYN-ACK, so a
 * far-away sender cannot even complete the handshake). The fd is non-blocking and
 * close-on-exec; on error nothing is left open. No capability is needed for either.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"

#ifndef IPV6_MINHOPCOUNT
#define IPV6_MINHOPCOUNT 73 /* linux/in6.h; older libc headers lack it */
#endif

/* An IPv6 text with a zone ("fe80::1%eth0") is the longest: INET6_ADDRSTRLEN + IFNAMSIZ. */
#define ADDR_TEXT_MAX 64

static int throw_einval(napi_env env, const char* msg) {
  ironlb_throw_errno(env, EINVAL, msg);
  return -1;
}

/* Reads argument `v` (a string or null) into `out`; returns 0 when null, 1 when set, -1
 * (with an exception pending) when it is neither. */
static int get_optional_string(napi_env env, napi_value v, char* out, size_t size,
                               const char* what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return throw_einval(env, "cannot read an argument");
  if (t == napi_null || t == napi_undefined) return 0;
  size_t len = 0;
  if (t != napi_string || napi_get_value_string_utf8(env, v, out, size, &len) != napi_ok ||
      len + 1 >= size) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an IP address string or null", what);
    return throw_einval(env, msg);
  }
  return 1;
}

/* Parses `text` as an address of `family` into `ss`; 0 on success. */
static int parse_addr(int family, const char* text, struct sockaddr_storage* ss,
                      socklen_t* len) {
  memset(ss, 0, sizeof *ss);
  if (family == AF_INET) {
    struct sockaddr_in* a = (struct sockaddr_in*)ss;
    a->sin_family = AF_INET;
    *len = sizeof *a;
    return inet_pton(AF_INET, text, &a->sin_addr) == 1 ? 0 : -1;
  }
  struct sockaddr_in6* a = (struct sockaddr_in6*)ss;
  a->sin6_family = AF_INET6;
  *len = sizeof *a;
  return inet_pton(AF_INET6, text, &a->sin6_addr) == 1 ? 0 : -1;
}

napi_value ironlb_tcp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    throw_einval(env, "tcpSocket(family, md5Peer, md5Key, bindAddress, minTtl) needs 4 or 5 "
                      "arguments");
    return NULL;
  }
  /* GTSM: 0 (off) unless a minimum received TTL 1..255 is given. */
  int32_t min_ttl = 0;
  if (argc >= 5) {
    napi_valuetype mt;
    if (napi_typeof(env, argv[4], &mt) != napi_ok) return NULL;
    if (mt != napi_null && mt != napi_undefined &&
        (napi_get_value_int32(env, argv[4], &min_ttl) != napi_ok || min_ttl < 1 ||
         min_ttl > 255)) {
      throw_einval(env, "minTtl must be 1 to 255 or null");
      return NULL;
    }
  }
  int32_t fam = 0;
  if (napi_get_value_int32(env, argv[0], &fam) != napi_ok || (fam != 4 && fam != 6)) {
    throw_einval(env, "family must be 4 or 6");
    return NULL;
  }
  int family = fam == 4 ? AF_INET : AF_INET6;

  char peer_text[ADDR_TEXT_MAX], bind_text[ADDR_TEXT_MAX];
  int has_peer = get_optional_string(env, argv[1], peer_text, sizeof peer_text, "md5Peer");
  if (has_peer < 0) return NULL;
  int has_bind = get_optional_string(env, argv[3], bind_text, sizeof bind_text, "bindAddress");
  if (has_bind < 0) return NULL;

  /* The key: null (no TCP-MD5) or a Buffer of 1..80 bytes. */
  void* key = NULL;
  size_t keylen = 0;
  napi_valuetype kt;
  if (napi_typeof(env, argv[2], &kt) != napi_ok) return NULL;
  int has_key = !(kt == napi_null || kt == napi_undefined);
  if (has_key) {
    bool is_buffer = false;
    napi_is_buffer(env, argv[2], &is_buffer);
    if (!is_buffer || napi_get_buffer_info(env, argv[2], &key, &keylen) != napi_ok) {
      throw_einval(env, "md5Key must be a Buffer or null");
      return NULL;
    }
    if (keylen == 0 || keylen > TCP_MD5SIG_MAXKEYLEN) {
      char msg[128];
      snprintf(msg, sizeof msg, "a TCP-MD5 key has 1 to %d bytes, this one %zu",
               TCP_MD5SIG_MAXKEYLEN, keylen);
      throw_einval(env, msg);
      return NULL;
    }
    if (!has_peer) {
      throw_einval(env, "a TCP-MD5 key needs md5Peer, the address it is for");
      return NULL;
    }
  }

  struct tcp_md5sig sig;
  memset(&sig, 0, sizeof sig);
  if (has_key) {
    socklen_t ignored;
    if (parse_addr(family, peer_text, &sig.tcpm_addr, &ignored) != 0) {
      char msg[128];
      snprintf(msg, sizeof msg, "md5Peer %s is not an IPv%d address", peer_text, fam);
      throw_einval(env, msg);
      return NULL;
    }
    sig.tcpm_keylen = (uint16_t)keylen;
    memcpy(sig.tcpm_key, key, keylen);
  }
  struct sockaddr_storage src;
  socklen_t srclen = 0;
  if (has_bind && parse_addr(family, bind_text, &src, &srclen) != 0) {
    char msg[128];
    snprintf(msg, sizeof msg, "bindAddress %s is not an IPv%d address", bind_text, fam);
    throw_einval(env, msg);
    return NULL;
  }

  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) {
    ironlb_throw_errno(env, errno, "socket(SOCK_STREAM) failed");
    return NULL;
  }
  if (has_key && setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, &sig, sizeof sig) < 0) {
    int e = errno;
    close(fd);
    memset(&sig, 0, sizeof sig);
    ironlb_throw_errno(env, e,
                       e == ENOPROTOOPT || e == ENOENT
                           ? "setting the TCP-MD5 key failed: this kernel has no TCP-MD5 "
                             "support (CONFIG_TCP_MD5SIG)"
                           : "setting the TCP-MD5 key (TCP_MD5SIG) failed");
    return NULL;
  }
  /* The key need not outlive the call in this process's memory. */
  memset(&sig, 0, sizeof sig);
  if (min_ttl > 0) {
    int out_ttl = 255;
    int rc = family == AF_INET
                 ? setsockopt(fd, IPPROTO_IP, IP_TTL, &out_ttl, sizeof out_ttl)
                 : setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &out_ttl, sizeof out_ttl);
    if (rc == 0) {
      rc = family == AF_INET
               ? setsockopt(fd, IPPROTO_IP, IP_MINTTL, &min_ttl, sizeof min_ttl)
               : setsockopt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, &min_ttl, sizeof min_ttl);
    }
    if (rc < 0) {
      int e = errno;
      close(fd);
      ironlb_throw_errno(env, e, "setting GTSM (TTL 255, IP_MINTTL) failed");
      return NULL;
    }
  }
  if (has_bind && bind(fd, (struct sockaddr*)&src, srclen) < 0) {
    int e = errno;
    close(fd);
    char msg[160];
    snprintf(msg, sizeof msg,
             e == EADDRNOTAVAIL ? "binding to %s failed: no interface of this node has it"
                                : "binding to %s failed",
             bind_text);
    ironlb_throw_errno(env, e, msg);
    return NULL;
  }
  napi_value out;
  if (napi_create_int32(env, fd, &out) != napi_ok) {
    close(fd);
    return NULL;
  }
  return out;
}
