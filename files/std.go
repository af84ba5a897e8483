package files

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// stdKind: a terminal, pipe or socket on fds 0-2, or the same one opened
// again on a higher fd (bash keeps its terminal on 255): connected at
// thaw to the thawing process's own fd Std, as a program started there
// would be. A terminal's modes (an editor's raw mode, a prompt's no-echo)
// are the process's expectations and are set on the thawing terminal.
//
// When the thaw's fd is a terminal, the process gets a new open of it
// with the access mode and status flags it had (a read-only terminal
// stays read-only, its O_NONBLOCK is its own and not the thaw's shell's);
// a terminal that cannot be opened again (another user's, TIOCEXCL) is
// shared with the thaw as it is. A pipe or socket is shared as it is.
//
// Not std, even on 0-2: a pty master, and a slave whose master the
// process holds (tty.go: the pair is the process's own).
var stdKind = kind{
	name: image.FileStd,
	match: func(d *Dumper, o *Object) bool {
		if !stdLike(&o.Stat) || isPtmx(o.Stat.Rdev) || d.heldSlave(&o.Stat) {
			return false
		}
		return o.Num <= 2 || d.stdOf(&o.Stat) >= 0
	},
	dump: func(d *Dumper, o *Object, f *image.File) error {
		f.Std = o.Num
		if o.Num > 2 {
			f.Std = d.stdOf(&o.Stat)
		}
		if o.Stat.Mode&unix.S_IFMT == unix.S_IFCHR {
			t, err := termios(o.Local)
			if err == nil {
				f.Termios = t
			}
		}
		return nil
	},
	open: func(r *Restorer, f *image.File) (*os.File, error) {
		lf, err := r.StubFD(f.Std)
		if err != nil || lf == nil {
			return nil, err // the thawing process has no such fd: left closed
		}
		if len(f.Termios) > 0 {
			set, err := setTermios(lf, f.Termios)
			if err != nil {
				return nil, err
			}
			r.Winch = r.Winch || set
		}
		if isTTY(lf) {
			nf, err := reopenStd(r, lf, int(f.Flags&unix.O_ACCMODE))
			if err == nil {
				if err := setStatusFlags(nf, f.Flags); err != nil {
					nf.Close()
					return nil, fmt.Errorf("fd %d: %w", r.firstFD(f.ID), err)
				}
				return nf, nil
			}
			r.logf("fd %d: %v; sharing the thaw's fd %d as it is", r.firstFD(f.ID), err, f.Std)
		}
		// The same file may serve several Files (0 and 255): each
		// gets its own descriptor, closed on its own.
		dup, err := unix.FcntlInt(lf.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("dup the thaw's fd %d: %w", f.Std, err)
		}
		return os.NewFile(uintptr(dup), lf.Name()), nil
	},
}

// reopenStd opens the thaw's terminal lf again with access mode acc. The
// thaw's /dev/tty is opened by the thawing process itself: the helper has
// no controlling terminal.
func reopenStd(r *Restorer, lf *os.File, acc int) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(lf.Fd()), &st); err == nil && sameDev(st.Rdev, devTTY) {
		return openInStub(r, "/dev/tty", acc|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC)
	}
	return reopenTerminal(lf, acc)
}

// stdLike tells whether st is what fds 0-2 connect a program to: a
// pipe, a socket or a terminal.
func stdLike(st *unix.Stat_t) bool {
	mode := st.Mode & unix.S_IFMT
	return mode == unix.S_IFIFO || mode == unix.S_IFSOCK || (mode == unix.S_IFCHR && isTerminal(st.Rdev))
}

// stdOf returns which of fds 0-2 holds a std file on the same inode as
// st (a terminal bash opened again for its fd 255), or -1. fds are seen
// in order, so 0-2 are seen first.
func (d *Dumper) stdOf(st *unix.Stat_t) int {
	for _, f := range d.t.Files {
		if f.Kind == image.FileStd && f.Dev == st.Dev && f.Ino == st.Ino {
			return f.Std
		}
	}
	return -1
}

// isTTY tells whether f is a terminal (a character device of a terminal
// major), ptmx excepted.
func isTTY(f *os.File) bool {
	var st unix.Stat_t
	return unix.Fstat(int(f.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && isTerminal(st.Rdev) && !isPtmx(st.Rdev)
}

func isTerminal(rdev uint64) bool {
	switch unix.Major(rdev) {
	case 4, 5, 136, 137, 138, 139, 140, 141, 142, 143: // tty, console/ptmx, pts
		return true
	}
	return false
}

// termiosSize is sizeof(struct termios) of the kernel's TCGETS (asm-generic
// termbits: four tcflag_t, c_line, 19 c_cc).
const termiosSize = 36

// termios reads the kernel struct termios of the terminal f (TCGETS),
// as the bytes the kernel has it.
func termios(f *os.File) ([]byte, error) {
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return nil, err
	}
	b := make([]byte, termiosSize)
	binary.LittleEndian.PutUint32(b[0:], t.Iflag)
	binary.LittleEndian.PutUint32(b[4:], t.Oflag)
	binary.LittleEndian.PutUint32(b[8:], t.Cflag)
	binary.LittleEndian.PutUint32(b[12:], t.Lflag)
	b[16] = t.Line
	copy(b[17:], t.Cc[:])
	return b, nil
}

// setTermios sets t (TCGETS's bytes) on f. It reports false when f is
// no terminal (nothing to set).
func setTermios(f *os.File, b []byte) (bool, error) {
	if len(b) < termiosSize {
		return false, fmt.Errorf("terminal modes of %d bytes, want %d", len(b), termiosSize)
	}
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err == unix.ENOTTY || err == unix.EINVAL {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read terminal modes of %s: %w", f.Name(), err)
	}
	t.Iflag = binary.LittleEndian.Uint32(b[0:])
	t.Oflag = binary.LittleEndian.Uint32(b[4:])
	t.Cflag = binary.LittleEndian.Uint32(b[8:])
	t.Lflag = binary.LittleEndian.Uint32(b[12:])
	t.Line = b[16]
	copy(t.Cc[:], b[17:termiosSize])
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t); err != nil {
		return false, fmt.Errorf("set terminal modes on %s: %w", f.Name(), err)
	}
	return true, nil
}
