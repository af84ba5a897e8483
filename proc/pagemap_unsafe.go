package proc

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// struct page_region and struct pm_scan_arg, include/uapi/linux/fs.h
// (Linux 6.7+); x/sys/unix does not have them yet.
type pageRegion struct {
	start, end, categories uint64
}

type pmScanArg struct {
	size, flags, start, end, walkEnd, vec, vecLen, maxPages uint64
	categoryInverted, categoryMask, categoryAnyofMask       uint64
	returnMask                                              uint64
}

// pagemapScan is PAGEMAP_SCAN, _IOWR('f', 16, struct pm_scan_arg): the
// same number on every architecture (asm-generic/ioctl.h).
const pagemapScan = 3<<30 | uint64(unsafe.Sizeof(pmScanArg{}))<<16 | 'f'<<8 | 16

// ioctl runs one PAGEMAP_SCAN over [start, end) for pages in any of the
// categories any, and returns the runs found (valid until the next call)
// and where the walk stopped (before end when the vector filled up).
func (s *Scanner) ioctl(start, end uint64, any PageCat) ([]pageRegion, uint64, error) {
	if s.vec == nil {
		s.vec = make([]pageRegion, scanVec)
	}
	arg := pmScanArg{
		size:              uint64(unsafe.Sizeof(pmScanArg{})),
		start:             start,
		end:               end,
		vec:               uint64(uintptr(unsafe.Pointer(&s.vec[0]))),
		vecLen:            uint64(len(s.vec)),
		categoryAnyofMask: uint64(any),
		returnMask:        uint64(s.returnMask() | any),
	}
	n, _, errno := unix.Syscall(unix.SYS_IOCTL, s.f.Fd(), uintptr(pagemapScan), uintptr(unsafe.Pointer(&arg)))
	if errno != 0 {
		return nil, 0, errno
	}
	return s.vec[:n], arg.walkEnd, nil
}
