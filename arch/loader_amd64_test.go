package arch

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch/amd64"
)

// The numbers of the loader's calls agree with x/sys/unix on this host.
func TestLoaderSysno(t *testing.T) {
	checkSysnos(t, []sysnoCase{
		{"openat", amd64.SysOpenat, unix.SYS_OPENAT}, {"lseek", amd64.SysLseek, unix.SYS_LSEEK},
		{"pread64", amd64.SysPread64, unix.SYS_PREAD64}, {"memfd_create", amd64.SysMemfdCreate, unix.SYS_MEMFD_CREATE},
		{"mmap", amd64.SysMmap, unix.SYS_MMAP}, {"munmap", amd64.SysMunmap, unix.SYS_MUNMAP},
		{"ftruncate", amd64.SysFtruncate, unix.SYS_FTRUNCATE}, {"writev", amd64.SysWritev, unix.SYS_WRITEV},
		{"execveat", amd64.SysExecveat, unix.SYS_EXECVEAT}, {"exit_group", amd64.SysExitGroup, unix.SYS_EXIT_GROUP},
	})
}
