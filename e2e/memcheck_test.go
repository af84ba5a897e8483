package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// maxMemcheckImage bounds memcheck's image: it has about 15 MiB of
// touched memory, plus a 64 MiB mostly untouched mapping and a 1 GiB
// reserve (256 MiB of it read-write) that must cost nothing.
const maxMemcheckImage = 64 << 20

func incValue(tb testing.TB, line string) int {
	tb.Helper()
	n, err := strconv.Atoi(line[len("inc "):])
	if err != nil {
		tb.Fatalf("bad answer %q", line)
	}
	return n
}

// TestMemcheck: heap, .data, .bss, stack and mmap contents survive a
// freeze and thaw, untouched memory stays out of the image, and the
// restored process exits with its own status.
func TestMemcheck(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	p := startProc(t, "memcheck", buildVictim(t, "memcheck"), nil)
	p.expect("ready")
	sum := p.ask("sum", "sum ")
	inc := incValue(t, p.ask("inc", "inc "))
	waitInSyscall(t, p, sysRead)

	img := filepath.Join(dir, "memcheck.bin")
	freezeKill(t, p, img)
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image: %d bytes (%.1f MiB)", fi.Size(), float64(fi.Size())/(1<<20))
	if fi.Size() > maxMemcheckImage {
		t.Errorf("image is %d bytes, want at most %d: untouched memory must not be saved", fi.Size(), maxMemcheckImage)
	}

	th := thaw(t, img, false)
	if got := th.ask("sum", "sum "); got != sum {
		t.Errorf("memory changed across freeze and thaw:\n before %s\n after  %s", sum, got)
	}
	if got := incValue(t, th.ask("inc", "inc ")); got != inc+1 {
		t.Errorf("inc after thaw = %d, want %d", got, inc+1)
	}
	if got := th.ask("pid", "pid "); got != "pid "+strconv.Itoa(th.pid()) {
		t.Errorf("restored process says %q, want it to be the thawing process %d", got, th.pid())
	}
	th.send("exit 7")
	if st := th.waitExit(); st.ExitCode() != 7 {
		t.Errorf("restored process: %v, want exit status 7", st)
	}
}

// TestLeaveRunning: with --leave-running the original continues untouched
// and the thawed copy continues from the frozen state; the two then go
// their own ways.
func TestLeaveRunning(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	p := startProc(t, "memcheck", buildVictim(t, "memcheck"), nil)
	p.expect("ready")
	sum := p.ask("sum", "sum ")
	inc := incValue(t, p.ask("inc", "inc "))
	waitInSyscall(t, p, sysRead)

	img := filepath.Join(dir, "memcheck.bin")
	freeze(t, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
	p.requireUndisturbed()
	if got := p.ask("sum", "sum "); got != sum {
		t.Errorf("original's memory changed by freeze --leave-running:\n before %s\n after  %s", sum, got)
	}
	if got := incValue(t, p.ask("inc", "inc ")); got != inc+1 {
		t.Errorf("original: inc = %d, want %d", got, inc+1)
	}

	th := thaw(t, img, true)
	if got := th.ask("sum", "sum "); got != sum {
		t.Errorf("copy's memory differs:\n original %s\n copy     %s", sum, got)
	}
	if got := incValue(t, th.ask("inc", "inc ")); got != inc+1 {
		t.Errorf("copy: inc = %d, want %d (continuing from the frozen state)", got, inc+1)
	}
	if got := incValue(t, p.ask("inc", "inc ")); got != inc+2 {
		t.Errorf("original: inc = %d, want %d", got, inc+2)
	}
	if got := incValue(t, th.ask("inc", "inc ")); got != inc+2 {
		t.Errorf("copy: inc = %d, want %d", got, inc+2)
	}
	if p.pid() == th.pid() {
		t.Fatalf("original and copy have the same pid %d", p.pid())
	}
	th.send("exit")
	if st := th.waitExit(); st.ExitCode() != 0 {
		t.Errorf("copy: %v, want exit status 0", st)
	}
	if got := p.ask("pid", "pid "); got != "pid "+strconv.Itoa(p.pid()) {
		t.Errorf("original says %q after the copy exited", got)
	}
}
