#!/usr/bin/env bash
# Builds one Go program from the Go module proxy into $4 (the test bed's cache). It downloads
# the module with the ordinary `go` client and builds inside a copy of it, with the module's
# own go.mod and go.sum: `go install pkg@version` would also work for modules without
# `replace` directives, but it asks the proxy for the module's version list, which some
# proxies (mirrors that serve pinned versions only) refuse.
#   usage: build-go-tool.sh <module> <version> <package dir inside the module> <out dir>
#   e.g.   build-go-tool.sh sigs.k8s.io/kueue v0.19.2 cmd/kueue ~/.cache/.../bin
set -euo pipefail
MOD=$1 V=$2 PKGDIR=$3 OUT=$4
command -v go >/dev/null || { echo "testbed: Go is required to build $MOD (install Go >= 1.26)" >&2; exit 2; }
mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/go-tool.XXXXXX")
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
# GOWORK=off: a module may ship a go.work (Prometheus does) that would pull in its other modules.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod GOWORK=off
echo "testbed: building $MOD/$PKGDIR@$V from the Go module proxy" >&2
dir=$(cd "$work" && go mod download -json "$MOD@$V" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
cp -r "$dir" "$work/src" && chmod -R u+w "$work/src"
name=$(basename "$PKGDIR")
(cd "$work/src" && go build -trimpath -ldflags "-s -w" -o "$OUT/$name.tmp" "./$PKGDIR")
mv "$OUT/$name.tmp" "$OUT/$name"
echo "testbed: $name ready in $OUT" >&2
