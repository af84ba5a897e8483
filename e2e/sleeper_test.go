package e2e

import (
	"path/filepath"
	"testing"
	"time"
)

// TestThawInsideSleep: a process frozen in the middle of a 3 s sleep comes
// back: the sleep either fails with EINTR or finishes, it does not crash,
// and it serves requests afterwards.
func TestThawInsideSleep(t *testing.T) {
	for _, tc := range []struct {
		mode string
		nrs  []int64
	}{
		{"clock", []int64{sysClockNanosleep}},
		{"sleep", []int64{sysClockNanosleep, sysNanosleep}},
		{"nanosleep", []int64{sysNanosleep}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			setup(t)
			dir := t.TempDir()
			p := startProc(t, "sleeper", buildVictim(t, "sleeper"), []string{tc.mode, "3"})
			p.expect("sleeping " + tc.mode)
			waitInSyscall(t, p, tc.nrs...)

			img := filepath.Join(dir, "sleeper.bin")
			freezeKill(t, p, img)
			if line, ok := p.out.nextLine(0); ok {
				t.Fatalf("the original printed %q before it was frozen: freeze took longer than the 3 s sleep\n%s", line, p.diag())
			}

			start := time.Now()
			th := thaw(t, img, false)
			woke := th.expect("woke ")
			t.Logf("thawed sleeper: %q after %v", woke, time.Since(start).Round(time.Millisecond))
			for _, want := range []string{"pong 1", "pong 2"} {
				if got := th.ask("ping", "pong "); got != want {
					t.Errorf("ping: %q, want %q", got, want)
				}
			}
			th.send("exit 4")
			if st := th.waitExit(); st.ExitCode() != 4 {
				t.Errorf("thawed sleeper: %v, want exit status 4", st)
			}
		})
	}
}
