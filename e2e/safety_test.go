package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The first promise of cryo: a freeze that fails, for any reason and at
// any step, leaves its target running exactly as it was, and leaves no
// output behind. These tests inject a fault at each step (the freeze
// command's CRYO_TEST_FAULT / CRYO_TEST_PAUSE hooks, used only here), or
// disturb the target and the freeze while it runs, and then prove the
// target's state with self-checking victims and with /proc.

// freezeSteps are the steps of a freeze, in order (freeze/fault.go).
var freezeSteps = []string{"seized", "injecting", "thread", "collected", "dumping", "written", "fsync"}

// procSnapshot is what /proc shows of a process that a failed freeze must
// not change: its mappings, its descriptors with offsets and flags, and
// its signal state.
func procSnapshot(tb testing.TB, pid int) string {
	tb.Helper()
	var b strings.Builder
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		tb.Fatal(err)
	}
	b.Write(maps)
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		tb.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		info, _ := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		var keep []string
		for _, l := range strings.Split(string(info), "\n") {
			if strings.HasPrefix(l, "pos:") || strings.HasPrefix(l, "flags:") {
				keep = append(keep, strings.Join(strings.Fields(l), " "))
			}
		}
		fds = append(fds, fmt.Sprintf("fd %s -> %s %s", e.Name(), link, strings.Join(keep, " ")))
	}
	sort.Strings(fds)
	b.WriteString(strings.Join(fds, "\n") + "\n")
	st, err := procStatus(pid)
	if err != nil {
		tb.Fatal(err)
	}
	for _, k := range []string{"State", "TracerPid", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "Threads"} {
		fmt.Fprintf(&b, "%s: %s\n", k, st[k])
	}
	return b.String()
}

// startChecked starts the named victim, idle in read(2), and returns a function
// that proves, after a failed freeze, that its state is what it was.
func startChecked(t *testing.T, name string) (*proc, func()) {
	t.Helper()
	var p *proc
	var verify func()
	switch name {
	case "memcheck":
		p = startProc(t, name, buildVictim(t, name), nil)
		p.expect("ready")
		sum := p.ask("sum", "sum ")
		inc := incValue(t, p.ask("inc", "inc "))
		verify = func() {
			if got := p.ask("sum", "sum "); got != sum {
				t.Errorf("memory changed:\n before %s\n after  %s", sum, got)
			}
			if got := incValue(t, p.ask("inc", "inc ")); got != inc+1 {
				t.Errorf("inc = %d, want %d", got, inc+1)
			}
		}
	case "signals":
		p = startProc(t, name, buildVictim(t, name), nil)
		p.expect("ready")
		st := p.ask("state", "state ")
		verify = func() {
			if got := p.ask("state", "state "); got != st {
				t.Errorf("signal state changed:\n before %s\n after  %s", st, got)
			}
			if got := p.ask("usr1", "state "); !strings.Contains(got, "usr1=1 ") {
				t.Errorf("SIGUSR1 handler after the failed freeze: %s", got)
			}
		}
	case "events":
		// Every event fd: a freeze that fails after reading them (a
		// timerfd_gettime that moved a timer on, fdinfo) leaves each
		// as it was for the process.
		p = startProc(t, name, buildVictim(t, name), nil, inDir(t.TempDir()))
		p.expect("ready")
		check := p.ask("check", "check ")
		if !strings.HasPrefix(check, "check ok ") {
			t.Fatal(check)
		}
		verify = func() {
			if got := p.ask("check", "check "); got != check {
				t.Errorf("event fds after the failed freeze:\n before %s\n after  %s", check, got)
			}
		}
	case "regs":
		// The registers victim is assembly: regs.c on x86-64, its twin
		// regs-arm64.c on arm64.
		if runtime.GOARCH == "arm64" {
			p = startProc(t, name, buildVictim(t, "regs-arm64"), nil)
			p.expect("ready")
		} else {
			requireAMD64(t)
			p = startProc(t, name, buildVictim(t, name), nil)
			p.expect("ready mode=")
		}
		verify = func() {
			if _, err := p.stdin.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if line, ok := p.out.nextLine(lineTimeout); !ok || line != "regs ok" {
				t.Errorf("registers after the failed freeze: %q\n%s", line, p.diag())
			}
		}
	case "threads":
		// Every thread: its mask, its pending signals (one for worker
		// 1, one for the process, pending across the failed freeze),
		// its state in TLS and on its stack, its cached tid.
		p = startProc(t, name, buildVictim(t, name), nil)
		p.expect("ready")
		p.ask("pend", "pend ok")
		tick := p.ask("tick", "tick ")
		tasks := taskSnapshot(t, p.pid())
		verify = func() {
			if got := taskSnapshot(t, p.pid()); got != tasks {
				t.Errorf("threads changed by the failed freeze:\n--- before\n%s--- after\n%s", tasks, got)
			}
			if got, want := p.ask("tick", "tick "), nextTick(t, tick); got != want {
				t.Errorf("threads after the failed freeze:\n  got  %s\n  want %s", got, want)
			}
			if got := p.ask("take", "take "); got != "take w1=12/0 others=none main=35/77" {
				t.Errorf("pending signals after the failed freeze: %q", got)
			}
		}
	default:
		t.Fatalf("no checked victim %q", name)
	}
	waitInSyscall(t, p, sysRead)
	return p, verify
}

// taskSnapshot is each thread's name, blocked and pending signals, in
// tid order.
func taskSnapshot(t *testing.T, pid int) string {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:", e.Name())
		for _, l := range strings.Split(string(st), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && (k == "Name" || k == "SigBlk" || k == "SigPnd" || k == "ShdPnd") {
				fmt.Fprintf(&b, " %s=%s", k, strings.TrimSpace(v))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// requireNoOutput fails if anything appeared in dir.
func requireNoOutput(t *testing.T, dir string) {
	t.Helper()
	for name := range dirNames(dir) {
		t.Errorf("a failed freeze left %s behind", filepath.Join(dir, name))
	}
}

// requireIntact: the target runs as before, /proc shows the same state,
// and the victim proves its own.
func requireIntact(t *testing.T, p *proc, before string, verify func()) {
	t.Helper()
	p.requireUndisturbed()
	waitInSyscall(t, p, sysRead)
	if after := procSnapshot(t, p.pid()); after != before {
		t.Errorf("/proc state changed by the failed freeze:\n--- before\n%s--- after\n%s", before, after)
	}
	verify()
}

// TestFreezeFaults: the fault matrix. Each step of a freeze fails in turn,
// on victims that check their memory, signal state, registers, event
// fds and threads.
func TestFreezeFaults(t *testing.T) {
	setup(t)
	for _, victim := range []string{"memcheck", "signals", "regs", "events", "threads"} {
		for _, step := range freezeSteps {
			t.Run(victim+"/"+step, func(t *testing.T) {
				p, verify := startChecked(t, victim)
				before := procSnapshot(t, p.pid())
				dir := t.TempDir()
				r := runToolWith(t, toolEnv{env: []string{"CRYO_TEST_FAULT=" + step}},
					freezeBin, "-o", filepath.Join(dir, "out.bin"), strconv.Itoa(p.pid()))
				requireToolError(t, r, 1, []string{"freeze: "}, "injected fault", step)
				requireNoOutput(t, dir)
				requireIntact(t, p, before, verify)
			})
		}
	}
}

// pausedFreeze runs freeze with a pause at step; during runs while it is
// paused (the target seized and stopped); then, if during returns true,
// the pause ends and the freeze goes on (else it stays paused until
// freeze gives up by itself, say on a signal).
func pausedFreeze(t *testing.T, step string, during func(freeze *exec.Cmd) bool, args ...string) toolResult {
	t.Helper()
	flag := filepath.Join(t.TempDir(), "paused")
	return runToolWith(t, toolEnv{
		env: []string{"CRYO_TEST_PAUSE=" + step + ":" + flag},
		start: func(cmd *exec.Cmd) {
			deadline := time.Now().Add(lineTimeout)
			for {
				if _, err := os.Stat(flag); err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("freeze never reached step %s", step)
					return
				}
				time.Sleep(time.Millisecond)
			}
			if during(cmd) {
				os.Remove(flag)
			}
		},
	}, freezeBin, args...)
}

// TestFreezeInterrupted: SIGINT or SIGTERM sent to freeze at any step
// stops it; the target goes on as it was.
func TestFreezeInterrupted(t *testing.T) {
	setup(t)
	for i, step := range freezeSteps[:6] {
		sig := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM}[i%2]
		t.Run(step+"/"+sig.String(), func(t *testing.T) {
			p, verify := startChecked(t, "memcheck")
			before := procSnapshot(t, p.pid())
			dir := t.TempDir()
			r := pausedFreeze(t, step, func(cmd *exec.Cmd) bool { cmd.Process.Signal(sig); return false },
				"-o", filepath.Join(dir, "out.bin"), strconv.Itoa(p.pid()))
			requireToolError(t, r, 1, []string{"freeze: "}, "interrupted")
			requireNoOutput(t, dir)
			requireIntact(t, p, before, verify)
		})
	}
}

// TestTargetDiesDuringFreeze: the target killed while seized: freeze says
// so, and writes nothing.
func TestTargetDiesDuringFreeze(t *testing.T) {
	setup(t)
	for _, step := range []string{"seized", "injecting", "collected"} {
		t.Run(step, func(t *testing.T) {
			p, _ := startChecked(t, "memcheck")
			dir := t.TempDir()
			r := pausedFreeze(t, step, func(*exec.Cmd) bool { syscall.Kill(p.pid(), syscall.SIGKILL); return true },
				"-o", filepath.Join(dir, "out.bin"), strconv.Itoa(p.pid()))
			requireToolError(t, r, 1, []string{"freeze: "}, "exited during the freeze|no such process")
			requireNoOutput(t, dir)
			if st := p.waitExit(); st.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Errorf("victim: %v, want killed by SIGKILL", st)
			}
		})
	}
}

// TestSignalsDuringFreeze: signals sent to the target while it is frozen
// (seized, even in the middle of injected syscalls) are delivered after,
// not lost; they are also in the image, pending, and the thawed copy gets
// them too.
func TestSignalsDuringFreeze(t *testing.T) {
	setup(t)
	for _, step := range []string{"seized", "injecting", "dumping"} {
		t.Run(step, func(t *testing.T) {
			p := startProc(t, "signals", buildVictim(t, "signals"), nil)
			p.expect("ready")
			waitInSyscall(t, p, sysRead)
			img := filepath.Join(t.TempDir(), "sig.bin")
			r := pausedFreeze(t, step, func(*exec.Cmd) bool {
				for _, s := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGALRM, syscall.SIGCHLD} {
					syscall.Kill(p.pid(), s)
				}
				return true
			}, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
			if r.code != 0 {
				t.Fatalf("freeze failed:\n%s", r)
			}
			const want = "state usr1=1 usr2=0 alrm=1 chld=1 onstack=1 blocked=1 pending=1 pipe=ign alt=1"
			if got := p.ask("state", "state "); got != want {
				t.Errorf("original after freeze: %q, want %q", got, want)
			}
			th := thaw(t, img, false)
			if got := th.ask("state", "state "); got != want {
				t.Errorf("thawed copy: %q, want %q (the signals were pending in the image)", got, want)
			}
		})
	}
}

// TestStopContDuringFreeze: job control from elsewhere during a freeze
// takes effect as it would have: SIGSTOP leaves the target stopped after
// the freeze, SIGSTOP then SIGCONT leaves it running.
func TestStopContDuringFreeze(t *testing.T) {
	setup(t)
	for _, tc := range []struct {
		name        string
		sigs        []syscall.Signal
		wantStopped bool
	}{
		{"stop", []syscall.Signal{syscall.SIGSTOP}, true},
		{"stop-cont", []syscall.Signal{syscall.SIGSTOP, syscall.SIGCONT}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, verify := startChecked(t, "memcheck")
			img := filepath.Join(t.TempDir(), "out.bin")
			r := pausedFreeze(t, "injecting", func(*exec.Cmd) bool {
				for _, s := range tc.sigs {
					syscall.Kill(p.pid(), s)
				}
				return true
			}, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
			if r.code != 0 {
				t.Fatalf("freeze failed:\n%s", r)
			}
			if tc.wantStopped {
				waitState(t, p.pid(), "T")
				syscall.Kill(p.pid(), syscall.SIGCONT)
			}
			p.requireUndisturbed()
			verify()
		})
	}
}

// waitState waits until /proc/PID/status State starts with state.
func waitState(t *testing.T, pid int, state string) {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		st, err := procStatus(pid)
		if err == nil && strings.HasPrefix(st["State"], state) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: State %q, want %s", pid, st["State"], state)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOutputDirFull: the image does not fit (a 2 MiB tmpfs): a clear
// error, no partial file, the target as it was.
func TestOutputDirFull(t *testing.T) {
	setup(t)
	if os.Geteuid() != 0 {
		skipOrFail(t, "mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=2m"); err != nil {
		skipOrFail(t, "mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	p, verify := startChecked(t, "memcheck")
	before := procSnapshot(t, p.pid())
	r := runTool(t, freezeBin, "-o", filepath.Join(dir, "out.bin"), strconv.Itoa(p.pid()))
	requireToolError(t, r, 1, []string{"freeze: "}, "no space left on device", dir)
	requireNoOutput(t, dir)
	requireIntact(t, p, before, verify)
}

// TestChurningTarget: a target that keeps forking, creating threads and
// exec'ing itself is frozen again and again: each freeze either succeeds
// (threads and all) or refuses a passing moment cleanly (a live child,
// an exec in the middle of the seize), the target goes on, and
// every image thaws into a process that goes on churning.
func TestChurningTarget(t *testing.T) {
	setup(t)
	p := startProc(t, "churn", buildVictim(t, "churn"), nil)
	p.expect("ready")
	dir := t.TempDir()
	ok := 0
	for i := 0; i < 20 && ok < 3; i++ {
		img := filepath.Join(dir, fmt.Sprintf("churn%d.bin", i))
		r := runTool(t, freezeBin, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
		requireNoCrash(t, r)
		if r.code != 0 {
			requireToolError(t, r, 1, []string{"freeze: "}, "child processes|exited during|exec'd a new program")
			if _, err := os.Stat(img); err == nil {
				t.Errorf("failed freeze left %s", img)
			}
			continue
		}
		ok++
		p.ask("ping", "pong ")
		th := thaw(t, img, false)
		a := th.ask("ping", "pong ")
		b := th.ask("ping", "pong ")
		if a == b {
			t.Errorf("thawed churn does not churn: %q then %q", a, b)
		}
		th.send("exit 0")
		th.waitExit()
	}
	if ok == 0 {
		t.Fatal("no freeze of the churning target succeeded in 20 tries")
	}
	p.ask("ping", "pong ")
	p.requireUndisturbed()
}

// TestStoppedTarget: a process in job-control stop is frozen and thawed
// stopped; SIGCONT brings it back. --leave-running leaves it stopped.
func TestStoppedTarget(t *testing.T) {
	setup(t)
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	syscall.Kill(p.pid(), syscall.SIGSTOP)
	waitState(t, p.pid(), "T")
	dir := t.TempDir()
	snap := filepath.Join(dir, "snap.bin")
	freeze(t, "--leave-running", "-o", snap, strconv.Itoa(p.pid()))
	waitState(t, p.pid(), "T")
	syscall.Kill(p.pid(), syscall.SIGCONT)
	p.ask("one", "got one")

	th := thaw(t, snap, false)
	waitState(t, th.pid(), "T")
	syscall.Kill(th.pid(), syscall.SIGCONT)
	th.ask("two", "got two")
}
