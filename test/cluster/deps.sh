#!/usr/bin/env bash
# Debian packages the real-cluster lab needs on top of test/install-deps.sh: the container
# runtime (containerd, runc), the CNI plugins (bridge, host-local, portmap, loopback) and a
# static libc for the pause binary. Only missing ones are installed.
set -euo pipefail
say() { echo "[cluster-deps] $*" >&2; }

need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/portmap ] && [ -x /usr/lib/cni/host-local ] || need+=(containernetworking-plugins)
command -v gcc >/dev/null || need+=(gcc)
[ -f /usr/lib/x86_64-linux-gnu/libc.a ] || [ -n "$(find /usr/lib -name libc.a -print -quit 2>/dev/null)" ] || need+=(libc6-dev)
command -v nsenter >/dev/null || need+=(util-linux)
command -v tar >/dev/null || need+=(tar)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "missing Debian packages ${need[*]} and not root to install them"; exit 1; }
  say "installing Debian packages: ${need[*]}"
  # Another apt run (a colleague's build) may hold the dpkg lock: wait for it.
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian's containerd package starts a containerd in the root namespace: the lab never uses
# it (each node runs its own), and it must not hold state the nodes could confuse with theirs.
if command -v systemctl >/dev/null && systemctl is-active --quiet containerd 2>/dev/null; then
  say "note: a system containerd is running; the lab does not use it"
fi
