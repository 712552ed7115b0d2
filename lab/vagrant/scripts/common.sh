#!/usr/bin/env bash
# Node setup shared by all three VMs: swap off, kernel modules and sysctls for Kubernetes,
# containerd + runc, the pod network (bridge CNI, one /26 per node, routes between nodes),
# and kubeadm/kubelet/kubectl from pkgs.k8s.io, each at the version the Vagrantfile pins
# (FETCH=offline: from the box, see fetch_offline).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source /ironlb/lab/vagrant/scripts/lib.sh
need NODE_NAME NODE_IP POD_CIDR POD_ROUTES K8S_VERSION K8S_DEB_VERSION CONTAINERD_VERSION \
	RUNC_VERSION CNI_PLUGINS_VERSION FETCH
[[ $(dpkg --print-architecture) == amd64 ]] || die "this lab downloads amd64 binaries only"

say "swap off, modules, sysctls"
swapoff -a
sed -i -E '/^[^#].*\sswap\s/ s/^/#/' /etc/fstab
printf 'overlay\nbr_netfilter\n' >/etc/modules-load.d/ironlb-lab.conf
modprobe overlay
modprobe br_netfilter
cat >/etc/sysctl.d/90-ironlb-lab.conf <<'CONF'
net.ipv4.ip_forward = 1
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
CONF
sysctl --system >/dev/null

# The one step that differs offline: where the packages and binaries come from. Both put
# kubeadm, kubelet (with its systemd unit) and kubectl in /usr/bin, containerd in
# /usr/local/bin, runc in /usr/local/sbin and the CNI plugins in /opt/cni/bin.
fetch_online() {
	apt-get update -qq
	apt_install ca-certificates curl gpg iptables conntrack socat ethtool

	say "kubeadm, kubelet, kubectl $K8S_DEB_VERSION from pkgs.k8s.io"
	minor=${K8S_VERSION%.*}
	install -d -m 0755 /etc/apt/keyrings
	curl -fsSL "https://pkgs.k8s.io/core:/stable:/v${minor}/deb/Release.key" |
		gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
	echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v${minor}/deb/ /" \
		>/etc/apt/sources.list.d/kubernetes.list
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends --allow-change-held-packages \
		"kubelet=${K8S_DEB_VERSION}" "kubeadm=${K8S_DEB_VERSION}" "kubectl=${K8S_DEB_VERSION}" >/dev/null
	apt-mark hold kubelet kubeadm kubectl >/dev/null

	say "containerd $CONTAINERD_VERSION, runc $RUNC_VERSION"
	gh=https://github.com
	tarball=$(fetch "$gh/containerd/containerd/releases/download/v${CONTAINERD_VERSION}/containerd-${CONTAINERD_VERSION}-linux-amd64.tar.gz" \
		"$gh/containerd/containerd/releases/download/v${CONTAINERD_VERSION}/containerd-${CONTAINERD_VERSION}-linux-amd64.tar.gz.sha256sum")
	tar -C /usr/local -xzf "$tarball"
	runc=$(fetch "$gh/opencontainers/runc/releases/download/v${RUNC_VERSION}/runc.amd64" \
		"$gh/opencontainers/runc/releases/download/v${RUNC_VERSION}/runc.sha256sum")
	install -m 0755 "$runc" /usr/local/sbin/runc
	# After the kube packages, which may bring their own copy.
	say "CNI plugins $CNI_PLUGINS_VERSION"
	cni=$(fetch "$gh/containernetworking/plugins/releases/download/v${CNI_PLUGINS_VERSION}/cni-plugins-linux-amd64-v${CNI_PLUGINS_VERSION}.tgz" \
		"$gh/containernetworking/plugins/releases/download/v${CNI_PLUGINS_VERSION}/cni-plugins-linux-amd64-v${CNI_PLUGINS_VERSION}.tgz.sha256")
	mkdir -p /opt/cni/bin /etc/cni/net.d
	tar -C /opt/cni/bin -xzf "$cni"
}

# FETCH=offline: what test/vagrant/box.sh baked into the box (no network needed). kubeadm,
# kubelet, kubectl and helm are those of test/controlplane/build.sh (the same pinned versions);
# containerd, runc and the CNI plugins are Debian's.
fetch_offline() {
	local off=$cache/offline
	[[ -x $off/bin/kubeadm ]] || die "$off/bin/kubeadm is missing: FETCH=offline needs the box test/vagrant/box.sh builds"
	say "kubeadm, kubelet, kubectl $K8S_VERSION, containerd, runc, CNI plugins from the box ($off)"
	[[ $("$off/bin/kubeadm" version -o short) == "v$K8S_VERSION" ]] ||
		die "the box's kubeadm is $("$off/bin/kubeadm" version -o short), the Vagrantfile pins v$K8S_VERSION"
	install -m 0755 "$off/bin/kubeadm" "$off/bin/kubelet" "$off/bin/kubectl" /usr/bin/
	# helm at the pinned version: scripts/ironlb.sh then has nothing to download.
	install -m 0755 "$off/bin/helm" /usr/local/bin/helm
	write_kubelet_unit
	ln -sf /usr/bin/containerd /usr/local/bin/containerd
	# Debian's package brings a config.toml of its own (cgroupfs, its CNI folder); the one
	# written below, as online, replaces it.
	grep -qs 'SystemdCgroup = true' /etc/containerd/config.toml || rm -f /etc/containerd/config.toml
	ln -sf /usr/sbin/runc /usr/local/sbin/runc
	mkdir -p /opt/cni/bin /etc/cni/net.d
	cp -a /usr/lib/cni/. /opt/cni/bin/
}

# kubelet's unit as kubeadm expects it (the kubelet package ships the same two files).
write_kubelet_unit() {
	cat >/etc/systemd/system/kubelet.service <<'UNIT'
[Unit]
Description=kubelet (ironlb Vagrant lab)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
RestartSec=10

[Install]
WantedBy=multi-user.target
UNIT
	mkdir -p /etc/systemd/system/kubelet.service.d
	cat >/etc/systemd/system/kubelet.service.d/10-kubeadm.conf <<'UNIT'
# kubeadm writes the files named here (kubeadm init/join); until then kubelet restarts.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
UNIT
	systemctl daemon-reload
	systemctl enable kubelet >/dev/null 2>&1
}

case $FETCH in
online) fetch_online ;;
offline) fetch_offline ;;
*) die "FETCH must be online or offline (got '$FETCH')" ;;
esac

mkdir -p /etc/containerd
if [[ ! -f /etc/containerd/config.toml ]]; then
	/usr/local/bin/containerd config default >/etc/containerd/config.toml
	# systemd owns the cgroups on Debian 12 (cgroup v2); kubeadm's kubelet uses the same.
	sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
	# The pod sandbox image kubeadm uses (containerd's default may be older: kubeadm warns,
	# and offline only kubeadm's is in the box). containerd 1.x calls it sandbox_image.
	pause=$(kubeadm config images list --kubernetes-version "v$K8S_VERSION" 2>/dev/null | grep /pause: || true)
	[[ -n $pause ]] || die "kubeadm config images list names no pause image"
	sed -i -E "s#^(\s*)(sandbox_image|sandbox) = .*#\1\2 = \"$pause\"#" /etc/containerd/config.toml
fi
cat >/etc/systemd/system/containerd.service <<'UNIT'
[Unit]
Description=containerd (ironlb Vagrant lab)
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now containerd >/dev/null 2>&1
systemctl restart containerd
printf 'runtime-endpoint: unix:///run/containerd/containerd.sock\nimage-endpoint: unix:///run/containerd/containerd.sock\n' >/etc/crictl.yaml

# The pod network: the bridge plugin on every node, host-local addresses from this node's
# /26, and plain routes to the other nodes' /26 over the private network (one L2 segment,
# so no overlay).
say "pod network: bridge CNI, pod range $POD_CIDR"
cat >/etc/cni/net.d/10-ironlb-lab.conflist <<CONF
{
  "cniVersion": "1.0.0",
  "name": "ironlb-lab",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "isDefaultGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$POD_CIDR" }]] }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
CONF
# ifupdown runs this after every interface comes up, also when `vagrant up` reconfigures
# the private network (that flushes the routes through it).
routes=()
for r in $POD_ROUTES; do
	[[ ${r#*=} == "$NODE_IP" ]] || routes+=("$r")
done
cat >/etc/network/if-up.d/ironlb-lab-pod-routes <<HOOK
#!/bin/sh
# Routes to the other nodes' pod ranges (ironlb Vagrant lab, written by scripts/common.sh).
for r in ${routes[*]}; do
	ip route replace "\${r%%=*}" via "\${r#*=}" 2>/dev/null || true
done
HOOK
chmod 0755 /etc/network/if-up.d/ironlb-lab-pod-routes
/etc/network/if-up.d/ironlb-lab-pod-routes
for r in "${routes[@]}"; do
	ip route show "${r%%=*}" | grep -q "via ${r#*=}" || die "no route to ${r%%=*} via ${r#*=} (is the private network up?)"
done
say "node setup done"
