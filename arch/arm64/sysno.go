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
	// The process model's state (umask, limits, timers, memory advice, creds).
	SysUmask            = 166
	SysPrlimit64        = 261
	SysGetitimer        = 102
	SysSetitimer        = 103
	SysTimerCreate      = 107
	SysTimerSettime     = 110
	SysTimerGettime     = 108
	SysTimerDelete      = 111
	SysPersonality      = 92
	SysSetpriority      = 140
	SysSchedSetattr     = 274
	SysSchedSetaffinity = 122
	SysIoprioSet        = 30
	SysFlock            = 32
	SysMadvise          = 233
	SysMlock2           = 284
	SysMseal            = 462
	SysSetgroups        = 159
	SysSetresuid        = 147
	SysSetresgid        = 149
	SysCapset           = 91
	SysMembarrier       = 283
	SysClone3           = 435
	SysRtSigtimedwait   = 137
	SysMlockall         = 230
	SysRecvmsg          = 212
	SysCloseRange       = 436
	SysEpollCtl         = 21
	SysGetMempolicy     = 236
)

// Syscall numbers of the calls the loader makes (LoaderCode).
const (
	SysPread64     = 67
	SysFtruncate   = 46
	SysWritev      = 66
	SysMemfdCreate = 279
	SysExecveat    = 281
)
