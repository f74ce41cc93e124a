#!/usr/bin/env bash
# Build crictl (sigs.k8s.io/cri-tools) from the module proxy, static: real kind node images ship it, and
# /etc/crictl.yaml in base/ points it at containerd.
# Env: OUT, WORK, CRICTL_VERSION.
set -euo pipefail
: "${OUT:?}" "${WORK:?}" "${CRICTL_VERSION:?}"
mkdir -p "$OUT" "$WORK"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOBIN="$WORK/gobin" go install -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl@"$CRICTL_VERSION"
cp "$WORK/gobin/crictl" "$OUT/crictl"
"$OUT/crictl" --version
