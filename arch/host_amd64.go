package arch

import (
	"bytes"
	"debug/elf"

	"golang.org/x/arch/x86/x86asm"

	"github.com/cryo-project/cryo/arch/amd64"
	"github.com/cryo-project/cryo/image"
)

type amd64Regs struct{ amd64.Regs }

func (r *amd64Regs) PC() uint64 { return r.Rip }

// Current is the host architecture.
var Current = Host{
	Image:  image.ArchAMD64,
	RegsNT: amd64.NT_PRSTATUS,
	FPUNT:  amd64.NT_X86_XSTATE,
	FPUMax: 64 << 10,
	Sys: Sysno{
		Openat: amd64.SysOpenat, Close: amd64.SysClose, Mmap: amd64.SysMmap,
		Mprotect: amd64.SysMprotect, Munmap: amd64.SysMunmap, Mremap: amd64.SysMremap,
		Brk: amd64.SysBrk, RtSigaction: amd64.SysRtSigaction, Sigaltstack: amd64.SysSigaltstack,
		Prctl: amd64.SysPrctl, SetTidAddress: amd64.SysSetTidAddress,
		SetRobustList: amd64.SysSetRobustList, GetRobustList: amd64.SysGetRobustList,
		Rseq: amd64.SysRseq, Dup3: amd64.SysDup3, Lseek: amd64.SysLseek, Chdir: amd64.SysChdir,
		Fcntl: amd64.SysFcntl, RtSigqueueinfo: amd64.SysRtSigqueueinfo,
		RtTgsigqueueinfo: amd64.SysRtTgsigqueueinfo, ExitGroup: amd64.SysExitGroup,
		Getpid: amd64.SysGetpid, Gettid: amd64.SysGettid, Ioctl: amd64.SysIoctl,
		Umask:            amd64.SysUmask,
		Prlimit64:        amd64.SysPrlimit64,
		Getitimer:        amd64.SysGetitimer,
		Setitimer:        amd64.SysSetitimer,
		TimerCreate:      amd64.SysTimerCreate,
		TimerSettime:     amd64.SysTimerSettime,
		TimerGettime:     amd64.SysTimerGettime,
		TimerDelete:      amd64.SysTimerDelete,
		Personality:      amd64.SysPersonality,
		Setpriority:      amd64.SysSetpriority,
		SchedSetattr:     amd64.SysSchedSetattr,
		SchedSetaffinity: amd64.SysSchedSetaffinity,
		IoprioSet:        amd64.SysIoprioSet,
		Flock:            amd64.SysFlock,
		Madvise:          amd64.SysMadvise,
		Mlock2:           amd64.SysMlock2,
		Mseal:            amd64.SysMseal,
		Setgroups:        amd64.SysSetgroups,
		Setresuid:        amd64.SysSetresuid,
		Setresgid:        amd64.SysSetresgid,
		Capset:           amd64.SysCapset,
		Membarrier:       amd64.SysMembarrier,
		Write:            amd64.SysWrite,
		Clone3:           amd64.SysClone3,
		RtSigtimedwait:   amd64.SysRtSigtimedwait,
		Mlockall:         amd64.SysMlockall,
		GetMempolicy:     amd64.SysGetMempolicy,
		Recvmsg:          amd64.SysRecvmsg,
		CloseRange:       amd64.SysCloseRange,
		EpollCtl:         amd64.SysEpollCtl,
	},
	NewRegs: func(raw []byte) (Regs, error) {
		r := &amd64Regs{}
		if err := r.Decode(raw); err != nil {
			return nil, err
		}
		return r, nil
	},
	StubCode:          amd64.StubCode(),
	StubSyscallOffset: amd64.StubSyscallOffset,
	ELFMachine:        amd64.ELFMachine,
	Loader:            image.Loader{Machine: elf.Machine(amd64.ELFMachine), Code: amd64.LoaderCode()},
	SyscallInsn:       amd64.SyscallInsn,
}

// FindSyscall returns the offset of the first syscall instruction in code
// at an instruction boundary (findSyscallAMD64).
func FindSyscall(code []byte) (int, bool) { return findSyscallAMD64(code) }

// findSyscallAMD64 decodes code linearly from its start with x86asm and
// returns the offset of the first SYSCALL instruction, so that a 0f 05
// inside another instruction's immediate is never taken for one. Bytes
// that do not decode are stepped over one at a time.
func findSyscallAMD64(code []byte) (int, bool) {
	for off := 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil || inst.Len == 0 {
			off++
			continue
		}
		if inst.Op == x86asm.SYSCALL && bytes.Equal(code[off:off+2], amd64.SyscallInsn) {
			return off, true
		}
		off += inst.Len
	}
	return 0, false
}
