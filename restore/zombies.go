package restore

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/inject"
	"github.com/cryo-project/cryo/ptrace"
)

// Zombie children. A process frozen between a child's exit and its
// wait() must find that child's status after thaw, or its waitpid fails
// with ECHILD (a shell, a supervisor, anything that forks). Each zombie
// is made again as a child of the stub: an injected clone3 with
// CLONE_PTRACE gives a child that stops before its first instruction
// (the stub is seized, so the child is too, with a trap stop) and that
// the helper then makes exit with the recorded status, or die of the
// recorded signal. Once the helper has reaped its ptrace link, the zombie
// waits for its real parent, the restored process.
//
// The child gets the zombie's pid when this thaw may choose pids (clone3
// set_tid: CAP_CHECKPOINT_RESTORE, root here) and the pid is free;
// otherwise another pid (docs/state.md). A death by a signal that dumped
// core comes back without the core-dumped flag: no core is written.

// cloneArgsSize is sizeof(struct clone_args), CLONE_ARGS_SIZE_VER2.
const cloneArgsSize = 88

// restoreZombies makes the image's zombie children again.
func (h *helper) restoreZombies() error {
	if len(h.p.Zombies) == 0 {
		return nil
	}
	for _, z := range h.p.Zombies {
		child, err := h.cloneChild(z.Pid)
		if err != nil {
			return fmt.Errorf("make zombie child %d again: %w", z.Pid, err)
		}
		if child != z.Pid {
			h.logf("zombie child %d comes back as pid %d", z.Pid, child)
		}
		if err := h.endChild(child, z.Status); err != nil {
			return fmt.Errorf("make zombie child %d again: %w", z.Pid, err)
		}
	}
	// Their deaths queued SIGCHLD in the stub (all signals are blocked
	// while it is rebuilt): take it away again. The image's pending
	// signals, SIGCHLD among them if it was pending, are queued later.
	_, err := h.takeSignals(1<<(unix.SIGCHLD-1), "SIGCHLD")
	return err
}

// clone3 runs an injected clone3 with args, a struct clone_args of
// cloneArgsSize bytes and room for one set_tid entry after it, asking for
// id (set_tid, in the thaw's own namespace); where id is taken or not
// ours to choose (EEXIST, EPERM, EINVAL) it takes any. It returns the
// new task's id.
func (h *helper) clone3(args []byte, id int) (uint64, error) {
	le.PutUint64(args[cloneArgsSize:], uint64(id))
	addr, err := h.poke(0, args)
	if err != nil {
		return 0, err
	}
	le.PutUint64(args[64:], addr+cloneArgsSize) // set_tid
	le.PutUint64(args[72:], 1)                  // set_tid_size
	if _, err := h.poke(0, args); err != nil {
		return 0, err
	}
	ret, err := h.s.Syscall(h.host.Sys.Clone3, addr, cloneArgsSize)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		le.PutUint64(args[64:], 0)
		le.PutUint64(args[72:], 0)
		if _, err := h.poke(0, args); err != nil {
			return 0, err
		}
		ret, err = h.s.Syscall(h.host.Sys.Clone3, addr, cloneArgsSize)
	}
	if err != nil {
		return 0, fmt.Errorf("clone3: %w", err)
	}
	return ret, nil
}

// cloneChild forks the stub into a traced child, with pid want if it
// can, and waits for the child's first stop.
func (h *helper) cloneChild(want int) (int, error) {
	args := make([]byte, cloneArgsSize+8)
	le.PutUint64(args[0:], unix.CLONE_PTRACE)
	le.PutUint64(args[32:], uint64(unix.SIGCHLD)) // exit_signal: wait() sees it
	child, err := h.clone3(args, want)
	if err != nil {
		return 0, err
	}
	pid := int(child)
	for {
		st, err := ptrace.Wait(pid)
		if err != nil {
			return pid, err
		}
		if st.Exited() {
			return pid, fmt.Errorf("child %d %s before its first stop", pid, st)
		}
		if st.Event() == ptrace.EventStop {
			return pid, nil
		}
		// A signal on its way (none should be: all are blocked).
		if err := ptrace.Cont(pid, 0); err != nil {
			return pid, err
		}
	}
}

// endChild makes the stopped child die as the zombie did: exit_group
// with its exit code, or the default action of its signal. status is
// the wait status (/proc/PID/stat field 52).
func (h *helper) endChild(pid, status int) error {
	ws := unix.WaitStatus(status)
	if ws.Signaled() {
		return h.killChild(pid, ws.Signal())
	}
	if err := h.setExitGroup(pid, uint64(ws.ExitStatus())); err != nil {
		return err
	}
	if err := ptrace.Cont(pid, 0); err != nil {
		return err
	}
	return h.reapLink(pid)
}

// killChild delivers sig to the stopped child with its default action
// (no handler, not ignored, not blocked; no core file).
func (h *helper) killChild(pid int, sig unix.Signal) error {
	if err := unix.Prlimit(pid, unix.RLIMIT_CORE, &unix.Rlimit{}, nil); err != nil {
		return fmt.Errorf("RLIMIT_CORE of child %d: %w", pid, err)
	}
	// SIG_DFL for sig (the thaw may have inherited it ignored): an
	// injected rt_sigaction in the child, whose scratch area is a copy
	// of the stub's.
	s, err := inject.Begin(pid, h.site)
	if err != nil {
		return err
	}
	err = writeFull(pid, h.scratch, make([]byte, 32)) // struct sigaction: SIG_DFL
	if err == nil {
		_, err = s.Syscall(h.host.Sys.RtSigaction, uint64(sig), h.scratch, 0, 8)
	}
	if err := errors.Join(err, s.End()); err != nil {
		return fmt.Errorf("SIG_DFL for %v in child %d: %w", sig, pid, err)
	}
	if err := ptrace.SetSigMask(pid, 0); err != nil {
		return err
	}
	if err := unix.Tgkill(pid, pid, sig); err != nil {
		return fmt.Errorf("tgkill child %d: %w", pid, err)
	}
	if err := ptrace.Cont(pid, 0); err != nil {
		return err
	}
	return h.reapLink(pid)
}

// reapLink waits for the traced child's death, letting its signal-
// delivery stops through: the wait ends the ptrace link and leaves the
// zombie to its real parent.
func (h *helper) reapLink(pid int) error {
	for {
		st, err := ptrace.Wait(pid)
		if err != nil {
			return err
		}
		if st.Exited() {
			return nil
		}
		if err := ptrace.Cont(pid, int(st.Signal())); err != nil {
			return err
		}
	}
}
