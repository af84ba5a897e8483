package files

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// Deleted directories and deleted device nodes: a directory removed
// (rmdir) while the process holds it open, a character device node
// unlinked after it was opened. The kernel keeps the inode for the
// descriptor; its link says "/path (deleted)", stat says nlink 0.
//
// Neither has contents to carry: a deleted directory is empty (rmdir
// removes only an empty one, and nothing can be created in it since);
// a device node is its type, mode and device number. So thaw makes a new
// one and removes it again, keeping the descriptor:
//
//  1. where it was, when that name is free (as it is unless something
//     took the name since), so /proc/PID/fd says the same "/path
//     (deleted)"; else under a free name next to it (".NAME.cryo-PID-N");
//     else, its directory gone too, in its nearest existing ancestor;
//  2. with its mode, and its owner when the thaw runs as root (otherwise
//     the thawing user's, as every file the thaw makes);
//  3. opened with the descriptor's flags (and seeked to the directory
//     position), then removed.
//
// For a moment the new object is visible at its path. A directory comes
// back a new inode, empty and deleted: fstat says nlink 0, and openat or
// mkdirat relative to it fail with ENOENT as before.
//
// A device node is made with mknod(2), which needs CAP_MKNOD (root):
// a thaw without it refuses, naming the node; on a filesystem mounted
// nodev the open refuses. Terminals are the terminal kind's; a deleted
// block device is refused like any block device.
const (
	FileDeletedDir image.FileKind = "deleted-dir"
	FileDeletedDev image.FileKind = "deleted-chr"
)

const deletedSuffix = " (deleted)"

type deletedPayload struct {
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
}

// deleted tells whether o is a file removed from its absolute path.
func deleted(o *Object) bool {
	return strings.HasPrefix(o.Link, "/") && strings.HasSuffix(o.Link, deletedSuffix)
}

var deletedDirKind = kind{
	name: FileDeletedDir,
	match: func(d *Dumper, o *Object) bool {
		return o.Stat.Mode&unix.S_IFMT == unix.S_IFDIR && deleted(o)
	},
	dump: dumpDeleted,
	open: func(r *Restorer, f *image.File) (*os.File, error) {
		mk := func(p string) error {
			if err := unix.Mkdir(p, 0o700); err != nil {
				return err
			}
			return nil
		}
		lf, err := remake(r, f, "directory", mk, unix.Rmdir)
		if err != nil {
			return nil, err
		}
		if f.Pos != 0 && f.Flags&unix.O_PATH == 0 {
			if _, err := lf.Seek(f.Pos, 0); err != nil {
				lf.Close()
				return nil, fmt.Errorf("fd %d: seek the deleted directory %s to %d: %w", r.firstFD(f.ID), f.Path, f.Pos, err)
			}
		}
		return lf, nil
	},
}

var deletedDevKind = kind{
	name: FileDeletedDev,
	match: func(d *Dumper, o *Object) bool {
		return o.Stat.Mode&unix.S_IFMT == unix.S_IFCHR && !isTerminal(o.Stat.Rdev) && deleted(o)
	},
	dump: dumpDeleted,
	open: func(r *Restorer, f *image.File) (*os.File, error) {
		mk := func(p string) error { return unix.Mknod(p, unix.S_IFCHR|0o600, int(f.Rdev)) }
		return remake(r, f, "device node", mk, unix.Unlink)
	},
}

func dumpDeleted(d *Dumper, o *Object, f *image.File) error {
	if o.Stat.Nlink != 0 {
		return fmt.Errorf("fd %d is %s (%s), whose name ends in %q but which has %d links: unsupported",
			o.Num, o.Link, modeName(o.Stat.Mode), deletedSuffix, o.Stat.Nlink)
	}
	f.Path = strings.TrimSuffix(o.Link, deletedSuffix)
	if f.Flags&unix.O_PATH != 0 {
		f.Pos = 0
	}
	return setPayload(f, &deletedPayload{UID: o.Stat.Uid, GID: o.Stat.Gid})
}

// remake makes f again with mk (mkdir, mknod), gives it its mode and
// owner, opens it with its flags and removes it with rm.
func remake(r *Restorer, f *image.File, what string, mk, rm func(string) error) (*os.File, error) {
	var p deletedPayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	path, err := makeNear(f.Path, mk)
	if errors.Is(err, unix.EPERM) && f.Mode&unix.S_IFMT == unix.S_IFCHR {
		return nil, fmt.Errorf("fd %d is the deleted device node %s (character device %d:%d): making it again needs CAP_MKNOD, which this thaw lacks (thaw as root)",
			n, f.Path, unix.Major(f.Rdev), unix.Minor(f.Rdev))
	}
	if err != nil {
		return nil, fmt.Errorf("fd %d: make the deleted %s %s again: %w", n, what, f.Path, err)
	}
	defer func() {
		if path != "" {
			rm(path)
		}
	}()
	if os.Geteuid() == 0 {
		if err := unix.Lchown(path, int(p.UID), int(p.GID)); err != nil {
			return nil, fmt.Errorf("fd %d: give the deleted %s %s (made again as %s) its owner: %w", n, what, f.Path, path, err)
		}
	}
	// After chown, which clears set-id bits.
	if err := unix.Chmod(path, f.Mode&0o7777); err != nil {
		return nil, fmt.Errorf("fd %d: give the deleted %s %s (made again as %s) its mode: %w", n, what, f.Path, path, err)
	}
	// Only the flags it had: fdinfo shows O_NOFOLLOW and O_DIRECTORY
	// too. The object was just made: no other can be there.
	flags := int(f.Flags)&^(unix.O_CREAT|unix.O_TRUNC|unix.O_EXCL) | unix.O_CLOEXEC | unix.O_NOCTTY
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		hint := ""
		if errors.Is(err, unix.EACCES) && f.Mode&unix.S_IFMT == unix.S_IFCHR {
			hint = " (is its filesystem mounted nodev?)"
		}
		return nil, fmt.Errorf("fd %d: open the deleted %s %s (made again as %s): %w%s", n, what, f.Path, path, err, hint)
	}
	lf := os.NewFile(uintptr(fd), f.Path+deletedSuffix)
	err = rm(path)
	path = ""
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("fd %d: remove the deleted %s %s again: %w", n, what, f.Path, err)
	}
	r.logf("fd %d: the deleted %s %s made again and removed", n, what, f.Path)
	return lf, nil
}

// makeNear makes a new object with mk at path if that name is free, else
// under a free name next to it, else in its nearest existing ancestor
// directory; it returns the path used.
func makeNear(path string, mk func(string) error) (string, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	err := mk(path)
	if err == nil {
		return path, nil
	}
	if !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOENT) {
		return "", err
	}
	for errors.Is(err, unix.ENOENT) && dir != "/" {
		// The directory is gone too: its nearest existing ancestor.
		dir = filepath.Dir(dir)
		var st unix.Stat_t
		if unix.Stat(dir, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.EEXIST
		}
	}
	for i := 0; i < 100; i++ {
		p := filepath.Join(dir, "."+base+".cryo-"+strconv.Itoa(os.Getpid())+"-"+strconv.Itoa(i))
		if err = mk(p); err == nil {
			return p, nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return "", err
		}
	}
	return "", err
}
