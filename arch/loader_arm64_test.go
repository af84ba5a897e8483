package arch

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch/arm64"
)

// The numbers of the loader's calls agree with x/sys/unix on this host.
func TestLoaderSysno(t *testing.T) {
	checkSysnos(t, []sysnoCase{
		{"openat", arm64.SysOpenat, unix.SYS_OPENAT}, {"lseek", arm64.SysLseek, unix.SYS_LSEEK},
		{"pread64", arm64.SysPread64, unix.SYS_PREAD64}, {"memfd_create", arm64.SysMemfdCreate, unix.SYS_MEMFD_CREATE},
		{"mmap", arm64.SysMmap, unix.SYS_MMAP}, {"munmap", arm64.SysMunmap, unix.SYS_MUNMAP},
		{"ftruncate", arm64.SysFtruncate, unix.SYS_FTRUNCATE}, {"writev", arm64.SysWritev, unix.SYS_WRITEV},
		{"execveat", arm64.SysExecveat, unix.SYS_EXECVEAT}, {"exit_group", arm64.SysExitGroup, unix.SYS_EXIT_GROUP},
	})
}
