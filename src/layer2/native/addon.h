/* What the addon's C files share (one module: packet_socket.c registers every function). */
#ifndef IRONLB_ADDON_H
#define IRONLB_ADDON_H
#include <node_api.h>
#include <stdint.h>
#include <uv.h>

/* A socket polled by libuv whose arrivals go to a JS callback, owned by a JS external
 * (packet_socket.c manages its life: close(handle), the finalizer, env teardown). */
typedef struct psock {
  napi_env env;
  int fd;
  int ifindex;
  uint16_t proto;
  int kind;
  uv_poll_t poll;
  int poll_started;  /* uv_poll_init succeeded, handle must be uv_close()d */
  int closed;        /* close() ran: fd closed, callback released */
  int poll_released; /* the uv close callback ran (or the poll was never initialised) */
  int finalized;     /* the JS external was garbage collected */
  int hook_added;
  napi_ref callback;
  napi_async_context async_ctx;
} psock;

/* Throws an Error "msg (ENAME: strerror)" with `code` the errno name (packet_socket.c). */
void ironlb_throw_errno(napi_env env, int err, const char* msg);

/* The same Error, returned (to hand to a callback). */
napi_value ironlb_errno_error(napi_env env, int err, const char* msg);

/* Wraps an open fd in a psock polled for reading by `on_read`; returns the JS external, or
 * NULL with an exception pending (the fd is closed then). */
napi_value ironlb_attach(napi_env env, int fd, int kind, napi_value callback, const char* name,
                         uv_poll_cb on_read);

/* Calls the psock's JS callback with argv; an exception it throws is reported as uncaught. */
void ironlb_callback(psock* s, size_t argc, napi_value* argv);

/* tcpSocket(family, md5Peer, md5Key, bindAddress, minTtl) -> fd (tcp_socket.c). */
napi_value ironlb_tcp_socket(napi_env env, napi_callback_info info);

/* openUdp(family, address, port, cb) -> { handle } (udp_socket.c). */
napi_value ironlb_open_udp(napi_env env, napi_callback_info info);

/* udpSetFilter(address, port, program) (udp_socket.c). */
napi_value ironlb_udp_set_filter(napi_env env, napi_callback_info info);

#endif
