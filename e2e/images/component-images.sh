#!/usr/bin/env bash
# Build the images the node image preloads into its containerd, with the exact names kubeadm and kind ask
# for, and `docker save` each to OUT/<name>.tar:
#   - control plane (FROM scratch; binaries on PATH, kubeadm's static pod manifests call them by name),
#     etcd, coredns, pause; kube-proxy on the Debian rootfs (needs iptables/nft userspace) + iptables-wrapper;
#   - kind's default StorageClass: local-path-provisioner and its busybox helper image (FROM scratch).
# Env: E2E_IMAGES, BIN (k8s binaries), ADDONS (addon binaries), OUT, WORK, HASH, K8S_VERSION, ROOTFS_IMAGE,
#      PAUSE_VERSION, ETCD_VERSION, COREDNS_VERSION, STORAGE_PROVISIONER_IMAGE, STORAGE_HELPER_IMAGE.
set -euo pipefail
: "${E2E_IMAGES:?}" "${BIN:?}" "${ADDONS:?}" "${OUT:?}" "${WORK:?}" "${HASH:?}" "${K8S_VERSION:?}" "${ROOTFS_IMAGE:?}"
: "${STORAGE_PROVISIONER_IMAGE:?}" "${STORAGE_HELPER_IMAGE:?}"
source "$E2E_IMAGES/lib.sh"
CTX="$WORK/component-ctx"
mkdir -p "$OUT"
rm -f "$OUT"/*.tar

mapfile -t IMAGES < <("$BIN/kubeadm" config images list --kubernetes-version "$K8S_VERSION")
want="registry.k8s.io/pause:$PAUSE_VERSION registry.k8s.io/etcd:${ETCD_VERSION#v}-0 registry.k8s.io/coredns/coredns:$COREDNS_VERSION"
for w in $want; do
  printf '%s\n' "${IMAGES[@]}" | grep -qxF "$w" || { echo "kubeadm $K8S_VERSION does not list $w: update VERSIONS" >&2; exit 1; }
done

newctx() { rm -rf "$CTX"; mkdir -p "$CTX"; }
save() { docker save -o "$OUT/$2.tar" "$1"; echo "saved $1"; }
build_scratch() { # tag binary-dir binary style(path|entry)
  local tag=$1 dir=$2 bin=$3 style=$4
  newctx; cp "$dir/$bin" "$CTX/$bin"
  if [ "$style" = path ]; then
    printf 'FROM scratch\nCOPY %s /usr/local/bin/%s\nENV PATH=/usr/local/bin:/usr/bin:/bin\n' "$bin" "$bin" >"$CTX/Dockerfile"
  else
    printf 'FROM scratch\nCOPY %s /%s\nENTRYPOINT ["/%s"]\n' "$bin" "$bin" "$bin" >"$CTX/Dockerfile"
  fi
  e2e_docker_build "$tag" "$HASH" "$CTX"
}

for img in "${IMAGES[@]}"; do
  name=${img##*/}; name=${name%%:*}
  case "$name" in
    kube-apiserver|kube-controller-manager|kube-scheduler) build_scratch "$img" "$BIN" "$name" path ;;
    etcd) build_scratch "$img" "$ADDONS" etcd path ;;
    coredns|pause) build_scratch "$img" "$ADDONS" "$name" entry ;;
    kube-proxy)
      newctx; cp "$BIN/kube-proxy" "$E2E_IMAGES/iptables-wrapper/iptables-wrapper" "$CTX/"
      cat >"$CTX/Dockerfile" <<EOT
FROM $ROOTFS_IMAGE
COPY kube-proxy /usr/local/bin/kube-proxy
COPY iptables-wrapper /usr/sbin/iptables-wrapper
RUN chmod 755 /usr/sbin/iptables-wrapper \\
 && update-alternatives --install /usr/sbin/iptables iptables /usr/sbin/iptables-wrapper 100 \\
      --slave /usr/sbin/iptables-restore iptables-restore /usr/sbin/iptables-wrapper \\
      --slave /usr/sbin/iptables-save iptables-save /usr/sbin/iptables-wrapper \\
 && update-alternatives --install /usr/sbin/ip6tables ip6tables /usr/sbin/iptables-wrapper 100 \\
      --slave /usr/sbin/ip6tables-restore ip6tables-restore /usr/sbin/iptables-wrapper \\
      --slave /usr/sbin/ip6tables-save ip6tables-save /usr/sbin/iptables-wrapper \\
 && update-alternatives --set iptables /usr/sbin/iptables-wrapper \\
 && update-alternatives --set ip6tables /usr/sbin/iptables-wrapper
EOT
      e2e_docker_build "$img" "$HASH" "$CTX" ;;
    *) echo "unknown kubeadm image $img" >&2; exit 1 ;;
  esac
  save "$img" "$name"
done

# kind's default-storage.yaml runs `local-path-provisioner ...` by name
build_scratch "$STORAGE_PROVISIONER_IMAGE" "$ADDONS" local-path-provisioner path
save "$STORAGE_PROVISIONER_IMAGE" local-path-provisioner
# helper pods run `/bin/sh /script/setup|teardown` (mkdir -m 0777 -p / rm -rf): Debian's static busybox
newctx; cp /bin/busybox "$CTX/busybox"
cat >"$CTX/Dockerfile" <<'EOT'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-p", "-m", "1777", "/tmp"]
ENV PATH=/bin
CMD ["/bin/sh"]
EOT
e2e_docker_build "$STORAGE_HELPER_IMAGE" "$HASH" "$CTX"
docker run --rm "$STORAGE_HELPER_IMAGE" sh -c 'mkdir -m 0777 -p /tmp/x && rm -rf /tmp/x && echo helper ok'
save "$STORAGE_HELPER_IMAGE" local-path-helper
rm -rf "$CTX"
ls -la "$OUT"
