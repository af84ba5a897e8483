package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/files"
	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/inject"
	"github.com/cryo-project/cryo/ptrace"
)

// thaw --restore-pid: the restored process gets its frozen pid (and its
// threads their tids). The caller cannot become that pid, so it stays
// as a thin parent of the restored process:
//
//	thaw (pid T, the user's)       launcher S               helper
//	------------------------       ----------               ------
//	pid and tids free? may we
//	choose them? (else one line,
//	nothing started)
//	start S ─────────────────────▶ as a thaw (launch.go),
//	                               seized, execs the stub ─▶ scratch, stub copy
//	                                                         clone3(CLONE_PARENT|
//	                                                           CLONE_PTRACE,
//	                                                           set_tid={pid}) in S:
//	                                                         C, a copy of the stub,
//	                                                         child of T, pid = pid
//	wait S: exit 0 ◀──────────────  exit_group(0) ◀───────── S ends; C is rebuilt
//	setpgid(C, C); the terminal                              instead (as P in doc.go)
//	to C's group if T had it
//	write "G" ──────────────────────────────────────────────▶ read "G", release C
//	forward signals to C,
//	wait for C: its exit status,
//	or die of its signal
//
// C is in a process group of its own, so that what the terminal sends
// (^C, ^Z, a resize) reaches it once, not again through T; a signal sent
// to T (kill, a supervisor) is forwarded. C stopping (^Z, SIGTTIN) stops
// T, so that the shell sees its job stop; T continued (fg, bg) gives C
// the terminal back if it has it, and continues C. If T dies before the
// "G", the helper sees the pipe close and ends C: nothing runs without
// its parent.

const (
	envRestorePid = "CRYO_RESTORE_PID" // the pid the helper gives the process
	envPidImage   = "CRYO_PID_IMAGE"   // the launcher's image fd
	envPidGo      = "CRYO_PID_GO"      // the launcher's fd of the "G" pipe
	envPidName    = "CRYO_PID_NAME"    // the image's name in messages
	// fdGo is the "G" pipe in the spawn and the helper, after image,
	// ready and channel.
	fdGo = 6
	// capCheckpointRestore is CAP_CHECKPOINT_RESTORE (Linux 5.9).
	capCheckpointRestore = 40
)

// forwarded are the signals thaw passes on to the restored process.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGALRM,
	unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGCONT}

// checkPidsFree refuses, before anything starts, a thaw --restore-pid
// that could not give the process its pid and tids.
func checkPidsFree(p *image.Process) error {
	if !mayChoosePids() {
		return fmt.Errorf("--restore-pid needs root (CAP_CHECKPOINT_RESTORE) to choose pid %d", p.Pid)
	}
	for _, th := range p.Threads {
		if _, err := os.Stat("/proc/" + strconv.Itoa(th.Tid)); err != nil {
			continue
		}
		what := "pid"
		if th.Tid != p.Pid {
			what = fmt.Sprintf("thread id (of the process's thread %d)", th.Tid)
		}
		holder := ""
		if b, err := os.ReadFile("/proc/" + strconv.Itoa(th.Tid) + "/comm"); err == nil {
			holder = " by " + strings.TrimSpace(string(b))
		}
		return fmt.Errorf("--restore-pid: %s %d is taken%s: the process cannot get it back (thaw without --restore-pid gives it this thaw's pid)", what, th.Tid, holder)
	}
	return nil
}

// mayChoosePids tells whether this process has CAP_CHECKPOINT_RESTORE
// or CAP_SYS_ADMIN, which clone3's set_tid needs.
func mayChoosePids() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(capCheckpointRestore) || has(unix.CAP_SYS_ADMIN)
}

// thawAsParent is thaw for --restore-pid in the calling process T: it
// starts the launcher and stays as the restored process's parent. It
// returns only when nothing was started; otherwise it exits as the
// restored process did.
func thawAsParent(f *os.File, path string, p *image.Process, opts Options) error {
	if err := checkPidsFree(p); err != nil {
		return err
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer goR.Close()
	// The launcher's fds: 0-2 and every fd a handoff names at its own
	// number, then the image and the "G" pipe above them.
	top := 2
	var hs []string
	for _, h := range opts.Files.Handoffs {
		hs = append(hs, h.String())
		if h.Path == "" && h.From > top {
			top = h.From
		}
	}
	extra := make([]*os.File, top-2+2)
	for _, h := range opts.Files.Handoffs {
		if h.Path == "" && h.From > 2 {
			extra[h.From-3] = os.NewFile(uintptr(h.From), "handoff")
		}
	}
	imgFD := top + 1
	extra[imgFD-3], extra[imgFD-2] = f, goR
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"cryo-thaw-launcher"}
	cmd.Env = append(os.Environ(), envRole+"=pidlauncher", envPidImage+"="+strconv.Itoa(imgFD),
		envPidGo+"="+strconv.Itoa(imgFD+1), envPidName+"="+path)
	if opts.IgnoreCPU {
		cmd.Env = append(cmd.Env, envNoCPU+"=1")
	}
	if opts.Verbose {
		cmd.Env = append(cmd.Env, envVerbose+"=1")
	}
	if opts.Files.AllowChanged {
		cmd.Env = append(cmd.Env, files.EnvAllowChanged+"=1")
	}
	if len(hs) > 0 {
		cmd.Env = append(cmd.Env, EnvFDs+"="+strings.Join(hs, "\n"))
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = extra
	// From here on the signals wait for the restored process.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the restore launcher: %w", err)
	}
	goR.Close()
	err = cmd.Wait()
	if err != nil {
		// The launcher or the helper said why.
		code := 1
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 0 {
			code = ee.ExitCode()
		}
		os.Exit(code)
	}
	pid := p.Pid
	tty := foregroundTTY()
	if err := unix.Setpgid(pid, pid); err != nil {
		fmt.Fprintf(os.Stderr, "thaw: setpgid(%d): %v\n", pid, err)
	}
	if tty >= 0 {
		giveTerminal(tty, pid)
	}
	goW.Write([]byte{'G'})
	goW.Close()
	os.Exit(parent(pid, tty, sigs))
	return nil
}

// foregroundTTY returns an fd of the controlling terminal if this
// process's group is its foreground group, or -1.
func foregroundTTY() int {
	fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return -1
	}
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() {
		unix.Close(fd)
		return -1
	}
	return fd
}

// giveTerminal makes pgrp the terminal's foreground group. From a
// background group that would stop us with SIGTTOU: it is ignored
// meanwhile.
func giveTerminal(tty, pgrp int) {
	signal.Ignore(unix.SIGTTOU)
	unix.IoctlSetPointerInt(tty, unix.TIOCSPGRP, pgrp)
	signal.Notify(make(chan os.Signal, 1), unix.SIGTTOU) // no longer ignored
	signal.Reset(unix.SIGTTOU)
}

// parent waits for the restored process pid, forwarding the signals in
// sigs to it, and returns its exit status, or dies of its signal.
func parent(pid, tty int, sigs chan os.Signal) int {
	own := unix.Getpgrp()
	go func() {
		for s := range sigs {
			sig := s.(syscall.Signal)
			if sig == unix.SIGCONT && tty >= 0 {
				// fg: the shell gave us the terminal; pass it on.
				if fg, err := unix.IoctlGetInt(tty, unix.TIOCGPGRP); err == nil && fg == own {
					giveTerminal(tty, pid)
				}
			}
			unix.Kill(pid, sig)
		}
	}()
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, unix.WUNTRACED, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "thaw: waiting for pid %d: %v\n", pid, err)
			return 1
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			dieOf(ws.Signal())
			return 128 + int(ws.Signal())
		case ws.Stopped():
			// A job stop: stop with it, the terminal back to our group
			// so that the shell finds it where it left it.
			if tty >= 0 {
				if fg, err := unix.IoctlGetInt(tty, unix.TIOCGPGRP); err == nil && fg == pid {
					giveTerminal(tty, own)
				}
			}
			unix.Kill(os.Getpid(), unix.SIGSTOP)
		}
	}
}

// dieOf ends this process with sig, as the restored process ended,
// without a core file of its own.
func dieOf(sig syscall.Signal) {
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	signal.Reset(sig)
	unix.Kill(os.Getpid(), sig)
	// A signal whose default is not to die (or blocked): give up on it.
	time.Sleep(100 * time.Millisecond)
}

// runPidLauncher is S: a thaw of the image in its own process, which
// tells the helper to give the process its frozen pid in a clone of the
// stub.
func runPidLauncher() int {
	fd, _ := strconv.Atoi(os.Getenv(envPidImage))
	gofd, _ := strconv.Atoi(os.Getenv(envPidGo))
	name := os.Getenv(envPidName)
	if fd < 3 || gofd < 3 {
		fmt.Fprintf(os.Stderr, "thaw: the restore launcher was started without %s/%s\n", envPidImage, envPidGo)
		return 1
	}
	unix.CloseOnExec(fd)
	unix.CloseOnExec(gofd)
	for _, e := range []string{envRole, envPidImage, envPidGo, envPidName} {
		os.Unsetenv(e)
	}
	opts := Options{IgnoreCPU: os.Getenv(envNoCPU) == "1", Verbose: os.Getenv(envVerbose) == "1",
		pidGo: os.NewFile(uintptr(gofd), "go")}
	err := thaw(os.NewFile(uintptr(fd), name), name, opts)
	fmt.Fprintf(os.Stderr, "thaw: %v\n", err)
	return 1
}

// takePid makes the process the helper rebuilds the frozen pid: an
// injected clone3 in the stub S with CLONE_PARENT (the child is the
// thaw's, as S is) and set_tid = pid. The child C, a copy of the stub
// traced from birth, is rebuilt instead of S, which exits with status 0
// (the thaw's sign that C exists).
// Precondition: called via Tracer.Do, before anything of S but the
// scratch area changed.
func (h *helper) takePid(pid int) error {
	args := make([]byte, cloneArgsSize+8)
	le.PutUint64(args[0:], unix.CLONE_PARENT|unix.CLONE_PTRACE)
	le.PutUint64(args[cloneArgsSize:], uint64(pid))
	addr, err := h.poke(0, args)
	if err != nil {
		return err
	}
	le.PutUint64(args[64:], addr+cloneArgsSize) // set_tid
	le.PutUint64(args[72:], 1)                  // set_tid_size
	if _, err := h.poke(0, args); err != nil {
		return err
	}
	ret, err := h.s.Syscall(h.host.Sys.Clone3, addr, cloneArgsSize)
	switch {
	case errors.Is(err, unix.EEXIST):
		return fmt.Errorf("--restore-pid: pid %d was taken meanwhile: the process cannot get it back", pid)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("--restore-pid: this thaw may not choose pid %d (CAP_CHECKPOINT_RESTORE)", pid)
	case err != nil:
		return fmt.Errorf("clone3 with pid %d: %w", pid, err)
	case int(ret) != pid:
		return fmt.Errorf("clone3 asked for pid %d, gave %d", pid, ret)
	}
	for {
		st, err := ptrace.Wait(pid)
		if err != nil {
			return err
		}
		if st.Exited() {
			return fmt.Errorf("pid %d %s before its first stop", pid, st)
		}
		if st.Event() == ptrace.EventStop {
			break
		}
		if err := ptrace.Cont(pid, 0); err != nil {
			return err
		}
	}
	s, err := inject.Begin(pid, h.site)
	if err != nil {
		return err
	}
	// S goes; from now on a failure ends C.
	launcher := h.pid
	h.pid, h.s = pid, s
	if err := h.setExitGroup(launcher, 0); err != nil {
		return fmt.Errorf("end the launcher: %w", err)
	}
	if err := ptrace.Detach(launcher, 0); err != nil {
		return fmt.Errorf("end the launcher: %w", err)
	}
	h.logf("the process is pid %d", pid)
	return nil
}

// awaitParent waits for the thaw's "G": the restored process's group
// and terminal are set. A closed pipe (the thaw died) fails the restore.
func (h *helper) awaitParent() error {
	g := os.NewFile(fdGo, "go")
	defer g.Close()
	var b [1]byte
	if _, err := io.ReadFull(g, b[:]); err != nil || b[0] != 'G' {
		return errors.New("--restore-pid: the thaw that waits for the process is gone")
	}
	return nil
}
