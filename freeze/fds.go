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
// devices are reopened at thaw; terminals, pipes and sockets on 0-2 are
// connected to the thawing process's own. Anything else is refused, so
// that freeze never writes an image that would thaw wrong.
func collectFDs(pid int) ([]image.FD, error) {
	nums, err := proc.FDs(pid)
	if err != nil {
		return nil, err
	}
	var out []image.FD
	for _, n := range nums {
		link := fmt.Sprintf("/proc/%d/fd/%d", pid, n)
		target, err := os.Readlink(link)
		if err != nil {
			return nil, fmt.Errorf("fd %d: %w", n, err)
		}
		var st unix.Stat_t
		if err := unix.Stat(link, &st); err != nil {
			return nil, fmt.Errorf("fd %d (%s): stat: %w", n, target, err)
		}
		info, err := proc.ReadFDInfo(pid, n)
		if err != nil {
			return nil, err
		}
		fd := image.FD{Num: n, Path: target, Flags: info.Flags, Pos: info.Pos, Size: st.Size, Mode: st.Mode}
		mode := st.Mode & unix.S_IFMT
		std := n <= 2
		switch {
		case mode == unix.S_IFREG && strings.HasSuffix(target, " (deleted)"):
			return nil, fmt.Errorf("fd %d is a deleted file (%s): unsupported yet", n, target)
		case mode == unix.S_IFREG && !strings.HasPrefix(target, "/"):
			return nil, fmt.Errorf("fd %d is %s, which cannot be reopened by path: unsupported yet", n, target)
		case mode == unix.S_IFREG:
			fd.Kind = image.FDFile
		case mode == unix.S_IFDIR:
			fd.Kind = image.FDDirectory
		case mode == unix.S_IFCHR && isTerminal(st.Rdev):
			if !std {
				return nil, fmt.Errorf("fd %d is the terminal %s: unsupported yet beyond fds 0-2", n, target)
			}
			fd.Kind = image.FDInherit
		case mode == unix.S_IFCHR && strings.HasPrefix(target, "/"):
			fd.Kind = image.FDDevice
		case std && (mode == unix.S_IFIFO || mode == unix.S_IFSOCK):
			fd.Kind = image.FDInherit
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
