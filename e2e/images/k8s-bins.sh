#!/usr/bin/env bash
# Build the Kubernetes binaries (kubeadm, kubelet, kubectl, kube-apiserver, kube-controller-manager,
# kube-scheduler, kube-proxy) from Go source through the module proxy, static.
# k8s.io/kubernetes has relative `replace => ./staging/...` directives, so `go install pkg@version` refuses
# it: a wrapper module requires it and pins every staging module to its published v0.X.Y.
# Env: K8S_VERSION, OUT (binaries dir), WORK (scratch dir for the wrapper module).
set -euo pipefail
: "${K8S_VERSION:?}" "${OUT:?}" "${WORK:?}"
STAGING_VERSION="v0${K8S_VERSION#v1}"    # v1.37.2 -> v0.37.2
mkdir -p "$OUT" "$WORK"
cd "$WORK"
rm -f go.mod go.sum
KDIR=$(GOFLAGS=-mod=mod go mod download -json k8s.io/kubernetes@"$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -n "$KDIR" ] || { echo "cannot download k8s.io/kubernetes@$K8S_VERSION" >&2; exit 1; }
GOVER=$(awk '/^go /{print $2; exit}' "$KDIR/go.mod")
{
  echo "module devloop.local/k8sbuild"
  echo
  echo "go $GOVER"
  echo
  echo "require k8s.io/kubernetes $K8S_VERSION"
  echo
  echo "replace ("
  sed -n '/^replace (/,/^)/p' "$KDIR/go.mod" | grep '=> ./staging' | awk -v v="$STAGING_VERSION" '{print "\t"$1" => "$1" "v}'
  echo ")"
} > go.mod
cat > tools.go <<'EOT'
//go:build tools

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
EOT
# this wrapper module is throw-away and lives outside the checkout: tidy is fine here
go mod tidy -e 2>&1 | tail -5 || true
MAJOR=${K8S_VERSION#v}; MAJOR=${MAJOR%%.*}
MINOR=${K8S_VERSION#v*.}; MINOR=${MINOR%%.*}
LDF=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LDF="$LDF -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
  LDF="$LDF -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
  LDF="$LDF -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
export CGO_ENABLED=0 GOOS=linux GOARCH=amd64
for b in kubeadm kubectl kubelet kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  s=$(date +%s)
  go build -trimpath -tags "providerless,dockerless" -ldflags "-s -w $LDF" -o "$OUT/$b" k8s.io/kubernetes/cmd/$b
  echo "built $b in $(( $(date +%s) - s ))s"
done
"$OUT/kubeadm" version -o short
"$OUT/kubeadm" config images list --kubernetes-version "$K8S_VERSION"
