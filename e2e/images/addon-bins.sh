#!/usr/bin/env bash
# Build the static binaries of the images kubeadm and kind preload: etcd, coredns, pause (src/pause) and
# rancher's local-path-provisioner (kind's default StorageClass), all from the Go module proxy.
# Env: E2E_IMAGES, OUT (binaries dir), WORK (scratch dir), ETCD_VERSION, COREDNS_VERSION, LOCAL_PATH_VERSION.
set -euo pipefail
: "${E2E_IMAGES:?}" "${OUT:?}" "${WORK:?}" "${ETCD_VERSION:?}" "${COREDNS_VERSION:?}" "${LOCAL_PATH_VERSION:?}"
export CGO_ENABLED=0 GOOS=linux GOARCH=amd64
mkdir -p "$OUT" "$WORK"
t() { date +%s; }

s=$(t)
(cd "$E2E_IMAGES/src/pause" && go build -trimpath -ldflags "-s -w" -o "$OUT/pause" .)
echo "pause built in $(( $(t) - s ))s"

# etcd: server/v3 has relative replace directives -> wrapper module pinning its sibling modules
s=$(t)
W="$WORK/etcdbuild-$ETCD_VERSION"; mkdir -p "$W"; cd "$W"; rm -f go.mod go.sum
cat > go.mod <<EOT
module devloop.local/etcdbuild

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
EOT
cat > tools.go <<'EOT'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOT
go mod tidy -e >/dev/null 2>&1 || true
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
"$OUT/etcd" --version | head -1
echo "etcd built in $(( $(t) - s ))s"

# coredns and local-path-provisioner have no replace directives: plain `go install pkg@version`
s=$(t)
GOBIN="$WORK/gobin" go install -trimpath -ldflags "-s -w" github.com/coredns/coredns@"$COREDNS_VERSION"
cp "$WORK/gobin/coredns" "$OUT/coredns"
"$OUT/coredns" -version | head -1
echo "coredns built in $(( $(t) - s ))s"

s=$(t)
GOBIN="$WORK/gobin" go install -trimpath -ldflags "-s -w" github.com/rancher/local-path-provisioner@"$LOCAL_PATH_VERSION"
cp "$WORK/gobin/local-path-provisioner" "$OUT/local-path-provisioner"
echo "local-path-provisioner built in $(( $(t) - s ))s"
