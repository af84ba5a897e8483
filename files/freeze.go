package files

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// Object is one open file description as freeze sees it, on the lowest
// fd that points at it.
type Object struct {
	Num int // the fd number in the target
	// Local is the same open file description, taken into freeze with
	// pidfd_getfd: what is asked of it is asked of the target's file.
	Local *os.File
	Stat  unix.Stat_t
	Info  proc.FDInfo
	// Link is what /proc/PID/fd/Num says ("/path", "pipe:[123]",
	// "socket:[456]", "anon_inode:[eventfd]"...).
	Link string
	// Fds are every number that points at it, sorted.
	Fds []int
	// mapping names an object no fd holds, taken from a mapping
	// (Num is -1): "mapping 0x7f00-0x7f10".
	mapping string
	// private: Local is freeze's own description of the file, not the
	// target's.
	private bool
}

// where names o in messages: "fd 3", or the mapping it was found by.
func (o *Object) where() string {
	if o.Num < 0 {
		return o.mapping
	}
	return "fd " + strconv.Itoa(o.Num)
}

// DumpOptions tune what freeze records of the files.
type DumpOptions struct {
	// MaxBlob bounds the bytes one file may put in the image (an
	// unlinked file's contents). 0: DefaultMaxBlob.
	MaxBlob int64
	// CarryFiles puts the contents of the regular files the process has
	// open in the image too.
	CarryFiles bool
	// TCPEstablished is what is done with established TCP connections
	// (tcp.go).
	TCPEstablished TCPPolicy
}

// DefaultMaxBlob is the largest unlinked file freeze carries unless told.
const DefaultMaxBlob = 256 << 20

// Table is what Collect found.
type Table struct {
	Files []image.File
	FDs   []image.FD
	Locks []image.Lock
	// Notes are the lines freeze prints for the user: what thaw will do
	// with each external peer.
	Notes []string
}

// blob is bytes to write as a BLOB record: data, or the extents of file
// (offset, length pairs), read when the image is written.
type blob struct {
	id     uint64
	data   []byte
	file   *os.File
	ranges [][2]int64
}

// Dumper collects the descriptor table of a stopped process.
type Dumper struct {
	Pid   int
	Opts  DumpOptions
	pidfd int
	t     Table
	objs  []*Object // objs[i] is the object of t.Files[i]
	blobs []blob
	// held are files of freeze's own opened to be read at image-write
	// time (a carried file's contents), closed with the Dumper.
	held []*os.File
	// state is each kind's own bookkeeping across objects (pipes by
	// inode...), by kind.
	state map[image.FileKind]any
	// undo puts back what freeze changed on the target's files (a TCP
	// connection in repair mode), for a target that goes on: Release.
	undo []func() error
	// gone: the target was killed; what undo would put back stays.
	gone bool
}

// Collect records the descriptor table of pid, which must be stopped
// under freeze's ptrace. Close the Dumper once the image is written.
func Collect(pid int, opts DumpOptions) (d *Dumper, err error) {
	if opts.MaxBlob <= 0 {
		opts.MaxBlob = DefaultMaxBlob
	}
	d = &Dumper{Pid: pid, Opts: opts, pidfd: -1, state: map[image.FileKind]any{}}
	defer func() {
		if err != nil {
			d.Close()
			d = nil
		}
	}()
	if d.pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
		return d, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	nums, err := proc.FDs(pid)
	if err != nil {
		return d, err
	}
	sort.Ints(nums)
	for _, n := range nums {
		if err := d.add(n); err != nil {
			return d, err
		}
	}
	for _, k := range kinds {
		if k.finish != nil {
			if err := k.finish(d); err != nil {
				return d, err
			}
		}
	}
	return d, nil
}

// Table returns the files, fds and locks found.
func (d *Dumper) Table() *Table { return &d.t }

// add records fd n: a new fd of a File already seen, or a new File.
func (d *Dumper) add(n int) error {
	var st unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", d.Pid, n), &st); err != nil {
		return fmt.Errorf("fd %d: stat: %w", n, err)
	}
	info, err := proc.ReadFDInfo(d.Pid, n)
	if err != nil {
		return err
	}
	cloexec := info.Flags&unix.O_CLOEXEC != 0
	for i, o := range d.objs {
		if o.Stat.Dev != st.Dev || o.Stat.Ino != st.Ino {
			continue
		}
		same, err := sameFile(d.Pid, o.Num, n)
		if err != nil {
			return err
		}
		if same {
			o.Fds = append(o.Fds, n)
			d.t.FDs = append(d.t.FDs, image.FD{Num: n, File: d.t.Files[i].ID, Cloexec: cloexec})
			return nil
		}
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", d.Pid, n))
	if err != nil {
		return fmt.Errorf("fd %d: %w", n, err)
	}
	o := &Object{Num: n, Stat: st, Info: info, Link: link, Fds: []int{n}}
	lfd, err := unix.PidfdGetfd(d.pidfd, n, 0)
	if err != nil {
		return fmt.Errorf("fd %d (%s): pidfd_getfd: %w", n, link, err)
	}
	o.Local = os.NewFile(uintptr(lfd), link)
	// From here on o is the Dumper's: Close closes its Local.
	d.objs = append(d.objs, o)
	f := image.File{
		ID: len(d.t.Files) + 1, Path: link, Flags: info.Flags &^ unix.O_CLOEXEC, Pos: info.Pos,
		Mode: st.Mode, Size: st.Size, Dev: st.Dev, Ino: st.Ino, Rdev: st.Rdev,
		MtimeNs: st.Mtim.Nano(),
	}
	k, err := d.kindOf(o)
	if err != nil {
		return err
	}
	f.Kind = k.name
	d.t.Files = append(d.t.Files, f)
	if err := k.dump(d, o, &d.t.Files[len(d.t.Files)-1]); err != nil {
		return err
	}
	for _, lk := range info.Locks {
		l, err := imageLock(n, lk)
		if err != nil {
			return err
		}
		l.File = f.ID
		d.t.Locks = append(d.t.Locks, l)
	}
	d.t.FDs = append(d.t.FDs, image.FD{Num: n, File: f.ID, Cloexec: cloexec})
	return nil
}

// kindOf returns the first kind whose match accepts o.
func (d *Dumper) kindOf(o *Object) (*kind, error) {
	for _, k := range kinds {
		if k.match(d, o) {
			return k, nil
		}
	}
	return nil, fmt.Errorf("fd %d is %s (%s): unsupported by this cryo", o.Num, o.Link, modeName(o.Stat.Mode))
}

// Objects returns the objects and their Files in the order seen, for a
// kind's finish.
func (d *Dumper) each(fn func(o *Object, f *image.File) error) error {
	for i, o := range d.objs {
		if err := fn(o, &d.t.Files[i]); err != nil {
			return err
		}
	}
	return nil
}

// Note adds a line freeze prints for the user.
func (d *Dumper) Note(format string, args ...any) {
	d.t.Notes = append(d.t.Notes, fmt.Sprintf(format, args...))
}

// addBlob records data as a BLOB record and returns its id.
func (d *Dumper) addBlob(data []byte) uint64 {
	id := uint64(len(d.blobs) + 1)
	d.blobs = append(d.blobs, blob{id: id, data: data})
	return id
}

// addFileBlob records the first size bytes of f as a BLOB record, read
// when the image is written.
func (d *Dumper) addFileBlob(f *os.File, size int64) uint64 {
	return d.addRangesBlob(f, [][2]int64{{0, size}})
}

// addRangesBlob records the extents of f (offset, length pairs), one
// after the other, as a BLOB record, read when the image is written.
func (d *Dumper) addRangesBlob(f *os.File, ranges [][2]int64) uint64 {
	id := uint64(len(d.blobs) + 1)
	d.blobs = append(d.blobs, blob{id: id, file: f, ranges: ranges})
	return id
}

// hold keeps f open until the Dumper is closed.
func (d *Dumper) hold(f *os.File) { d.held = append(d.held, f) }

// BlobWriter is where WriteBlobs puts the blobs (image.Writer).
type BlobWriter interface {
	WriteBlob(id uint64, data []byte) error
}

// WriteBlobs writes every blob the kinds recorded.
func (d *Dumper) WriteBlobs(w BlobWriter) error {
	buf := make([]byte, 1<<20)
	for _, b := range d.blobs {
		if b.file == nil {
			if err := w.WriteBlob(b.id, b.data); err != nil {
				return err
			}
			continue
		}
		for _, r := range b.ranges {
			if err := writeRange(w, b, buf, r[0], r[0]+r[1]); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeRange writes bytes [off, end) of b's file to its blob.
func writeRange(w BlobWriter, b blob, buf []byte, off, end int64) error {
	for off < end {
		n, err := b.file.ReadAt(buf[:min(int64(len(buf)), end-off)], off)
		if n > 0 {
			if werr := w.WriteBlob(b.id, buf[:n]); werr != nil {
				return werr
			}
			off += int64(n)
		}
		if err == io.EOF && off < end {
			return fmt.Errorf("%s shrank to %d bytes while being frozen", b.file.Name(), off)
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s: %w", b.file.Name(), err)
		}
	}
	return nil
}

// Release puts back what freeze changed on the target's files (it takes
// its TCP connections out of repair mode): call it before the target
// runs again, after a failed freeze or with --leave-running. Close does
// it too unless TargetGone was called.
func (d *Dumper) Release() error {
	var errs []error
	for i := len(d.undo) - 1; i >= 0; i-- {
		errs = append(errs, d.undo[i]())
	}
	d.undo = nil
	return errors.Join(errs...)
}

// TargetGone tells the Dumper that the target was killed: Close lets go
// of its files as they are (a TCP connection left in repair mode closes
// without a FIN or RST to its peer, which the thawed copy takes over).
func (d *Dumper) TargetGone() { d.gone = true }

// Close lets go of freeze's copies of the target's files, releasing
// them first unless the target is gone.
func (d *Dumper) Close() error {
	var errs []error
	if !d.gone {
		errs = append(errs, d.Release())
	}
	for _, o := range d.objs {
		if o.Local != nil {
			errs = append(errs, o.Local.Close())
		}
	}
	d.objs = nil
	for _, f := range d.held {
		errs = append(errs, f.Close())
	}
	d.held = nil
	if d.pidfd >= 0 {
		errs = append(errs, unix.Close(d.pidfd))
		d.pidfd = -1
	}
	return errors.Join(errs...)
}

// setPayload encodes a kind's payload into f.
func setPayload(f *image.File, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("file %d: encode its %s payload: %w", f.ID, f.Kind, err)
	}
	f.Payload = b
	return nil
}

// getPayload decodes f's payload into v.
func getPayload(f *image.File, v any) error {
	if len(f.Payload) == 0 {
		return fmt.Errorf("file %d (%s) has no payload", f.ID, f.Kind)
	}
	if err := json.Unmarshal(f.Payload, v); err != nil {
		return fmt.Errorf("file %d (%s): bad payload: %w", f.ID, f.Kind, err)
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

func modeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a pipe"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFREG:
		return "a regular file"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFLNK:
		return "a symbolic link"
	case 0:
		return "an anonymous inode"
	}
	return "a special file"
}
