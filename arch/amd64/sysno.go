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
	// The process model's state (umask, limits, timers, memory advice, creds).
	SysUmask            = 95
	SysPrlimit64        = 302
	SysGetitimer        = 36
	SysSetitimer        = 38
	SysTimerCreate      = 222
	SysTimerSettime     = 223
	SysTimerGettime     = 224
	SysTimerDelete      = 226
	SysPersonality      = 135
	SysSetpriority      = 141
	SysSchedSetattr     = 314
	SysSchedSetaffinity = 203
	SysIoprioSet        = 251
	SysFlock            = 73
	SysMadvise          = 28
	SysMlock2           = 325
	SysMseal            = 462
	SysSetgroups        = 116
	SysSetresuid        = 117
	SysSetresgid        = 119
	SysCapset           = 126
	SysMembarrier       = 324
	SysClone3           = 435
	SysRtSigtimedwait   = 128
	SysMlockall         = 151
	SysRecvmsg          = 47
	SysCloseRange       = 436
	SysEpollCtl         = 233
	SysGetMempolicy     = 239
)

// Syscall numbers of the calls the loader makes (LoaderCode).
const (
	SysPread64     = 17
	SysFtruncate   = 77
	SysWritev      = 20
	SysMemfdCreate = 319
	SysExecveat    = 322
)
