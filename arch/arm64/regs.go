// Package arm64 holds the arm64 register layouts, syscall numbers (the
// generic table), the injection bytes and the stub code as plain data: it
// compiles on any host, so the layouts are unit-tested on x86-64 too
// (delve's _arch.go idea). It has the same set as package amd64 (gVisor's
// symmetry); code that talks to the kernel lives in ptrace/, inject/ and
// restore/.
//
// What differs from x86-64, and where it is handled:
//
//   - Regsets. NT_PRSTATUS is struct user_pt_regs (x0-x30, sp, pc,
//     pstate) and has no syscall-number slot like orig_rax: the kernel
//     keeps that in pt_regs.syscallno, reachable through
//     NT_ARM_SYSTEM_CALL. The FP/SIMD state is NT_PRFPREG (struct
//     user_fpsimd_state, 528 bytes); the TLS pointer TPIDR_EL0 is not a
//     general register but NT_ARM_TLS, carried in image.Thread.TLS.
//   - Syscall restart. do_signal (arch/arm64/kernel/signal.c) rewinds pc
//     to the svc and puts orig_x0 back in x0 *before* get_signal, so the
//     registers a tracer reads from a task interrupted in a call already
//     re-issue it; PrepareResume has nothing to do. For
//     ERESTART_RESTARTBLOCK (nanosleep, clock_nanosleep, poll with a
//     timeout...) they re-issue the same call with its original arguments
//     (the switch to restart_syscall happens after the stop, and only if
//     pc is still the svc): a thawed sleep starts over instead of
//     returning EINTR as on x86-64. The same check is why the injector
//     must never use the interrupted call's own svc: with pc back on it,
//     the kernel would turn the first injected call into restart_syscall.
//     freeze injects through an svc of the vdso, where no blocking call
//     is made. The restart logic keys on pt_regs.syscallno: the restorer
//     sets it to -1 before it lets the process go (NT_ARM_SYSTEM_CALL,
//     arch.Host.SyscallNoNT), as orig_rax = -1 does on x86-64.
//   - Syscall stops. At a syscall-entry or -exit stop the kernel shows 0
//     or 1 in x7 and puts the x7 of the call's entry back when the stop
//     ends, whatever the tracer wrote (report_syscall in
//     arch/arm64/kernel/ptrace.c): from one injected call to the next, x7
//     keeps the value it had when the first one was set up. Registers
//     loaded at a syscall-exit stop get x7 from that call's entry, so the
//     restorer sets up its last call (the munmap of the stub, after which
//     it loads the frozen registers) from an event stop, on the frozen
//     registers (inject.Session.Settle; SyscallStopScratch).
//   - PSTATE. A register write never forces the single-step bit: the
//     kernel sets DBG_SPSR_SS from TIF_SINGLESTEP and clears it otherwise,
//     and masks the rest to a valid EL0 state (valid_user_regs and
//     user_regs_reset_single_step in arch/arm64/kernel/ptrace.c). cryo
//     never single-steps, so the frozen pstate is loaded as it is.
//   - Signals. See signal.go.
package arm64

import (
	"encoding/binary"
	"fmt"
)

// Regs mirrors struct user_pt_regs (arch/arm64/include/uapi/asm/ptrace.h),
// the NT_PRSTATUS regset.
type Regs struct {
	X      [31]uint64
	Sp     uint64
	Pc     uint64
	Pstate uint64
}

// RegsSize is sizeof(struct user_pt_regs).
const RegsSize = 34 * 8

func (r *Regs) fields() []*uint64 {
	f := make([]*uint64, 0, 34)
	for i := range r.X {
		f = append(f, &r.X[i])
	}
	return append(f, &r.Sp, &r.Pc, &r.Pstate)
}

// Decode fills r from the raw regset bytes.
func (r *Regs) Decode(b []byte) error {
	if len(b) != RegsSize {
		return fmt.Errorf("arm64 register set is %d bytes, want %d", len(b), RegsSize)
	}
	for i, f := range r.fields() {
		*f = binary.LittleEndian.Uint64(b[i*8:])
	}
	return nil
}

// Encode returns the raw regset bytes.
func (r *Regs) Encode() []byte {
	b := make([]byte, RegsSize)
	for i, f := range r.fields() {
		binary.LittleEndian.PutUint64(b[i*8:], *f)
	}
	return b
}

// SetSyscall prepares r to run syscall nr with args at the svc at pc: the
// number in x8, the arguments in x0-x5 (at most six); nothing else
// changes. Unlike on x86-64 there is no restart logic to disable in
// NT_PRSTATUS: it keys on pt_regs.syscallno (see the package doc).
func (r *Regs) SetSyscall(pc, nr uint64, args ...uint64) {
	r.Pc = pc
	r.X[8] = nr
	copy(r.X[:], args)
}

// Return is the syscall's raw return value at syscall exit (x0).
func (r *Regs) Return() uint64 { return r.X[0] }

// Kernel restart codes (include/linux/errno.h). On arm64 a tracer never
// sees them in a stopped task's x0 (see the package doc); the injector
// still gets them as the return value of an injected call interrupted by
// a signal.
const (
	ERESTARTSYS           = 512
	ERESTARTNOINTR        = 513
	ERESTARTNOHAND        = 514
	ERESTART_RESTARTBLOCK = 516
	EINTR                 = 4
)

// SyscallInsnLen is the length of the svc instruction: do_signal rewinds
// pc by this much to restart a call.
const SyscallInsnLen = 4

// SyscallStopScratch is the register the kernel uses at a syscall stop to
// tell entry (0) from exit (1); its value at the call's entry comes back
// when the stop ends, whatever the tracer set (report_syscall,
// arch/arm64/kernel/ptrace.c).
const SyscallStopScratch = 7

// PrepareResume applies, for a task that will resume in a new process,
// the fix-up the kernel would have made on its way back to user mode.
// On arm64 it already made it before the tracer saw the stop: a call
// interrupted with ERESTARTSYS/NOINTR/NOHAND/RESTARTBLOCK shows pc on its
// svc and its first argument back in x0, so resuming re-issues it (see
// the package doc). Nothing is left to do; it returns "".
func (r *Regs) PrepareResume() string { return "" }

// SyscallInsn is the instruction the injector runs: `svc #0`. No brk
// follows: the injector stops the task at syscall exit with
// PTRACE_SYSCALL, so no byte of the target is ever written.
var SyscallInsn = []byte{0x01, 0x00, 0x00, 0xd4}

// FindSyscall returns the offset of the first `svc #0` in code. arm64
// instructions are 4 bytes and 4-aligned, so only aligned words are
// compared; such a word executes as `svc #0` wherever it lies, even in a
// literal pool, which is all the injector needs of it.
func FindSyscall(code []byte) (int, bool) {
	for off := 0; off+4 <= len(code); off += 4 {
		if binary.LittleEndian.Uint32(code[off:]) == binary.LittleEndian.Uint32(SyscallInsn) {
			return off, true
		}
	}
	return 0, false
}
