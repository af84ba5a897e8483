package e2e

import (
	"path/filepath"
	"testing"
)

// TestSignalState: handlers (with their flags and restorer), the blocked
// mask, an ignored signal, a pending blocked signal and the sigaltstack
// all survive freeze → thaw, and the handlers still run.
func TestSignalState(t *testing.T) {
	setup(t)
	p := startProc(t, "signals", buildVictim(t, "signals"), nil)
	p.expect("ready")
	before := p.ask("usr1", "state ")
	const want = "state usr1=1 usr2=0 alrm=0 chld=0 onstack=1 blocked=1 pending=1 pipe=ign alt=1"
	if before != want {
		t.Fatalf("victim before freeze: %q, want %q", before, want)
	}
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(t.TempDir(), "signals.bin")
	freezeKill(t, p, img)

	th := thaw(t, img, false)
	if got := th.ask("state", "state "); got != want {
		t.Errorf("after thaw: %q, want %q", got, want)
	}
	if got, w := th.ask("usr1", "state "), "state usr1=2 usr2=0 alrm=0 chld=0 onstack=2 blocked=1 pending=1 pipe=ign alt=1"; got != w {
		t.Errorf("SIGUSR1 after thaw: %q, want %q", got, w)
	}
	if got, w := th.ask("unblock", "state "), "state usr1=2 usr2=1 alrm=0 chld=0 onstack=2 blocked=0 pending=0 pipe=ign alt=1"; got != w {
		t.Errorf("pending SIGUSR2 after unblock: %q, want %q", got, w)
	}
	th.send("exit 0")
	if st := th.waitExit(); st.ExitCode() != 0 {
		t.Errorf("thawed signals victim: %v, want exit status 0", st)
	}
}
