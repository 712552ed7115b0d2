//go:build tools

// Package tools pins the one command this module builds: agnhost, the echo server of the
// Vagrant lab (netexec), at the version Kubernetes 1.36.3's e2e tests use.
package tools

import _ "k8s.io/kubernetes/test/images/agnhost"
