#!/usr/bin/env bash
# Builds the ironlb image on this VM from the synced repository (/ironlb) with buildah and
# gives it to containerd as localhost/ironlb:<version>, the reference `npm run image` makes
# and the chart is installed with (pullPolicy Never: no registry involved). Every node
# builds its own copy, because the synced folder only goes from the host to the VMs.
# Re-run after changing the sources: `vagrant rsync && vagrant provision --provision-with image`.
# FETCH=offline imports the archives baked into the box instead (see image_offline).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source /ironlb/lab/vagrant/scripts/lib.sh
need NODE_NAME NODE_IP MASTER_IP IRONLB_VERSION NODE_IMAGE FETCH

ref=localhost/ironlb:$IRONLB_VERSION

# Online: built here from the synced sources (kubeadm pulls its own images later).
image_online() {
	[[ -f /ironlb/Dockerfile ]] || die "/ironlb/Dockerfile is missing: the repository is not synced (vagrant rsync)"
	# Not the recommended crun/netavark: runc is there already (scripts/common.sh), and the
	# build uses the VM's own network.
	apt_install buildah

	archive=$cache/ironlb-$IRONLB_VERSION.tar
	say "building $ref from $NODE_IMAGE (a few minutes the first time)"
	cd /ironlb
	buildah bud --runtime /usr/local/sbin/runc --network host --layers --quiet \
		--build-arg NODE_IMAGE="$NODE_IMAGE" -t "$ref" -f Dockerfile . >/dev/null
	rm -f "$archive.partial"
	buildah push --quiet "$ref" "docker-archive:$archive.partial:$ref" >/dev/null
	mv "$archive.partial" "$archive"
	ctr -n k8s.io images import "$archive" >/dev/null
	ctr -n k8s.io images ls -q | grep -qxF "$ref" || die "containerd does not list $ref after the import"
	rm -f "$archive"
	say "$ref is in containerd ($(buildah images --format '{{.Size}}' "$ref" | head -n1))"
}

# FETCH=offline: the archives test/vagrant/box.sh baked into the box: ironlb's image (from
# `npm run image` on the host), the echo server (agnhost) and the images kubeadm would pull.
# The control plane's images only on master-node: online, a worker never pulls them either
# (and each import costs minutes under emulation).
image_offline() {
	local off=$cache/offline/images a
	[[ -f $off/ironlb.tar ]] || die "$off/ironlb.tar is missing: FETCH=offline needs the box test/vagrant/box.sh builds"
	say "importing the box's image archives into containerd"
	for a in "$off"/*.tar; do
		case ${a##*/} in
		kube-apiserver.tar | kube-controller-manager.tar | kube-scheduler.tar | etcd.tar)
			[[ $NODE_IP == "$MASTER_IP" ]] || continue
			;;
		esac
		ctr -n k8s.io images import "$a" >/dev/null || die "ctr images import $a failed"
	done
	need AGNHOST_IMAGE
	for a in "$ref" "$AGNHOST_IMAGE"; do
		ctr -n k8s.io images ls -q | grep -qxF "$a" || die "containerd does not list $a after the import"
	done
	say "$ref, $AGNHOST_IMAGE and kubeadm's images are in containerd"
}

case $FETCH in
online) image_online ;;
offline) image_offline ;;
*) die "FETCH must be online or offline (got '$FETCH')" ;;
esac
