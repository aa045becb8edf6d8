#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from the Go
# module proxy into $2. k8s.io/kubernetes cannot be `go install`ed (its go.mod pins every
# staging module at v0.0.0), so we build inside a throwaway module that replaces each staging
# module with its published v0.X.Y twin.
#   usage: build-k8s.sh <k8s version, e.g. v1.37.2> <etcd version, e.g. v3.6.5> <out dir>
set -euo pipefail
KV=$1 EV=$2 OUT=$3
command -v go >/dev/null || { echo "testbed: Go is required to build the Kubernetes control plane (install Go >= 1.26, or set KUBEBUILDER_ASSETS to a folder holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)" >&2; exit 2; }
STAGING_V="v0.${KV#v1.}"
MINOR=$(echo "$KV" | cut -d. -f2)
mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

# --- Kubernetes ---
mkdir -p "$work/k8s" && cd "$work/k8s"
gomod=$(go mod download -json "k8s.io/kubernetes@$KV" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
  echo "module testbed/k8sbuild"
  echo
  grep -E '^go [0-9]' "$gomod"
  echo
  echo "require k8s.io/kubernetes $KV"
  echo
  echo "replace ("
  grep -E '^[[:space:]]+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="$STAGING_V" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} > go.mod
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
go mod tidy -e >/dev/null 2>&1 || go mod tidy
LDF="-s -w -X k8s.io/component-base/version.gitVersion=$KV -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/client-go/pkg/version.gitVersion=$KV -X k8s.io/component-base/version.gitTreeState=clean"
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  echo "testbed: building $c $KV" >&2
  go build -trimpath -ldflags "$LDF" -o "$OUT/$c.tmp" "k8s.io/kubernetes/cmd/$c"
  mv "$OUT/$c.tmp" "$OUT/$c"
done

# --- etcd ---
mkdir -p "$work/etcd" && cd "$work/etcd"
cat > go.mod <<GO
module testbed/etcdbuild

go 1.24

require go.etcd.io/etcd/server/v3 $EV
GO
cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
go mod tidy
echo "testbed: building etcd $EV" >&2
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3
mv "$OUT/etcd.tmp" "$OUT/etcd"
echo "testbed: control plane binaries ready in $OUT" >&2
