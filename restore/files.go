package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// restoreFDs rebuilds the descriptor table in the stub, which has the
// thawing process's fds 0-2 (and whatever else it inherited). Each open
// file description of the image is created once and every fd that shared
// it gets a dup of it, so that they share an offset and status flags
// again (`prog >log 2>&1`).
//
// The thaw's own std fds are first copied above every fd number in use,
// then all of the thaw's fds are closed, then each File is opened (or
// taken from those copies) and dup3'ed onto its numbers, in order.
func (h *helper) restoreFDs() error {
	sys := h.host.Sys
	have, err := proc.FDs(h.pid)
	if err != nil {
		return err
	}
	haveSet := map[int]bool{}
	top := 0
	for _, n := range have {
		haveSet[n] = true
		top = max(top, n)
	}
	byFile := map[int][]image.FD{}
	for _, fd := range h.p.FDs {
		byFile[fd.File] = append(byFile[fd.File], fd)
		top = max(top, fd.Num)
	}
	// Copies of the thaw's std fds, above every number in use.
	stdCopy := map[int]uint64{}
	for _, f := range h.p.Files {
		if f.Kind != image.FileStd || f.Std < 0 || f.Std > 2 || !haveSet[f.Std] {
			continue
		}
		if _, ok := stdCopy[f.Std]; ok {
			continue
		}
		c, err := h.sys(fmt.Sprintf("copy the thaw's fd %d", f.Std), sys.Fcntl, uint64(f.Std), unix.F_DUPFD_CLOEXEC, uint64(top+1))
		if err != nil {
			return err
		}
		stdCopy[f.Std] = c
	}
	for _, n := range have {
		if _, err := h.sys(fmt.Sprintf("close fd %d", n), sys.Close, uint64(n)); err != nil {
			return err
		}
	}
	for i := range h.p.Files {
		f := &h.p.Files[i]
		fds := byFile[f.ID]
		if len(fds) == 0 {
			continue
		}
		sort.Slice(fds, func(a, b int) bool { return fds[a].Num < fds[b].Num })
		var src uint64
		temp := true
		switch f.Kind {
		case image.FileStd:
			c, ok := stdCopy[f.Std]
			if !ok {
				continue // the thawing process has no such fd: leave them closed
			}
			src, temp = c, false
		case image.FileReg, image.FileDir, image.FileDevice:
			if src, err = h.openFile(f); err != nil {
				return err
			}
		default:
			return fmt.Errorf("fd %d is a %q file, which this cryo cannot restore", fds[0].Num, f.Kind)
		}
		for _, fd := range fds {
			cloexec := uint64(0)
			if fd.Cloexec {
				cloexec = unix.O_CLOEXEC
			}
			if uint64(fd.Num) == src {
				// openat returned this very number: only the flag to set.
				fl := uint64(0)
				if fd.Cloexec {
					fl = unix.FD_CLOEXEC
				}
				if _, err := h.sys(fmt.Sprintf("fcntl(%d, F_SETFD)", fd.Num), sys.Fcntl, src, unix.F_SETFD, fl); err != nil {
					return err
				}
				temp = false
				continue
			}
			if _, err := h.sys(fmt.Sprintf("dup3 to fd %d", fd.Num), sys.Dup3, src, uint64(fd.Num), cloexec); err != nil {
				return err
			}
		}
		if temp {
			if _, err := h.sys("close", sys.Close, src); err != nil {
				return err
			}
		}
		first := uint64(fds[0].Num)
		if f.Kind == image.FileReg {
			if _, err := h.sys(fmt.Sprintf("lseek fd %d", first), sys.Lseek, first, uint64(f.Pos), unix.SEEK_SET); err != nil {
				return err
			}
		}
		if f.Kind == image.FileStd && len(f.Termios) > 0 {
			if err := h.setTermios(int(first), f.Termios); err != nil {
				return err
			}
		}
	}
	for _, c := range stdCopy {
		if _, err := h.sys("close a copy of a std fd", sys.Close, c); err != nil {
			return err
		}
	}
	return h.restoreLocks(byFile)
}

// openFile opens f as it was opened, never creating or truncating it.
func (h *helper) openFile(f *image.File) (uint64, error) {
	path, err := h.poke(0, cstring(f.Path))
	if err != nil {
		return 0, err
	}
	flags := uint64(f.Flags) &^ (unix.O_CREAT | unix.O_TRUNC | unix.O_EXCL | unix.O_NOCTTY | unix.O_CLOEXEC)
	atFDCWD := int64(unix.AT_FDCWD)
	fd, err := h.s.Syscall(h.host.Sys.Openat, uint64(atFDCWD), path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("reopen %s: %w", f.Path, err)
	}
	return fd, nil
}

// setTermios gives the thawing terminal on fd the modes the process had
// set on its own (an editor's raw mode, a prompt's no-echo). Where the
// thaw's fd is not a terminal there is nothing to set.
func (h *helper) setTermios(fd int, termios []byte) error {
	addr, err := h.poke(0, termios)
	if err != nil {
		return err
	}
	_, err = h.s.Syscall(h.host.Sys.Ioctl, uint64(fd), unix.TCSETS, addr)
	if err == unix.ENOTTY || err == unix.EINVAL {
		return nil
	}
	if err != nil {
		return fmt.Errorf("set terminal modes on fd %d: %w", fd, err)
	}
	h.winch = true
	return nil
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
// through the first fd of its open file. A lock someone else holds now
// fails the thaw, before the address space is touched.
// byFile holds each file's fds, sorted (restoreFDs).
func (h *helper) restoreLocks(byFile map[int][]image.FD) error {
	sys := h.host.Sys
	for _, l := range h.p.Locks {
		fds := byFile[l.File]
		if len(fds) == 0 {
			return fmt.Errorf("a %s lock is held through a file no fd points at", l.Kind)
		}
		fd := fds[0].Num
		f := h.p.File(l.File)
		typ := uint64(unix.F_RDLCK)
		if l.Write {
			typ = unix.F_WRLCK
		}
		var err error
		switch l.Kind {
		case image.LockPOSIX, image.LockOFD:
			// struct flock: l_type, l_whence (shorts), l_start, l_len,
			// l_pid (0 for OFD locks).
			b := make([]byte, 32)
			binary.LittleEndian.PutUint16(b[0:], uint16(typ))
			binary.LittleEndian.PutUint16(b[2:], unix.SEEK_SET)
			binary.LittleEndian.PutUint64(b[8:], uint64(l.Start))
			binary.LittleEndian.PutUint64(b[16:], uint64(l.Len))
			addr, perr := h.poke(0, b)
			if perr != nil {
				return perr
			}
			cmd := uint64(unix.F_SETLK)
			if l.Kind == image.LockOFD {
				cmd = fOFDSetlk
			}
			_, err = h.s.Syscall(sys.Fcntl, uint64(fd), cmd, addr)
		case image.LockFlock:
			op := uint64(lockSH)
			if l.Write {
				op = lockEX
			}
			_, err = h.s.Syscall(sys.Flock, uint64(fd), op|lockNB)
		case image.LockLease:
			_, err = h.s.Syscall(sys.Fcntl, uint64(fd), fSetlease, typ)
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
