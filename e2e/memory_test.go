package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	cproc "github.com/cryo-project/cryo/proc"
)

// Issue 7, item 3: memory independent of virtual size. testdata/reserve.c
// reserves 64 GiB (or 1 TiB) PROT_NONE|MAP_NORESERVE, as ASan, Go, the
// JVM and V8 do, with a small read-write window in which each mapping
// carries one of the settings a thaw must give back.

// maxFreezeRSS bounds the freeze command's peak memory, whatever the
// size of the reservation.
const maxFreezeRSS = 64 << 20

// ignoredVmFlags are VmFlags not compared one for one:
//   - ac (VM_ACCOUNT, charged as committed memory): a mapping made
//     read-only keeps the charge it had while writable (mm/mprotect.c,
//     mprotect_fixup); thaw creates it read-only and uncharged. The
//     restored process may have less charge, never more: checked apart.
//   - sd (soft-dirty) is set on every new mapping until clear_refs.
//
// gu (VM_MAYBE_GUARD, 6.18: a guard region was installed in the mapping
// once) is compared: thaw installs the guard regions, which mark the
// mappings holding one. It would differ for a mapping split after its
// guard region was installed, whose pieces all keep the mark: the image
// does not hold it (reserve.c installs its guard region last).
var ignoredVmFlags = map[string]bool{"sd": true}

// vmaLine is what the test compares of one mapping.
type vmaLine struct {
	line  string // range, perms, offset, dev, inode, path
	flags []string
	ac    bool
	size  uint64
}

func vmaLines(tb testing.TB, pid int) []vmaLine {
	tb.Helper()
	maps, err := cproc.Maps(pid)
	if err != nil {
		tb.Fatal(err)
	}
	var out []vmaLine
	for _, m := range maps {
		ino := m.Inode
		if m.Path == "/dev/zero (deleted)" || strings.HasPrefix(m.Path, "[anon_shmem:") {
			ino = 0 // shared anonymous memory: a new shmem object at thaw
		}
		l := vmaLine{
			line: fmt.Sprintf("%x-%x %s %08x %s %d %s", m.Start, m.End, m.Perms, m.Offset, m.Dev, ino, m.Path),
			ac:   m.VmFlags["ac"],
			size: m.Len(),
		}
		for f := range m.VmFlags {
			if !ignoredVmFlags[f] {
				l.flags = append(l.flags, f)
			}
		}
		sort.Strings(l.flags)
		out = append(out, l)
	}
	return out
}

// charged is the committed memory the process's mappings are charged
// with: the sum of the mappings with VM_ACCOUNT (mm/mmap.c,
// accountable_mapping).
func charged(ls []vmaLine) uint64 {
	var n uint64
	for _, l := range ls {
		if l.ac {
			n += l.size
		}
	}
	return n
}

func committedAS(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Committed_AS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatalf("meminfo: %q", l)
			}
			return kb << 10
		}
	}
	tb.Fatal("no Committed_AS in /proc/meminfo")
	return 0
}

// freezePeak runs freeze with args, which must succeed, and returns its
// peak resident memory (getrusage's ru_maxrss of the child).
func freezePeak(tb testing.TB, args ...string) (toolResult, int64) {
	tb.Helper()
	var cmd *exec.Cmd
	r := runToolWith(tb, toolEnv{start: func(c *exec.Cmd) { cmd = c }}, freezeBin, args...)
	requireNoCrash(tb, r)
	if r.code != 0 {
		tb.Fatalf("freeze failed:\n%s", r)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		tb.Fatalf("no rusage for freeze")
	}
	return r, ru.Maxrss << 10 // kB
}

func TestReservation64G(t *testing.T) { testReservation(t, 64) }
func TestReservation1T(t *testing.T)  { testReservation(t, 1024) }

func testReservation(t *testing.T, gib int) {
	setup(t)
	dir := t.TempDir()
	bin := buildVictim(t, "reserve")
	p := startProc(t, "reserve", bin, []string{strconv.Itoa(gib), filepath.Join(dir, "reserve.dat")})
	p.expect("ready")
	features := p.ask("features", "features ")
	sum := p.ask("sum", "sum ")
	sums := p.ask("sums", "sums")
	guard := p.ask("guard", "guard ")
	t.Logf("%d GiB reservation; %s; %s", gib, features, guard)
	waitInSyscall(t, p, sysRead)
	before := vmaLines(t, p.pid())

	img := filepath.Join(dir, "reserve.bin")
	r, peak := freezePeak(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()
	t.Logf("freeze of the %d GiB reservation: %v, peak RSS %.1f MiB, image %.1f MiB",
		gib, r.dur.Round(1e6), float64(peak)/(1<<20), float64(fileSize(t, img))/(1<<20))
	if peak > maxFreezeRSS {
		t.Errorf("freeze's peak RSS is %d bytes for a %d GiB reservation, want at most %d", peak, gib, maxFreezeRSS)
	}

	c0 := committedAS(t)
	th := thaw(t, img, false)
	if got := th.ask("sum", "sum "); got != sum {
		t.Errorf("memory changed across freeze and thaw:\n before %s\n after  %s\n%s", sum, got, regionsChanged(sums, th.ask("sums", "sums")))
	}
	c1 := committedAS(t)
	if got := th.ask("guard", "guard "); got != guard {
		t.Errorf("guard region after thaw: %q, want %q as before", got, guard)
	}
	after := vmaLines(t, th.pid())

	// /proc/PID/maps line for line, and the VmFlags of each.
	n := max(len(before), len(after))
	for i := 0; i < n; i++ {
		var b, a vmaLine
		if i < len(before) {
			b = before[i]
		}
		if i < len(after) {
			a = after[i]
		}
		if b.line != a.line {
			t.Errorf("maps line %d:\n original %s %v\n restored %s %v", i, b.line, b.flags, a.line, a.flags)
			continue
		}
		if !slices.Equal(a.flags, b.flags) {
			t.Errorf("%s: VmFlags %v, want %v", a.line, a.flags, b.flags)
		}
		if a.ac && !b.ac {
			t.Errorf("%s: charged as committed memory (ac), the original was not", a.line)
		}
	}
	cb, ca := charged(before), charged(after)
	t.Logf("committed memory charged to the mappings: original %d KiB, restored %d KiB; Committed_AS %+d KiB over the thaw",
		cb>>10, ca>>10, (c1-c0)>>10)
	if ca > cb {
		t.Errorf("the restored process is charged %d bytes of committed memory, the original %d", ca, cb)
	}

	// A shared mapping that could be made writable still can.
	if got := th.ask("upgrade", "upgrade "); got != "upgrade ok" {
		t.Errorf("mprotect of the shared file mapping to read-write after thaw: %q", got)
	}
	th.ask("touch", "touched")
	if got := th.ask("sum", "sum "); got != sum {
		t.Errorf("memory changed by touching it after thaw:\n before %s\n after  %s\n%s", sum, got, regionsChanged(sums, th.ask("sums", "sums")))
	}
	th.send("exit 3")
	if st := th.waitExit(); st.ExitCode() != 3 {
		t.Errorf("restored process: %v, want exit status 3", st)
	}
}

// regionsChanged names the regions of the reserve victim whose hash
// differs between two of its "sums" answers.
func regionsChanged(before, after string) string {
	was := map[string]string{}
	for _, f := range strings.Fields(before)[1:] {
		if k, v, ok := strings.Cut(f, "="); ok {
			was[k] = v
		}
	}
	var out []string
	for _, f := range strings.Fields(after)[1:] {
		if k, v, ok := strings.Cut(f, "="); ok && was[k] != v {
			out = append(out, fmt.Sprintf(" region %s: before %s, after %s", k, was[k], v))
		}
	}
	if len(out) == 0 {
		return " no region's own hash differs"
	}
	return strings.Join(out, "\n")
}

// TestReservationLockLimit: a process that had more memory locked than
// the thawing user may lock (root locked 16 MiB; nobody's RLIMIT_MEMLOCK
// is lower) does not come back with its memory silently unlocked: the
// thaw fails, naming the mapping and the limit.
func TestReservationLockLimit(t *testing.T) {
	dir, bin := privDir(t, "reserve")
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur >= 20<<20 {
		skipOrFail(t, "RLIMIT_MEMLOCK is %d: nobody could lock what the victim locks", lim.Cur)
	}
	home := userDir(t, dir)
	p := startProc(t, "reserve", bin["reserve"], []string{"64"}, inDir(dir))
	p.expect("ready")
	if got := p.ask("lockbig", "lockbig "); got != "lockbig ok" {
		t.Fatalf("the victim could not lock 16 MiB as root: %q", got)
	}
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(home, "root.bin")
	freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()
	if err := os.Chown(img, int(nobody.Uid), int(nobody.Gid)); err != nil {
		t.Fatal(err)
	}
	th := thaw(t, img, false, asUser(nobody))
	st := th.waitExit()
	if st.ExitCode() != 1 {
		t.Fatalf("thaw as nobody: %v, want exit status 1\n%s", st, th.diag())
	}
	// The helper, not the thaw's child, says why: its line may reach
	// the pipe's reader after the exit is seen.
	msg, _ := th.errs.nextLine(lineTimeout)
	t.Logf("thaw as nobody: %s", strings.TrimSpace(msg))
	for _, want := range []string{"mlock2", "RLIMIT_MEMLOCK", "(anonymous)", "cannot allocate memory"} {
		if !strings.Contains(msg, want) {
			t.Errorf("thaw's error should mention %q:\n%s", want, msg)
		}
	}
}
