#!/usr/bin/env bash
# Node setup shared by all three VMs: swap off, kernel modules and sysctls for Kubernetes,
# containerd + runc, the pod network (bridge CNI, one /26 per node, routes between nodes),
# and kubeadm/kubelet/kubectl from pkgs.k8s.io, each at the version the Vagrantfile pins.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source /ironlb/lab/vagrant/scripts/lib.sh
need NODE_NAME NODE_IP POD_CIDR POD_ROUTES K8S_VERSION K8S_DEB_VERSION CONTAINERD_VERSION \
	RUNC_VERSION CNI_PLUGINS_VERSION
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
mkdir -p /etc/containerd
if [[ ! -f /etc/containerd/config.toml ]]; then
	/usr/local/bin/containerd config default >/etc/containerd/config.toml
	# systemd owns the cgroups on Debian 12 (cgroup v2); kubeadm's kubelet uses the same.
	sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
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
# so no overlay). Installed after the kube packages, which may bring their own copy.
say "CNI plugins $CNI_PLUGINS_VERSION, pod range $POD_CIDR"
cni=$(fetch "$gh/containernetworking/plugins/releases/download/v${CNI_PLUGINS_VERSION}/cni-plugins-linux-amd64-v${CNI_PLUGINS_VERSION}.tgz" \
	"$gh/containernetworking/plugins/releases/download/v${CNI_PLUGINS_VERSION}/cni-plugins-linux-amd64-v${CNI_PLUGINS_VERSION}.tgz.sha256")
mkdir -p /opt/cni/bin /etc/cni/net.d
tar -C /opt/cni/bin -xzf "$cni"
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
