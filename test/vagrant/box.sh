#!/usr/bin/env bash
# `npm run lab:vagrant -- box`: builds the Vagrant lab's box offline and registers it, in the
# lab's own VAGRANT_HOME, under the name and version lab/vagrant/Vagrantfile pins
# (debian/bookworm64 VERSIONS[:box]), through a local catalog.json: the Vagrantfile boots it
# unchanged. Prints the catalog's path as its last stdout line.
#
# The box is Debian bookworm made by mmdebstrap (no box can be downloaded here) with what
# the provisioning scripts would otherwise fetch, under /var/cache/ironlb-lab/offline:
# kubeadm, kubelet, kubectl and helm from test/controlplane/build.sh, containerd, runc and
# the CNI plugins from Debian, and the image archives kubeadm and the lab need (packed here
# from the same binaries, as test/cluster packs its images). The provisioners take them from
# there when the Vagrantfile passes FETCH=offline (IRONLB_VAGRANT_OFFLINE=1).
#
# Rebuilt only when its inputs change (this script, the binaries' build, ironlb's image,
# the lab's pause binary). Heavy steps run under nice/ionice. Needs root (loop device).
set -euo pipefail
exec 3>&1 1>&2 # stdout is for the catalog path only
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
say() { printf '[vagrant-box] %s\n' "$*"; }
die() {
	say "error: $*"
	exit 1
}
[[ $(id -u) == 0 ]] || die "the box is made on a loop device: run as root"
low() { nice -n 19 ionice -c3 "$@"; }

cache="${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}"
out="$cache/vagrant"
mkdir -p "$out"
exec 9>"$out/.box.lock"
flock 9

box_version=$(sed -nE 's/^\s*box: "([^"]+)",.*/\1/p' "$repo/lab/vagrant/Vagrantfile")
box_name=$(sed -nE 's/^\s*config\.vm\.box = "([^"]+)"$/\1/p' "$repo/lab/vagrant/Vagrantfile")
[[ -n $box_version && -n $box_name ]] || die "no box name/version in lab/vagrant/Vagrantfile"

say "Kubernetes binaries (test/controlplane/build.sh, kubeadm included)"
bin=$(low bash "$repo/test/controlplane/build.sh" | tail -n1)
[[ -x $bin/kubeadm ]] || die "build.sh did not build kubeadm into $bin"
# A prebuilt archive of this version saves the build, as for the real-cluster lab.
if [[ -n ${IRONLB_IMAGE_ARCHIVE:-} ]]; then
	ironlb_archive=$IRONLB_IMAGE_ARCHIVE
else
	say "ironlb's image (npm run image)"
	ironlb_archive=$(cd "$repo" && low npm run -s image | tail -n1)
fi
[[ -f $ironlb_archive ]] || die "npm run image printed no archive ($ironlb_archive)"
pause_bin="$cache/cluster-images/pause.bin"
if [[ ! -x $pause_bin ]]; then
	mkdir -p "$cache/cluster-images"
	low gcc -static -Os -s -o "$pause_bin" "$repo/test/cluster/pause/pause.c"
fi
# CoreDNS, which kubeadm deploys (and pulls in its preflight): from its Go module, pinned in
# test/vagrant/coredns to the version kubeadm names.
coredns_mod="$here/coredns"
coredns_bin="$out/coredns-$(cat "$coredns_mod/go.mod" "$coredns_mod/go.sum" | sha256sum | cut -c1-16)"
# agnhost, the echo server the lab deploys (scripts/ironlb.sh): from the Kubernetes module at
# the version the Vagrantfile pins (the one Kubernetes' own e2e tests use), test/vagrant/agnhost.
agnhost_ref=$(sed -nE 's/^\s*agnhost: "([^"]+)",.*/\1/p' "$repo/lab/vagrant/Vagrantfile")
[[ -n $agnhost_ref ]] || die "no agnhost image in lab/vagrant/Vagrantfile"
agnhost_mod="$here/agnhost"
agnhost_bin="$out/agnhost-$( (cat "$agnhost_mod/go.mod" "$agnhost_mod/go.sum"; echo "$agnhost_ref") | sha256sum | cut -c1-16)"
vagrant_key=$({ find /usr/share/rubygems-integration /usr/share/vagrant /opt/vagrant -path '*/keys/vagrant.pub' 2>/dev/null || true; } | head -n1)
[[ -f $vagrant_key ]] || die "Vagrant's insecure public key (keys/vagrant.pub) not found: is vagrant installed?"

# Contents only (not the paths they were read from), and the binaries' pinned folders.
hash=$({
	cat "${BASH_SOURCE[0]}" "$ironlb_archive" "$pause_bin" "$vagrant_key" | sha256sum
	echo "${bin##*/} ${coredns_bin##*/} ${agnhost_bin##*/}"
} | sha256sum | cut -c1-16)
box="$out/box-$hash.box"
catalog="$out/catalog.json"
export VAGRANT_HOME="$out/home" VAGRANT_CHECKPOINT_DISABLE=1

register() {
	local sum
	sum=$(cut -d' ' -f1 "$box.sha256")
	cat >"$catalog" <<JSON
{
  "name": "$box_name",
  "versions": [
    {
      "version": "$box_version",
      "providers": [
        { "name": "libvirt", "url": "file://$box", "checksum_type": "sha256", "checksum": "$sum" }
      ]
    }
  ]
}
JSON
	if [[ $(cat "$out/registered" 2>/dev/null) != "$hash" ]]; then
		vagrant box remove --force --all "$box_name" >/dev/null 2>&1 || true
		say "registering $box_name $box_version (libvirt) from $catalog"
		vagrant box add --provider libvirt "$catalog" >/dev/null
		echo "$hash" >"$out/registered"
	fi
	vagrant box list | grep -F "$box_name" | grep -qF "$box_version" ||
		die "vagrant box list does not show $box_name $box_version"
	echo "$catalog" >&3
}

if [[ -f $box && -f $box.sha256 ]]; then
	say "box up to date: $box"
	register
	exit 0
fi

start=$SECONDS
work="$out/work"
mnt="$work/mnt"
loop=
coredns_build=
agnhost_build=
cleanup() {
	if [[ -n $coredns_build ]]; then pkill -P "$coredns_build" || true; fi
	if [[ -n $agnhost_build ]]; then pkill -P "$agnhost_build" || true; fi
	mountpoint -q "$mnt" && umount -R "$mnt"
	[[ -n $loop ]] && losetup -d "$loop"
	rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work"
mkdir -p "$work/root" "$mnt"
root="$work/root"

# CoreDNS builds while mmdebstrap runs (it is needed only for the images, below).
if [[ ! -x $coredns_bin ]]; then
	say "building CoreDNS in the background (a few minutes the first time)"
	(cd "$coredns_mod" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" \
		low go build -ldflags "-s -w" -o "$coredns_bin.partial" github.com/coredns/coredns &&
		mv "$coredns_bin.partial" "$coredns_bin") &
	coredns_build=$!
fi

if [[ ! -x $agnhost_bin ]]; then
	say "building agnhost ${agnhost_ref##*:} in the background"
	(cd "$agnhost_mod" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" \
		low go build -ldflags "-s -w -X main.Version=${agnhost_ref##*:}" -o "$agnhost_bin.partial" \
		k8s.io/kubernetes/test/images/agnhost && mv "$agnhost_bin.partial" "$agnhost_bin") &
	agnhost_build=$!
fi

say "mmdebstrap bookworm (a few minutes)"
# dbus: kubelet and containerd talk to systemd through it. ifupdown + isc-dhcp-client: DHCP
# on eth0 and Vagrant's private network (Debian guests). The rest is what kubeadm's
# preflight and the provisioning scripts use.
pkgs=(linux-image-cloud-amd64 initramfs-tools systemd systemd-sysv dbus udev kmod procps
	ifupdown isc-dhcp-client iproute2 openssh-server sudo rsync ca-certificates curl
	iptables conntrack socat ethtool ebtables containerd runc containernetworking-plugins
	extlinux)
low mmdebstrap --variant=minbase --include="$(
	IFS=,
	echo "${pkgs[*]}"
)" bookworm "$root" http://deb.debian.org/debian >"$work/mmdebstrap.log" 2>&1 ||
	{
		tail -n 20 "$work/mmdebstrap.log"
		die "mmdebstrap failed"
	}

say "vagrant user, network, boot configuration"
chroot "$root" useradd -m -s /bin/bash vagrant
install -d -m 0700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
install -m 0600 -o 1000 -g 1000 "$vagrant_key" "$root/home/vagrant/.ssh/authorized_keys"
echo 'vagrant ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/vagrant"
chmod 0440 "$root/etc/sudoers.d/vagrant"
echo 'UseDNS no' >"$root/etc/ssh/sshd_config.d/vagrant.conf"
echo bookworm >"$root/etc/hostname"
printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n\nsource /etc/network/interfaces.d/*\n' \
	>"$root/etc/network/interfaces"
echo '/dev/vda1 / ext4 errors=remount-ro 0 1' >"$root/etc/fstab"
# Debian's own units stay off: the provisioning scripts write containerd's.
chroot "$root" systemctl disable containerd >/dev/null 2>&1 || true
rm -f "$root"/etc/ssh/ssh_host_*
# Host keys are made on first boot (every VM its own).
cat >"$root/etc/systemd/system/ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=SSH host keys on first boot
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable ssh-hostkeys.service >/dev/null 2>&1
rm -f "$root/etc/machine-id" && touch "$root/etc/machine-id"

say "baking binaries and image archives into /var/cache/ironlb-lab/offline"
off="$root/var/cache/ironlb-lab/offline"
mkdir -p "$off/bin" "$off/images"
for b in kubeadm kubelet kubectl helm; do install -m 0755 "$bin/$b" "$off/bin/$b"; done
cp "$ironlb_archive" "$off/images/ironlb.tar"

# pack_image REF ROOTFS ARCHIVE [ENTRYPOINT]: a one-layer image archive (docker save
# layout, which `ctr images import` reads), deterministic like test/cluster/images.ts.
pack_image() {
	local ref=$1 rootfs=$2 archive=$3 entry=${4:-} d diff cfg entry_json=null
	d=$(mktemp -d "$work/img.XXXXXX")
	tar --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -cf "$d/layer.tar" -C "$rootfs" .
	diff=$(sha256sum "$d/layer.tar" | cut -d' ' -f1)
	[[ -n $entry ]] && entry_json="[\"$entry\"]"
	printf '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Entrypoint":%s,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$entry_json" "$diff" >"$d/config"
	cfg=$(sha256sum "$d/config" | cut -d' ' -f1)
	mkdir -p "$d/out/$diff"
	mv "$d/layer.tar" "$d/out/$diff/layer.tar"
	mv "$d/config" "$d/out/$cfg.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfg" "$ref" "$diff" >"$d/out/manifest.json"
	tar --owner=0 --group=0 --numeric-owner --mtime=@0 --sort=name -cf "$archive" -C "$d/out" .
	rm -rf "$d"
}
if [[ -n $coredns_build ]]; then
	wait "$coredns_build" || die "the CoreDNS build failed"
	coredns_build=
fi
# The references kubeadm looks for (it pulls nothing when containerd has them).
mapfile -t refs < <("$bin/kubeadm" config images list --kubernetes-version "$("$bin/kubeadm" version -o short)" 2>/dev/null)
((${#refs[@]} >= 6)) || die "kubeadm config images list gave: ${refs[*]}"
for ref in "${refs[@]}"; do
	name=${ref##*/}
	name=${name%%:*}
	r=$(mktemp -d "$work/rootfs.XXXXXX")
	case $name in
	kube-apiserver | kube-controller-manager | kube-scheduler | etcd)
		install -D -m 0755 "$bin/$name" "$r/usr/local/bin/$name"
		pack_image "$ref" "$r" "$off/images/$name.tar"
		;;
	kube-proxy)
		# kube-proxy runs iptables inside its container: the box's own, with their libraries.
		install -D -m 0755 "$bin/kube-proxy" "$r/usr/local/bin/kube-proxy"
		for f in usr/sbin/xtables-nft-multi usr/sbin/xtables-legacy-multi usr/sbin/conntrack; do
			install -D -m 0755 "$root/$f" "$r/$f"
			chroot "$root" ldd "/$f" | awk '$3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
				while read -r lib; do install -D "$root$(chroot "$root" readlink -f "$lib")" "$r$lib"; done
		done
		# iptables loads its matches and targets (comment, conntrack, DNAT...) from here.
		mkdir -p "$r/usr/lib/x86_64-linux-gnu"
		cp -a "$root/usr/lib/x86_64-linux-gnu/xtables" "$r/usr/lib/x86_64-linux-gnu/"
		for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
			ln -sf xtables-nft-multi "$r/usr/sbin/$t"
			ln -sf xtables-legacy-multi "$r/usr/sbin/$t-legacy"
			ln -sf xtables-nft-multi "$r/usr/sbin/$t-nft"
		done
		pack_image "$ref" "$r" "$off/images/$name.tar"
		;;
	pause)
		install -D -m 0755 "$pause_bin" "$r/pause"
		pack_image "$ref" "$r" "$off/images/$name.tar" /pause
		;;
	coredns)
		install -D -m 0755 "$coredns_bin" "$r/coredns"
		pack_image "$ref" "$r" "$off/images/$name.tar" /coredns
		;;
	*) die "kubeadm wants an image this script does not know: $ref" ;;
	esac
	rm -rf "$r"
done
printf '%s\n' "${refs[@]}" >"$off/images/kubeadm-images.txt"
if [[ -n $agnhost_build ]]; then
	wait "$agnhost_build" || die "the agnhost build failed"
	agnhost_build=
fi
r=$(mktemp -d "$work/rootfs.XXXXXX")
install -D -m 0755 "$agnhost_bin" "$r/agnhost"
pack_image "$agnhost_ref" "$r" "$off/images/agnhost.tar" /agnhost
rm -rf "$r"

say "disk image: ext4 on a loop device at an offset, extlinux"
raw="$work/disk.raw"
truncate -s 8G "$raw"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$raw"
loop=$(losetup --find --show --offset $((2048 * 512)) "$raw")
low mkfs.ext4 -q -L root "$loop"
mount "$loop" "$mnt"
low cp -a "$root/." "$mnt/"
kver=$(basename "$(ls "$mnt"/boot/vmlinuz-*)")
kver=${kver#vmlinuz-}
mkdir -p "$mnt/boot/extlinux"
cat >"$mnt/boot/extlinux/extlinux.conf" <<CONF
DEFAULT debian
TIMEOUT 1
LABEL debian
  LINUX /boot/vmlinuz-$kver
  INITRD /boot/initrd.img-$kver
  APPEND root=/dev/vda1 ro net.ifnames=0 console=ttyS0 quiet
CONF
extlinux --install "$mnt/boot/extlinux" >/dev/null 2>&1
umount "$mnt"
losetup -d "$loop"
loop=
dd if=/usr/lib/EXTLINUX/mbr.bin of="$raw" bs=440 count=1 conv=notrunc status=none

say "qcow2 and box"
mkdir -p "$work/box"
low qemu-img convert -O qcow2 "$raw" "$work/box/box.img"
rm -f "$raw"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":8}\n' >"$work/box/metadata.json"
printf 'Vagrant.configure("2") do |config|\n  config.vm.provider :libvirt do |lv|\n    lv.disk_bus = "virtio"\n  end\nend\n' \
	>"$work/box/Vagrantfile"
rm -f "$out"/box-*.box "$out"/box-*.box.sha256
tar -cf "$box.partial" -C "$work/box" metadata.json Vagrantfile box.img
mv "$box.partial" "$box"
sha256sum "$box" >"$box.sha256"
say "box built in $((SECONDS - start)) s: $box ($(du -h "$box" | cut -f1))"
register
