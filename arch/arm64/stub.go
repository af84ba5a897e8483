package arm64

import "encoding/binary"

// StubCode is the code of the thaw stub, the tiny static program the
// thawing process execs into so that it has almost nothing mapped while
// the helper rebuilds it. The helper never lets it run: every call is
// injected at StubSyscallOffset. Should the helper vanish before it takes
// the stub, the stub exits with status 127:
//
//	mov x0, #127        d2800fe0
//	mov x8, #94         d2800bc8   (exit_group)
//	svc #0              d4000001
//	brk #0              d4200000
func StubCode() []byte {
	b := make([]byte, 16)
	le := binary.LittleEndian
	le.PutUint32(b[0:], movz(0, 127))
	le.PutUint32(b[4:], movz(8, SysExitGroup))
	copy(b[8:], SyscallInsn)
	le.PutUint32(b[12:], 0xd4200000) // brk #0
	return b
}

// movz encodes `movz xRd, #imm16` (`mov xRd, #imm16`).
func movz(rd uint32, imm16 uint16) uint32 { return 0xd2800000 | uint32(imm16)<<5 | rd }

// StubSyscallOffset is the offset of the svc in StubCode.
const StubSyscallOffset = 8

// ELFMachine is EM_AARCH64.
const ELFMachine = 183

// Regset note types (include/uapi/linux/elf.h). NT_ARM_TLS holds
// TPIDR_EL0 (8 bytes; kernels with SME append TPIDR2_EL0, which cryo does
// not carry); NT_ARM_SYSTEM_CALL is pt_regs.syscallno (an int).
const (
	NT_PRSTATUS        = 1
	NT_PRFPREG         = 2
	NT_ARM_TLS         = 0x401
	NT_ARM_SYSTEM_CALL = 0x404
)

// FPSIMDSize is sizeof(struct user_fpsimd_state), the NT_PRFPREG regset:
// v0-v31 (16 bytes each), fpsr, fpcr and 8 reserved bytes.
const FPSIMDSize = 32*16 + 4 + 4 + 8
