package files

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// epollTargetIs tells whether the file epoll efd of pid has registered
// under fd number tfd is the file pid's fd tfd holds now: kcmp(2)
// KCMP_EPOLL_TFD with struct kcmp_epoll_slot {efd, tfd, toff} (linux/kcmp.h)
// returns 0 for the same file. EBADF: tfd is closed (or no item has that
// number: the callers only ask about numbers fdinfo listed).
func epollTargetIs(pid, efd, tfd int) (bool, error) {
	const kcmpEpollTFD = 7
	slot := struct{ efd, tfd, toff uint32 }{uint32(efd), uint32(tfd), 0}
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpEpollTFD,
		uintptr(tfd), uintptr(unsafe.Pointer(&slot)), 0)
	if errno != 0 {
		return false, errno
	}
	return r == 0, nil
}
