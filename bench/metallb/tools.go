//go:build tools

// Keeps the MetalLB controller package in the module graph.
package tools

import _ "go.universe.tf/metallb/controller"
