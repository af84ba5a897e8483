#!/usr/bin/env bash
# Prints the path of Debian 12's x86_64 cloud kernel (6.1) for the
# make test-migrate guest, fetching it on first use
# (scripts/lib/debian-kernel.sh): the package the meta-package
# linux-image-cloud-amd64 depends on, unpacked under
# build/migrate/kernel/. CRYO_MIGRATE_KERNEL_META names another
# meta-package.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/debian-kernel.sh
caller=kernel.sh debarch=amd64
meta=${CRYO_MIGRATE_KERNEL_META:-linux-image-cloud-amd64}
cache=build/migrate/kernel
# The modules the guest loads (scripts/migrate/init, "module" in the
# plan): the virtio-blk disk the guest writes its images to is modular in
# Debian's cloud kernel.
modules="kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci.ko kernel/drivers/block/virtio_blk.ko"
# cryo needs PR_SET_MM_MAP and PR_GET_TID_ADDRESS (CHECKPOINT_RESTORE) and
# rseq; the guest needs the 8250 serial console, a gzip initramfs,
# devtmpfs and tmpfs built in.
config_opts="CHECKPOINT_RESTORE RSEQ SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS PROC_FS SYSFS"
debian_kernel
