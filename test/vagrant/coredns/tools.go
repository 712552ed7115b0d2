//go:build tools

// Package tools pins the one command this module builds: CoreDNS.
package tools

import _ "github.com/coredns/coredns"
