package arm64

// Syscall numbers (include/uapi/asm-generic/unistd.h, the table arm64
// uses) of the calls cryo injects and of those the tests watch for.
const (
	SysDup3             = 24
	SysFcntl            = 25
	SysChdir            = 49
	SysOpenat           = 56
	SysClose            = 57
	SysLseek            = 62
	SysRead             = 63
	SysWrite            = 64
	SysExitGroup        = 94
	SysSetTidAddress    = 96
	SysSetRobustList    = 99
	SysGetRobustList    = 100
	SysNanosleep        = 101
	SysClockNanosleep   = 115
	SysRestartSyscall   = 128
	SysSigaltstack      = 132
	SysRtSigaction      = 134
	SysRtSigprocmask    = 135
	SysRtSigqueueinfo   = 138
	SysRtSigreturn      = 139
	SysPrctl            = 167
	SysGetpid           = 172
	SysGettid           = 178
	SysIoctl            = 29
	SysBrk              = 214
	SysMunmap           = 215
	SysMremap           = 216
	SysMmap             = 222
	SysMprotect         = 226
	SysRtTgsigqueueinfo = 240
	SysRseq             = 293
)
