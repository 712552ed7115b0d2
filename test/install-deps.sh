#!/usr/bin/env bash
# Installs what ironlb's tests and lab need on a fresh Debian machine: Debian packages
# (only those missing), npm packages, and checks for Go (needed to build the control plane).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { echo "[deps] $*" >&2; }

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v ping >/dev/null || need+=(iputils-ping)
command -v nft >/dev/null || need+=(nftables)
command -v arping >/dev/null || need+=(iputils-arping)
command -v make >/dev/null || need+=(make)
command -v g++ >/dev/null || need+=(g++)
command -v python3 >/dev/null || need+=(python3)
command -v flock >/dev/null || need+=(util-linux)
command -v pgrep >/dev/null || need+=(procps)
command -v socat >/dev/null || need+=(socat)   # the lab's pods answer HTTP through it
command -v iperf3 >/dev/null || need+=(iperf3) # npm run bench -- dataplane
[ -f /usr/include/node/node_api.h ] || need+=(libnode-dev)
# The Vagrant lab cannot boot here; test/tools/vagrant-lab.test.ts checks it with these.
# Without recommends: vagrant recommends vagrant-libvirt, i.e. qemu and some 400 packages.
norec=()
command -v shellcheck >/dev/null || norec+=(shellcheck)
command -v vagrant >/dev/null || norec+=(vagrant)
# trafgen: test/e2e/heartbeat-flood.test.ts and the bench's flood parts.
[ -x /usr/sbin/trafgen ] || norec+=(netsniff-ng)
if [ $((${#need[@]} + ${#norec[@]})) -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "missing Debian packages ${need[*]} ${norec[*]} and not root to install them"; exit 1; }
  say "installing Debian packages: ${need[*]} ${norec[*]}"
  apt-get update -qq
  [ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  [ ${#norec[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${norec[@]}" >/dev/null
fi
# Routers for the BGP interop tests (test/e2e/bgp-session.test.ts, bgp-md5.test.ts), which run them only
# inside their own namespaces. Installing must not start them in the root namespace: Debian's
# maintainer scripts start services unless a policy-rc.d refuses (Docker images ship one;
# a machine with systemd does not), so one refuses for the duration of the install.
routers=()
[ -x /usr/lib/frr/bgpd ] || routers+=(frr)
command -v bird >/dev/null || routers+=(bird2)
if [ ${#routers[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { say "missing Debian packages ${routers[*]} and not root to install them"; exit 1; }
  say "installing Debian packages: ${routers[*]} (services not started)"
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
  fi
  trap '[ -z "$guard" ] || rm -f "$guard"' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${routers[@]}" >/dev/null
  [ -z "$guard" ] || rm -f "$guard"
  guard=""
fi
command -v go >/dev/null || { say "Go >= 1.26 is needed to build kube-apiserver and etcd for the tests; install it (apt-get install golang-go, if recent enough)"; exit 1; }

if [ ! -x node_modules/.bin/vitest ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  # npm install, not npm ci: this registry serves only this platform's builds of optional
  # packages (e.g. biome for linux-x64), so the lock file cannot list the others and npm ci
  # would refuse it.
  npm install --no-audit --no-fund --loglevel=error
fi
