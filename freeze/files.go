package freeze

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// fdTable is what collectFiles found: the open file descriptions, the fds
// pointing at them, and the locks held through them.
type fdTable struct {
	files []image.File
	fds   []image.FD
	locks []image.Lock
}

// collectFiles records the descriptor table as open file descriptions and
// the fds that point at them. fds share a description (dup, fork,
// `prog >log 2>&1`) when kcmp(KCMP_FILE) says so; they share one again
// after thaw: one offset, one set of status flags.
//
// Regular files, directories and devices are reopened at thaw; terminals,
// pipes and sockets on fds 0-2, and the same open files on higher fds
// (bash keeps its terminal on fd 255), are connected to the thawing
// process's own 0-2. Anything else is refused, so that freeze never
// writes an image that would thaw wrong.
func collectFiles(pid int) (*fdTable, error) {
	nums, err := proc.FDs(pid)
	if err != nil {
		return nil, err
	}
	sort.Ints(nums)
	t := &fdTable{}
	// reps[i] is an fd of files[i], to compare others with.
	var reps []int
	var stats []unix.Stat_t
	for _, n := range nums {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, n), &st); err != nil {
			return nil, fmt.Errorf("fd %d: stat: %w", n, err)
		}
		info, err := proc.ReadFDInfo(pid, n)
		if err != nil {
			return nil, err
		}
		id := -1
		for i, r := range reps {
			if stats[i].Dev != st.Dev || stats[i].Ino != st.Ino {
				continue
			}
			same, err := sameFile(pid, r, n)
			if err != nil {
				return nil, err
			}
			if same {
				id = i
				break
			}
		}
		cloexec := info.Flags&unix.O_CLOEXEC != 0
		if id >= 0 {
			t.fds = append(t.fds, image.FD{Num: n, File: t.files[id].ID, Cloexec: cloexec})
			continue
		}
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, n))
		if err != nil {
			return nil, fmt.Errorf("fd %d: %w", n, err)
		}
		f := image.File{
			ID: len(t.files) + 1, Path: target, Flags: info.Flags &^ unix.O_CLOEXEC, Pos: info.Pos,
			Mode: st.Mode, Size: st.Size, Dev: st.Dev, Ino: st.Ino, Rdev: st.Rdev,
			MtimeNs: st.Mtim.Nano(),
		}
		if err := classifyFile(n, &f, target, &st, stdOf(t.files, &st)); err != nil {
			return nil, err
		}
		for _, lk := range info.Locks {
			l, err := imageLock(n, lk)
			if err != nil {
				return nil, err
			}
			l.File = f.ID
			t.locks = append(t.locks, l)
		}
		t.files = append(t.files, f)
		reps = append(reps, n)
		stats = append(stats, st)
		t.fds = append(t.fds, image.FD{Num: n, File: f.ID, Cloexec: cloexec})
	}
	// A file on a higher fd that is also on one of 0-2 (bash's 255) was
	// classified when its lowest fd was seen: fds are sorted, so a std
	// file's first fd is its lowest, and Std names it.
	return t, nil
}

// stdOf returns which of fds 0-2 holds a std file on the same inode as
// st (a terminal bash opened again for its fd 255), or -1.
func stdOf(files []image.File, st *unix.Stat_t) int {
	for _, f := range files {
		if f.Kind == image.FileStd && f.Dev == st.Dev && f.Ino == st.Ino {
			return f.Std
		}
	}
	return -1
}

// classifyFile says how f, first seen on fd n, is rebuilt, or why it
// cannot be. std is the std fd (0-2) of the same inode, or -1.
func classifyFile(n int, f *image.File, target string, st *unix.Stat_t, std int) error {
	mode := st.Mode & unix.S_IFMT
	stdKind := mode == unix.S_IFIFO || mode == unix.S_IFSOCK || (mode == unix.S_IFCHR && isTerminal(st.Rdev))
	switch {
	case stdKind && n <= 2:
		f.Kind, f.Std = image.FileStd, n
	case stdKind && std >= 0:
		// The same terminal, pipe or socket as a std fd, opened
		// separately: connected to the thaw's std fd too.
		f.Kind, f.Std = image.FileStd, std
	case mode == unix.S_IFREG && strings.HasSuffix(target, " (deleted)"):
		return fmt.Errorf("fd %d is a deleted file (%s): unsupported yet", n, target)
	case mode == unix.S_IFREG && !strings.HasPrefix(target, "/"):
		return fmt.Errorf("fd %d is %s, which cannot be reopened by path: unsupported yet", n, target)
	case mode == unix.S_IFREG && f.Flags&unix.O_PATH != 0,
		mode == unix.S_IFDIR && f.Flags&unix.O_PATH != 0:
		return fmt.Errorf("fd %d is an O_PATH descriptor of %s: unsupported yet", n, target)
	case mode == unix.S_IFREG:
		f.Kind = image.FileReg
	case mode == unix.S_IFDIR && strings.HasSuffix(target, " (deleted)"):
		return fmt.Errorf("fd %d is a deleted directory (%s): unsupported yet", n, target)
	case mode == unix.S_IFDIR:
		f.Kind = image.FileDir
	case mode == unix.S_IFCHR && isTerminal(st.Rdev):
		return fmt.Errorf("fd %d is the terminal %s, not the one on fds 0-2: unsupported yet", n, target)
	case mode == unix.S_IFCHR && strings.HasPrefix(target, "/") && !strings.HasSuffix(target, " (deleted)"):
		f.Kind = image.FileDevice
	case stdKind:
		return fmt.Errorf("fd %d is %s (%s) not shared with fds 0-2: unsupported yet", n, target, kindName(mode))
	default:
		return fmt.Errorf("fd %d is %s (%s): unsupported yet", n, target, kindName(mode))
	}
	return nil
}

// sameFile tells whether fds a and b of pid are one open file
// description: kcmp(2) KCMP_FILE returns 0 for the same struct file.
func sameFile(pid, a, b int) (bool, error) {
	const kcmpFile = 0
	r, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpFile, uintptr(a), uintptr(b), 0)
	if errno != 0 {
		return false, fmt.Errorf("kcmp(KCMP_FILE) of fds %d and %d of pid %d: %w", a, b, pid, errno)
	}
	return r == 0, nil
}

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

func isTerminal(rdev uint64) bool {
	switch unix.Major(rdev) {
	case 4, 5, 136, 137, 138, 139, 140, 141, 142, 143: // tty, console/ptmx, pts
		return true
	}
	return false
}

func kindName(mode uint32) string {
	switch mode {
	case unix.S_IFIFO:
		return "a pipe"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case 0:
		return "an anonymous inode"
	}
	return "a special file"
}
