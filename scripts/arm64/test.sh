#!/usr/bin/env bash
# make test-arm64: cryo's tests on linux/arm64 under emulation.
#
# Cross-compiles (GOARCH=arm64 CGO_ENABLED=0) the unit-test binaries, the
# e2e test binary, bin/freeze, bin/thaw and the guest's init
# (scripts/arm64/init), and the C victims with aarch64-linux-gnu-gcc;
# packs them with the arm64 glibc into an initramfs; boots Debian's arm64
# kernel (scripts/arm64/kernel.sh) under qemu-system-aarch64, where init
# runs the tests; and passes only if the console shows init's pass marker.
# qemu exits 0 even when the guest panics: the console alone is judged.
#
# Environment: CRYO_ARM64_TIMEOUT (seconds for the guest, default 600),
# CRYO_ARM64_PKGS (the packages whose tests run, default ./...),
# CRYO_ARM64_RUN / CRYO_ARM64_SKIP (override the e2e test selection).
set -euo pipefail
cd "$(dirname "$0")/../.."
GO=${GO:-go}
out=build/arm64
root=$out/root
console=$out/console.log
timeout_s=${CRYO_ARM64_TIMEOUT:-600}
start=$(date +%s)

# The e2e tests that do not run in the guest, each for a named reason.
# Arch-specific exclusions:
#   TestRegisters, TestVictims/regs: the regs victim is x86-64 assembly
#     (TestRegistersARM64 and TestFreezeFaults use regs-arm64 there).
# Guest-specific exclusions (the guest has no shell or binutils):
#   TestImageReadelf: needs readelf.
#   TestTailFollow: needs GNU tail.
#   TestImageMode: runs freeze under /bin/sh to set the umask.
#   TestPythonThreads: the guest has no python3.
#   TestRedisServer, TestJVM, TestVim: the guest has no redis-server,
#     JDK or vim (Debian's amd64 packages on the host).
#   TestJobControl: thaws under an interactive bash.
#   TestCredsThawLacksCapability: runs the thaw under setpriv.
#   TestOracle, TestAllState: the shell-log and zombie start modes start
#     the victim from bash (>log 2>&1; a background job left a zombie).
#   TestOracle/coverage: reads testdata/*.c, which the guest does not hold
#     (the victims come prebuilt).
# Kernel-specific exclusions:
#   TestOracle/events, TestFreezeFaults/events/*, TestEventsLeaveRunning,
#   TestUnprivilegedEvents: for time; the event kinds run in the guest
#     through TestOracle/allfds (an eventfd on a kernel without
#     eventfd-semaphore in fdinfo, so the probe of files/eventfd.go; an
#     epoll with arm64's 16-byte struct epoll_event), and paths, shm and
#     ptys, whose code is the same on both arches, run on amd64.
#   TestFreezeErrors/anon-secret: memfd_secret is off by default there
#     (secretmem.enable, before Linux 6.5).
# For the guest's time budget (a freeze takes 1-2 s there): the tests of
#   the descriptor table whose code is the same on both arches (changed
#   and carried files, pty pairs and terminals, TCP repair and policy,
#   shared memory as nobody, external pipes and unix peers), and two older
#   arch-independent ones (TestThawOnAnotherMachine, TestFreezeInterrupted)
#   run on amd64 only; the fault matrix runs on the arm64 register victim
#   only. TestOracle/allfds carries every kind of fd through the guest.
# For time: TestGoProgram and TestGoHTTPServer (a Go program's many
#   threads take the guest more than the harness's 10 s to thaw when the
#   host is busy). They once showed a SIGURG pending in the thawed main
#   thread that the original did not have: the Go thaw launcher's own
#   preemption signal, pending at its exec (seen on amd64 too, in
#   python3); the helper now drops what the stub inherits
#   (restore: dropInheritedSignals).
# Threads, for time: TestChurningTarget (25 s there now that every freeze
#   of it succeeds; arch-independent seize logic) and
#   TestFreezeFaults/threads (the release of every thread is
#   arch-independent; arm64's per-thread registers, TLS and restart are
#   proven by TestOracle/threads/pipes) run on amd64 only.
# (Go's -test.skip takes the first alternative that matches a name, even
# in part: a two-level one must come before a three-level one that
# starts alike, or it is never tried.)
# The vdso proxy (TestVDSOProxy): the static clock loop and the Go
#   program prove arm64's jumps and freeze's single-stepping there; the
#   dynamic loop and the job-control stop (arch-independent), for time,
#   run on amd64 only.
# Time (the guest emulates every instruction: a freeze takes a second or
# two there, and the oracle's two cycles per case ~20 s): the oracle runs
# the cases that hold arch-specific state (registers, signals, a
# terminal, big reservations, the allstate victim) and leaves the others,
# whose state is the same on both arches, to the amd64 run; so are the
# inet cases and TestTCPRepair (TCP_REPAIR's structs are the same on both;
# TestOracle/allfds has a TCP connection the guest carries).
e2e_run=${CRYO_ARM64_RUN:-.}
e2e_skip=${CRYO_ARM64_SKIP:-'^TestFDKindsProved$|^TestChurningTarget$|^TestGoProgram$|^TestGoHTTPServer$|^TestFreezeFaults$/^threads$|^TestPythonThreads$|^TestRedisServer$|^TestJVM$|^TestVim$|^TestJobControl$|^TestCredsThawLacksCapability$|^TestThawChangedFile$|^TestCarryFiles$|^TestPtyPair$|^TestPtySlaveOutside$|^TestCttyBeyondStdio$|^TestTerminalThawOnDevTTY$|^TestTCPRepair$|^TestTCPUnprivileged$|^TestUnprivilegedShm$|^TestExternalPipes$|^TestUnixSockets$|^TestUnixExternalPeer$|^TestThawOnAnotherMachine$|^TestFreezeInterrupted$|^TestFreezeFaults$/^memcheck$|^TestFreezeErrors$/^anon-secret$|^TestTailFollow$|^TestUnprivilegedEvents$|^TestEventsLeaveRunning$|^TestFreezeFaults$/^events$|^TestRegisters$|^TestVictims$/^regs$|^TestImageReadelf$|^TestImageMode$|^TestOracle$/^coverage$|^TestOracle$/./^(shell-log|zombie)$|^TestAllState$/^(shell-log|zombie)$|^TestOracle$/^(memcheck|lowmap|big|sleeper|counter|counter-demo|churn|creds|pipes|inet|events|sockfd|unixsock|paths|shm|ptys)$|^TestOracle$/^pipe$/^fd7$|^TestVDSOProxy$/^(vdsoclock|stopped)$'}

need() {
  if ! command -v "$1" >/dev/null; then
    echo "test-arm64: $1 not found: apt-get install $2 (.ci/run installs it)" >&2
    exit 1
  fi
}
need qemu-system-aarch64 qemu-system-arm
need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
need cpio cpio
if [ ! -e /usr/aarch64-linux-gnu/lib/libc.a ]; then
  echo "test-arm64: no static arm64 libc: apt-get install libc6-dev-arm64-cross" >&2
  exit 1
fi
kernel=$(scripts/arm64/kernel.sh)

rm -rf "$root"
mkdir -p "$root"/{cryo/bin,cryo/tests,cryo/victims,cryo/modules,lib/aarch64-linux-gnu,proc,sys,dev,tmp}
# The kernel's modules the guest loads first, in order (kernel.sh keeps
# them).
kmods=$(dirname "$(dirname "$kernel")")/modules
cp "$kmods"/*.ko "$root/cryo/modules/"

# Go: init, the tools, one test binary per package with tests.
export GOOS=linux GOARCH=arm64 CGO_ENABLED=0
$GO build -trimpath -o "$root/init" ./scripts/arm64/init
$GO build -trimpath -o "$root/cryo/bin/" ./cmd/freeze ./cmd/thaw
# The restorer bin/freeze carries, as make attaches it (the attaching
# runs on the host).
$GO build -trimpath -ldflags='-s -w' -o "$out/restorer" ./cmd/restorer
GOOS= GOARCH= $GO run ./scripts/attach-restorer "$out/restorer" "$root/cryo/bin/freeze"
plan=$root/cryo/plan
{
  echo "# written by scripts/arm64/test.sh"
  # Every skip for a missing facility fails: the exclusions are above.
  echo "env CI=true"
  echo "env CRYO_E2E_BIN_DIR=/cryo/bin"
  echo "env CRYO_E2E_VICTIM_DIR=/cryo/victims"
  while read -r m; do
    echo "module /cryo/modules/$m"
  done <"$kmods/order"
} >"$plan"
mod=$($GO list -m)
e2e_line=
for pkg in $($GO list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ${CRYO_ARM64_PKGS:-./...}); do
  rel=${pkg#"$mod"}
  rel=${rel#/}
  name=$(echo "$rel" | tr / _)
  $GO test -c -o "$root/cryo/tests/$name.test" "./$rel"
  mkdir -p "$root/cryo/src/$rel"
  if [ -d "$rel/testdata" ]; then
    cp -r "$rel/testdata" "$root/cryo/src/$rel/"
  fi
  args="-test.v -test.count=1 -test.timeout=8m"
  if [ "$rel" = e2e ]; then
    # Last: the unit tests fail faster.
    e2e_line="run /cryo/src/$rel /cryo/tests/$name.test $args -test.run=$e2e_run -test.skip=$e2e_skip"
  else
    echo "run /cryo/src/$rel /cryo/tests/$name.test $args" >>"$plan"
  fi
done
[ -n "$e2e_line" ] && echo "$e2e_line" >>"$plan"
unset GOOS GOARCH CGO_ENABLED

# The C victims, named as e2e/victims_test.go's victimFile names them:
# each one plain, and the counter in every flag set the tests use.
cc=aarch64-linux-gnu-gcc
for src in testdata/*.c; do
  name=$(basename "$src" .c)
  [ "$name" = regs ] && continue # x86-64 assembly
  $cc -O2 -g -Wall -o "$root/cryo/victims/$name" "$src"
done
$cc -O2 -g -Wall -o "$root/cryo/victims/counter-static" testdata/counter.c -static
$cc -O2 -g -Wall -o "$root/cryo/victims/counter-pie-fPIE" testdata/counter.c -pie -fPIE
$cc -O2 -g -Wall -o "$root/cryo/victims/counter-no-pie-fno-pie" testdata/counter.c -no-pie -fno-pie
$cc -O2 -g -Wall -o "$root/cryo/victims/vdsoclock-static" testdata/vdsoclock.c -static
# The Go victims (testdata/NAME/main.go), cross-built, static.
for dir in testdata/*/; do
  [ -e "$dir/main.go" ] || continue
  GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $GO build -o "$root/cryo/victims/$(basename "$dir")" "./$dir"
done
# The dynamic ones need the arm64 glibc at its usual place.
for lib in ld-linux-aarch64.so.1 libc.so.6; do
  cp /usr/aarch64-linux-gnu/lib/$lib "$root/lib/aarch64-linux-gnu/"
done
ln -s aarch64-linux-gnu/ld-linux-aarch64.so.1 "$root/lib/ld-linux-aarch64.so.1"

initrd=$out/initramfs.gz
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$initrd"
built=$(date +%s)
echo "test-arm64: built in $((built - start)) s; initramfs $(du -h "$initrd" | cut -f1); booting $kernel"

# -nic none: no NIC, so no ipxe ROM is needed. cortex-a57: -cpu max is
# much slower under TCG.
set +e
timeout --foreground -k 10 "$timeout_s" qemu-system-aarch64 -M virt -cpu cortex-a57 -smp 2 -m 1024 \
  -nographic -nic none -no-reboot \
  -kernel "$kernel" -initrd "$initrd" \
  -append "console=ttyAMA0 panic=-1 loglevel=4" </dev/null 2>&1 | tee "$console"
rc=${PIPESTATUS[0]}
set -e
end=$(date +%s)
log=$(tr -d '\r' <"$console")
result=$(printf '%s\n' "$log" | sed -n 's/^CRYO_ARM64_RESULT=\([A-Z]*\)$/\1/p' | tail -n1)
fail() {
  echo "test-arm64: FAIL: $* (guest ran $((end - built)) s; console in $console)" >&2
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
FAIL) fail "tests failed in the guest" ;;
NOTESTS) fail "a test binary ran no test" ;;
INITERROR) fail "the guest's init could not run the tests" ;;
"") fail "no result marker on the console (qemu exit status $rc)" ;;
*) fail "unknown result $result" ;;
esac
if [ "$rc" != 0 ]; then
  fail "qemu exited with status $rc"
fi
echo "test-arm64: PASS in $((end - start)) s (guest $((end - built)) s)"
