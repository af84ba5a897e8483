package freeze

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/ptrace"
)

// maxVDSOSteps bounds the instructions a thread is stepped to leave the
// vdso: its functions are short loops around a seqlock (a few hundred
// instructions; getrandom's ChaCha a few thousand).
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
	for ; ; steps++ {
		if steps == maxVDSOSteps {
			return fmt.Errorf("still there after %d instructions", steps)
		}
		if err := ptrace.SingleStep(tid, 0); err != nil {
			return err
		}
		st, err := ptrace.Wait(tid)
		if err != nil {
			return err
		}
		switch {
		case st.Exited():
			return fmt.Errorf("%s: %w", st, ptrace.ErrExited)
		case st.Event() == ptrace.EventStop:
			// An interrupt or a group-stop on the way: step on.
			continue
		case st.Signal() != unix.SIGTRAP:
			return fmt.Errorf("%s while stepping", st)
		}
		pc, err := f.pc(tid)
		if err != nil {
			return err
		}
		if pc < lo || pc >= hi {
			break
		}
	}
	f.logf("thread %d stepped out of the vdso in %d instructions", tid, steps+1)
	// From the SIGTRAP stop (the trap discarded) to an event stop.
	if err := ptrace.Interrupt(tid); err != nil {
		return err
	}
	if err := ptrace.Cont(tid, 0); err != nil {
		return err
	}
	st, err := ptrace.Wait(tid)
	if err != nil {
		return err
	}
	if st.Event() != ptrace.EventStop {
		return fmt.Errorf("%s where an event stop was expected", st)
	}
	return nil
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
