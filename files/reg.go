package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// regKind: a regular file that still has its path. Reopened at thaw with
// its access mode and status flags (never created or truncated), seeked
// to its offset.
//
// A file that changed since the freeze (another inode, size or
// modification time) fails the thaw naming what changed, unless the user
// allows it (thaw --allow-changed, CRYO_ALLOW_CHANGED=1: a warning line
// says what changed). A file the process had open for writing may have
// been written by the original itself when freeze --leave-running left it
// running; the error says so. One exception: a file opened with O_APPEND
// that only grew (same inode) thaws with a warning, for the copy appends
// after what was added (a log the original kept writing).
//
// With freeze --carry-files the contents are in the image (carry.go):
// a file gone at thaw is made again from them, and a file whose contents
// differ is refused (with --allow-changed: left as it is now).
var regKind = kind{
	name: image.FileReg,
	match: func(d *Dumper, o *Object) bool {
		return o.Stat.Mode&unix.S_IFMT == unix.S_IFREG && reachable(o) && o.Info.Flags&unix.O_PATH == 0
	},
	dump: func(d *Dumper, o *Object, f *image.File) error {
		if !strings.HasPrefix(o.Link, "/") {
			return fmt.Errorf("fd %d is %s, which cannot be reopened by path: unsupported", o.Num, o.Link)
		}
		if d.Opts.CarryFiles {
			return carryFile(d, o, f)
		}
		return nil
	},
	open: func(r *Restorer, f *image.File) (*os.File, error) {
		var lf *os.File
		var err error
		if len(f.Payload) > 0 {
			lf, err = openCarried(r, f)
		} else {
			lf, err = reopen(r, f, 0)
		}
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
		lf, err := reopenDir(r, f)
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

// reopenDir opens the directory at f's path with the flags it had. It
// looks with O_PATH|O_DIRECTORY first (never blocking on a FIFO put in
// its place), then opens that: fdinfo would show an O_DIRECTORY the
// process did not give.
func reopenDir(r *Restorer, f *image.File) (*os.File, error) {
	n := r.firstFD(f.ID)
	pfd, err := unix.Open(f.Path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) {
		var st unix.Stat_t
		if unix.Stat(f.Path, &st) == nil {
			return nil, fmt.Errorf("fd %d: %s changed since the freeze: it is %s, it was a directory", n, f.Path, modeName(st.Mode))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("fd %d: reopen %s: %w", n, f.Path, err)
	}
	defer unix.Close(pfd)
	flags := int(f.Flags)&^(unix.O_CREAT|unix.O_TRUNC|unix.O_EXCL|unix.O_NOCTTY) | unix.O_CLOEXEC
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), flags, 0)
	if err != nil {
		return nil, fmt.Errorf("fd %d: reopen %s: %w", n, f.Path, err)
	}
	return os.NewFile(uintptr(fd), f.Path), nil
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
	lf, err := openAsBefore(r, f, extra)
	if err != nil {
		return nil, err
	}
	if err := checkSame(r, f, lf); err != nil {
		lf.Close()
		return nil, err
	}
	return lf, nil
}

// openAsBefore opens f's path with the flags it had, without checks.
func openAsBefore(r *Restorer, f *image.File, extra int) (*os.File, error) {
	flags := int(f.Flags)&^(unix.O_CREAT|unix.O_TRUNC|unix.O_EXCL|unix.O_NOCTTY) | unix.O_CLOEXEC | extra
	fd, err := unix.Open(f.Path, flags, 0)
	if err != nil {
		hint := ""
		if errors.Is(err, unix.ENOENT) && f.Mode&unix.S_IFMT == unix.S_IFREG {
			hint = fmt.Sprintf(" (gone since the freeze, %s of %d bytes; freeze --carry-files keeps the contents of open files in the image)", modeName(f.Mode), f.Size)
		}
		return nil, fmt.Errorf("fd %d: reopen %s: %w%s", r.firstFD(f.ID), f.Path, err, hint)
	}
	return os.NewFile(uintptr(fd), f.Path), nil
}

// checkSame compares the reopened file with what f recorded at freeze:
// its type and device number, and for a regular file its inode (on the
// machine of the freeze), size and modification time.
func checkSame(r *Restorer, f *image.File, lf *os.File) error {
	st, err := fstat(r, f, lf)
	if err != nil {
		return err
	}
	what := changes(r, f, &st, true)
	if len(what) == 0 {
		return nil
	}
	n := r.firstFD(f.ID)
	if st.Mode&unix.S_IFMT == unix.S_IFREG && f.Flags&unix.O_APPEND != 0 && st.Ino == f.Ino && st.Size > f.Size {
		// Appended to: by the original, left running, or by another
		// writer of a log. The copy's writes go after theirs.
		r.warnf("fd %d: %s grew from %d to %d bytes since the freeze (appended to, by the original process if freeze --leave-running left it running): the copy appends after", n, f.Path, f.Size, st.Size)
		return nil
	}
	if r.Opts.AllowChanged && st.Mode&unix.S_IFMT == f.Mode&unix.S_IFMT {
		r.warnf("fd %d: %s changed since the freeze (%s): thawed anyway", n, f.Path, strings.Join(what, "; "))
		return nil
	}
	hint := ""
	if st.Mode&unix.S_IFMT == unix.S_IFREG && f.Flags&unix.O_ACCMODE != unix.O_RDONLY {
		hint = "; the process had it open for writing: if freeze --leave-running left the original running, it may have written it since"
	}
	return fmt.Errorf("fd %d: %s changed since the freeze: %s%s (thaw --allow-changed, or %s=1, thaws anyway)",
		n, f.Path, strings.Join(what, "; "), hint, EnvAllowChanged)
}

// checkIdentity is checkSame for a descriptor that names a file without
// reading it (O_PATH): only the type and the inode must be the same.
func checkIdentity(r *Restorer, f *image.File, lf *os.File) error {
	st, err := fstat(r, f, lf)
	if err != nil {
		return err
	}
	what := changes(r, f, &st, false)
	if len(what) == 0 {
		return nil
	}
	n := r.firstFD(f.ID)
	if r.Opts.AllowChanged && st.Mode&unix.S_IFMT == f.Mode&unix.S_IFMT {
		r.warnf("fd %d: %s changed since the freeze (%s): thawed anyway", n, f.Path, strings.Join(what, "; "))
		return nil
	}
	return fmt.Errorf("fd %d: %s changed since the freeze: %s (thaw --allow-changed, or %s=1, thaws anyway)",
		n, f.Path, strings.Join(what, "; "), EnvAllowChanged)
}

func fstat(r *Restorer, f *image.File, lf *os.File) (unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(lf.Fd()), &st); err != nil {
		return st, fmt.Errorf("fd %d: stat %s: %w", r.firstFD(f.ID), f.Path, err)
	}
	return st, nil
}

// changes says how st differs from what f recorded; contents adds a
// regular file's size and modification time.
func changes(r *Restorer, f *image.File, st *unix.Stat_t, contents bool) []string {
	var what []string
	typ := st.Mode & unix.S_IFMT
	if typ != f.Mode&unix.S_IFMT {
		return append(what, fmt.Sprintf("it is %s, it was %s", modeName(st.Mode), modeName(f.Mode)))
	}
	if (typ == unix.S_IFCHR || typ == unix.S_IFBLK) && st.Rdev != f.Rdev {
		what = append(what, fmt.Sprintf("device %d:%d, it was %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev), unix.Major(f.Rdev), unix.Minor(f.Rdev)))
	}
	if typ == unix.S_IFREG || (!contents && typ != unix.S_IFCHR && typ != unix.S_IFBLK) {
		if st.Ino != f.Ino && sameMachine(r) {
			what = append(what, fmt.Sprintf("inode %d, it was %d (replaced)", st.Ino, f.Ino))
		}
	}
	if contents && typ == unix.S_IFREG {
		if st.Size != f.Size {
			what = append(what, fmt.Sprintf("size %d, it was %d", st.Size, f.Size))
		}
		if st.Mtim.Nano() != f.MtimeNs {
			what = append(what, fmt.Sprintf("modified %s, it was %s",
				time.Unix(0, st.Mtim.Nano()).Format(time.RFC3339Nano), time.Unix(0, f.MtimeNs).Format(time.RFC3339Nano)))
		}
	}
	return what
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
