#!/usr/bin/env bash
# Prints the path of a Debian arm64 kernel image for the test guest,
# fetching it on first use (scripts/lib/debian-kernel.sh): the package
# the meta-package linux-image-cloud-arm64 depends on, unpacked under
# build/arm64/kernel/. Needs `dpkg --add-architecture arm64 && apt-get
# update` once (.ci/run does it). CRYO_ARM64_KERNEL_META names another
# meta-package.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib/debian-kernel.sh
caller=kernel.sh debarch=arm64
meta=${CRYO_ARM64_KERNEL_META:-linux-image-cloud-arm64}
cache=build/arm64/kernel
# The modules the guest loads (scripts/arm64/init, "module" in the plan):
# the sock_diag handlers freeze asks about sockets (files/sockdiag.go for
# unix sockets; inet_diag, tcp_diag and udp_diag for TCP and UDP),
# modules in Debian's kernels.
modules="kernel/net/unix/unix_diag.ko kernel/net/ipv4/inet_diag.ko kernel/net/ipv4/tcp_diag.ko kernel/net/ipv4/udp_diag.ko"
# cryo needs PR_SET_MM_MAP and PR_GET_TID_ADDRESS (CHECKPOINT_RESTORE) and
# rseq; the guest needs the PL011 console, a gzip initramfs, devtmpfs and
# tmpfs built in.
config_opts="CHECKPOINT_RESTORE RSEQ SERIAL_AMBA_PL011_CONSOLE BLK_DEV_INITRD RD_GZIP DEVTMPFS TMPFS PROC_FS SYSFS"
debian_kernel
