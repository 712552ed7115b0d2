#!/usr/bin/env bash
# `npm run lab:vagrant [-- STEP]`: lab/vagrant booted on this machine, offline and under
# QEMU's software emulation (the KVM here cannot run a guest kernel). Not part of `npm test`:
# a boot takes tens of minutes.
#
#   box             build (or reuse) the offline box and register it (test/vagrant/box.sh)
#   up [MACHINE..]  box, then libvirt in the lab's own namespaces and `vagrant up` of the
#                   machines (default: all three) with the project's Vagrantfile and
#                   provisioning scripts, FETCH=offline; prints the cluster and the Service
#   vagrant ARGS..  any vagrant command in the lab's namespaces (e.g. `vagrant ssh master-node`)
#   down            vagrant destroy, stop libvirt, remove the namespaces and every file of it
#
# libvirtd and virtlogd run in a network namespace of the lab's own (ironlb-vagrant: the
# VMs' networks, their addresses and firewall rules live there, never in the root
# namespace) and in a mount namespace where libvirt's state folders are the lab's
# (~/.cache/ironlb/vagrant/libvirt): nothing of it outlives `down`. Every heavy process runs
# under nice/ionice: the machine is shared. Timings go to ~/.cache/ironlb/vagrant/timings.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
say() { printf '[lab:vagrant] %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}
[[ $(id -u) == 0 ]] || die "libvirt, namespaces and the box's loop device need root"

cache="${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}"
out="$cache/vagrant"
state="$out/libvirt"
ns=ironlb-vagrant
pidfile="$state/libvirtd.pid"
timings="$out/timings"
export VAGRANT_HOME="$out/home" VAGRANT_DOTFILE_PATH="$out/dot" VAGRANT_CHECKPOINT_DISABLE=1
export IRONLB_VAGRANT_OFFLINE=1 IRONLB_VAGRANT_EMULATE=1 VAGRANT_DEFAULT_PROVIDER=libvirt

timed() {
	local what=$1 start=$SECONDS rc=0
	shift
	"$@" || rc=$?
	printf '%s\t%s\t%d s\t(exit %d)\n' "$(date -u +%FT%TZ)" "$what" $((SECONDS - start)) "$rc" >>"$timings"
	say "$what: $((SECONDS - start)) s"
	return "$rc"
}

running() { [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; }
# in_lab CMD..: CMD in libvirtd's network and mount namespaces (its socket, its networks).
in_lab() { nsenter -t "$(cat "$pidfile")" -n -m -- "$@"; }
virsh_lab() { in_lab virsh -c qemu:///system "$@"; }

libvirt_up() {
	running && return 0
	if ! command -v libvirtd >/dev/null || ! vagrant plugin list 2>/dev/null | grep -q vagrant-libvirt; then
		die "needs vagrant, vagrant-libvirt, libvirt-daemon-system, qemu-system-x86, qemu-utils, mmdebstrap, extlinux: bash test/vagrant/deps.sh"
	fi
	mkdir -p "$state"/{run,lib/images,etc-qemu/networks,log,cache}
	ip netns add "$ns" 2>/dev/null || true
	ip -n "$ns" link set lo up
	# A private mount namespace inside the lab's netns; libvirtd keeps it alive.
	# shellcheck disable=SC2016 # expanded by the inner bash
	ip netns exec "$ns" unshare --mount --propagation private -- bash -c '
		set -e
		s=$1
		mkdir -p /run/libvirt
		mount --bind "$s/run" /run/libvirt
		mount --bind "$s/lib" /var/lib/libvirt
		mount --bind "$s/etc-qemu" /etc/libvirt/qemu
		mount --bind "$s/log" /var/log/libvirt
		mount --bind "$s/cache" /var/cache/libvirt
		nice -n 19 virtlogd -d -p "$s/virtlogd.pid"
		nice -n 19 libvirtd -d -p "$s/libvirtd.pid"
	' lab "$state"
	local _
	for _ in $(seq 100); do
		running && virsh_lab version >/dev/null 2>&1 && break
		sleep 0.2
	done
	running || die "libvirtd did not start (see $state/log)"
	# vagrant-libvirt's volumes go to the pool "default": a transient one in the lab's folder.
	virsh_lab pool-info default >/dev/null 2>&1 ||
		virsh_lab pool-create-as default dir --target /var/lib/libvirt/images >/dev/null
	say "libvirtd $(cat "$pidfile") in netns $ns"
}

# VAGRANT_CWD: entering a mount namespace resets the working folder to /.
vagrant_lab() { in_lab env VAGRANT_CWD="$repo/lab/vagrant" nice -n 19 ionice -c3 vagrant "$@"; }

step_box() { timed "box (build or reuse, register)" bash "$here/box.sh" >/dev/null; }

step_up() {
	local machines=("$@")
	((${#machines[@]})) || machines=(master-node worker-node01 worker-node02)
	step_box
	libvirt_up
	local m
	for m in "${machines[@]}"; do
		if ! timed "vagrant up $m" vagrant_lab up "$m" --provider libvirt; then
			# Nothing is left running on a failure, unless asked (to look inside the VMs).
			[[ ${IRONLB_VAGRANT_KEEP:-} == 1 ]] || step_down
			die "vagrant up $m failed (IRONLB_VAGRANT_KEEP=1 keeps the VMs for a look; -- down removes them)"
		fi
	done
	vagrant_lab ssh master-node -c 'kubectl get nodes -o wide; kubectl get svc -A' || true
}

step_down() {
	if running; then
		if [[ -d $VAGRANT_DOTFILE_PATH ]]; then
			vagrant_lab destroy -f || say "vagrant destroy failed; removing the domains with virsh"
		fi
		local d n v
		for d in $(virsh_lab list --all --name); do
			virsh_lab destroy "$d" >/dev/null 2>&1 || true
			virsh_lab undefine "$d" --remove-all-storage >/dev/null 2>&1 || virsh_lab undefine "$d" >/dev/null
		done
		for n in $(virsh_lab net-list --all --name); do
			virsh_lab net-destroy "$n" >/dev/null 2>&1 || true
			virsh_lab net-undefine "$n" >/dev/null 2>&1 || true
		done
		for v in $(virsh_lab vol-list default 2>/dev/null | awk 'NR > 2 && NF { print $1 }'); do
			virsh_lab vol-delete --pool default "$v" >/dev/null || true
		done
		local p
		for p in libvirtd virtlogd; do
			if [[ -f $state/$p.pid ]]; then kill "$(cat "$state/$p.pid")" 2>/dev/null || true; fi
		done
		for p in $(seq 50); do running || break; sleep 0.2; done
	fi
	# dnsmasq and qemu die with their namespace's users; anything left is listed, not guessed.
	if [[ -e /run/netns/$ns ]]; then
		local left
		left=$(ip netns pids "$ns" || true)
		[[ -z $left ]] || die "processes still in netns $ns: $left"
		ip netns delete "$ns"
	fi
	rm -rf "$state" "$VAGRANT_DOTFILE_PATH"
	# The mount point libvirt_up made for libvirt's sockets (empty outside the lab's namespace).
	rmdir /run/libvirt 2>/dev/null || true
	say "down: no domains, networks, volumes, namespace or libvirt state left"
}

case ${1:-up} in
box) step_box ;;
up)
	shift || true
	step_up "$@"
	;;
vagrant)
	shift
	running || die "the lab's libvirt is not running: npm run lab:vagrant -- up"
	vagrant_lab "$@"
	;;
down) step_down ;;
*) die "unknown step '$1' (box, up [MACHINE..], vagrant ARGS.., down)" ;;
esac
