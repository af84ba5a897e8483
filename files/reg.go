package files

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// regKind: a regular file that still has its path. Reopened at thaw with
// its access mode and status flags (never created or truncated), seeked
// to its offset; a file that changed since the freeze (another inode, size
// or modification time) fails the thaw naming what changed, unless the
// user allows it.
var regKind = kind{
	name: image.FileReg,
	match: func(d *Dumper, o *Object) bool {
		return o.Stat.Mode&unix.S_IFMT == unix.S_IFREG && reachable(o) && o.Info.Flags&unix.O_PATH == 0
	},
	dump: func(d *Dumper, o *Object, f *image.File) error {
		if !strings.HasPrefix(o.Link, "/") {
			return fmt.Errorf("fd %d is %s, which cannot be reopened by path: unsupported", o.Num, o.Link)
		}
		return nil
	},
	open: func(r *Restorer, f *image.File) (*os.File, error) {
		lf, err := reopen(r, f, 0)
		if err != nil {
			return nil, err
		}
		if _, err := lf.Seek(f.Pos, 0); err != nil {
			lf.Close()
			return nil, fmt.Errorf("fd %d: seek %s to %d: %w", r.firstFD(f.ID), f.Path, f.Pos, err)
		}
		return lf, nil
	},
}

// dirKind: a directory, reopened at its path and seeked to where the
// process was reading it.
var dirKind = kind{
	name: image.FileDir,
	match: func(d *Dumper, o *Object) bool {
		return o.Stat.Mode&unix.S_IFMT == unix.S_IFDIR && reachable(o) && o.Info.Flags&unix.O_PATH == 0
	},
	dump: func(d *Dumper, o *Object, f *image.File) error { return nil },
	open: func(r *Restorer, f *image.File) (*os.File, error) {
		lf, err := reopen(r, f, unix.O_DIRECTORY)
		if err != nil {
			return nil, err
		}
		if f.Pos != 0 {
			if _, err := lf.Seek(f.Pos, 0); err != nil {
				lf.Close()
				return nil, fmt.Errorf("fd %d: seek directory %s to %d: %w", r.firstFD(f.ID), f.Path, f.Pos, err)
			}
		}
		return lf, nil
	},
}

// deviceKind: a character device other than a terminal (/dev/null,
// /dev/urandom...), reopened at its path with its access mode; the node
// there must be the same device.
var deviceKind = kind{
	name: image.FileDevice,
	match: func(d *Dumper, o *Object) bool {
		return o.Stat.Mode&unix.S_IFMT == unix.S_IFCHR && !isTerminal(o.Stat.Rdev) && reachable(o) && o.Info.Flags&unix.O_PATH == 0
	},
	dump: func(d *Dumper, o *Object, f *image.File) error { return nil },
	open: func(r *Restorer, f *image.File) (*os.File, error) { return reopen(r, f, 0) },
}

// reachable tells whether o's file is still at the absolute path its
// link names.
func reachable(o *Object) bool {
	return strings.HasPrefix(o.Link, "/") && !strings.HasSuffix(o.Link, " (deleted)")
}

// reopen opens f's path as it was opened (never creating or truncating)
// and checks it is still the file that was frozen.
func reopen(r *Restorer, f *image.File, extra int) (*os.File, error) {
	flags := int(f.Flags)&^(unix.O_CREAT|unix.O_TRUNC|unix.O_EXCL|unix.O_NOCTTY) | unix.O_CLOEXEC | extra
	fd, err := unix.Open(f.Path, flags, 0)
	if err != nil {
		return nil, fmt.Errorf("fd %d: reopen %s: %w", r.firstFD(f.ID), f.Path, err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	if err := checkSame(r, f, lf); err != nil {
		lf.Close()
		return nil, err
	}
	return lf, nil
}

// checkSame compares the reopened file with what f recorded at freeze.
func checkSame(r *Restorer, f *image.File, lf *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(lf.Fd()), &st); err != nil {
		return fmt.Errorf("fd %d: stat %s: %w", r.firstFD(f.ID), f.Path, err)
	}
	var what []string
	if st.Mode&unix.S_IFMT != f.Mode&unix.S_IFMT {
		what = append(what, fmt.Sprintf("it is %s, it was %s", modeName(st.Mode), modeName(f.Mode)))
	} else if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev != f.Rdev {
		what = append(what, fmt.Sprintf("device %d:%d, it was %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev), unix.Major(f.Rdev), unix.Minor(f.Rdev)))
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		if st.Ino != f.Ino && sameMachine(r) {
			what = append(what, fmt.Sprintf("inode %d, it was %d (replaced)", st.Ino, f.Ino))
		}
		if st.Size != f.Size {
			what = append(what, fmt.Sprintf("size %d, it was %d", st.Size, f.Size))
		}
		if st.Mtim.Nano() != f.MtimeNs {
			what = append(what, fmt.Sprintf("modified %s, it was %s",
				time.Unix(0, st.Mtim.Nano()).Format(time.RFC3339Nano), time.Unix(0, f.MtimeNs).Format(time.RFC3339Nano)))
		}
	}
	if len(what) == 0 {
		return nil
	}
	if r.Opts.AllowChanged && st.Mode&unix.S_IFMT == f.Mode&unix.S_IFMT {
		r.warnf("fd %d: %s changed since the freeze (%s): thawed anyway", r.firstFD(f.ID), f.Path, strings.Join(what, "; "))
		return nil
	}
	return fmt.Errorf("fd %d: %s changed since the freeze: %s (thaw --allow-changed, or %s=1, thaws anyway)",
		r.firstFD(f.ID), f.Path, strings.Join(what, "; "), EnvAllowChanged)
}

// EnvAllowChanged set to 1 is --allow-changed for ./app.bin.
const EnvAllowChanged = "CRYO_ALLOW_CHANGED"

// sameMachine tells whether the thaw runs where the freeze did (inode
// numbers only mean something there).
func sameMachine(r *Restorer) bool {
	var uts unix.Utsname
	if unix.Uname(&uts) != nil {
		return true
	}
	return unix.ByteSliceToString(uts.Nodename[:]) == r.P.Machine
}

// warnf tells the user something the thaw did that they asked for but
// should know.
func (r *Restorer) warnf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "thaw: warning: %s\n", fmt.Sprintf(format, args...))
}

func (r *Restorer) logf(format string, args ...any) {
	if r.Log != nil {
		r.Log(format, args...)
	}
}
