#!/usr/bin/env bash
# `npm run lab`: a real Kubernetes cluster on this machine with ironlb installed by its Helm
# chart (test/cluster/cli.ts says what it shows); `npm run lab -- down` removes it.
# Installs what it needs: Debian packages, npm packages, the pinned Kubernetes binaries
# (built from their Go modules on first use), the lab's images and ironlb's image.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
say() { echo "[lab] $*" >&2; }

[ "$(uname -s)" = Linux ] || { say "the lab needs Linux (network namespaces, cgroups)"; exit 1; }
[ "$(id -u)" = 0 ] || { say "the lab creates network namespaces and cgroups and needs root: run it as root (sudo npm run lab)"; exit 1; }

cmd="${1:-up}"
if [ "$cmd" != down ]; then
  bash test/install-deps.sh
  bash test/cluster/deps.sh
  say "building or reusing the Kubernetes binaries (kube-apiserver, etcd, kubelet, kube-proxy, ...)"
  bash test/controlplane/build.sh >/dev/null
fi
export PATH="$PWD/node_modules/.bin:$PATH"
# One lab or test run at a time touches the root namespace (its uplink and the LAN range).
lock=/tmp/ironlb-netlab.lock
if ! flock -n "$lock" true; then say "waiting for another lab or test run to finish (lock $lock)"; fi
exec flock "$lock" node test/cluster/cli.ts "$cmd"
