package files

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// imageLock turns an fdinfo lock line into a lock to take again at thaw.
func imageLock(fd int, lk proc.Lock) (image.Lock, error) {
	l := image.Lock{Write: lk.Type == "WRITE", Start: lk.Start}
	if lk.End >= 0 {
		l.Len = lk.End - lk.Start + 1
	}
	switch lk.Class {
	case "POSIX":
		l.Kind = image.LockPOSIX
	case "FLOCK":
		l.Kind = image.LockFlock
	case "OFDLCK":
		l.Kind = image.LockOFD
	case "LEASE":
		l.Kind = image.LockLease
		if lk.Mode != "ACTIVE" {
			return l, fmt.Errorf("fd %d holds a lease that is being broken (%s): try again later", fd, lk.Mode)
		}
	default:
		return l, fmt.Errorf("fd %d holds a %s lock: unsupported", fd, lk.Class)
	}
	if lk.Type != "READ" && lk.Type != "WRITE" {
		return l, fmt.Errorf("fd %d holds a %s lock of type %s: unsupported", fd, lk.Class, lk.Type)
	}
	if lk.Mode == "MANDATORY" {
		return l, fmt.Errorf("fd %d holds a mandatory lock: unsupported", fd)
	}
	return l, nil
}

// The lock requests (include/uapi/asm-generic/fcntl.h).
const (
	fOFDSetlk = 37
	fSetlease = 1024
	lockSH    = 1
	lockEX    = 2
	lockNB    = 4
)

// restoreLocks takes again the locks and leases the process held, each
// through the first fd of its open file, by the process itself (a POSIX
// lock belongs to the process that takes it). A lock someone else holds
// now fails the thaw, before the address space is touched.
func restoreLocks(r *Restorer, byFile map[int][]image.FD) error {
	sys := r.Sys
	for _, l := range r.P.Locks {
		fds := byFile[l.File]
		if len(fds) == 0 {
			return fmt.Errorf("a %s lock is held through a file no fd points at", l.Kind)
		}
		fd := fds[0].Num
		f := r.P.File(l.File)
		typ := uint64(unix.F_RDLCK)
		if l.Write {
			typ = unix.F_WRLCK
		}
		var err error
		name := fmt.Sprintf("%s lock on fd %d", l.Kind, fd)
		switch l.Kind {
		case image.LockPOSIX, image.LockOFD:
			// struct flock: l_type, l_whence (shorts), l_start, l_len,
			// l_pid (0 for OFD locks).
			b := make([]byte, 32)
			binary.LittleEndian.PutUint16(b[0:], uint16(typ))
			binary.LittleEndian.PutUint16(b[2:], unix.SEEK_SET)
			binary.LittleEndian.PutUint64(b[8:], uint64(l.Start))
			binary.LittleEndian.PutUint64(b[16:], uint64(l.Len))
			addr, perr := r.T.Poke(0, b)
			if perr != nil {
				return perr
			}
			cmd := uint64(unix.F_SETLK)
			if l.Kind == image.LockOFD {
				cmd = fOFDSetlk
			}
			_, err = r.T.Syscall(name, sys.Fcntl, uint64(fd), cmd, addr)
		case image.LockFlock:
			op := uint64(lockSH)
			if l.Write {
				op = lockEX
			}
			_, err = r.T.Syscall(name, sys.Flock, uint64(fd), op|lockNB)
		case image.LockLease:
			_, err = r.T.Syscall(name, sys.Fcntl, uint64(fd), fSetlease, typ)
		default:
			return fmt.Errorf("unknown lock kind %q", l.Kind)
		}
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("cannot take the %s lock on %s again: another process holds a conflicting one (is the original still running?)", l.Kind, f.Path)
		}
		if err != nil {
			return fmt.Errorf("take the %s lock on %s again: %w", l.Kind, f.Path, err)
		}
	}
	return nil
}
