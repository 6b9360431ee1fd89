//go:build tools

// Package tools pins the kube-apiserver command as a dependency of this module so that
// `go mod tidy` records every module it needs in go.sum. Built by scripts/setup-kube.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
