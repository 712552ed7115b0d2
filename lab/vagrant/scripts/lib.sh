#!/usr/bin/env bash
# Helpers sourced by the provisioning scripts (from the synced tree at /ironlb).
# Every script runs as root inside a VM, with its settings in the environment (Vagrantfile).

export DEBIAN_FRONTEND=noninteractive
cache=/var/cache/ironlb-lab
mkdir -p "$cache"

say() { printf '[%s] %s\n' "${NODE_NAME:-lab}" "$*"; }
die() {
	printf '[%s] error: %s\n' "${NODE_NAME:-lab}" "$*" >&2
	exit 1
}

# need VAR...: stop with a clear message when the Vagrantfile did not pass a setting.
need() {
	local v
	for v in "$@"; do
		[[ -n ${!v:-} ]] || die "$v is not set (the Vagrantfile passes it to the provisioners)"
	done
}

# fetch URL CHECKSUM_URL: prints the path of URL's file in the cache, downloaded once and
# checked against the sha256 its publisher lists in CHECKSUM_URL.
fetch() {
	local url=$1 sums=$2 name file want got
	name=$(basename "$url")
	file=$cache/$name
	if [[ ! -f $file ]]; then
		curl -fsSL --retry 3 -o "$file.partial" "$url" || die "cannot download $url"
		want=$(curl -fsSL --retry 3 "$sums" | awk -v f="$name" '
			{ n = $2; sub(/^\*/, "", n); sub(/.*\//, "", n) }
			n == f || NF == 1 { print $1; exit }') || die "cannot download $sums"
		got=$(sha256sum "$file.partial" | cut -d' ' -f1)
		[[ -n $want && $want == "$got" ]] || die "$name: sha256 $got, but $sums says '${want}'"
		mv "$file.partial" "$file"
	fi
	printf '%s\n' "$file"
}

# apt_install PACKAGE...: installs what is missing, without recommends.
apt_install() {
	apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}
