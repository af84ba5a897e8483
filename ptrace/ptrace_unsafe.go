package ptrace

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

func ptrace(req int, pid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// ptracePtr passes a Go pointer as data; the pointer stays live for the call.
func ptracePtr(req int, pid int, addr uintptr, data unsafe.Pointer) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, uintptr(data), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func ptrOf(p *uint64) unsafe.Pointer { return unsafe.Pointer(p) }

// GetRegset reads regset nt into a buffer of at most max bytes and returns
// the bytes the kernel filled.
// Precondition: called via Tracer.Do.
func GetRegset(tid int, nt int, max int) ([]byte, error) {
	buf := make([]byte, max)
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(max)
	if err := ptracePtr(reqGetRegset, tid, uintptr(nt), unsafe.Pointer(&iov)); err != nil {
		return nil, fmt.Errorf("PTRACE_GETREGSET %#x tid %d: %w", nt, tid, err)
	}
	return buf[:iov.Len], nil
}

// SetRegset writes regset nt.
// Precondition: called via Tracer.Do.
func SetRegset(tid int, nt int, b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("PTRACE_SETREGSET %#x tid %d: empty register set", nt, tid)
	}
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	if err := ptracePtr(reqSetRegset, tid, uintptr(nt), unsafe.Pointer(&iov)); err != nil {
		return fmt.Errorf("PTRACE_SETREGSET %#x tid %d: %w", nt, tid, err)
	}
	return nil
}

// RseqConfig is struct ptrace_rseq_configuration
// (include/uapi/linux/ptrace.h): rseq_abi_pointer u64, rseq_abi_size u32,
// signature u32, flags u32, pad u32.
type RseqConfig struct {
	Addr  uint64
	Len   uint32
	Sig   uint32
	Flags uint32
}

// GetRseq reads the tracee's rseq registration (Linux 5.13+). A kernel
// without the request returns EIO; that is reported as a zero config.
// Precondition: called via Tracer.Do.
func GetRseq(tid int) (RseqConfig, error) {
	var raw [24]byte
	err := ptracePtr(reqGetRseqConfig, tid, uintptr(len(raw)), unsafe.Pointer(&raw[0]))
	if err == unix.EIO {
		return RseqConfig{}, nil // older kernel: no rseq to carry over
	}
	if err != nil {
		return RseqConfig{}, fmt.Errorf("PTRACE_GET_RSEQ_CONFIGURATION tid %d: %w", tid, err)
	}
	return RseqConfig{
		Addr:  binary.LittleEndian.Uint64(raw[0:]),
		Len:   binary.LittleEndian.Uint32(raw[8:]),
		Sig:   binary.LittleEndian.Uint32(raw[12:]),
		Flags: binary.LittleEndian.Uint32(raw[16:]),
	}, nil
}

// PeekSiginfo returns the pending signals of tid's private queue, or of
// the process-wide queue when shared is set.
// Precondition: called via Tracer.Do.
func PeekSiginfo(tid int, shared bool) ([][128]byte, error) {
	var out [][128]byte
	for off := uint64(0); ; {
		args := struct {
			Off   uint64
			Flags uint32
			Nr    int32
		}{Off: off, Nr: 32}
		if shared {
			args.Flags = peekSiginfoShared
		}
		var buf [32][128]byte
		n, _, e := unix.Syscall6(unix.SYS_PTRACE, reqPeekSiginfo, uintptr(tid), uintptr(unsafe.Pointer(&args)), uintptr(unsafe.Pointer(&buf[0])), 0, 0)
		if e != 0 {
			return nil, fmt.Errorf("PTRACE_PEEKSIGINFO tid %d: %w", tid, e)
		}
		if n == 0 {
			return out, nil
		}
		out = append(out, buf[:n]...)
		off += uint64(n)
	}
}

// ReadMem reads len(b) bytes at addr of pid with process_vm_readv.
func ReadMem(pid int, addr uint64, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	return unix.ProcessVMReadv(pid, local, remote, 0)
}

// WriteMem writes b at addr of pid with process_vm_writev.
func WriteMem(pid int, addr uint64, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	local := []unix.Iovec{{Base: &b[0]}}
	local[0].SetLen(len(b))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(b)}}
	return unix.ProcessVMWritev(pid, local, remote, 0)
}

// Syscall stop kinds from PTRACE_GET_SYSCALL_INFO (Linux 5.3+).
const (
	SyscallInfoNone  = 0
	SyscallInfoEntry = 1
	SyscallInfoExit  = 2
)

// SyscallInfoOp tells whether a syscall stop is an entry or an exit stop.
// Precondition: called via Tracer.Do.
func SyscallInfoOp(tid int) (int, error) {
	var buf [88]byte
	if err := ptracePtr(0x420e, tid, uintptr(len(buf)), unsafe.Pointer(&buf[0])); err != nil {
		return 0, fmt.Errorf("PTRACE_GET_SYSCALL_INFO tid %d: %w", tid, err)
	}
	return int(buf[0]), nil
}

// reqGetSyscallUserDispatch is PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG
// (Linux 6.4+).
const reqGetSyscallUserDispatch = 0x4211

// SyscallUserDispatchMode returns the mode of tid's syscall user
// dispatch (PR_SET_SYSCALL_USER_DISPATCH), 0 when off or when the kernel
// cannot tell (before 6.4 it cannot be read; the tracer then cannot know).
// Precondition: called via Tracer.Do.
func SyscallUserDispatchMode(tid int) (uint64, error) {
	var raw [32]byte // struct ptrace_sud_config: mode, selector, offset, len
	err := ptracePtr(reqGetSyscallUserDispatch, tid, uintptr(len(raw)), unsafe.Pointer(&raw[0]))
	if err == unix.EIO || err == unix.EINVAL {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG tid %d: %w", tid, err)
	}
	return binary.LittleEndian.Uint64(raw[:]), nil
}
