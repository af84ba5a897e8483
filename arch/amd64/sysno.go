package amd64

// Syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl) of the calls
// cryo injects.
const (
	SysRead             = 0
	SysWrite            = 1
	SysOpen             = 2
	SysClose            = 3
	SysMmap             = 9
	SysMprotect         = 10
	SysMunmap           = 11
	SysBrk              = 12
	SysRtSigaction      = 13
	SysRtSigprocmask    = 14
	SysMremap           = 25
	SysDup3             = 292
	SysLseek            = 8
	SysChdir            = 80
	SysFcntl            = 72
	SysSigaltstack      = 131
	SysPrctl            = 157
	SysArchPrctl        = 158
	SysGettid           = 186
	SysIoctl            = 16
	SysSetTidAddress    = 218
	SysExitGroup        = 231
	SysRtTgsigqueueinfo = 297
	SysRtSigqueueinfo   = 129
	SysSetRobustList    = 273
	SysGetRobustList    = 274
	SysOpenat           = 257
	SysRseq             = 334
	SysGetpid           = 39
)
