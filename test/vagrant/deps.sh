#!/usr/bin/env bash
# What `npm run lab:vagrant` needs on the host, from Debian: Vagrant with its libvirt provider,
# libvirt and QEMU (software emulation: no KVM needed), and what test/vagrant/box.sh builds
# the box with. Installs only what is missing.
set -euo pipefail
pkgs=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu qemu-system-x86
	qemu-utils mmdebstrap extlinux dnsmasq-base iptables rsync fdisk)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
echo "[lab:vagrant] installing ${missing[*]} from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
	{ apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
