package arch

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch/arm64"
)

// The syscall numbers agree with x/sys/unix's table for this host.
func TestSysnoARM64(t *testing.T) {
	s := Current.Sys
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		{"openat", s.Openat, unix.SYS_OPENAT}, {"close", s.Close, unix.SYS_CLOSE},
		{"mmap", s.Mmap, unix.SYS_MMAP}, {"mprotect", s.Mprotect, unix.SYS_MPROTECT},
		{"munmap", s.Munmap, unix.SYS_MUNMAP}, {"mremap", s.Mremap, unix.SYS_MREMAP},
		{"brk", s.Brk, unix.SYS_BRK}, {"rt_sigaction", s.RtSigaction, unix.SYS_RT_SIGACTION},
		{"sigaltstack", s.Sigaltstack, unix.SYS_SIGALTSTACK}, {"prctl", s.Prctl, unix.SYS_PRCTL},
		{"set_tid_address", s.SetTidAddress, unix.SYS_SET_TID_ADDRESS},
		{"set_robust_list", s.SetRobustList, unix.SYS_SET_ROBUST_LIST},
		{"get_robust_list", s.GetRobustList, unix.SYS_GET_ROBUST_LIST},
		{"rseq", s.Rseq, unix.SYS_RSEQ}, {"dup3", s.Dup3, unix.SYS_DUP3},
		{"lseek", s.Lseek, unix.SYS_LSEEK}, {"chdir", s.Chdir, unix.SYS_CHDIR},
		{"fcntl", s.Fcntl, unix.SYS_FCNTL}, {"rt_sigqueueinfo", s.RtSigqueueinfo, unix.SYS_RT_SIGQUEUEINFO},
		{"rt_tgsigqueueinfo", s.RtTgsigqueueinfo, unix.SYS_RT_TGSIGQUEUEINFO},
		{"exit_group", s.ExitGroup, unix.SYS_EXIT_GROUP}, {"getpid", s.Getpid, unix.SYS_GETPID},
		{"gettid", s.Gettid, unix.SYS_GETTID},
		{"read", arm64.SysRead, unix.SYS_READ}, {"write", arm64.SysWrite, unix.SYS_WRITE},
		{"nanosleep", arm64.SysNanosleep, unix.SYS_NANOSLEEP},
		{"clock_nanosleep", arm64.SysClockNanosleep, unix.SYS_CLOCK_NANOSLEEP},
		{"restart_syscall", arm64.SysRestartSyscall, unix.SYS_RESTART_SYSCALL},
		{"rt_sigprocmask", arm64.SysRtSigprocmask, unix.SYS_RT_SIGPROCMASK},
		{"rt_sigreturn", arm64.SysRtSigreturn, unix.SYS_RT_SIGRETURN},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %d, x/sys/unix says %d", tc.name, tc.got, tc.want)
		}
	}
}
