#!/usr/bin/env bash
# ironlb itself, on master-node once the control plane is up: `helm install` of the chart
# from the synced tree with the image built on the VMs, a pool on the private network with
# its L2Advertisement, and an echo server behind two LoadBalancer Services (Cluster and
# Local). Nothing here waits for the workers: the controller and the echo pods start as
# soon as they join, and the host checks the result (the trigger in the Vagrantfile).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source /ironlb/lab/vagrant/scripts/lib.sh
need HELM_VERSION IRONLB_VERSION POOL ECHO_CLUSTER_IP ECHO_LOCAL_IP AGNHOST_IMAGE
export KUBECONFIG=/etc/kubernetes/admin.conf

if [[ $(helm version --template '{{.Version}}' 2>/dev/null || true) != "v$HELM_VERSION" ]]; then
	say "helm $HELM_VERSION"
	tarball=$(fetch "https://get.helm.sh/helm-v${HELM_VERSION}-linux-amd64.tar.gz" \
		"https://get.helm.sh/helm-v${HELM_VERSION}-linux-amd64.tar.gz.sha256sum")
	tar -C /usr/local/bin --strip-components=1 -xzf "$tarball" linux-amd64/helm
fi

say "helm upgrade --install ironlb (image localhost/ironlb:$IRONLB_VERSION, pullPolicy Never)"
helm upgrade --install ironlb /ironlb/charts/ironlb --namespace ironlb-system --create-namespace \
	--set image.repository=localhost/ironlb --set-string image.tag="$IRONLB_VERSION" \
	--set image.pullPolicy=Never
kubectl wait --for=condition=Established --timeout=60s \
	crd/ipaddresspools.ironlb.dev crd/l2advertisements.ironlb.dev >/dev/null

say "pool $POOL, echo Services at $ECHO_CLUSTER_IP (Cluster) and $ECHO_LOCAL_IP (Local)"
kubectl apply -f - <<YAML
apiVersion: ironlb.dev/v1beta1
kind: IPAddressPool
metadata:
  name: vagrant-lan
spec:
  addresses: [$POOL]
---
# Workers only: halting master-node would take the API server with it, which is not the
# failover this lab shows.
apiVersion: ironlb.dev/v1beta1
kind: L2Advertisement
metadata:
  name: vagrant-lan
spec:
  ipAddressPools: [vagrant-lan]
  nodeSelectors:
    - matchExpressions:
        - { key: node-role.kubernetes.io/control-plane, operator: DoesNotExist }
---
apiVersion: v1
kind: Namespace
metadata:
  name: echo
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
  namespace: echo
spec:
  replicas: 2
  selector:
    matchLabels: { app: echo }
  template:
    metadata:
      labels: { app: echo }
    spec:
      # One pod per worker, so that the Local Service has an endpoint on each (the second
      # waits for worker-node02 rather than joining the first on worker-node01).
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            - topologyKey: kubernetes.io/hostname
              labelSelector:
                matchLabels: { app: echo }
      containers:
        - name: echo
          image: $AGNHOST_IMAGE
          # /hostname answers the pod name, /clientip the address the pod sees.
          args: [netexec, --http-port=8080]
          ports:
            - { name: http, containerPort: 8080 }
          readinessProbe:
            httpGet: { path: /hostname, port: http }
            periodSeconds: 2
---
apiVersion: v1
kind: Service
metadata:
  name: echo-cluster
  namespace: echo
  annotations:
    ironlb.dev/loadBalancerIPs: $ECHO_CLUSTER_IP
spec:
  type: LoadBalancer
  externalTrafficPolicy: Cluster
  selector: { app: echo }
  ports:
    - { name: http, port: 80, targetPort: http }
---
apiVersion: v1
kind: Service
metadata:
  name: echo-local
  namespace: echo
  annotations:
    ironlb.dev/loadBalancerIPs: $ECHO_LOCAL_IP
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: { app: echo }
  ports:
    - { name: http, port: 80, targetPort: http }
YAML

cat <<TEXT
ironlb is installed; the controller and the echo pods start when the workers have joined.
From the host, once worker-node02 is up:
  curl http://$ECHO_CLUSTER_IP/hostname     # externalTrafficPolicy: Cluster
  curl http://$ECHO_LOCAL_IP/clientip       # Local: the pod sees the host's own address
  vagrant ssh master-node -c 'kubectl get svc -n echo'
TEXT
