/* What the addon's C files share (one module: packet_socket.c registers every function). */
#ifndef IRONLB_ADDON_H
#define IRONLB_ADDON_H
#include <node_api.h>

/* Throws an Error "msg (ENAME: strerror)" with `code` the errno name (packet_socket.c). */
void ironlb_throw_errno(napi_env env, int err, const char* msg);

/* tcpSocket(family, md5Peer, md5Key, bindAddress) -> fd (tcp_socket.c). */
napi_value ironlb_tcp_socket(napi_env env, napi_callback_info info);

#endif
