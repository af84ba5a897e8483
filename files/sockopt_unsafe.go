package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// getsockoptBytes reads option name at level of fd as the bytes the
// kernel gives (at most size of them).
func getsockoptBytes(fd, level, name, size int) ([]byte, error) {
	b := make([]byte, max(size, 1))
	n := uint32(size)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name),
		uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return nil, e
	}
	return b[:min(int(n), size)], nil
}

// setsockoptBytes sets option name at level of fd to b.
func setsockoptBytes(fd, level, name int, b []byte) error {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(name),
		uintptr(p), uintptr(len(b)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// filterLen is the number of classic BPF instructions of the filter on
// fd (SO_GET_FILTER with no buffer gives the count), 0 for none.
func filterLen(fd int) (int, error) {
	var n uint32
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_GET_FILTER, 0, uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// dropAll is a classic BPF socket filter that accepts nothing: "ret #0".
var dropAll = []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}

// attachDropAll makes fd's socket drop every packet it receives, before
// the protocol sees it (tcp_filter(): no ACK is sent for it either).
func attachDropAll(fd int) error {
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(dropAll)), Filter: &dropAll[0]})
}
