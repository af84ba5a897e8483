package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// TestThawRestorePidTerminal: thawed with --restore-pid on a terminal
// whose foreground group is the thaw's, the process gets a group of its
// own and the terminal with it, so that what the terminal sends reaches
// it directly and once; a signal sent to the thaw is forwarded once;
// ^Z stops both, SIGCONT to the thaw continues both; ^C ends it, and
// the thaw dies of the same signal.
func TestThawRestorePidTerminal(t *testing.T) {
	setup(t)
	if os.Geteuid() != 0 {
		skipOrFail(t, "--restore-pid needs root")
	}
	m, s := openPTY(t)
	p := startProc(t, "signals", buildVictim(t, "signals"), nil, withStdio(s))
	lines := ptyLines(m)
	expectLine(t, lines, "ready")
	m.Write([]byte("usr1\n"))
	expectLine(t, lines, "state usr1=1 usr2=0 alrm=0 chld=0 onstack=1 blocked=1 pending=1 pipe=ign alt=1")
	pid := p.pid()
	img := filepath.Join(t.TempDir(), "signals.bin")
	freezeKill(t, p, img)

	m2, s2 := openPTY(t)
	th := startProc(t, "thaw --restore-pid", thawBin, []string{"--restore-pid", img}, withStdio(s2), withCtty(s2))
	lines2 := ptyLines(m2)
	m2.Write([]byte("usr1\n"))
	expectLine(t, lines2, "state usr1=2 usr2=0 alrm=0 chld=0 onstack=2 blocked=1 pending=1 pipe=ign alt=1")
	fg, err := unix.IoctlGetInt(int(m2.Fd()), unix.TIOCGPGRP)
	if err != nil {
		t.Fatal(err)
	}
	if fg != pid {
		t.Errorf("the terminal's foreground group is %d, want the restored process's own (%d; the thaw is %d)", fg, pid, th.pid())
	}
	// A signal sent to the thaw reaches the process once: its SIGUSR1
	// handler counts it, then the one the command raises.
	if err := syscall.Kill(th.pid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(lineTimeout); ; {
		m2.Write([]byte("state\n"))
		if l := nextLine(t, lines2, "state "); strings.Contains(l, "usr1=3 ") {
			break
		} else if !strings.Contains(l, "usr1=2 ") || time.Now().After(deadline) {
			t.Fatalf("after SIGUSR1 to the thaw: %q, want usr1=3", l)
		}
		time.Sleep(5 * time.Millisecond) // delivery, bounded above
	}
	m2.Write([]byte("usr1\n"))
	expectLine(t, lines2, "state usr1=4 usr2=0 alrm=0 chld=0 onstack=4")
	// ^Z: the process stops, and the thaw with it (as the shell would
	// see its job stop), the terminal back in the thaw's group; SIGCONT
	// to the thaw (fg) gives it back to the process, which goes on.
	m2.Write([]byte{26})
	waitState(t, th.pid(), "T")
	waitState(t, pid, "T")
	if fg, _ := unix.IoctlGetInt(int(m2.Fd()), unix.TIOCGPGRP); fg != th.pid() {
		t.Errorf("stopped: the terminal's foreground group is %d, want the thaw's %d", fg, th.pid())
	}
	if err := syscall.Kill(th.pid(), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	m2.Write([]byte("usr1\n"))
	expectLine(t, lines2, "state usr1=5 usr2=0 alrm=0 chld=0 onstack=5")
	if fg, _ := unix.IoctlGetInt(int(m2.Fd()), unix.TIOCGPGRP); fg != pid {
		t.Errorf("continued: the terminal's foreground group is %d, want the process's %d", fg, pid)
	}
	m2.Write([]byte{3}) // ^C
	ws := th.waitExit().Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("thaw after ^C: %v, want killed by SIGINT", ws)
	}
	waitGone(t, pid)
}

// nextLine returns the next terminal line starting with prefix.
func nextLine(t *testing.T, ch <-chan string, prefix string) string {
	t.Helper()
	deadline := time.After(lineTimeout)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("terminal closed before a %q line", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			t.Fatalf("no %q line on the terminal within %v", prefix, lineTimeout)
		}
	}
}
