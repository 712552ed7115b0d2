#!/usr/bin/env bash
# `npm run lab:vagrant [-- STEP]`: lab/vagrant booted on this machine, offline and under
# QEMU's software emulation (the KVM here cannot run a guest kernel). Not part of `npm test`:
# a boot takes tens of minutes.
#
#   box             build (or reuse) the offline box and register it (test/vagrant/box.sh)
#   up [MACHINE..]  box, then libvirt in the lab's own namespaces and `vagrant up` of the
#                   machines (default: all three) with the project's Vagrantfile and
#                   provisioning scripts, FETCH=offline; prints the cluster and the Service
#   show            the cluster as the README's Vagrant section shows it, and the host's curl
#                   of both echo Services (from the lab's namespace: the host's place)
#   drill [-f]      the failover drill: `vagrant halt` (-f: a power cut) of the worker that
#                   announces echo-cluster's IP while the host curls it every 0.2 s; prints
#                   how long it went unanswered and which node announces it then
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
# Stamped output of `up` and `drill`, kept after `down` (the record of what was seen).
logs="$out/logs"
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

# stamped LOG CMD..: CMD's output, each line with the UTC time, on stderr and appended to LOG
# (the provisioning steps' timings are read from it). Returns CMD's exit code.
stamped() {
	local log=$1 line
	shift
	mkdir -p "$logs"
	# (The box upload's progress bar redraws itself after erase-line codes: only the text
	# after the last one is kept.)
	"$@" 2>&1 | while IFS= read -r line; do
		line=${line##*$'\e[K'}
		printf '%s %s\n' "$(date -u +%T)" "${line%$'\r'}"
	done | tee -a "$log" >&2
	return "${PIPESTATUS[0]}"
}

step_up() {
	local machines=("$@") what log
	what="vagrant up ${*:-(all three in parallel)}"
	log="$logs/up-$(date -u +%Y%m%dT%H%M%SZ).log"
	step_box
	libvirt_up
	# All three at once by default: vagrant-libvirt brings them up in parallel and the
	# workers' join waits for master-node's API server (scripts/worker.sh); under emulation
	# that is much shorter than one after the other.
	if ! timed "$what" stamped "$log" vagrant_lab up "${machines[@]}" --provider libvirt; then
		# Nothing is left running on a failure, unless asked (to look inside the VMs).
		[[ ${IRONLB_VAGRANT_KEEP:-} == 1 ]] || step_down
		die "$what failed, see $log (IRONLB_VAGRANT_KEEP=1 keeps the VMs for a look; -- down removes them)"
	fi
	step_show
}

# kctl ARGS..: kubectl on master-node (through vagrant ssh: the API is on the lab's network).
kctl() { vagrant_lab ssh master-node -c "kubectl $*" -- -q 2>/dev/null; }

lb_ip() { kctl get svc -n echo "$1" -o "jsonpath='{.status.loadBalancer.ingress[0].ip}'"; }

# curl_host URL: one GET from the host's place (the lab's network namespace), 2 s at most.
curl_host() { in_lab curl -s -m 2 "$1"; }

step_show() {
	kctl 'get nodes -o wide; kubectl -n ironlb-system get pods -o wide; kubectl get svc -n echo; kubectl get ipannouncements' || true
	local svc ip path answer _
	for svc in echo-cluster:hostname echo-local:clientip; do
		ip=$(lb_ip "${svc%%:*}")
		[[ -n $ip ]] || die "${svc%%:*} has no EXTERNAL-IP"
		path="http://$ip/${svc#*:}"
		answer=
		for _ in $(seq 150); do
			answer=$(curl_host "$path") && break
			sleep 2
		done
		[[ -n $answer ]] || die "the host got no answer from $path in 5 minutes"
		say "host: curl $path -> $answer"
	done
}

step_drill() {
	local halt=(halt) ip node after log loop t0 outage
	[[ ${1:-} == -f ]] && halt=(halt -f)
	ip=$(lb_ip echo-cluster)
	[[ -n $ip ]] || die "echo-cluster has no EXTERNAL-IP (npm run lab:vagrant -- up first)"
	node=$(kctl get ipannouncements -o "jsonpath='{.items[?(@.status.ip==\"$ip\")].status.node}'")
	[[ -n $node ]] || die "no IPAnnouncement for $ip: kubectl get ipannouncements"
	curl_host "http://$ip/hostname" >/dev/null || die "$ip does not answer the host before the drill"
	log="$logs/drill-$(date -u +%Y%m%dT%H%M%SZ).log"
	mkdir -p "$logs"
	# The client: one GET every 0.2 s from the host's place, with the MAC the host has for $ip.
	# shellcheck disable=SC2016 # expanded by the inner bash
	in_lab bash -c 'while :; do
		a=$(curl -s -m 1 "http://$1/hostname") || a=-
		printf "%s %s %s\n" "$(date +%s.%N)" "${a:--}" "$(ip neigh show "$1" | awk "{ print \$5 }")"
		sleep 0.2
	done' drill "$ip" >"$log" &
	loop=$!
	sleep 3
	t0=$(date +%s.%N)
	say "$ip is announced by $node: vagrant ${halt[*]} $node"
	timed "drill: vagrant ${halt[*]} $node" vagrant_lab "${halt[@]}" "$node" || true
	# Until the IP answers again after the halt began, and 10 s more of answers.
	local _
	for _ in $(seq 300); do
		awk -v t0="$t0" '$1 > t0 && $2 != "-" { n++ } END { exit !(n >= 50) }' "$log" && break
		sleep 1
	done
	kill "$loop" 2>/dev/null || true
	after=$(kctl get ipannouncements -o "jsonpath='{.items[?(@.status.ip==\"$ip\")].status.node}'")
	# The longest run of unanswered GETs, from the last answer before it to the first after.
	outage=$(awk '$2 == "-" { if (!run) start = last; run = 1; next }
		{ if (run && $1 - start > max) max = $1 - start; run = 0; last = $1 }
		END { printf "%.1f", max }' "$log")
	say "drill: $ip moved from $node to ${after:-nobody}; longest gap between answers ${outage} s" \
		"($(awk '$2 == "-"' "$log" | wc -l) unanswered of $(wc -l <"$log") GETs; MACs seen: $(awk '{ print $3 }' "$log" | uniq | paste -sd' '); $log)"
	printf '%s\tdrill: vagrant %s %s, %s -> %s\tlongest gap %s s\n' "$(date -u +%FT%TZ)" "${halt[*]}" "$node" \
		"$ip" "${after:-nobody}" "$outage" >>"$timings"
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
show)
	running || die "the lab's libvirt is not running: npm run lab:vagrant -- up"
	step_show
	;;
drill)
	shift
	running || die "the lab's libvirt is not running: npm run lab:vagrant -- up"
	step_drill "$@"
	;;
vagrant)
	shift
	running || die "the lab's libvirt is not running: npm run lab:vagrant -- up"
	vagrant_lab "$@"
	;;
down) step_down ;;
*) die "unknown step '$1' (box, up [MACHINE..], show, drill [-f], vagrant ARGS.., down)" ;;
esac
