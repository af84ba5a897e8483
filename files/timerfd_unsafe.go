package files

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tfdIocSetTicks is TFD_IOC_SET_TICKS, _IOW('T', 0, u64)
// (include/uapi/linux/timerfd.h; the same number on every arch cryo
// supports, asm-generic/ioctl.h).
const tfdIocSetTicks = 1<<30 | 8<<16 | 'T'<<8 | 0

// setTicks sets the count of expirations a read of the timer lf returns
// (fs/timerfd.c, timerfd_ioctl_set_ticks; CONFIG_CHECKPOINT_RESTORE).
func setTicks(lf *os.File, ticks uint64) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, lf.Fd(), tfdIocSetTicks, uintptr(unsafe.Pointer(&ticks)))
	if errno != 0 {
		return errno
	}
	return nil
}
