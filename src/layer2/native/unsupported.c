/* Non-Linux builds: packet sockets are Linux-only, so the module exports nothing and the
 * TypeScript wrapper reports the platform as unsupported. */
#include <node_api.h>

static napi_value init(napi_env env, napi_value exports) { return exports; }

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
