package e2e

import (
	"debug/elf"
	"runtime"
	"testing"
)

// The system calls the victims block in, the image header's arch code and
// the ELF machine, for the architecture the tests run on.
var (
	sysRead, sysNanosleep, sysClockNanosleep int64
	sysPoll, sysPpoll                        int64 // arm64 has no poll: -1
	archNative, archOther                    uint32
	archNativeName, archOtherName            string
	elfMachine                               elf.Machine
)

func init() {
	switch runtime.GOARCH {
	case "arm64":
		sysRead, sysNanosleep, sysClockNanosleep = 63, 101, 115
		sysPoll, sysPpoll = -1, 73
		archNative, archOther = archARM64, archAMD64
		archNativeName, archOtherName = "arm64", "amd64"
		elfMachine = elf.EM_AARCH64
	default: // amd64
		sysRead, sysNanosleep, sysClockNanosleep = 0, 35, 230
		sysPoll, sysPpoll = 7, 271
		archNative, archOther = archAMD64, archARM64
		archNativeName, archOtherName = "amd64", "arm64"
		elfMachine = elf.EM_X86_64
	}
}

// requireAMD64 skips tests whose victim is x86-64 assembly.
func requireAMD64(tb testing.TB) {
	tb.Helper()
	if runtime.GOARCH != "amd64" {
		tb.Skipf("x86-64 only (GOARCH=%s)", runtime.GOARCH)
	}
}
