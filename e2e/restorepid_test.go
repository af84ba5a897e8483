package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestThawRestorePid: thaw --restore-pid gives the thawed process its
// frozen pid and every thread its tid, as a child of the thaw, which
// stays as a thin parent: the process proves its state (its threads'
// counts, signals still pending for a thread and the process), a
// SIGTERM sent to the thaw reaches it and the thaw dies of it, and an
// exit status comes back through the thaw. With the pid taken (a snapshot
// whose original still runs) thaw refuses in one line, starting nothing.
func TestThawRestorePid(t *testing.T) {
	setup(t)
	if os.Geteuid() != 0 {
		skipOrFail(t, "--restore-pid needs root")
	}
	dir := t.TempDir()
	p := startProc(t, "threads", buildVictim(t, "threads"), []string{"2"})
	p.expect("ready")
	tick := p.ask("tick", "tick ")
	p.ask("pend", "pend ok")
	pid := p.pid()
	tids := taskIDs(t, pid)
	t.Logf("pid %d, threads %v", pid, tids)

	// Taken: a snapshot, the original still running with the pid.
	snap := filepath.Join(dir, "snap.bin")
	freeze(t, "--leave-running", "-o", snap, strconv.Itoa(pid))
	r := runTool(t, thawBin, "--restore-pid", snap)
	requireToolError(t, r, 1, []string{"thaw: "}, strconv.Itoa(pid), "taken")
	if got := p.ask("tick", "tick "); got == tick {
		t.Errorf("the original after the refused thaw: %q, the same as before", got)
	}

	img := filepath.Join(dir, "threads.bin")
	freezeKill(t, p, img)

	// Thaw 1: pid, tids, parent, state; SIGTERM to the thaw.
	th := startProc(t, "thaw --restore-pid", thawBin, []string{"--restore-pid", img})
	checkRestored := func(th *proc) {
		t.Helper()
		// The process answers on the thaw's pipes: by then it runs.
		if got := th.ask("tick", "tick "); !strings.Contains(got, "tids=ok") {
			t.Errorf("tick after thaw: %q", got)
		}
		st, err := procStatus(pid)
		if err != nil {
			t.Fatalf("pid %d after thaw --restore-pid: %v\n%s", pid, err, th.diag())
		}
		if st["PPid"] != strconv.Itoa(th.pid()) {
			t.Errorf("pid %d has parent %s, want the thaw %d", pid, st["PPid"], th.pid())
		}
		if got, want := fmt.Sprint(taskIDs(t, pid)), fmt.Sprint(tids); got != want {
			t.Errorf("thread ids after thaw %s, frozen %s", got, want)
		}
		if strings.HasPrefix(st["Name"], "thaw") {
			t.Errorf("pid %d is %q, not the victim", pid, st["Name"])
		}
	}
	checkRestored(th)
	if got := th.ask("take", "take "); got != "take w1=12/0 others=none main=35/77" {
		t.Errorf("take after thaw: %q", got)
	}
	if err := syscall.Kill(th.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ws := th.waitExit().Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("thaw after SIGTERM: %v, want killed by SIGTERM", ws)
	}
	waitGone(t, pid)

	// Thaw 2: the exit status comes back through the thaw.
	th = startProc(t, "thaw --restore-pid", thawBin, []string{"--restore-pid", img})
	checkRestored(th)
	th.send("exit 7")
	ws = th.waitExit().Sys().(syscall.WaitStatus)
	if !ws.Exited() || ws.ExitStatus() != 7 {
		t.Errorf("thaw after the process's exit 7: %v", ws)
	}
	waitGone(t, pid)
}
