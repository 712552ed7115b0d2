//go:build tools

// Package tools pins the commands this module builds: the control plane for the
// integration tier, and the node components (kubelet, kube-proxy) plus the controllers
// (kube-controller-manager, kube-scheduler) for the real-cluster lab, and kubeadm for the
// Vagrant lab's offline box.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
