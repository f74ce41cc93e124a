#!/usr/bin/env bash
# Smoke check of the images built by e2e/setup.sh (not part of setup): creates a kind cluster from the node
# image WITHOUT disableDefaultCNI (so kind applies the baked default-cni.yaml) and checks that the node
# boots, CoreDNS gets Ready, a PVC of the default StorageClass binds (local-path-provisioner + helper
# pod), and the Traefik image runs in the cluster after `kind load`. Deletes the cluster on exit.
#   e2e/images/smoke.sh            (NAME=hx-smoke by default)
set -euo pipefail
E2E_IMAGES=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export E2E_IMAGES
source "$E2E_IMAGES/lib.sh"
source "$E2E_IMAGES/VERSIONS"
CACHE=${DEVLOOP_E2E_CACHE:-/var/cache/devloop-e2e}
NAME=${NAME:-hx-smoke}
if e2e_needs_shim; then export PATH="$E2E_IMAGES/shim:$PATH"; fi
export PATH="$PATH:/usr/local/go/bin"
WORK=$(mktemp -d)
export KUBECONFIG="$WORK/kubeconfig"
t() { date +%s; }
step() { echo "SMOKE $1: $(( $(t) - $2 ))s"; }
# kind CLI and kubectl: built from the module proxy / taken from the k8s build cache
if [ ! -x "$CACHE/bin/kind" ]; then GOBIN="$CACHE/bin" go install sigs.k8s.io/kind@"$KIND_VERSION"; fi
KIND="$CACHE/bin/kind"
KUBECTL="$CACHE/k8s-bins/kubectl"
cleanup() {
  "$KIND" delete cluster --name "$NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cat >"$WORK/cfg.yaml" <<'EOT'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
kubeadmConfigPatches:
- |
  kind: KubeletConfiguration
  failCgroupV1: false
EOT
T0=$(t)
s=$(t); "$KIND" create cluster --name "$NAME" --image "$NODE_IMAGE" --config "$WORK/cfg.yaml" --wait 5m; step cluster-create "$s"
"$KUBECTL" get nodes -o wide
s=$(t); "$KUBECTL" -n kube-system rollout status deploy/coredns --timeout=180s; step coredns-ready "$s"
"$KUBECTL" -n kube-system get configmap devloop-offline-cni >/dev/null
"$KUBECTL" get storageclass
s=$(t)
cat <<EOT | "$KUBECTL" apply -f -
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: smoke-pvc}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: smoke-pvc}
spec:
  containers:
  - name: c
    image: $STORAGE_HELPER_IMAGE
    imagePullPolicy: IfNotPresent
    command: [sh, -c, 'echo ok > /data/ok && sleep 3600']
    volumeMounts: [{name: d, mountPath: /data}]
  volumes:
  - name: d
    persistentVolumeClaim: {claimName: smoke-pvc}
EOT
"$KUBECTL" wait --for=jsonpath='{.status.phase}'=Running pod/smoke-pvc --timeout=180s
"$KUBECTL" wait --for=jsonpath='{.status.phase}'=Bound pvc/smoke-pvc --timeout=30s
"$KUBECTL" exec smoke-pvc -- cat /data/ok
step pvc-bound "$s"
s=$(t)
"$KIND" load docker-image "$TRAEFIK_IMAGE" --name "$NAME"
"$KUBECTL" run smoke-traefik --image="$TRAEFIK_IMAGE" --image-pull-policy=Never --port=8080 -- \
  --entryPoints.web.address=:8000 --ping=true --ping.entryPoint=web --providers.kubernetesingress=false
"$KUBECTL" wait --for=condition=Ready pod/smoke-traefik --timeout=120s || true
"$KUBECTL" wait --for=jsonpath='{.status.phase}'=Running pod/smoke-traefik --timeout=60s
"$KUBECTL" logs smoke-traefik --tail=5
step traefik-running "$s"
"$KUBECTL" get pods -A -o wide
echo "SMOKE total: $(( $(t) - T0 ))s"
echo "SMOKE OK"
