package files

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// Carried files (freeze --carry-files): the contents of every regular
// file the process has open travel in the image, one BLOB record per
// file (the first File of each inode holds it; the others of the same
// inode say they are carried with it). No file larger than
// DumpOptions.MaxBlob (freeze --max-file-size) is carried: the freeze
// fails naming it.
//
// Files of the kernel's own filesystems (/proc, /sys, cgroup...) are not
// carried: what they hold is the kernel's view at the time of the read.
//
// At thaw a carried file
//   - that is gone is made again from its contents, with its mode, its
//     modification time and (when the thaw runs as root) its owner. It is
//     built unnamed (O_TMPFILE) and linked at its path once every byte is
//     in, before any fd is moved into the thawing process: a thaw that
//     fails before leaves nothing behind, one that fails later leaves the
//     file as it was at the freeze. Its directory must exist.
//   - that is there with the same contents (compared byte by byte, not by
//     size or time) is reopened, whatever its inode or time say.
//   - that is there with other contents is refused, naming it; with
//     thaw --allow-changed it is left as it is now (never overwritten:
//     the newer contents may be someone's work) and a warning says so.

// regPayload is a regular file's payload; it has one only when carried.
type regPayload struct {
	Carried bool   `json:"carried"`
	UID     uint32 `json:"uid"`
	GID     uint32 `json:"gid"`
}

// carryKey is a file's inode at freeze (image.File Dev, Ino).
type carryKey struct{ dev, ino uint64 }

// pseudoFS are the filesystems whose files are the kernel's views, not
// contents: never carried (their size says nothing of what a read gives,
// and a thaw reads the kernel's view of then).
var pseudoFS = map[int64]string{
	unix.PROC_SUPER_MAGIC: "proc", unix.SYSFS_MAGIC: "sysfs", unix.CGROUP_SUPER_MAGIC: "cgroup",
	unix.CGROUP2_SUPER_MAGIC: "cgroup2", unix.DEBUGFS_MAGIC: "debugfs", unix.TRACEFS_MAGIC: "tracefs",
	unix.SECURITYFS_MAGIC: "securityfs", unix.BPF_FS_MAGIC: "bpf", unix.EFIVARFS_MAGIC: "efivarfs",
	unix.PSTOREFS_MAGIC: "pstore",
}

// carryFile records o's contents (once per inode) for a carried file.
func carryFile(d *Dumper, o *Object, f *image.File) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(o.Local.Fd()), &fs); err != nil {
		return fmt.Errorf("fd %d (%s): statfs: %w", o.Num, o.Link, err)
	}
	if _, ok := pseudoFS[fs.Type]; ok {
		return nil // reopened as any file
	}
	p := regPayload{Carried: true, UID: o.Stat.Uid, GID: o.Stat.Gid}
	if err := setPayload(f, &p); err != nil {
		return err
	}
	seen, _ := d.state[image.FileReg].(map[carryKey]bool)
	if seen == nil {
		seen = map[carryKey]bool{}
		d.state[image.FileReg] = seen
	}
	key := carryKey{f.Dev, f.Ino}
	if seen[key] {
		return nil
	}
	seen[key] = true
	if o.Stat.Size > d.Opts.MaxBlob {
		return fmt.Errorf("fd %d: %s is %s, more than the %s freeze --carry-files puts in the image for one file (freeze --max-file-size raises the limit)",
			o.Num, o.Link, sizeName(o.Stat.Size), sizeName(d.Opts.MaxBlob))
	}
	// A descriptor of freeze's own, read-only, without O_DIRECT (whose
	// reads must be aligned): the process's may be write-only.
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", d.Pid, o.Num), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fd %d: open %s to carry its contents: %w", o.Num, o.Link, err)
	}
	rf := os.NewFile(uintptr(fd), o.Link)
	d.hold(rf)
	f.Blob = d.addFileBlob(rf, o.Stat.Size)
	return nil
}

// sizeName is n bytes as people say it.
func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GiB"
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// carried is one carried inode being restored.
type carried struct {
	// made is the unnamed file made again (nil: the file was there).
	made *os.File
	// there is the file found at the path, read to compare.
	there *os.File
	// same is false once a byte differs.
	same bool
	// seen counts the blob bytes received.
	seen int64
}

func openCarried(r *Restorer, f *image.File) (*os.File, error) {
	var p regPayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	all, _ := r.state[image.FileReg].(map[carryKey]*carried)
	if all == nil {
		all = map[carryKey]*carried{}
		r.state[image.FileReg] = all
	}
	key := carryKey{f.Dev, f.Ino}
	c := all[key]
	if c == nil {
		var err error
		if c, err = startCarried(r, f, &p, n); err != nil {
			return nil, err
		}
		all[key] = c
	}
	if c.made == nil {
		return openAsBefore(r, f, 0)
	}
	// Another description of the file made again.
	flags := int(f.Flags)&^(unix.O_CREAT|unix.O_TRUNC|unix.O_EXCL|unix.O_NOCTTY) | unix.O_CLOEXEC
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(c.made.Fd())), flags, 0)
	if err != nil {
		return nil, fmt.Errorf("fd %d: open %s made again: %w", n, f.Path, err)
	}
	return os.NewFile(uintptr(fd), f.Path), nil
}

// startCarried looks at f's path: a file there is compared with the
// carried bytes, a missing one is made again from them.
func startCarried(r *Restorer, f *image.File, p *regPayload, n int) (*carried, error) {
	if f.Blob == 0 {
		return nil, fmt.Errorf("fd %d: %s is carried in the image, but not its contents", n, f.Path)
	}
	c := &carried{same: true}
	fd, err := unix.Open(f.Path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	switch {
	case err == nil:
		c.there = os.NewFile(uintptr(fd), f.Path)
		r.keep(c.there)
		st, err := fstat(r, f, c.there)
		if err != nil {
			return nil, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil, fmt.Errorf("fd %d: %s changed since the freeze: it is %s, it was a regular file", n, f.Path, modeName(st.Mode))
		}
		r.sink(f.Blob, func(off uint64, data []byte) error {
			c.seen += int64(len(data))
			if !c.same {
				return nil
			}
			buf := make([]byte, len(data))
			m, _ := c.there.ReadAt(buf, int64(off)) // short at the end of a shorter file
			c.same = m == len(data) && bytes.Equal(buf, data)
			return nil
		})
		r.after(func() error {
			st, err := fstat(r, f, c.there)
			if err != nil {
				return err
			}
			if c.same && st.Size == f.Size {
				if what := changes(r, f, &st, true); len(what) > 0 {
					r.logf("fd %d: %s has the contents carried in the image (%s)", n, f.Path, strings.Join(what, "; "))
				}
				return nil
			}
			what := "its contents differ from those carried in the image"
			if st.Size != f.Size {
				what += fmt.Sprintf(" (size %d, it was %d)", st.Size, f.Size)
			}
			if r.Opts.AllowChanged {
				r.warnf("fd %d: %s changed since the freeze: %s: left as it is now", n, f.Path, what)
				return nil
			}
			return fmt.Errorf("fd %d: %s changed since the freeze: %s (thaw --allow-changed, or %s=1, thaws with the file as it is now)",
				n, f.Path, what, EnvAllowChanged)
		})
		return c, nil
	case errors.Is(err, unix.ENOENT):
	default:
		return nil, fmt.Errorf("fd %d: open %s: %w", n, f.Path, err)
	}

	// Gone: made again, unnamed until its bytes are in.
	dir := filepath.Dir(f.Path)
	fd, err = unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("fd %d: %s is gone since the freeze, and so is its directory %s: not made again", n, f.Path, dir)
		}
		return nil, fmt.Errorf("fd %d: %s is gone since the freeze; make it again in %s (O_TMPFILE): %w", n, f.Path, dir, err)
	}
	c.made = os.NewFile(uintptr(fd), f.Path)
	r.keep(c.made)
	r.sink(f.Blob, func(off uint64, data []byte) error {
		c.seen += int64(len(data))
		if _, err := c.made.WriteAt(data, int64(off)); err != nil {
			return fmt.Errorf("fd %d: write %s made again: %w", n, f.Path, err)
		}
		return nil
	})
	r.after(func() error {
		mfd := int(c.made.Fd())
		if c.seen != f.Size {
			return fmt.Errorf("fd %d: the image carries %d bytes of %s, it had %d", n, c.seen, f.Path, f.Size)
		}
		if err := unix.Ftruncate(mfd, f.Size); err != nil {
			return fmt.Errorf("fd %d: make %s again: %w", n, f.Path, err)
		}
		if os.Geteuid() == 0 {
			if err := unix.Fchown(mfd, int(p.UID), int(p.GID)); err != nil {
				return fmt.Errorf("fd %d: give %s made again its owner: %w", n, f.Path, err)
			}
		}
		if err := unix.Fchmod(mfd, f.Mode&0o7777); err != nil {
			return fmt.Errorf("fd %d: give %s made again its mode: %w", n, f.Path, err)
		}
		self := "/proc/self/fd/" + strconv.Itoa(mfd)
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(f.MtimeNs)}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, self, ts, 0); err != nil {
			return fmt.Errorf("fd %d: give %s made again its time: %w", n, f.Path, err)
		}
		err := unix.Linkat(unix.AT_FDCWD, self, unix.AT_FDCWD, f.Path, unix.AT_SYMLINK_FOLLOW)
		if errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("fd %d: %s appeared while the thaw made it again: left as it is, thaw again", n, f.Path)
		}
		if err != nil {
			return fmt.Errorf("fd %d: name %s made again: %w", n, f.Path, err)
		}
		r.warnf("fd %d: %s was gone: made again from the image (%d bytes, mode %04o)", n, f.Path, f.Size, f.Mode&0o7777)
		return nil
	})
	return c, nil
}
