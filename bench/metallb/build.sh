#!/usr/bin/env bash
# Builds MetalLB's controller, the peer of `npm run bench -- controller`, from the Go
# module pinned in go.mod beside this script, into a cache outside the repository; prints
# two lines: the binary, then the module's folder (its CRDs are under config/crd/bases).
# Reused while the pin (go.mod, go.sum, this script) is unchanged.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { echo "[metallb-build] $*" >&2; }
command -v go >/dev/null || { say "ERROR: Go is not installed (Go >= 1.26 is needed)"; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath"
cache_root="${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}"
pin=$(cat "$here/go.mod" "$here/go.sum" "$0" | sha256sum | cut -c1-16)
out="$cache_root/metallb/$pin"
cd "$here"
if [ ! -x "$out/controller" ]; then
  mkdir -p "$out"
  say "building go.universe.tf/metallb/controller (a few minutes the first time)"
  go build -ldflags "-s -w" -o "$out/controller.partial" go.universe.tf/metallb/controller
  mv "$out/controller.partial" "$out/controller"
fi
echo "$out/controller"
go list -m -f '{{.Dir}}' go.universe.tf/metallb
