package arch

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch/arm64"
)

// The arm64-only numbers (the tests' and the signal code's) agree with
// x/sys/unix; TestSysno checks the injected ones.
func TestSysnoARM64(t *testing.T) {
	checkSysnos(t, []sysnoCase{
		{"read", arm64.SysRead, unix.SYS_READ}, {"write", arm64.SysWrite, unix.SYS_WRITE},
		{"nanosleep", arm64.SysNanosleep, unix.SYS_NANOSLEEP},
		{"clock_nanosleep", arm64.SysClockNanosleep, unix.SYS_CLOCK_NANOSLEEP},
		{"restart_syscall", arm64.SysRestartSyscall, unix.SYS_RESTART_SYSCALL},
		{"rt_sigprocmask", arm64.SysRtSigprocmask, unix.SYS_RT_SIGPROCMASK},
		{"rt_sigreturn", arm64.SysRtSigreturn, unix.SYS_RT_SIGRETURN},
	})
}
