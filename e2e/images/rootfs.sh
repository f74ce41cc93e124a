#!/usr/bin/env bash
# Debootstrap a Debian rootfs with systemd, containerd, runc, CNI plugins and iptables, and `docker import`
# it as the kind node's root filesystem (no registry: the only base that can exist offline).
# Env: WORK (scratch dir), TAG, HASH (label), DEBIAN_SUITE, DEBIAN_MIRROR.
set -euo pipefail
: "${WORK:?}" "${TAG:?}" "${HASH:?}" "${DEBIAN_SUITE:?}" "${DEBIAN_MIRROR:?}"
ROOT="$WORK/rootfs-$DEBIAN_SUITE"
PKGS=systemd,systemd-sysv,dbus,libsystemd0,containerd,runc,containernetworking-plugins,iptables,nftables,conntrack,socat,mount,util-linux,ethtool,iproute2,iputils-ping,ca-certificates,kmod,libseccomp2,procps,ebtables,ipset,e2fsprogs,findutils,less,curl,pigz,bash,coreutils,hostname,lsof,gnupg,sed,gawk,tar,gzip
rm -rf "$ROOT"
mkdir -p "$WORK"
debootstrap --variant=minbase --include="$PKGS" "$DEBIAN_SUITE" "$ROOT" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -30 "$WORK/debootstrap.log" >&2; exit 1; }
chroot "$ROOT" apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/* \
  "$ROOT"/var/cache/debconf/*-old
tar -C "$ROOT" -c . | docker import --change "LABEL devloop.e2e.hash=$HASH" - "$TAG" >/dev/null
rm -rf "$ROOT"
docker image ls "$TAG"
