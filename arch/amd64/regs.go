// Package amd64 holds the x86-64 register layout, syscall numbers and the
// injection bytes as plain data: it compiles on any host, so the layout is
// unit-tested on every machine (delve's _arch.go idea). Code that talks to
// the kernel lives in the host-only files of ptrace/, inject/ and restore/.
package amd64

import (
	"encoding/binary"
	"fmt"
)

// Regs mirrors the kernel's struct user_regs_struct
// (arch/x86/include/asm/user_64.h), the NT_PRSTATUS regset.
type Regs struct {
	R15, R14, R13, R12, Rbp, Rbx, R11, R10 uint64
	R9, R8, Rax, Rcx, Rdx, Rsi, Rdi        uint64
	OrigRax, Rip, Cs, Eflags, Rsp, Ss      uint64
	FsBase, GsBase, Ds, Es, Fs, Gs         uint64
}

// RegsSize is sizeof(struct user_regs_struct).
const RegsSize = 27 * 8

func (r *Regs) fields() []*uint64 {
	return []*uint64{&r.R15, &r.R14, &r.R13, &r.R12, &r.Rbp, &r.Rbx, &r.R11, &r.R10,
		&r.R9, &r.R8, &r.Rax, &r.Rcx, &r.Rdx, &r.Rsi, &r.Rdi,
		&r.OrigRax, &r.Rip, &r.Cs, &r.Eflags, &r.Rsp, &r.Ss,
		&r.FsBase, &r.GsBase, &r.Ds, &r.Es, &r.Fs, &r.Gs}
}

// Decode fills r from the raw regset bytes.
func (r *Regs) Decode(b []byte) error {
	if len(b) != RegsSize {
		return fmt.Errorf("amd64 register set is %d bytes, want %d", len(b), RegsSize)
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

// SetSyscall prepares r to run syscall nr with args at the syscall
// instruction at pc. orig_rax = -1 keeps the kernel's restart logic away
// from the injected call (compel does the same).
func (r *Regs) SetSyscall(pc uint64, nr uint64, args ...uint64) {
	r.Rip = pc
	r.Rax = nr
	r.OrigRax = ^uint64(0)
	dst := []*uint64{&r.Rdi, &r.Rsi, &r.Rdx, &r.R10, &r.R8, &r.R9}
	for i, a := range args {
		*dst[i] = a
	}
}

// Return is the syscall's raw return value at syscall exit.
func (r *Regs) Return() uint64 { return r.Rax }

// Kernel restart codes (include/linux/errno.h): a task interrupted in a
// syscall shows them in rax with the call's number in orig_rax.
const (
	ERESTARTSYS           = 512
	ERESTARTNOINTR        = 513
	ERESTARTNOHAND        = 514
	ERESTART_RESTARTBLOCK = 516
	EINTR                 = 4

	// sysPoll is poll(2), which always leaves a restart block, even
	// with no timeout (fs/select.c).
	sysPoll = 7
)

// SyscallInsnLen is the length of the syscall instruction (0f 05).
const SyscallInsnLen = 2

// PrepareResume applies, for a task that will resume in a new process,
// the fix-up the kernel would have made on its way back to user mode
// (arch/x86/kernel/signal.c, arch_do_signal_or_restart): a call
// interrupted with ERESTARTSYS/NOINTR/NOHAND is issued again; one
// interrupted with ERESTART_RESTARTBLOCK (nanosleep, poll with timeout...)
// returns EINTR, since its restart block does not exist in the new task,
// but for poll with no timeout, whose restart is the call itself.
// orig_rax is set to -1 so that the kernel applies nothing further.
// It returns a short description of what it did, empty if nothing.
func (r *Regs) PrepareResume() string {
	if int64(r.OrigRax) < 0 {
		return ""
	}
	nr := r.OrigRax
	r.OrigRax = ^uint64(0)
	switch -int64(r.Rax) {
	case ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND:
		r.Rax = nr
		r.Rip -= SyscallInsnLen
		return fmt.Sprintf("syscall %d re-issued", nr)
	case ERESTART_RESTARTBLOCK:
		if nr == sysPoll && int32(r.Rdx) < 0 {
			// poll(2) with no timeout: its restart (do_restart_poll)
			// is the same call again, whose arguments are still in
			// rdi, rsi, rdx. A program blocked in it (tail -f on
			// its inotify fd) never sees EINTR from a stop.
			r.Rax = nr
			r.Rip -= SyscallInsnLen
			return fmt.Sprintf("syscall %d re-issued", nr)
		}
		eintr := int64(-EINTR)
		r.Rax = uint64(eintr)
		return fmt.Sprintf("syscall %d returns EINTR", nr)
	}
	return ""
}

// SyscallInsn is the instruction the injector runs: `syscall`. No int3
// follows: the injector stops the task at syscall exit with PTRACE_SYSCALL,
// so no byte of the target is ever written.
var SyscallInsn = []byte{0x0f, 0x05}
