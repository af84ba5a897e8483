#!/usr/bin/env bash
# demo.sh: freeze a running counter into one executable and bring it back.
#
# Needs bin/freeze and bin/thaw (make build) and gcc. Exits non-zero if the
# thawed counter does not continue exactly where the frozen one stopped.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
FREEZE=${FREEZE:-$root/bin/freeze}
for tool in "$FREEZE" gcc; do
	command -v "$tool" >/dev/null || { echo "demo: $tool not found (run make build first)" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cryo-demo.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do
		kill -KILL "$p" 2>/dev/null || true
		{ wait "$p"; } 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

log=$tmp/demo.log

# close_extra_fds closes every fd above 2 in the current shell. The counter
# is started from a subshell that does this and then execs it: a descriptor
# our caller leaked to us (not close-on-exec) would otherwise be inherited,
# and freeze refuses fds it cannot restore yet.
close_extra_fds() {
	local f fd
	for f in /proc/self/fd/*; do
		fd=${f##*/}
		if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
	done
}
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
lines() { wc -l <"$log" | tr -d ' '; }

step "Building testdata/counter-demo.c (prints \"tick N\" every 200 ms, alternately to stdout and stderr)"
gcc -O2 -o "$tmp/counter-demo" "$root/testdata/counter-demo.c"

step "Starting it in the background, stdout and stderr to $log"
# stdin: a pipe (whose writer is gone); stdout, stderr: the log.
{ close_extra_fds; exec "$tmp/counter-demo" >"$log" 2>&1; } < <(true) &
pid=$!
pids+=("$pid")
echo "counter-demo is pid $pid"
sleep 1
# The process substitution's "true" was a child of the subshell that became
# the counter: on bash 5.2 it stays a zombie child of the counter, as
# children of shell-started programs often do. It does not stop a freeze.
zombies=""
for c in $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
	state=$(sed 's/.*) //' /proc/"$c"/stat 2>/dev/null | cut -d' ' -f1) || true
	if [ "$state" = Z ]; then zombies+="$c "; fi
done
echo "its zombie children: ${zombies:-none}"
echo "--- $log after 1 s:"
cat "$log"

step "Freezing pid $pid into $tmp/demo.bin (the original is killed once the image is on disk)"
"$FREEZE" "$pid" -o "$tmp/demo.bin"
{ wait "$pid"; } 2>/dev/null || true
if kill -0 "$pid" 2>/dev/null; then
	echo "demo: FAILED: pid $pid is still running after freeze" >&2
	exit 1
fi
echo "pid $pid is gone."
ls -l "$tmp/demo.bin"
frozen=$(lines)
last=$(tail -n 1 "$log")
echo "the log holds $frozen lines, the last one \"$last\"; nothing writes to it now."

step "Running $tmp/demo.bin: it becomes the counter again and reopens the log at its offset"
"$tmp/demo.bin" </dev/null >"$tmp/thaw.out" 2>"$tmp/thaw.err" &
thawed=$!
pids+=("$thawed")
echo "the restored counter is pid $thawed"
sleep 1.2
echo "--- new lines in $log:"
tail -n +"$((frozen + 1))" "$log"

kill -KILL "$thawed" 2>/dev/null || true
{ wait "$thawed"; } 2>/dev/null || true

step "Checking the log counts 0, 1, 2, ... without a gap or a repeat"
total=$(lines)
if [ "$total" -lt $((frozen + 3)) ]; then
	echo "demo: FAILED: the counter did not continue ($total lines, $frozen at freeze)" >&2
	echo "--- thaw stderr:" >&2
	cat "$tmp/thaw.err" >&2
	exit 1
fi
if ! awk '$0 != "tick " NR-1 { printf "line %d is \"%s\", want \"tick %d\"\n", NR, $0, NR-1; bad = 1; exit } END { exit bad }' "$log" >&2; then
	echo "demo: FAILED: the count was not continued exactly" >&2
	exit 1
fi
echo "ok: ticks 0..$((total - 1)); frozen after tick $((frozen - 1)), the thawed process went on with tick $frozen."
