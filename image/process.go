package image

// The process model (format version 2). Every field carries an explicit
// JSON name: the names are the format, so renaming a Go field cannot drop
// it from older images (TestJSONNamesExplicit checks that every field has
// one). Per-process state lives in Process (the PROCESS record), per-thread
// state in Thread (one THREAD record each), bulk bytes that are not pages
// in BLOB records, and what must be read last in Tail.

import "encoding/json"

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
	// their data). All of its readable pages travel in the image. At thaw
	// the file is mapped again when it is there (so /proc/PID/maps names
	// it) and the image's pages are written over it; where it is missing
	// the mapping comes back anonymous with the same contents.
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
	// VMASharedObject is a MAP_SHARED mapping of a file that cannot be
	// opened again by path: a memfd or an unlinked file. Its contents
	// travel once, with the file (File names it in the file table, with
	// or without fds on it); thaw builds the file once and maps it, so
	// that the mapping and every fd on the file stay one object.
	VMASharedObject
)

// VMA flags: what smaps' VmFlags say of a mapping that thaw must give it
// again (the two-letter names are the kernel's, fs/proc/task_mmu.c).
const (
	VMAGrowsDown   uint32 = 1 << iota // gd: [stack], MAP_GROWSDOWN
	VMAHeap                           // the [heap] (brk) area
	VMAStack                          // the main thread's [stack]
	VMANoDump                         // dd: MADV_DONTDUMP
	VMADontFork                       // dc: MADV_DONTFORK
	VMAWipeOnFork                     // wf: MADV_WIPEONFORK
	VMAHugePage                       // hg: MADV_HUGEPAGE
	VMANoHugePage                     // nh: MADV_NOHUGEPAGE
	VMAMergeable                      // mg: MADV_MERGEABLE
	VMALocked                         // lo: mlock
	VMALockOnFault                    // lf: mlock2(MLOCK_ONFAULT)
	VMANoReserve                      // nr: MAP_NORESERVE
	VMASealed                         // sl: mseal
	VMAMayWrite                       // mw: a shared file mapping that may be made writable
	VMAAccount                        // ac: charged as committed memory (VM_ACCOUNT)
	VMASequential                     // sr: MADV_SEQUENTIAL
	VMARandom                         // rr: MADV_RANDOM
	// VMAShared (sh: VM_SHARED) is recorded for VMASharedObject only:
	// mapped from a descriptor open for writing. Without mw it is a
	// memfd sealed against writes (the seal took VM_MAYWRITE away).
	VMAShared
)

// VMA is one line of /proc/PID/maps with what thaw needs to rebuild it.
type VMA struct {
	Start  uint64  `json:"start"`
	End    uint64  `json:"end"`
	Prot   uint32  `json:"prot"` // PROT_READ|PROT_WRITE|PROT_EXEC
	Kind   VMAKind `json:"kind"`
	Flags  uint32  `json:"flags"`
	Offset uint64  `json:"offset"` // file offset (file mappings)
	// Path is the maps name: a file path, [heap], [stack], [vdso],
	// [anon:NAME] (PR_SET_VMA_ANON_NAME)...
	Path  string `json:"path"`
	Dev   string `json:"dev"`
	Inode uint64 `json:"inode"`
	// File is, for VMASharedObject, the id of the File it maps.
	File int `json:"file,omitempty"`
	// Guards are the MADV_GUARD_INSTALL guard regions inside the VMA,
	// as [start, end) address pairs.
	Guards [][2]uint64 `json:"guards,omitempty"`
}

// MM holds the mm_struct fields restored with prctl(PR_SET_MM_MAP).
type MM struct {
	StartCode  uint64 `json:"start_code"`
	EndCode    uint64 `json:"end_code"`
	StartData  uint64 `json:"start_data"`
	EndData    uint64 `json:"end_data"`
	StartBrk   uint64 `json:"start_brk"`
	Brk        uint64 `json:"brk"`
	StartStack uint64 `json:"start_stack"`
	ArgStart   uint64 `json:"arg_start"`
	ArgEnd     uint64 `json:"arg_end"`
	EnvStart   uint64 `json:"env_start"`
	EnvEnd     uint64 `json:"env_end"`
}

// Rseq is a thread's restartable-sequences registration.
type Rseq struct {
	Addr  uint64 `json:"addr"`
	Len   uint32 `json:"len"`
	Flags uint32 `json:"flags"`
	Sig   uint32 `json:"sig"`
}

// AltStack is a thread's sigaltstack.
type AltStack struct {
	SP    uint64 `json:"sp"`
	Flags int32  `json:"flags"`
	Size  uint64 `json:"size"`
}

// Sched is a thread's scheduling policy (sched_getattr).
type Sched struct {
	Policy   uint32 `json:"policy"`
	Flags    uint64 `json:"flags"`
	Priority uint32 `json:"priority"` // real-time priority
	// UtilMin and UtilMax are the uclamp values (SCHED_FLAG_UTIL_CLAMP).
	UtilMin uint32 `json:"util_min"`
	UtilMax uint32 `json:"util_max"`
}

// Thread is one task's CPU and per-thread kernel state (a THREAD record).
type Thread struct {
	Tid int `json:"tid"`
	// Regs is the architecture's general register set exactly as
	// PTRACE_GETREGSET NT_PRSTATUS returned it (amd64: user_regs_struct,
	// with fs_base/gs_base).
	Regs []byte `json:"regs"`
	// FPU is the extended state: amd64 the XSAVE area (NT_X86_XSTATE),
	// arm64 user_fpsimd_state (NT_PRFPREG).
	FPU []byte `json:"fpu"`
	// TLS is the arm64 TPIDR_EL0 (NT_ARM_TLS); unused on amd64 (fs_base is in Regs).
	TLS           uint64   `json:"tls"`
	SigMask       uint64   `json:"sigmask"`
	ClearChildTid uint64   `json:"clear_child_tid"`
	RobustList    uint64   `json:"robust_list"`
	RobustLen     uint64   `json:"robust_len"`
	Rseq          Rseq     `json:"rseq"`
	AltStack      AltStack `json:"altstack"`
	// Comm is the thread's name (PR_SET_NAME).
	Comm string `json:"comm"`
	// Nice is the thread's nice value (getpriority).
	Nice  int   `json:"nice"`
	Sched Sched `json:"sched"`
	// Affinity is the CPU mask (sched_getaffinity), 64 CPUs a word.
	Affinity []uint64 `json:"affinity"`
	// IOPrio is ioprio_get(IOPRIO_WHO_PROCESS, tid).
	IOPrio       int    `json:"ioprio"`
	TimerSlackNs uint64 `json:"timerslack_ns"`
	PDeathSig    int    `json:"pdeathsig"`
	NoNewPrivs   bool   `json:"no_new_privs"`
	// Spec holds PR_GET_SPECULATION_CTRL for store bypass, indirect
	// branch and L1D flush, in that order.
	Spec [3]uint64 `json:"speculation"`
	// IOFlusher is PR_GET_IO_FLUSHER.
	IOFlusher bool `json:"io_flusher"`
}

// SigAction is a kernel struct sigaction for one signal with a
// non-default disposition.
type SigAction struct {
	Signo    int    `json:"signo"`
	Handler  uint64 `json:"handler"`
	Flags    uint64 `json:"flags"`
	Restorer uint64 `json:"restorer"`
	Mask     uint64 `json:"mask"`
}

// FileKind says how an open file description is rebuilt.
type FileKind string

const (
	// FileReg: a regular file, reopened at Path with Flags and seeked to Pos.
	FileReg FileKind = "reg"
	// FileDir: a directory, reopened at Path.
	FileDir FileKind = "dir"
	// FileDevice: a character device other than a terminal (/dev/null...),
	// reopened at Path.
	FileDevice FileKind = "chr"
	// FileStd: a terminal, pipe or socket on fds 0-2 (or the same open
	// file on a higher fd, like bash's 255): connected to the thawing
	// process's own descriptor Std.
	FileStd FileKind = "std"
)

// File is one open file description. Several fds may point at it (dup,
// fork, `>log 2>&1`): they share its offset and status flags, found at
// freeze with kcmp(KCMP_FILE), and share them again after thaw.
type File struct {
	ID   int      `json:"id"`
	Kind FileKind `json:"kind"`
	// Path is where the file was, as /proc/PID/fd's link says.
	Path string `json:"path,omitempty"`
	// Flags are the access mode and status flags (fdinfo "flags",
	// without O_CLOEXEC, which belongs to each FD).
	Flags uint32 `json:"flags"`
	Pos   int64  `json:"pos"`
	// What the file was at freeze (stat of the fd), checked at thaw.
	Mode    uint32 `json:"mode"`
	Size    int64  `json:"size"`
	Dev     uint64 `json:"dev"`
	Ino     uint64 `json:"ino"`
	Rdev    uint64 `json:"rdev"`
	MtimeNs int64  `json:"mtime_ns"`
	// Std is, for FileStd, which of the thawing process's fds 0-2 this
	// file becomes.
	Std int `json:"std"`
	// Termios is the kernel struct termios of a terminal on fds 0-2
	// (TCGETS): its modes (raw for an editor, no echo for a password
	// prompt) are the process's expectations, set again on the thawing
	// terminal.
	Termios []byte `json:"termios,omitempty"`
	// Blob names the BLOB record holding the file's contents, 0 if none.
	Blob uint64 `json:"blob,omitempty"`
	// Payload is what the kind needs beyond the fields above (a pipe's
	// id and peer, a socket's addresses and options...), as the files
	// package that owns the kind encodes it.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// FD is one descriptor: a number pointing at a File.
type FD struct {
	Num     int  `json:"fd"`
	File    int  `json:"file"`
	Cloexec bool `json:"cloexec"`
}

// Lock kinds.
const (
	LockPOSIX = "posix" // fcntl F_SETLK: owned by the process
	LockFlock = "flock" // flock(2): owned by the open file description
	LockOFD   = "ofd"   // fcntl F_OFD_SETLK: owned by the open file description
	LockLease = "lease" // fcntl F_SETLEASE
)

// Lock is a file lock or lease the process holds.
type Lock struct {
	Kind  string `json:"kind"`
	File  int    `json:"file"` // the File it is taken through
	Write bool   `json:"write"`
	Start int64  `json:"start"`
	Len   int64  `json:"len"` // 0: to the end of the file
}

// Rlimit is one resource limit (prlimit).
type Rlimit struct {
	Resource int    `json:"resource"`
	Cur      uint64 `json:"cur"`
	Max      uint64 `json:"max"`
}

// ITimer is an interval timer (setitimer) that is armed.
type ITimer struct {
	Which      int   `json:"which"` // ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF
	IntervalUs int64 `json:"interval_us"`
	ValueUs    int64 `json:"value_us"`
}

// PosixTimer is a timer_create timer, with its id kept.
type PosixTimer struct {
	ID     int32  `json:"id"`
	Clock  int32  `json:"clock"`
	Notify int32  `json:"notify"` // SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, |SIGEV_THREAD_ID
	Signo  int32  `json:"signo"`
	Sigval uint64 `json:"sigval"`
	Tid    int    `json:"tid,omitempty"` // SIGEV_THREAD_ID: the frozen tid
	// IntervalNs and ValueNs are timer_gettime's: the period and the
	// time left (0: disarmed).
	IntervalNs int64 `json:"interval_ns"`
	ValueNs    int64 `json:"value_ns"`
}

// Creds are the process's credentials (/proc/PID/status, securebits).
type Creds struct {
	Uid        [4]uint32 `json:"uid"` // real, effective, saved, filesystem
	Gid        [4]uint32 `json:"gid"`
	Groups     []uint32  `json:"groups"`
	CapInh     uint64    `json:"cap_inh"`
	CapPrm     uint64    `json:"cap_prm"`
	CapEff     uint64    `json:"cap_eff"`
	CapBnd     uint64    `json:"cap_bnd"`
	CapAmb     uint64    `json:"cap_amb"`
	Securebits uint32    `json:"securebits"`
	KeepCaps   bool      `json:"keep_caps"`
}

// Attrs are the process-wide settings a process can make and read back:
// prctls, /proc files it may write, its personality.
type Attrs struct {
	Personality    uint32 `json:"personality"`
	ChildSubreaper bool   `json:"child_subreaper"`
	Dumpable       int    `json:"dumpable"`
	THPDisable     bool   `json:"thp_disable"`
	MDWE           uint32 `json:"mdwe"`     // PR_GET_MDWE
	MCEKill        int    `json:"mce_kill"` // PR_MCE_KILL_GET
	TSC            int    `json:"tsc"`      // PR_GET_TSC (amd64)
	MemoryMerge    bool   `json:"memory_merge"`
	OOMScoreAdj    int    `json:"oom_score_adj"`
	CoredumpFilter uint64 `json:"coredump_filter"`
	LoginUID       uint32 `json:"loginuid"`
	// MlockFuture is mlockall's MCL_FUTURE (and MCL_ONFAULT) state:
	// mappings made from now on are locked.
	MlockFuture int `json:"mlock_future"`
}

// Zombie is a child that had exited but was not reaped at freeze. Zombies
// are not carried: after thaw, wait() does not see them (see docs/state.md).
type Zombie struct {
	Pid    int `json:"pid"`
	Status int `json:"status"`
}

// Siginfo is a pending signal as PTRACE_PEEKSIGINFO returned it.
type Siginfo struct {
	Shared bool      `json:"shared"` // process-wide queue rather than the thread's
	Tid    int       `json:"tid"`    // the thread whose queue holds it (0: shared)
	Raw    [128]byte `json:"raw"`    // kernel siginfo_t
}

// XSaveLayout is a CPU's standard-format XSAVE layout (CPUID leaf 0xD):
// the area's size, XCR0, and where each extended component is.
type XSaveLayout struct {
	Size       int              `json:"size"`
	XCR0       uint64           `json:"xcr0"`
	Components []XSaveComponent `json:"components"`
}

// XSaveComponent is one extended state component of an XSAVE area.
type XSaveComponent struct {
	Feature int `json:"feature"` // its bit in XCR0 and XSTATE_BV
	Offset  int `json:"offset"`
	Size    int `json:"size"`
}

// Process is everything an image records except the page and blob
// contents: per-process state in the PROCESS record, and its threads,
// each in a THREAD record of its own that follows it.
type Process struct {
	Arch     Arch   `json:"arch"`
	PageSize int    `json:"page_size"`
	Kernel   string `json:"kernel"`    // uname -r of the freezing machine
	Machine  string `json:"machine"`   // hostname of the freezing machine, informative
	FrozenAt int64  `json:"frozen_at"` // Unix time in ns, informative
	Pid      int    `json:"pid"`
	Comm     string `json:"comm"`
	// Argv is the command line (/proc/PID/cmdline, split at its NULs),
	// informative: the arguments themselves travel in the pages.
	Argv  []string `json:"argv,omitempty"`
	Exe   string   `json:"exe"`
	Cwd   string   `json:"cwd"`
	Creds Creds    `json:"creds"`
	// CPUFeatures are the features the process may rely on; thaw refuses
	// to run on a CPU that lacks one of them (package cpu says which).
	CPUFeatures []string `json:"cpu_features"`
	// CPUFeaturesOff are the freezing CPU's features its start-up
	// environment switched off, each "name (switches)": informative.
	CPUFeaturesOff []string `json:"cpu_features_off,omitempty"`
	// CPURuntimes are the runtimes found choosing code by CPU in the
	// process ("glibc", "go"), whose switches counted; [] for none, absent
	// in images made before they were recorded.
	CPURuntimes []string `json:"cpu_runtimes"`
	// XSaveMask is the XCR0 feature mask (amd64) the state was saved under.
	XSaveMask uint64 `json:"xsave_mask"`
	// XSave (amd64) is the layout of the threads' XSAVE areas, the
	// freezing CPU's; nil in images made before layouts were recorded,
	// which thaw only on a CPU whose area has the same size.
	XSave *XSaveLayout `json:"xsave_layout,omitempty"`
	// XSaveInUse (amd64) are the XSAVE components some thread held in a
	// state other than the initial one (bit i: component i).
	XSaveInUse uint64 `json:"xsave_in_use"`
	MM         MM     `json:"mm"`
	Auxv       []byte `json:"auxv"`
	// VDSO is the freezing kernel's vdso, compared with the thawing
	// kernel's before anything changes.
	VDSO       []byte       `json:"vdso"`
	VMAs       []VMA        `json:"vmas"`
	SigActions []SigAction  `json:"sigactions"`
	Files      []File       `json:"files"`
	FDs        []FD         `json:"fds"`
	Umask      uint32       `json:"umask"`
	Rlimits    []Rlimit     `json:"rlimits"`
	ITimers    []ITimer     `json:"itimers"`
	Timers     []PosixTimer `json:"posix_timers"`
	Locks      []Lock       `json:"locks"`
	Attrs      Attrs        `json:"attrs"`
	Zombies    []Zombie     `json:"zombies"`
	// Stopped records that the process was in job-control stop (state T).
	Stopped bool `json:"stopped"`
	// Notes are the lines freeze printed about the files: what thaw does
	// with each pipe, socket or terminal whose peer is outside the
	// process. Informative (thaw --info shows them).
	Notes []string `json:"notes,omitempty"`
	// NumThreads is the number of THREAD records that follow.
	NumThreads int `json:"threads"`
	// Threads are read from and written to the THREAD records.
	Threads []Thread `json:"-"`
}

// File returns the File with the given id, or nil.
func (p *Process) File(id int) *File {
	for i := range p.Files {
		if p.Files[i].ID == id {
			return &p.Files[i]
		}
	}
	return nil
}

// Tail is the state read at the very end of a freeze, after the pages:
// what may still change while they are written. It travels in the
// optional TAIL record, just before END.
type Tail struct {
	// Pending are the signals pending when the freeze ended, including
	// those that arrived while it ran; thaw queues them.
	Pending []Siginfo `json:"pending"`
}
