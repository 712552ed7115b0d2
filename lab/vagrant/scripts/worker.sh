#!/usr/bin/env bash
# A worker joins the cluster with the token the Vagrantfile made (the same one master-node
# was initialised with), once the API server on master-node answers.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source /ironlb/lab/vagrant/scripts/lib.sh
need NODE_NAME NODE_IP MASTER_IP TOKEN

if [[ -f /etc/kubernetes/kubelet.conf ]]; then
	say "already joined"
	exit 0
fi

say "waiting for the API server at https://$MASTER_IP:6443"
deadline=$((SECONDS + 1800))
until curl -ksf --max-time 3 "https://$MASTER_IP:6443/readyz" >/dev/null; do
	((SECONDS < deadline)) || die "no API server at $MASTER_IP:6443 after 30 minutes: is master-node up (vagrant status)?"
	sleep 5
done

# The CA is not pinned (its hash exists only once master-node is initialised, and the
# synced folder cannot carry it back): kubeadm still checks that cluster-info is signed
# with the shared token, which only the host and the VMs know.
say "kubeadm join $MASTER_IP:6443"
mkdir -p /var/lib/ironlb-lab
cat >/var/lib/ironlb-lab/join.yaml <<CONF
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: $MASTER_IP:6443
    token: "$TOKEN"
    unsafeSkipCAVerification: true
# Upper bounds only (kubeadm's defaults are too short under software emulation).
timeouts:
  discovery: 20m0s
  tlsBootstrap: 20m0s
  kubeletHealthCheck: 10m0s
  kubernetesAPICall: 20m0s
nodeRegistration:
  name: $NODE_NAME
  criSocket: unix:///run/containerd/containerd.sock
  kubeletExtraArgs:
    - name: node-ip
      value: $NODE_IP
CONF
kubeadm join --config /var/lib/ironlb-lab/join.yaml
kubectl --kubeconfig /etc/kubernetes/kubelet.conf wait --for=condition=Ready "node/$NODE_NAME" --timeout=300s >/dev/null ||
	die "$NODE_NAME is not Ready: journalctl -u kubelet"
say "$NODE_NAME joined and Ready"
