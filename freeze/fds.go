package freeze

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// collectFDs records the descriptor table. Regular files, directories and
// devices are reopened at thaw; terminals, pipes and sockets on 0-2, and
// copies of those on higher fds (bash keeps its terminal on fd 255), are
// connected to the thawing process's own 0-2. Anything else is refused,
// so that freeze never writes an image that would thaw wrong.
func collectFDs(pid int) ([]image.FD, error) {
	nums, err := proc.FDs(pid)
	if err != nil {
		return nil, err
	}
	// The files on fds 0-2, to recognise copies of them higher up.
	type ident struct{ dev, ino uint64 }
	std := map[ident]int{}
	stats := map[int]unix.Stat_t{}
	for _, n := range nums {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, n), &st); err != nil {
			return nil, fmt.Errorf("fd %d: stat: %w", n, err)
		}
		stats[n] = st
		if _, seen := std[ident{st.Dev, st.Ino}]; n <= 2 && !seen {
			std[ident{st.Dev, st.Ino}] = n
		}
	}
	var out []image.FD
	for _, n := range nums {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, n))
		if err != nil {
			return nil, fmt.Errorf("fd %d: %w", n, err)
		}
		info, err := proc.ReadFDInfo(pid, n)
		if err != nil {
			return nil, err
		}
		st := stats[n]
		fd := image.FD{Num: n, Path: target, Flags: info.Flags, Pos: info.Pos, Size: st.Size, Mode: st.Mode}
		mode := st.Mode & unix.S_IFMT
		stdFD, isStdCopy := std[ident{st.Dev, st.Ino}]
		inherit := mode == unix.S_IFIFO || mode == unix.S_IFSOCK || (mode == unix.S_IFCHR && isTerminal(st.Rdev))
		switch {
		case inherit && n <= 2:
			fd.Kind, fd.Std = image.FDInherit, n
		case inherit && isStdCopy:
			fd.Kind, fd.Std = image.FDInherit, stdFD
		case mode == unix.S_IFREG && strings.HasSuffix(target, " (deleted)"):
			return nil, fmt.Errorf("fd %d is a deleted file (%s): unsupported yet", n, target)
		case mode == unix.S_IFREG && !strings.HasPrefix(target, "/"):
			return nil, fmt.Errorf("fd %d is %s, which cannot be reopened by path: unsupported yet", n, target)
		case mode == unix.S_IFREG:
			fd.Kind = image.FDFile
		case mode == unix.S_IFDIR:
			fd.Kind = image.FDDirectory
		case mode == unix.S_IFCHR && isTerminal(st.Rdev):
			return nil, fmt.Errorf("fd %d is the terminal %s, not the one on fds 0-2: unsupported yet", n, target)
		case mode == unix.S_IFCHR && strings.HasPrefix(target, "/"):
			fd.Kind = image.FDDevice
		default:
			return nil, fmt.Errorf("fd %d is %s (%s): unsupported yet", n, target, kindName(mode))
		}
		out = append(out, fd)
	}
	return out, nil
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
