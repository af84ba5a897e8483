#!/usr/bin/env bash
# Prints the path of Debian 12's x86_64 cloud kernel (6.1) for the
# make test-migrate guest, fetching it on first use: the package the
# meta-package linux-image-cloud-amd64 depends on (its ABI number
# changes with each update) is downloaded with apt-get download and
# unpacked with dpkg -x, not installed, under build/migrate/kernel/.
# Checks that the kernel has what cryo and the guest need built in.
# CRYO_MIGRATE_KERNEL_META names another meta-package.
set -euo pipefail
cd "$(dirname "$0")/../.."
meta=${CRYO_MIGRATE_KERNEL_META:-linux-image-cloud-amd64}
cache=build/migrate/kernel

pkg=$(apt-cache depends "$meta" 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' | head -n1)
if [ -z "$pkg" ]; then
  # No package lists: use what an earlier run unpacked, if any.
  pkg=$(ls "$cache" 2>/dev/null | grep '^linux-image-' | sort -V | tail -n1 || true)
  if [ -z "$pkg" ]; then
    echo "kernel.sh: cannot resolve $meta; run: apt-get update" >&2
    exit 1
  fi
fi
dir=$cache/$pkg
# The modules the guest loads (scripts/migrate/init, "module" in the
# plan), in this order (a module after those it needs), kept flat in
# $dir/modules with that order in $dir/modules/order: the virtio-blk
# disk the guest writes its images to is modular in Debian's cloud
# kernel.
modules="kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci.ko kernel/drivers/block/virtio_blk.ko"
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
  echo "kernel.sh: fetching $pkg" >&2
  (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
  dpkg -x "$tmp"/"$pkg"_*_amd64.deb "$tmp/root"
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
# rseq; the guest needs the 8250 serial console, a gzip initramfs,
# devtmpfs and tmpfs built in.
config=$(ls "$dir"/boot/config-* | head -n1)
for opt in CHECKPOINT_RESTORE RSEQ SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS PROC_FS SYSFS; do
  if ! grep -qx "CONFIG_$opt=y" "$config"; then
    echo "kernel.sh: $pkg lacks CONFIG_$opt=y (see $config)" >&2
    exit 1
  fi
done
ls "$dir"/boot/vmlinuz-* | head -n1
