#!/usr/bin/env bash
# make test-migrate: processes moved between two kernels and two CPUs.
#
# The guest is Debian 12's x86_64 cloud kernel, 6.1 (scripts/migrate/
# kernel.sh), under qemu-system-x86_64 (TCG) with -cpu Haswell-v4: an
# older kernel, whose vdso differs from this one's, and a CPU without
# AVX-512. In one boot:
#
#  1. host: e2e's TestMigrateFreezeHost* (-tags migrate) freeze victims
#     into build/migrate/in/ and write the guest's steps for them there
#     (in/plan*);
#  2. guest (scripts/migrate/init, a static Go /init in an initramfs with
#     bin/freeze, bin/thaw, the static victims and in/): runs
#     scripts/migrate/guest.plan (starts victims and freezes them), then
#     in/plan* (thaws the host's images), and writes what they left as a
#     tar archive onto a raw virtio-blk disk; its console must end with
#     the pass marker (qemu exits 0 even when the guest panics);
#  3. host: the archive is unpacked into build/migrate/out/;
#     TestMigrateFromGuest* thaw the guest's images here (they must go
#     on with their state) and TestMigrateToGuest* check how the guest
#     treated the host's (refused, the missing CPU features listed, or
#     thawed and running).
#
# Environment:
#   CRYO_MIGRATE_TIMEOUT  seconds for the guest (default 300)
#   CRYO_MIGRATE_CPU      the guest's -cpu (default Haswell-v4)
#   CRYO_MIGRATE_PLANS    more plan files (space-separated) the guest runs
#                         after guest.plan and in/plan* (init's format: see
#                         scripts/migrate/init/main.go); a file they name
#                         under /cryo/in/ comes from CRYO_MIGRATE_IN
#   CRYO_MIGRATE_IN       more files (space-separated: images...) copied
#                         into the guest's /cryo/in/
#   CRYO_MIGRATE_RUN      the subtests (go test -run, below the top level)
#                         of step 3 (default: all)
#   CRYO_MIGRATE_GUEST_ONLY=1  stop after step 2 (the guest's files are in
#                         build/migrate/out/ for a test of your own)
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
out=build/migrate
root=$out/root
console=$out/console.log
disk=$out/disk.img
timeout_s=${CRYO_MIGRATE_TIMEOUT:-300}
cpu=${CRYO_MIGRATE_CPU:-Haswell-v4}
run=${CRYO_MIGRATE_RUN:-.}
start=$(date +%s)

need() {
  if ! command -v "$1" >/dev/null; then
    echo "test-migrate: $1 not found: apt-get install $2 (.ci/run installs it)" >&2
    exit 1
  fi
}
need qemu-system-x86_64 qemu-system-x86
need gcc gcc
need cpio cpio
need tar tar
if [ ! -e /usr/lib/x86_64-linux-gnu/libc.a ]; then
  echo "test-migrate: no static libc: apt-get install libc6-dev" >&2
  exit 1
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "test-migrate: the host must be x86_64 (it is $(uname -m))" >&2
  exit 1
fi
kernel=$(scripts/migrate/kernel.sh)
kmods=$(dirname "$(dirname "$kernel")")/modules

rm -rf "$root" "$out/in" "$out/out"
mkdir -p "$root"/{cryo/bin,cryo/victims,cryo/modules,cryo/in,proc,sys,dev,tmp} "$out/in" "$out/out"
export CGO_ENABLED=0
$GO build -trimpath -o "$root/init" ./scripts/migrate/init
$GO build -trimpath -o "$root/cryo/bin/" ./cmd/freeze ./cmd/thaw
for v in counter vdsoclock; do
  gcc -O2 -g -Wall -static -o "$root/cryo/victims/$v-static" "testdata/$v.c"
done
(cd testdata/gocounter && $GO build -o "../../$root/cryo/victims/gocounter" .)
cp "$kmods"/*.ko "$root/cryo/modules/"

# Step 1: the host's images, with the test binary built once for steps
# 1 and 3.
$GO test -c -tags migrate -o "$out/e2e.test" ./e2e/
host_test() {
  (cd e2e && CRYO_MIGRATE_DIR="$PWD/../$out" CRYO_E2E_BIN_DIR="$PWD/../$root/cryo/bin" \
    "../$out/e2e.test" -test.v -test.count=1 -test.timeout=5m "$@")
}
host_test -test.run="^TestMigrateFreezeHost"
cp "$out"/in/* "$root/cryo/in/"
for f in ${CRYO_MIGRATE_IN:-}; do cp "$f" "$root/cryo/in/"; done

plan=$root/cryo/plan
{
  echo "# written by scripts/migrate/test.sh"
  while read -r m; do echo "module /cryo/modules/$m"; done <"$kmods/order"
  cat scripts/migrate/guest.plan "$out"/in/plan*
  for f in ${CRYO_MIGRATE_PLANS:-}; do cat "$f"; done
} >"$plan"

initrd=$out/initramfs.gz
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$initrd"
rm -f "$disk"
truncate -s 512M "$disk"
built=$(date +%s)
echo "test-migrate: built in $((built - start)) s; initramfs $(du -h "$initrd" | cut -f1); booting $kernel with -cpu $cpu"

# Step 2. -nic none: no NIC, so no ipxe ROM is needed.
set +e
timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 -machine q35 -accel tcg -cpu "$cpu" -smp 2 -m 1024 \
  -nographic -nic none -no-reboot \
  -drive "file=$disk,format=raw,if=virtio" \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyS0 panic=-1 loglevel=4" </dev/null 2>&1 | tee "$console"
rc=${PIPESTATUS[0]}
set -e
booted=$(date +%s)
log=$(tr -d '\r' <"$console")
result=$(printf '%s\n' "$log" | sed -n 's/^CRYO_MIGRATE_RESULT=\([A-Z]*\)$/\1/p' | tail -n1)
fail() {
  echo "test-migrate: FAIL: $* (guest ran $((booted - built)) s; console in $console)" >&2
  exit 1
}
if printf '%s\n' "$log" | grep -q 'Kernel panic'; then
  fail "the guest kernel panicked"
fi
if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
  fail "no result within ${timeout_s} s (timeout)"
fi
case "$result" in
PASS) ;;
FAIL) fail "a step failed in the guest" ;;
INITERROR) fail "the guest's init could not run its plan" ;;
"") fail "no result marker on the console (qemu exit status $rc)" ;;
*) fail "unknown result $result" ;;
esac
if [ "$rc" != 0 ]; then
  fail "qemu exited with status $rc"
fi
tar -xf "$disk" -C "$out/out"
echo "test-migrate: the guest ran $((booted - built)) s and left: $(ls "$out/out" | tr '\n' ' ')"
if [ "${CRYO_MIGRATE_GUEST_ONLY:-}" = 1 ]; then
  exit 0
fi

# Step 3.
host_test -test.run="^TestMigrate(FromGuest|ToGuest)/$run"
end=$(date +%s)
echo "test-migrate: PASS in $((end - start)) s (guest $((booted - built)) s)"
