package amd64

import "encoding/binary"

// StubCode is the code of the thaw stub, the tiny static program the
// thawing process execs into so that it has almost nothing mapped while
// the helper rebuilds it. The helper never lets it run: every call is
// injected at StubSyscallOffset. Should the helper vanish before it takes
// the stub, the stub exits with status 127:
//
//	mov edi, 127        bf 7f 00 00 00
//	mov eax, 231        b8 e7 00 00 00   (exit_group)
//	syscall             0f 05
//	ud2                 0f 0b
func StubCode() []byte {
	b := []byte{0xbf, 0, 0, 0, 0, 0xb8, 0, 0, 0, 0, 0x0f, 0x05, 0x0f, 0x0b}
	binary.LittleEndian.PutUint32(b[1:], 127)
	binary.LittleEndian.PutUint32(b[6:], SysExitGroup)
	return b
}

// StubSyscallOffset is the offset of the syscall instruction in StubCode.
const StubSyscallOffset = 10

// ELFMachine is EM_X86_64.
const ELFMachine = 62

// Regset note types (include/uapi/linux/elf.h).
const (
	NT_PRSTATUS   = 1
	NT_X86_XSTATE = 0x202
)
