// Package arm64 holds the arm64 register layout, syscall numbers (the
// generic table) and the stub code as plain data that compiles on any
// host. The end-to-end arm64 port (regsets for FP/SIMD and TLS, signal
// frame details, the emulated test run) is tracked separately; what is
// here is what the shared interface in package arch needs to build.
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

// Decode fills r from the raw regset bytes.
func (r *Regs) Decode(b []byte) error {
	if len(b) != RegsSize {
		return fmt.Errorf("arm64 register set is %d bytes, want %d", len(b), RegsSize)
	}
	for i := range r.X {
		r.X[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	r.Sp = binary.LittleEndian.Uint64(b[31*8:])
	r.Pc = binary.LittleEndian.Uint64(b[32*8:])
	r.Pstate = binary.LittleEndian.Uint64(b[33*8:])
	return nil
}

// Encode returns the raw regset bytes.
func (r *Regs) Encode() []byte {
	b := make([]byte, RegsSize)
	for i, x := range r.X {
		binary.LittleEndian.PutUint64(b[i*8:], x)
	}
	binary.LittleEndian.PutUint64(b[31*8:], r.Sp)
	binary.LittleEndian.PutUint64(b[32*8:], r.Pc)
	binary.LittleEndian.PutUint64(b[33*8:], r.Pstate)
	return b
}

// SetSyscall prepares r to run syscall nr(args) at the svc at pc.
func (r *Regs) SetSyscall(pc, nr uint64, args ...uint64) {
	r.Pc = pc
	r.X[8] = nr
	for i, a := range args {
		r.X[i] = a
	}
}

// Return is the syscall return value (x0).
func (r *Regs) Return() uint64 { return r.X[0] }

// PrepareResume: on arm64 the kernel has already rewound pc to the svc and
// put orig_x0 back in x0 before the tracer sees an interrupted call, so
// the registers as read re-issue it (DESIGN-NOTES, "Syscalls caught in
// flight"); nothing is left to fix here.
func (r *Regs) PrepareResume() string { return "" }

// SvcInsn is `svc #0`.
var SvcInsn = []byte{0x01, 0x00, 0x00, 0xd4}

// StubCode: mov x0, #127; mov x8, #94 (exit_group); svc #0; brk #0.
func StubCode() []byte {
	return []byte{
		0xe0, 0x0f, 0x80, 0xd2, // mov x0, #127
		0xc8, 0x0b, 0x80, 0xd2, // mov x8, #94
		0x01, 0x00, 0x00, 0xd4, // svc #0
		0x00, 0x00, 0x20, 0xd4, // brk #0
	}
}

// StubSyscallOffset is the offset of the svc in StubCode.
const StubSyscallOffset = 8

// ELFMachine is EM_AARCH64.
const ELFMachine = 183

// Regset note types.
const (
	NT_PRSTATUS = 1
	NT_PRFPREG  = 2
	NT_ARM_TLS  = 0x401
)

// Syscall numbers (include/uapi/asm-generic/unistd.h).
const (
	SysOpenat           = 56
	SysClose            = 57
	SysLseek            = 62
	SysMmap             = 222
	SysMprotect         = 226
	SysMunmap           = 215
	SysMremap           = 216
	SysBrk              = 214
	SysRtSigaction      = 134
	SysSigaltstack      = 132
	SysPrctl            = 167
	SysSetTidAddress    = 96
	SysSetRobustList    = 99
	SysGetRobustList    = 100
	SysRseq             = 293
	SysDup3             = 24
	SysChdir            = 49
	SysFcntl            = 25
	SysRtSigqueueinfo   = 138
	SysRtTgsigqueueinfo = 240
	SysExitGroup        = 94
	SysGetpid           = 172
	SysGettid           = 178
)
