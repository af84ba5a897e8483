package arch

import (
	"debug/elf"

	"github.com/cryo-project/cryo/arch/arm64"
	"github.com/cryo-project/cryo/image"
)

type arm64Regs struct{ arm64.Regs }

func (r *arm64Regs) PC() uint64 { return r.Pc }

// Current is the host architecture.
var Current = Host{
	Image:       image.ArchARM64,
	RegsNT:      arm64.NT_PRSTATUS,
	FPUNT:       arm64.NT_PRFPREG,
	FPUMax:      arm64.FPSIMDSize,
	TLSNT:       arm64.NT_ARM_TLS,
	SyscallNoNT: arm64.NT_ARM_SYSTEM_CALL,
	Sys: Sysno{
		Openat: arm64.SysOpenat, Close: arm64.SysClose, Mmap: arm64.SysMmap,
		Mprotect: arm64.SysMprotect, Munmap: arm64.SysMunmap, Mremap: arm64.SysMremap,
		Brk: arm64.SysBrk, RtSigaction: arm64.SysRtSigaction, Sigaltstack: arm64.SysSigaltstack,
		Prctl: arm64.SysPrctl, SetTidAddress: arm64.SysSetTidAddress,
		SetRobustList: arm64.SysSetRobustList, GetRobustList: arm64.SysGetRobustList,
		Rseq: arm64.SysRseq, Dup3: arm64.SysDup3, Lseek: arm64.SysLseek, Chdir: arm64.SysChdir,
		Fcntl: arm64.SysFcntl, RtSigqueueinfo: arm64.SysRtSigqueueinfo,
		RtTgsigqueueinfo: arm64.SysRtTgsigqueueinfo, ExitGroup: arm64.SysExitGroup,
		Getpid: arm64.SysGetpid, Gettid: arm64.SysGettid, Ioctl: arm64.SysIoctl,
		Umask:            arm64.SysUmask,
		Prlimit64:        arm64.SysPrlimit64,
		Getitimer:        arm64.SysGetitimer,
		Setitimer:        arm64.SysSetitimer,
		TimerCreate:      arm64.SysTimerCreate,
		TimerSettime:     arm64.SysTimerSettime,
		TimerGettime:     arm64.SysTimerGettime,
		TimerDelete:      arm64.SysTimerDelete,
		Personality:      arm64.SysPersonality,
		Setpriority:      arm64.SysSetpriority,
		SchedSetattr:     arm64.SysSchedSetattr,
		SchedSetaffinity: arm64.SysSchedSetaffinity,
		IoprioSet:        arm64.SysIoprioSet,
		Flock:            arm64.SysFlock,
		Madvise:          arm64.SysMadvise,
		Mlock2:           arm64.SysMlock2,
		Mseal:            arm64.SysMseal,
		Setgroups:        arm64.SysSetgroups,
		Setresuid:        arm64.SysSetresuid,
		Setresgid:        arm64.SysSetresgid,
		Capset:           arm64.SysCapset,
		Membarrier:       arm64.SysMembarrier,
		Write:            arm64.SysWrite,
		Clone3:           arm64.SysClone3,
		RtSigtimedwait:   arm64.SysRtSigtimedwait,
		Mlockall:         arm64.SysMlockall,
		GetMempolicy:     arm64.SysGetMempolicy,
		Recvmsg:          arm64.SysRecvmsg,
		CloseRange:       arm64.SysCloseRange,
		EpollCtl:         arm64.SysEpollCtl,
	},
	NewRegs: func(raw []byte) (Regs, error) {
		r := &arm64Regs{}
		if err := r.Decode(raw); err != nil {
			return nil, err
		}
		return r, nil
	},
	StubCode:          arm64.StubCode(),
	StubSyscallOffset: arm64.StubSyscallOffset,
	ELFMachine:        arm64.ELFMachine,
	Loader:            image.Loader{Machine: elf.Machine(arm64.ELFMachine), Code: arm64.LoaderCode()},
	SyscallInsn:       arm64.SyscallInsn,
}

// FindSyscall returns the offset of the first syscall instruction in code
// at an instruction boundary (arm64.FindSyscall).
func FindSyscall(code []byte) (int, bool) { return arm64.FindSyscall(code) }
