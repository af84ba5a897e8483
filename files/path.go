package files

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FilePath: an O_PATH descriptor (open(2): "obtain a file descriptor that
// can be used for two purposes: to indicate a location in the filesystem
// tree and to perform operations that act purely at the file descriptor
// level"). It names a file of any type (a regular file, a directory, a
// symbolic link itself when opened with O_NOFOLLOW, a device, a FIFO, a
// socket) without opening it: no read, no write, no offset (lseek on it
// is EBADF), so thaw neither seeks it nor asks anything of its contents.
//
// Thaw opens the path again with O_PATH and the O_NOFOLLOW and
// O_DIRECTORY it was opened with; a symbolic link is always opened with
// O_NOFOLLOW (the descriptor named the link, not what it points at). The
// file found there must be the one frozen: the same type, and on the
// machine of the freeze the same inode; its size and modification time
// do not matter (the descriptor names the file, not its contents).
// thaw --allow-changed accepts another inode of the same type.
//
// An O_PATH descriptor of a namespace (/proc/self/ns/net) is the
// namespace kind's (ns.go); of a deleted directory, the deleted
// directory's (deleted.go).
const FilePath image.FileKind = "path"

var pathKind = kind{
	name: FilePath,
	match: func(d *Dumper, o *Object) bool {
		return o.Info.Flags&unix.O_PATH != 0 && reachable(o)
	},
	dump: func(d *Dumper, o *Object, f *image.File) error {
		f.Pos = 0 // an O_PATH file has none
		return nil
	},
	open: openPath,
}

// pathFlags are the open(2) flags an O_PATH descriptor keeps (the kernel
// drops every other one: fs/open.c, build_open_flags, O_PATH_FLAGS).
const pathFlags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_DIRECTORY

func openPath(r *Restorer, f *image.File) (*os.File, error) {
	flags := int(f.Flags)&pathFlags | unix.O_PATH | unix.O_CLOEXEC
	if f.Mode&unix.S_IFMT == unix.S_IFLNK {
		flags |= unix.O_NOFOLLOW
	}
	n := r.firstFD(f.ID)
	fd, err := unix.Open(f.Path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("fd %d: reopen %s (O_PATH, %s): %w", n, f.Path, modeName(f.Mode), err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	if err := checkIdentity(r, f, lf); err != nil {
		lf.Close()
		return nil, err
	}
	return lf, nil
}
