// Package arch is the interface the tracer, the injector and the restorer
// use for the host's instruction set. Each supported GOARCH provides the
// same set in host_<arch>.go (gVisor's symmetry: a missing piece is a
// compile error); the layouts themselves are data in arch/amd64 and
// arch/arm64 and compile on any host.
package arch

import "github.com/cryo-project/cryo/image"

// Regs is a general register set as the kernel's NT_PRSTATUS regset has it.
type Regs interface {
	// SetSyscall arranges for syscall nr(args) at the syscall
	// instruction at pc, with the kernel's restart logic disabled.
	SetSyscall(pc, nr uint64, args ...uint64)
	// Return is the syscall return value at syscall exit.
	Return() uint64
	PC() uint64
	// PrepareResume applies the syscall-restart fix-up for resuming in a
	// new task; it returns what it did ("" if nothing).
	PrepareResume() string
	Encode() []byte
}

// Sysno holds the numbers of the syscalls cryo injects.
type Sysno struct {
	Openat, Close, Mmap, Mprotect, Munmap, Mremap, Brk uint64
	RtSigaction, Sigaltstack, Prctl, SetTidAddress     uint64
	SetRobustList, GetRobustList, Rseq, Dup3, Lseek    uint64
	Chdir, Fcntl, RtSigqueueinfo, RtTgsigqueueinfo     uint64
	ExitGroup, Getpid, Gettid, Ioctl                   uint64

	Umask, Prlimit64, Getitimer, Setitimer           uint64
	TimerCreate, TimerSettime, TimerGettime          uint64
	TimerDelete, Personality, Setpriority            uint64
	SchedSetattr, SchedSetaffinity, IoprioSet, Flock uint64
	Madvise, Mlock2, Mseal, Setgroups, Setresuid     uint64
	Setresgid, Capset, Membarrier, Write             uint64
	Clone3, RtSigtimedwait, Mlockall, GetMempolicy   uint64

	// The descriptor table (files package).
	Recvmsg, CloseRange, EpollCtl uint64
}

// Host describes the machine cryo runs on.
type Host struct {
	Image   image.Arch
	RegsNT  int // regset with the general registers
	FPUNT   int // regset with the FP/vector state
	FPUMax  int // upper bound of the FP regset size
	Sys     Sysno
	NewRegs func(raw []byte) (Regs, error)
	// Stub is the code of the thaw stub and the offset of its syscall
	// instruction.
	StubCode          []byte
	StubSyscallOffset uint64
	ELFMachine        uint16
	// SyscallInsn is the syscall instruction; the package's FindSyscall
	// locates one in a code buffer at an instruction boundary. (A
	// function, not a field here: a field would link amd64's decoder
	// into every binary that uses Current, the restorer among them,
	// which never looks for one.)
	SyscallInsn []byte

	// TLSNT is the regset with the TLS pointer when it is not among the
	// general registers (arm64 NT_ARM_TLS: TPIDR_EL0), 0 otherwise.
	TLSNT int
	// SyscallNoNT is the regset with the syscall number the kernel's
	// restart logic reads when it is not among the general registers
	// (arm64 NT_ARM_SYSTEM_CALL), 0 otherwise.
	SyscallNoNT int

	// Loader is the first stage of the self-restoring executables
	// freeze writes (image.NewExecutable).
	Loader image.Loader
}
