#!/usr/bin/env bash
# Assemble the kind node image the way kind's pkg/build/nodeimage does: base image + kubeadm/kubelet/kubectl
# + /kind/version + /kind/manifests/{default-cni,default-storage}.yaml + the preloaded images imported into
# containerd (namespace k8s.io, pinned, not unpacked), then `docker commit`.
# Env: E2E_IMAGES, BIN (k8s binaries), CRICTL (crictl binary), TARS (component image archives), TAG, HASH, BASE_IMAGE, K8S_VERSION,
#      PAUSE_VERSION.
set -euo pipefail
: "${E2E_IMAGES:?}" "${BIN:?}" "${CRICTL:?}" "${TARS:?}" "${TAG:?}" "${HASH:?}" "${BASE_IMAGE:?}" "${K8S_VERSION:?}" "${PAUSE_VERSION:?}"
source "$E2E_IMAGES/lib.sh"
C="devloop-e2e-node-build-$$"
# containerd only needs its content store here. --privileged fails where the engine asks for a capability the
# host lacks (Docker < 23 without CAP_SYS_RESOURCE): there, all capabilities but that one.
priv=(--privileged)
if e2e_needs_shim; then priv=(--cap-add=ALL --cap-drop=SYS_RESOURCE --security-opt seccomp=unconfined); fi
docker run -d --name "$C" --entrypoint=sleep "${priv[@]}" "$BASE_IMAGE" infinity >/dev/null
trap 'docker rm -f "$C" >/dev/null 2>&1 || true' EXIT
for b in kubeadm kubelet kubectl; do
  docker cp "$BIN/$b" "$C:/usr/bin/$b"
  docker exec "$C" chown root:root "/usr/bin/$b"
  docker exec "$C" chmod 755 "/usr/bin/$b"
done
docker cp "$CRICTL" "$C:/usr/local/bin/crictl"
docker exec "$C" chown root:root /usr/local/bin/crictl
docker exec "$C" chmod 755 /usr/local/bin/crictl
docker exec "$C" sh -c "printf '%s' '$K8S_VERSION' > /kind/version"
docker exec "$C" mkdir -p /kind/manifests
for m in default-cni.yaml default-storage.yaml; do
  docker cp "$E2E_IMAGES/node/manifests/$m" "$C:/kind/manifests/$m"
  docker exec "$C" chown root:root "/kind/manifests/$m"
  docker exec "$C" chmod 644 "/kind/manifests/$m"
done
# the sandbox image must be the pause image kubeadm expects
docker exec "$C" sed -i "s|sandbox_image = .*|sandbox_image = \"registry.k8s.io/pause:$PAUSE_VERSION\"|" /etc/containerd/config.toml
docker exec -d "$C" sh -c 'containerd >/tmp/containerd.log 2>&1 & echo $! >/tmp/containerd.pid; wait'
for _ in $(seq 1 60); do docker exec "$C" test -S /run/containerd/containerd.sock && break; sleep 0.5; done
docker exec "$C" ctr version >/dev/null
for t in "$TARS"/*.tar; do
  docker exec -i "$C" ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
    --all-platforms --no-unpack --digests - <"$t" >/dev/null
  echo "imported $(basename "$t")"
done
docker exec "$C" ctr --namespace=k8s.io images list -q | grep -v '^sha256:'
# stop that containerd by PID so the bolt DB is consistent before the commit
docker exec "$C" sh -c 'p=$(cat /tmp/containerd.pid); kill -TERM "$p"; for i in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done; rm -rf /run/containerd /tmp/containerd.log /tmp/containerd.pid'
# (dockerd 20.10 rejects `--change STOPSIGNAL`; the base image's SIGRTMIN+3 is kept anyway)
docker commit \
  --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change 'CMD []' \
  --change 'ENV container=docker' \
  --change "LABEL devloop.e2e.hash=$HASH" \
  "$C" "$TAG" >/dev/null
docker image inspect "$TAG" --format 'entrypoint={{json .Config.Entrypoint}} stopsignal={{.Config.StopSignal}} size={{.Size}}'
