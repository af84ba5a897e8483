package freeze

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/ptrace"
)

// maxVDSOSteps bounds the instructions a thread is stepped in one round
// to leave the vdso: its functions are short loops around a seqlock (a
// few hundred instructions; getrandom's ChaCha a few thousand).
const maxVDSOSteps = 200000

// leaveVDSO steps every thread stopped inside the vdso out of it, one
// instruction at a time, before anything of it is read. A thread frozen
// there would resume in the vdso's code, which a thaw on another kernel
// does not have: it keeps a proxy of the frozen vdso whose entry points
// jump into its own (restore/vdso.go), and the frozen vdso's body reads
// [vvar] pages that are never dumped. Out of the vdso, the thread is
// back in its caller with the function's result, as if stopped a moment
// later. Its signals are blocked while it steps, so that no handler
// starts on the way (with the vdso's address in its frame), and it ends
// in an event stop, as SeizeGroup left it.
// Precondition: called via Tracer.Do, every thread in a ptrace stop.
func (f *freezer) leaveVDSO(tids []int) error {
	if f.stopped {
		// A job-control stop is kept as it is: a thread cannot stop in
		// the vdso but at an interrupt, and runs no further here.
		return nil
	}
	lo, hi, err := vdsoRange(f.pid)
	if err != nil || hi == 0 {
		return err
	}
	for _, tid := range tids {
		pc, err := f.pc(tid)
		if err != nil {
			return err
		}
		if pc < lo || pc >= hi {
			continue
		}
		if err := f.stepOut(tid, lo, hi); err != nil {
			return fmt.Errorf("thread %d, stopped in the vdso at %#x: %w", tid, pc, err)
		}
	}
	return nil
}

func (f *freezer) pc(tid int) (uint64, error) {
	raw, err := ptrace.GetRegset(tid, f.host.RegsNT, 1024)
	if err != nil {
		return 0, err
	}
	regs, err := f.host.NewRegs(raw)
	if err != nil {
		return 0, err
	}
	return regs.PC(), nil
}

func (f *freezer) stepOut(tid int, lo, hi uint64) (err error) {
	mask, err := ptrace.GetSigMask(tid)
	if err != nil {
		return err
	}
	if err := ptrace.SetSigMask(tid, ^uint64(0)); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, ptrace.SetSigMask(tid, mask)) }()
	steps := 0
	for round := 0; round < vdsoRounds; round++ {
		out, n, err := f.step(tid, lo, hi)
		steps += n
		if err != nil {
			return err
		}
		if out {
			f.logf("thread %d stepped out of the vdso in %d instructions", tid, steps)
			return nil
		}
		if out, err = f.nudge(tid, lo, hi, round); err != nil || out {
			f.logf("thread %d out of the vdso after %d instructions stepped and %d runs", tid, steps, round+1)
			return err
		}
	}
	// Left inside: a thaw on this kernel resumes it there; one that
	// must proxy the vdso refuses it by name (restore/vdso.go).
	f.logf("thread %d still inside the vdso after %d instructions stepped and %d runs", tid, steps, vdsoRounds)
	return nil
}

// Stepping out of the vdso: each round single-steps for at most
// vdsoStepTime, then lets the thread run alone for a moment. A step that
// takes longer than a timer tick (a loaded machine, an emulated one: 6
// ms a step under qemu's TCG) makes a clock function's seqlock read fail
// every time, and it never returns; run freely, it does.
const (
	vdsoRounds   = 50
	vdsoStepTime = 100 * time.Millisecond
)

// step single-steps tid until it leaves [lo, hi) or vdsoStepTime has
// passed, and leaves it in an event stop; it returns whether it is out
// and how many instructions it stepped.
func (f *freezer) step(tid int, lo, hi uint64) (out bool, steps int, err error) {
	deadline := time.Now().Add(vdsoStepTime)
	for !out && steps < maxVDSOSteps && time.Now().Before(deadline) {
		if err := ptrace.SingleStep(tid, 0); err != nil {
			return false, steps, err
		}
		st, err := ptrace.Wait(tid)
		if err != nil {
			return false, steps, err
		}
		switch {
		case st.Exited():
			return false, steps, fmt.Errorf("%s: %w", st, ptrace.ErrExited)
		case st.Event() == ptrace.EventStop:
			// An interrupt or a group-stop on the way: step on.
			continue
		case st.Signal() != unix.SIGTRAP:
			return false, steps, fmt.Errorf("%s while stepping", st)
		}
		steps++
		pc, err := f.pc(tid)
		if err != nil {
			return false, steps, err
		}
		out = pc < lo || pc >= hi
	}
	if steps == 0 {
		return false, 0, nil // still in the event stop it was in
	}
	// From the SIGTRAP stop (the trap discarded) to an event stop.
	if err := f.runToStop(tid); err != nil {
		return false, steps, err
	}
	return out, steps, nil
}

// nudge lets tid run for a moment (longer each round: 1 to 20 ms; its
// signals blocked, the other threads stopped), stops it again with
// PTRACE_INTERRUPT and returns whether it is out of [lo, hi). A thread
// it makes joins the group; anything else but the event stop (an exec,
// a signal that cannot be blocked) fails the freeze, which lets the
// target go.
func (f *freezer) nudge(tid int, lo, hi uint64, round int) (bool, error) {
	if err := ptrace.Cont(tid, 0); err != nil {
		return false, err
	}
	time.Sleep(min(time.Duration(round+1)*time.Millisecond, 20*time.Millisecond))
	if err := ptrace.Interrupt(tid); err != nil {
		return false, err
	}
	for {
		st, err := ptrace.Wait(tid)
		if err != nil {
			return false, err
		}
		if st.Event() != ptrace.EventClone {
			if err := checkEventStop(st); err != nil {
				return false, err
			}
			break
		}
		// A thread born while it ran (the Go runtime starts an M):
		// traced from birth, it joins the group, stopped.
		child, err := ptrace.GetEventMsg(tid)
		if err != nil {
			return false, err
		}
		if err := waitEventStop(int(child)); err != nil {
			return false, fmt.Errorf("thread %d, born while leaving the vdso: %w", child, err)
		}
		f.group.Tids = append(f.group.Tids, int(child))
		slices.Sort(f.group.Tids[1:])
		f.logf("thread %d born while thread %d left the vdso", child, tid)
		if err := f.runToStop(tid); err != nil {
			return false, err
		}
		break
	}
	pc, err := f.pc(tid)
	if err != nil {
		return false, err
	}
	return pc < lo || pc >= hi, nil
}

func waitEventStop(tid int) error {
	st, err := ptrace.Wait(tid)
	if err != nil {
		return err
	}
	return checkEventStop(st)
}

func checkEventStop(st ptrace.Stop) error {
	if st.Exited() {
		return fmt.Errorf("%s: %w", st, ptrace.ErrExited)
	}
	if st.Event() != ptrace.EventStop {
		return fmt.Errorf("%s while leaving the vdso, where an event stop was expected", st)
	}
	return nil
}

// runToStop takes tid from a stop in the kernel's signal path (the
// SIGTRAP of a step, discarded) to an event stop, running no
// instruction: the interrupt is pending as it resumes.
func (f *freezer) runToStop(tid int) error {
	if err := ptrace.Interrupt(tid); err != nil {
		return err
	}
	if err := ptrace.Cont(tid, 0); err != nil {
		return err
	}
	return waitEventStop(tid)
}

// vdsoRange finds pid's [vdso] in /proc/PID/maps (not smaps, which walks
// the page tables); 0, 0 when it has none.
func vdsoRange(pid int) (lo, hi uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasSuffix(line, " [vdso]") {
			continue
		}
		r, _, _ := strings.Cut(line, " ")
		a, z, ok := strings.Cut(r, "-")
		if lo, err = strconv.ParseUint(a, 16, 64); ok && err == nil {
			hi, err = strconv.ParseUint(z, 16, 64)
		}
		if !ok || err != nil {
			return 0, 0, fmt.Errorf("pid %d: bad maps line %q", pid, line)
		}
		return lo, hi, nil
	}
	return 0, 0, nil
}
