package ptrace

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/proc"
)

// Group is a whole thread group held in ptrace stops: every thread
// seized and stopped at a PTRACE_EVENT_STOP (or a group-stop), none
// running. Tids lists the leader first, then the others in ascending
// order.
type Group struct {
	Pid  int
	Tids []int
}

// Thread states while a group is seized.
const (
	thRunning = iota // seized (or born traced), its stop not seen yet
	thStopped        // in a ptrace stop
	thGone           // exited, or never seized (it was exiting)
)

// SeizeGroup seizes every thread of pid and stops each with
// PTRACE_INTERRUPT (no SIGSTOP anyone could see), as CRIU does: seize
// the threads /proc/PID/task lists, wait until each has stopped, and list
// again until no new thread appears. PTRACE_O_TRACECLONE makes a thread
// born in the meantime traced from its first instruction; a thread that
// exits on the way is dropped. Signals met on the way are delivered (a
// handler frame is set up, the handler runs after the thaw or the
// release), exactly as the kernel would have.
//
// On error every thread seized is let go again, as it was.
// Precondition: called via Tracer.Do.
func SeizeGroup(pid int, opts int) (g *Group, err error) {
	opts |= OptTraceClone | OptTraceExec
	// A main thread that has exited while others run on is a zombie
	// that never reports a stop.
	if st, err := proc.ReadStat(pid); err == nil && (st.State == 'Z' || st.State == 'X') {
		if tids, err := proc.Tasks(pid); err == nil && len(tids) > 1 {
			return nil, fmt.Errorf("pid %d: its main thread has exited while %d others run on: unsupported", pid, len(tids)-1)
		}
		return nil, fmt.Errorf("pid %d is a zombie: it has exited and waits for its parent to reap it", pid)
	}
	state := map[int]int{}
	defer func() {
		if err != nil {
			err = errors.Join(err, releaseAll(state))
		}
	}()
	if err := Seize(pid, opts); err != nil {
		return nil, err
	}
	state[pid] = thRunning
	if err := Interrupt(pid); err != nil {
		return nil, err
	}
	for round := 0; ; round++ {
		if err := waitStopped(pid, state); err != nil {
			return nil, err
		}
		tids, err := proc.Tasks(pid)
		if err != nil {
			return nil, err
		}
		fresh := false
		for _, tid := range tids {
			if _, known := state[tid]; known {
				continue
			}
			fresh = true
			if err := ptrace(reqSeize, tid, 0, uintptr(opts)); err != nil {
				if err == unix.ESRCH {
					// Gone between the listing and the seize.
					state[tid] = thGone
					continue
				}
				return nil, AttachError(tid, err)
			}
			state[tid] = thRunning
			if err := Interrupt(tid); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // exiting: its exit is reported and reaped
				}
				return nil, err
			}
		}
		if !fresh {
			// Nothing new: every thread listed is stopped (a stopped
			// thread cannot clone), or gone. A thread that exited on
			// its own, untraced, may still be listed for a moment.
			if stillListed(tids, state) && round < 1000 {
				time.Sleep(time.Millisecond)
				continue
			}
			break
		}
	}
	g = &Group{Pid: pid}
	for tid, s := range state {
		if s == thStopped && tid != pid {
			g.Tids = append(g.Tids, tid)
		}
	}
	if state[pid] != thStopped {
		return nil, fmt.Errorf("pid %d: its main thread has exited while others run on: unsupported", pid)
	}
	slices.Sort(g.Tids)
	g.Tids = append([]int{pid}, g.Tids...)
	return g, nil
}

// stillListed tells whether a tid seen gone is still in the listing.
func stillListed(tids []int, state map[int]int) bool {
	for _, t := range tids {
		if state[t] == thGone {
			return true
		}
	}
	return false
}

// waitStopped waits until every thread in state is stopped or gone.
func waitStopped(pid int, state map[int]int) error {
	for {
		running := 0
		for _, s := range state {
			if s == thRunning {
				running++
			}
		}
		if running == 0 {
			return nil
		}
		tid, st, err := WaitAny()
		if err != nil {
			return err
		}
		if err := groupStop(pid, tid, st, state); err != nil {
			return err
		}
	}
}

// groupStop records one stop of a thread being seized and moves it on
// toward its interrupt stop. Any ptrace stop consumes a pending
// PTRACE_INTERRUPT ("any trap clears pending STOP trap",
// kernel/signal.c, ptrace_stop), so the thread is interrupted again
// before it goes on.
func groupStop(pid, tid int, st Stop, state map[int]int) error {
	if _, known := state[tid]; !known {
		state[tid] = thRunning // born traced (PTRACE_O_TRACECLONE)
	}
	switch {
	case st.Exited():
		state[tid] = thGone
		if tid == pid {
			return fmt.Errorf("pid %d exited while being frozen (%s): %w", pid, st, ErrExited)
		}
		return nil
	case st.Event() == EventStop:
		state[tid] = thStopped
		return nil
	case st.Event() == EventExec:
		// A thread exec'd: the others are gone, it is the leader now.
		if old, err := GetEventMsg(tid); err == nil && int(old) != tid {
			state[int(old)] = thGone
		}
		for t := range state {
			if t != tid {
				state[t] = thGone
			}
		}
		state[tid] = thStopped
		return fmt.Errorf("pid %d exec'd a new program while being frozen: %w", pid, ErrExited)
	case st.Event() == EventClone:
		if child, err := GetEventMsg(tid); err == nil {
			if _, known := state[int(child)]; !known {
				state[int(child)] = thRunning
			}
		}
	}
	if err := Interrupt(tid); err != nil {
		return err
	}
	return Cont(tid, int(st.Signal()))
}

// releaseAll lets every thread seized go: those still running are first
// waited for (a tracee can only be detached in a stop).
func releaseAll(state map[int]int) error {
	var errs []error
	for {
		running := 0
		for t, s := range state {
			if s == thRunning {
				if err := Interrupt(t); errors.Is(err, unix.ESRCH) {
					// Not ours any more, or gone already.
				}
				running++
			}
		}
		if running == 0 {
			break
		}
		tid, st, err := WaitAny()
		if err != nil {
			errs = append(errs, err)
			break
		}
		if _, known := state[tid]; !known {
			state[tid] = thRunning
		}
		switch {
		case st.Exited():
			state[tid] = thGone
		case st.Event() == EventStop:
			state[tid] = thStopped
		default:
			// Deliver what it was stopping for; its interrupt follows.
			if st.Event() == EventClone {
				if child, err := GetEventMsg(tid); err == nil {
					if _, known := state[int(child)]; !known {
						state[int(child)] = thRunning
					}
				}
			}
			if err := Interrupt(tid); err != nil {
				errs = append(errs, err)
			}
			if err := Cont(tid, int(st.Signal())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for t, s := range state {
		if s == thStopped {
			if err := Detach(t, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Release detaches every thread of the group. Signals that arrived
// while it was held are pending and are delivered as it runs on.
// Precondition: called via Tracer.Do.
func (g *Group) Release() error {
	var errs []error
	for _, tid := range g.Tids {
		if err := Detach(tid, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
