#!/usr/bin/env bash
# The control plane: kubeadm init on master-node with the lab's addresses, kube-proxy in
# its default mode, and a kubeconfig for the vagrant user (`vagrant ssh master-node`, then
# kubectl). Workers join with the token the Vagrantfile made (scripts/worker.sh).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source /ironlb/lab/vagrant/scripts/lib.sh
need NODE_NAME NODE_IP K8S_VERSION SERVICE_CIDR POD_CIDR_ALL TOKEN

export KUBECONFIG=/etc/kubernetes/admin.conf
# Written once kubeadm init has run to its end. admin.conf alone is not enough: kubeadm
# writes it before its first API call, so an init that stopped there (a timeout under
# emulation) left a control plane that a re-run must finish rather than skip.
done_marker=/var/lib/ironlb-lab/kubeadm-init.done
if [[ -f $done_marker ]]; then
	say "control plane already initialised"
elif [[ -f $KUBECONFIG && -f /var/lib/ironlb-lab/kubeadm.yaml ]]; then
	say "kubeadm init stopped before its end: running its remaining phases"
	kubeadm init --config /var/lib/ironlb-lab/kubeadm.yaml --skip-token-print \
		--skip-phases=preflight,certs,kubeconfig,etcd,control-plane,kubelet-start
	touch "$done_marker"
else
	say "kubeadm init (Kubernetes $K8S_VERSION, API at $NODE_IP:6443)"
	# The token never expires, so that a worker can be destroyed and made again later; it
	# is only valid on this lab's private network.
	mkdir -p /var/lib/ironlb-lab
	cat >/var/lib/ironlb-lab/kubeadm.yaml <<CONF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: "$TOKEN"
    ttl: 0s
    usages: [signing, authentication]
    groups: [system:bootstrappers:kubeadm:default-node-token]
localAPIEndpoint:
  advertiseAddress: $NODE_IP
  bindPort: 6443
# Upper bounds only: kubeadm goes on as soon as each check passes. Its 4-minute defaults
# are too short on a slow laptop and under software emulation (npm run lab:vagrant): there
# kubeadm's first API call (the admin user's ClusterRoleBinding) outlasted 5 minutes while
# the API server was still starting.
timeouts:
  controlPlaneComponentHealthCheck: 20m0s
  kubeletHealthCheck: 10m0s
  kubernetesAPICall: 20m0s
  etcdAPICall: 20m0s
nodeRegistration:
  name: $NODE_NAME
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
    - name: node-ip
      value: $NODE_IP
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v$K8S_VERSION
controlPlaneEndpoint: $NODE_IP:6443
networking:
  serviceSubnet: $SERVICE_CIDR
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
---
# Default mode (mode unset); clusterCIDR tells it which sources are pods.
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clusterCIDR: $POD_CIDR_ALL
CONF
	kubeadm init --config /var/lib/ironlb-lab/kubeadm.yaml --skip-token-print
	touch "$done_marker"
fi

install -d -o vagrant -g vagrant /home/vagrant/.kube
install -m 0600 -o vagrant -g vagrant "$KUBECONFIG" /home/vagrant/.kube/config
kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=300s >/dev/null ||
	die "$NODE_NAME is not Ready: kubectl describe node $NODE_NAME; journalctl -u kubelet"
say "control plane ready"
