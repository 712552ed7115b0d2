#!/usr/bin/env bash
# Builds the pinned Kubernetes binaries from their Go modules into a cache outside the
# repository, and prints the folder holding them as its last line: the control plane
# (kube-apiserver, etcd, kubectl, helm) for the integration tier, kubelet, kube-proxy,
# kube-controller-manager and kube-scheduler for the real-cluster lab, and kubeadm for the
# Vagrant lab's offline box (test/vagrant). A build is reused while the pins (the go.mod/go.sum files and
# this script) are unchanged, so only the first run is slow.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION=v1.36.3
HELM_MODULE=helm.sh/helm/v3
HELM_VERSION=v3.22.0

say() { echo "[controlplane-build] $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "Go is not installed. Install Go >= 1.26 (Debian: apt-get install golang, or from go.dev) and run again."
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[ "${go_minor:-0}" -ge 26 ] || die "Go $(go env GOVERSION) is too old: Kubernetes ${K8S_VERSION} needs Go >= 1.26."

cache_root="${IRONLB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ironlb}"
pin=$( (cat "$here"/gomod/*/go.mod "$here"/gomod/*/go.sum "$0"; echo "$HELM_MODULE@$HELM_VERSION") | sha256sum | cut -c1-16)
out="$cache_root/bin/$pin"
want=(kube-apiserver kubectl etcd helm kubelet kube-proxy kube-controller-manager kube-scheduler kubeadm)

complete() { for b in "${want[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if complete; then echo "$out"; exit 0; fi

mkdir -p "$cache_root"
avail_kb=$(df -Pk "$cache_root" | awk 'NR==2 {print $4}')
[ "$avail_kb" -ge $((4 * 1024 * 1024)) ] || die "less than 4 GiB free under $cache_root: the Go build cache needs about 4 GiB."

# One build at a time: a second caller (another test run) waits for the first.
exec 9>"$cache_root/build.lock"
if ! flock -n 9; then say "another build is running; waiting for it"; flock 9; fi
if complete; then echo "$out"; exit 0; fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath"
tmp="$out.partial"; rm -rf "$tmp"; mkdir -p "$tmp"
start=$SECONDS
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
vpkg=k8s.io/component-base/version
ldflags="-s -w -X $vpkg.gitVersion=$K8S_VERSION -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor \
 -X $vpkg.gitTreeState=clean -X $vpkg.buildDate=1970-01-01T00:00:00Z \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 \
 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

say "building etcd (first build takes a minute or two)"
(cd "$here/gomod/etcd" && go build -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
say "building helm ${HELM_VERSION}"
# As helm's Makefile does: the Kubernetes version it assumes without --kube-version is
# the one of its client-go (v0.X.Y -> 1.X), else `helm template`/`lint` assume 1.20.
helm_k8s_minor=37
hv=helm.sh/helm/v3
GOBIN="$tmp" go install -ldflags "-s -w -X $hv/internal/version.version=$HELM_VERSION \
  -X $hv/pkg/lint/rules.k8sVersionMajor=1 -X $hv/pkg/lint/rules.k8sVersionMinor=$helm_k8s_minor \
  -X $hv/pkg/chartutil.k8sVersionMajor=1 -X $hv/pkg/chartutil.k8sVersionMinor=$helm_k8s_minor" \
  "$HELM_MODULE/cmd/helm@$HELM_VERSION"
say "building kubectl kube-apiserver kubelet kube-proxy kube-controller-manager kube-scheduler kubeadm ${K8S_VERSION} (the first build takes 10-20 minutes on 2 cores)"
(cd "$here/gomod/kubernetes" && go build -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubelet \
  k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubeadm)
rm -rf "$out"; mv "$tmp" "$out"
say "done in $((SECONDS - start)) s: $out"
echo "$out"
