package image

// Arch names the instruction set an image was frozen on.
type Arch uint32

const (
	ArchUnknown Arch = 0
	ArchAMD64   Arch = 1
	ArchARM64   Arch = 2
)

func (a Arch) String() string {
	switch a {
	case ArchAMD64:
		return "amd64"
	case ArchARM64:
		return "arm64"
	}
	return "unknown-arch"
}

// VMAKind says how a mapping is rebuilt at thaw.
type VMAKind uint8

const (
	// VMAAnon is private anonymous memory (including [heap] and [stack]);
	// its present, non-zero pages travel in the image.
	VMAAnon VMAKind = iota + 1
	// VMAFilePrivate is a private file mapping (program text, libraries,
	// their data). All of its readable pages travel in the image, so the
	// image thaws where the file differs or is absent; it comes back as
	// anonymous memory with the same contents and protection.
	VMAFilePrivate
	// VMAFileShared is a MAP_SHARED file mapping: the file holds the data,
	// thaw maps the file at Path again.
	VMAFileShared
	// VMASharedAnon is MAP_SHARED|MAP_ANONYMOUS memory ("/dev/zero (deleted)").
	VMASharedAnon
	// VMAVDSO, VMAVVAR are the kernel's vdso and its data pages: never
	// dumped as data to restore, the thawing kernel's are moved into place.
	VMAVDSO
	VMAVVAR
)

// VMA flags.
const (
	VMAGrowsDown uint32 = 1 << iota // [stack]: MAP_GROWSDOWN
	VMAHeap                         // the [heap] (brk) area
	VMAStack                        // the main thread's [stack]
	VMANoDump                       // VM_DONTDUMP: contents not saved
)

// VMA is one line of /proc/PID/maps with what thaw needs to rebuild it.
type VMA struct {
	Start, End uint64
	Prot       uint32 // PROT_READ|PROT_WRITE|PROT_EXEC
	Kind       VMAKind
	Flags      uint32
	Offset     uint64 // file offset (VMAFileShared, informative otherwise)
	Path       string // the maps name: file path or [heap], [stack], [vdso]...
	Dev        string
	Inode      uint64
}

// MM holds the mm_struct fields restored with prctl(PR_SET_MM_MAP).
type MM struct {
	StartCode, EndCode uint64
	StartData, EndData uint64
	StartBrk, Brk      uint64
	StartStack         uint64
	ArgStart, ArgEnd   uint64
	EnvStart, EnvEnd   uint64
}

// Rseq is a thread's restartable-sequences registration.
type Rseq struct {
	Addr  uint64
	Len   uint32
	Flags uint32
	Sig   uint32
}

// AltStack is a thread's sigaltstack.
type AltStack struct {
	SP    uint64
	Flags int32
	Size  uint64
}

// Thread is one task's CPU and per-thread kernel state.
type Thread struct {
	Tid int
	// Regs is the architecture's general register set exactly as
	// PTRACE_GETREGSET NT_PRSTATUS returned it (amd64: user_regs_struct,
	// with fs_base/gs_base).
	Regs []byte
	// FPU is the extended state: amd64 the XSAVE area (NT_X86_XSTATE),
	// arm64 user_fpsimd_state (NT_PRFPREG).
	FPU []byte
	// TLS is the arm64 TPIDR_EL0 (NT_ARM_TLS); unused on amd64 (fs_base is in Regs).
	TLS           uint64
	SigMask       uint64
	ClearChildTid uint64
	RobustList    uint64
	RobustLen     uint64
	Rseq          Rseq
	AltStack      AltStack
}

// SigAction is a kernel struct sigaction for one signal with a
// non-default disposition.
type SigAction struct {
	Signo    int
	Handler  uint64
	Flags    uint64
	Restorer uint64
	Mask     uint64
}

// FDKind says how a descriptor is rebuilt.
type FDKind uint8

const (
	// FDFile: a regular file, reopened at Path with Flags and seeked to Pos.
	FDFile FDKind = iota + 1
	// FDDevice: a character device other than a terminal (/dev/null...), reopened at Path.
	FDDevice
	// FDInherit: a terminal, pipe or socket on fds 0-2, or a copy of one
	// of those on a higher fd (bash keeps its terminal on fd 255):
	// connected to the thawing process's own descriptor Std.
	FDInherit
	// FDDirectory: a directory, reopened at Path.
	FDDirectory
)

// FD is one open file descriptor.
type FD struct {
	Num   int
	Kind  FDKind
	Path  string
	Flags uint32 // open flags from fdinfo (O_ACCMODE|O_APPEND|O_NONBLOCK|O_CLOEXEC...)
	Pos   int64
	Size  int64 // size of a regular file at freeze, informative
	Mode  uint32
	// Std is, for FDInherit, which of the thawing process's fds 0-2
	// this descriptor becomes (Num itself for fds 0-2).
	Std int
	// Termios is the kernel struct termios of a terminal on fds 0-2
	// (TCGETS): its modes (raw for an editor, no echo for a password
	// prompt) are the process's expectations, set again on the thawing
	// terminal.
	Termios []byte
}

// Siginfo is a pending signal as PTRACE_PEEKSIGINFO returned it.
type Siginfo struct {
	Shared bool      // process-wide queue rather than the thread's
	Raw    [128]byte // kernel siginfo_t
}

// Process is everything an image records except the page contents,
// which follow it as page records.
type Process struct {
	Arch     Arch
	PageSize int
	Kernel   string // uname -r of the freezing machine
	Machine  string // hostname of the freezing machine, informative
	Pid      int
	Comm     string
	Exe      string
	Cwd      string
	Uid, Gid uint32
	// CPUFeatures are the features the process may rely on; thaw refuses
	// to run on a CPU that lacks one of them.
	CPUFeatures []string
	// XSaveMask is the XCR0 feature mask (amd64) the state was saved under.
	XSaveMask  uint64
	MM         MM
	Auxv       []byte
	VMAs       []VMA
	Threads    []Thread
	SigActions []SigAction
	FDs        []FD
	// Stopped records that the process was in job-control stop (state T).
	Stopped bool
}

// Tail is the state read at the very end of a freeze, after the pages:
// what may still change while they are written. It travels in the
// optional TAIL record, just before END.
type Tail struct {
	// Pending are the signals pending when the freeze ended, including
	// those that arrived while it ran; thaw queues them.
	Pending []Siginfo
}
