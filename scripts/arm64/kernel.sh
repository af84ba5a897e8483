#!/usr/bin/env bash
# Prints the path of a Debian arm64 kernel image for the test guest,
# fetching it on first use: the package the meta-package
# linux-image-cloud-arm64 depends on (its ABI number changes with each
# update) is downloaded with apt-get download and unpacked with dpkg -x,
# not installed, under build/arm64/kernel/. Needs
# `dpkg --add-architecture arm64 && apt-get update` once (.ci/run does it).
# Checks that the kernel has what cryo and the guest need.
set -euo pipefail
cd "$(dirname "$0")/../.."
meta=${CRYO_ARM64_KERNEL_META:-linux-image-cloud-arm64}
cache=build/arm64/kernel

pkg=$(apt-cache depends "$meta:arm64" 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -n1)
if [ -z "$pkg" ]; then
  # No arm64 package lists: use what an earlier run unpacked, if any.
  pkg=$(ls "$cache" 2>/dev/null | grep '^linux-image-' | sort -V | tail -n1 || true)
  if [ -z "$pkg" ]; then
    echo "kernel.sh: cannot resolve $meta:arm64; run: dpkg --add-architecture arm64 && apt-get update" >&2
    exit 1
  fi
fi
dir=$cache/$pkg
# The modules the guest loads (scripts/arm64/init, "module" in the plan),
# in this order (a module after those it needs), kept flat in
# $dir/modules with that order in $dir/modules/order: the sock_diag
# handlers freeze asks about sockets (files/sockdiag.go for unix
# sockets; inet_diag, tcp_diag and udp_diag for TCP and UDP), modules in
# Debian's kernels.
modules="kernel/net/unix/unix_diag.ko kernel/net/ipv4/inet_diag.ko kernel/net/ipv4/tcp_diag.ko kernel/net/ipv4/udp_diag.ko"
unpacked() {
  ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1 || return 1
  for m in $modules; do
    [ -e "$dir/modules/$(basename "$m")" ] || return 1
  done
}
if ! unpacked; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "kernel.sh: fetching $pkg:arm64" >&2
  (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg:arm64" >&2)
  dpkg -x "$tmp"/"$pkg"_*_arm64.deb "$tmp/root"
  rm -rf "$dir"
  mkdir -p "$dir"
  mv "$tmp/root/boot" "$dir/boot"
  mkdir -p "$dir/modules"
  for m in $modules; do
    cp "$tmp"/root/lib/modules/*/"$m" "$dir/modules/"
  done
fi
for m in $modules; do basename "$m"; done >"$dir/modules/order"

# cryo needs PR_SET_MM_MAP and PR_GET_TID_ADDRESS (CHECKPOINT_RESTORE) and
# rseq; the guest needs the PL011 console, a gzip initramfs, devtmpfs and
# tmpfs built in.
config=$(ls "$dir"/boot/config-* | head -n1)
for opt in CHECKPOINT_RESTORE RSEQ SERIAL_AMBA_PL011_CONSOLE BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS PROC_FS SYSFS; do
  if ! grep -qx "CONFIG_$opt=y" "$config"; then
    echo "kernel.sh: $pkg lacks CONFIG_$opt=y (see $config)" >&2
    exit 1
  fi
done
ls "$dir"/boot/vmlinuz-* | head -n1
