package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
)

// TestThawInsideRead: a process frozen while blocked reading its stdin pipe
// keeps waiting after thaw, now on the thawing process's stdin, with the
// bytes it had already read (but not yet acted on) still in its memory.
func TestThawInsideRead(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
	p.expect("ready")
	p.ask("one", "got one")
	if _, err := p.stdin.Write([]byte("hel")); err != nil {
		t.Fatal(err)
	}
	p.expect("buffered 3")
	waitInSyscall(t, p, sysRead)

	img := filepath.Join(dir, "pipe.bin")
	freezeKill(t, p, img)

	th := thaw(t, img, true)
	waitInSyscall(t, th, sysRead)
	if _, err := th.stdin.Write([]byte("lo\n")); err != nil {
		t.Fatal(err)
	}
	if got := th.expect("got "); got != "got hello" {
		t.Errorf("got %q, want \"got hello\"", got)
	}
	th.ask("two", "got two")
	th.stdin.Close() // EOF: the victim returns 0 from main
	if st := th.waitExit(); st.ExitCode() != 0 {
		t.Errorf("thawed pipe victim: %v, want exit status 0", st)
	}
}

// testThawExec: the process that runs the image becomes the restored
// program (same pid, exec semantics), talks over that process's pipes and
// its exit status is the program's.
func testThawExec(t *testing.T, viaThaw bool) {
	setup(t)
	dir := t.TempDir()
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
	p.expect("ready")
	origPid := p.ask("pid", "pid ")
	waitInSyscall(t, p, sysRead)

	img := filepath.Join(dir, "pipe.bin")
	freezeKill(t, p, img)

	th := thaw(t, img, viaThaw)
	want := "pid " + strconv.Itoa(th.pid())
	if got := th.ask("pid", "pid "); got != want {
		t.Errorf("restored process says %q, want %q (it was %q before the freeze)", got, want, origPid)
	}
	th.ask("hello", "got hello")
	th.send("exit 5")
	if st := th.waitExit(); st.ExitCode() != 5 {
		t.Errorf("%s: %v, want exit status 5", th.name, st)
	}
}

// TestThawCommand: "thaw OUT".
func TestThawCommand(t *testing.T) { testThawExec(t, true) }

// TestRunImageDirectly: "./OUT".
func TestRunImageDirectly(t *testing.T) { testThawExec(t, false) }
