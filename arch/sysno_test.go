//go:build linux && (amd64 || arm64)

package arch

import (
	"testing"

	"golang.org/x/sys/unix"
)

// sysnoCase is one syscall number checked against x/sys/unix.
type sysnoCase struct {
	name      string
	got, want uint64
}

// checkSysnos fails for every number that disagrees with x/sys/unix's
// table for this host.
func checkSysnos(t *testing.T, cases []sysnoCase) {
	t.Helper()
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("%s: %d, x/sys/unix says %d", tc.name, tc.got, tc.want)
		}
	}
}

// The numbers of every injected call agree with x/sys/unix on this host.
func TestSysno(t *testing.T) {
	s := Current.Sys
	checkSysnos(t, []sysnoCase{
		{"openat", s.Openat, unix.SYS_OPENAT}, {"close", s.Close, unix.SYS_CLOSE},
		{"mmap", s.Mmap, unix.SYS_MMAP}, {"mprotect", s.Mprotect, unix.SYS_MPROTECT},
		{"munmap", s.Munmap, unix.SYS_MUNMAP}, {"mremap", s.Mremap, unix.SYS_MREMAP},
		{"brk", s.Brk, unix.SYS_BRK}, {"rt_sigaction", s.RtSigaction, unix.SYS_RT_SIGACTION},
		{"sigaltstack", s.Sigaltstack, unix.SYS_SIGALTSTACK}, {"prctl", s.Prctl, unix.SYS_PRCTL},
		{"set_tid_address", s.SetTidAddress, unix.SYS_SET_TID_ADDRESS},
		{"set_robust_list", s.SetRobustList, unix.SYS_SET_ROBUST_LIST},
		{"get_robust_list", s.GetRobustList, unix.SYS_GET_ROBUST_LIST},
		{"rseq", s.Rseq, unix.SYS_RSEQ}, {"dup3", s.Dup3, unix.SYS_DUP3},
		{"recvmsg", s.Recvmsg, unix.SYS_RECVMSG}, {"close_range", s.CloseRange, unix.SYS_CLOSE_RANGE},
		{"epoll_ctl", s.EpollCtl, unix.SYS_EPOLL_CTL},
		{"lseek", s.Lseek, unix.SYS_LSEEK}, {"chdir", s.Chdir, unix.SYS_CHDIR},
		{"fcntl", s.Fcntl, unix.SYS_FCNTL}, {"rt_sigqueueinfo", s.RtSigqueueinfo, unix.SYS_RT_SIGQUEUEINFO},
		{"rt_tgsigqueueinfo", s.RtTgsigqueueinfo, unix.SYS_RT_TGSIGQUEUEINFO},
		{"exit_group", s.ExitGroup, unix.SYS_EXIT_GROUP}, {"getpid", s.Getpid, unix.SYS_GETPID},
		{"gettid", s.Gettid, unix.SYS_GETTID}, {"ioctl", s.Ioctl, unix.SYS_IOCTL},
	})
}
