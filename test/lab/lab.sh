#!/usr/bin/env bash
# `npm run lab:netns` builds a three-node LAN in network namespaces with a real control
# plane, kube-proxy, pods and ironlb, demonstrates a client reaching a pod and ARP failover,
# and leaves it running; `npm run lab:netns -- down` removes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
say() { echo "[lab] $*" >&2; }

[ "$(uname -s)" = Linux ] || { say "the lab needs Linux (network namespaces)"; exit 1; }
[ "$(id -u)" = 0 ] || { say "the lab creates network namespaces and needs root: run it as root (sudo npm run lab:netns)"; exit 1; }

cmd="${1:-up}"
if [ "$cmd" != down ]; then
  bash test/install-deps.sh
  export PATH="$PWD/node_modules/.bin:$PATH"
  if [ ! -f src/layer2/native/build/Release/ironlb_packet.node ] ||
    [ ! -f src/layer2/native/build/Release/ironlb_packet_tools.node ]; then
    say "building the native packet-socket addon"
    npm run --silent build >/dev/null
  fi
  say "building or reusing the control-plane binaries"
  bash test/controlplane/build.sh >/dev/null
fi
export PATH="$PWD/node_modules/.bin:$PATH"
exec node test/lab/cli.ts "$cmd"
