package freeze

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// output is the image file being written: a temporary name in the
// destination directory, mode 0700 whatever the umask, renamed into place
// only once complete and fsynced. Or, for Output "-", standard output
// (stream): written as it is made, but for its last 64 bytes, the
// trailer, held back until the freeze has nothing left to fail but that
// write (commit). A freeze that fails has written an executable without
// its trailer, which thaw - refuses (image.StreamHead.NewReader).
type output struct {
	path   string
	tmp    string
	f      *os.File
	size   int64
	stream bool
	held   *holdWriter
}

// trailerSize is the size of the executable's trailer (image/doc.go).
const trailerSize = 64

// holdWriter writes to w all but the last trailerSize bytes written to
// it; release writes those.
type holdWriter struct {
	w    io.Writer
	tail []byte
}

func (h *holdWriter) Write(p []byte) (int, error) {
	if len(h.tail)+len(p) <= trailerSize {
		h.tail = append(h.tail, p...)
		return len(p), nil
	}
	// Out go the held bytes and p but its last trailerSize bytes.
	if k := len(h.tail) + len(p) - trailerSize; k <= len(h.tail) {
		if _, err := h.w.Write(h.tail[:k]); err != nil {
			return 0, err
		}
		h.tail = append(h.tail[:0], h.tail[k:]...)
		h.tail = append(h.tail, p...)
		return len(p), nil
	}
	if len(h.tail) > 0 {
		if _, err := h.w.Write(h.tail); err != nil {
			return 0, err
		}
	}
	cut := len(p) - trailerSize
	if _, err := h.w.Write(p[:cut]); err != nil {
		return 0, err
	}
	h.tail = append(h.tail[:0], p[cut:]...)
	return len(p), nil
}

func (h *holdWriter) release() error {
	_, err := h.w.Write(h.tail)
	return err
}

// Stdout is the Options.Output that streams the image to standard output.
const Stdout = "-"

func newOutput(path string) (*output, error) {
	if path == "" {
		return nil, errors.New("no output file given (-o FILE)")
	}
	if path == Stdout {
		return newStdout()
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("output %s is a directory", path)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".cryo-tmp-*")
	if err != nil {
		return nil, fmt.Errorf("cannot write output %s: %w", path, unwrapPathErr(err))
	}
	o := &output{path: path, tmp: f.Name(), f: f}
	// Images hold the process's memory: never readable by others.
	if err := f.Chmod(0o700); err != nil {
		o.abort()
		return nil, fmt.Errorf("chmod %s: %w", o.tmp, err)
	}
	return o, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// newStdout checks that standard output may take an image: not a
// terminal. A write to a reader that went away must fail the freeze, not
// kill it with SIGPIPE (which would leave the target traced no more but
// stopped): SIGPIPE is ignored from here on.
func newStdout() (*output, error) {
	if _, err := unix.IoctlGetTermios(1, unix.TCGETS); err == nil {
		return nil, errors.New("standard output is a terminal: will not write an image there (pipe it: -o - | thaw -, or -o FILE)")
	}
	var st unix.Stat_t
	if err := unix.Fstat(1, &st); err != nil {
		return nil, fmt.Errorf("standard output: %w", err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		// Images hold the process's memory: never readable by others.
		if err := unix.Fchmod(1, 0o700); err != nil {
			return nil, fmt.Errorf("chmod standard output: %w", err)
		}
	case unix.S_IFIFO:
		// Larger pipe buffers let freeze and thaw - run apart for longer.
		// Best effort: 1 MiB is the usual limit without CAP_SYS_RESOURCE.
		unix.FcntlInt(1, unix.F_SETPIPE_SZ, 1<<20)
	}
	signal.Ignore(syscall.SIGPIPE)
	return &output{path: Stdout, tmp: "standard output", f: os.Stdout, stream: true, held: &holdWriter{w: os.Stdout}}, nil
}

func (o *output) abort() {
	if o.stream {
		return
	}
	if o.f != nil {
		o.f.Close()
		o.f = nil
	}
	os.Remove(o.tmp)
}

// commit makes the image durable and gives it its name. injected stands
// for an fsync failure in the fault tests.
func (o *output) commit(injected error) error {
	err := injected
	if o.stream {
		// A regular file (freeze -o - > FILE) is fsynced with its
		// trailer; if that fails, the trailer is cut off again.
		var st unix.Stat_t
		regular := unix.Fstat(int(o.f.Fd()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG
		if err == nil && regular {
			err = o.f.Sync()
		}
		if err != nil {
			return fmt.Errorf("fsync %s: %w", o.tmp, err)
		}
		if err := o.held.release(); err != nil {
			return fmt.Errorf("write %s: %w", o.tmp, err)
		}
		if regular {
			if err := o.f.Sync(); err != nil {
				if off, serr := o.f.Seek(0, io.SeekCurrent); serr == nil {
					o.f.Truncate(off - trailerSize)
				}
				return fmt.Errorf("fsync %s: %w", o.tmp, err)
			}
		}
		return nil
	}
	if err == nil {
		err = o.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("fsync %s: %w", o.tmp, err)
	}
	fi, err := o.f.Stat()
	if err != nil {
		return err
	}
	o.size = fi.Size()
	if err := o.f.Close(); err != nil {
		o.f = nil
		return fmt.Errorf("close %s: %w", o.tmp, err)
	}
	o.f = nil
	if err := os.Rename(o.tmp, o.path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", o.tmp, o.path, err)
	}
	if d, err := os.Open(filepath.Dir(o.path)); err == nil {
		d.Sync() // make the rename durable; best effort, the file itself is synced
		d.Close()
	}
	return nil
}

// write streams the executable into out: the loader and the restorer,
// the image, the trailer (image.NewExecutable; image/doc.go draws it).
func (f *freezer) write(ctx context.Context, out *output, p *image.Process) error {
	restorer, err := f.restorer()
	if err != nil {
		return err
	}
	var dst io.Writer = out.f
	if out.held != nil {
		dst = out.held
	}
	cw := &countWriter{w: dst}
	exe, err := image.NewExecutable(cw, f.host.Loader, restorer)
	if err != nil {
		return fmt.Errorf("write %s: %w", out.tmp, err)
	}
	bw := bufio.NewWriterSize(exe, 1<<20)
	w, err := image.NewWriter(bw, f.host.Image, f.pageSize)
	if err != nil {
		return fmt.Errorf("write %s: %w", out.tmp, err)
	}
	if err := w.WriteMeta(p); err != nil {
		return fmt.Errorf("write %s: %w", out.tmp, err)
	}
	if err := f.files.WriteBlobs(w); err != nil {
		return fmt.Errorf("write %s: %w", out.tmp, err)
	}
	if err := f.dumpPages(ctx, w, p); err != nil {
		return err
	}
	// Signals that arrived while the pages were written are pending in
	// the stopped target: they go in the image too, or a migrated
	// process would lose them.
	var tail image.Tail
	if err := f.tr.Do(func() (err error) { tail.Pending, err = pendingSignals(f.group.Tids); return err }); err != nil {
		return err
	}
	if err := w.CloseWithTail(&tail); err != nil {
		return fmt.Errorf("write %s: %w", out.tmp, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", out.tmp, err)
	}
	if err := exe.Finish(w.Written()); err != nil {
		return fmt.Errorf("write %s: %w", out.tmp, err)
	}
	out.size = cw.n
	f.logf("wrote %d pages (%d zero pages skipped), image %d bytes", f.res.Pages, f.res.ZeroPages, w.Written())
	return nil
}

// restorer returns the packed restorer the image is to carry (see
// Options.Restorer).
func (f *freezer) restorer() ([]byte, error) {
	path := f.opts.Restorer
	if path == "" {
		path = "/proc/self/exe"
	}
	rf, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open the restorer %s: %w", path, err)
	}
	defer rf.Close()
	packed, err := image.AttachedRestorer(rf)
	if !errors.Is(err, image.ErrNoRestorer) {
		return packed, err
	}
	prog, err := io.ReadAll(rf)
	if err != nil {
		return nil, fmt.Errorf("read the restorer %s: %w", path, err)
	}
	f.logf("no restorer attached to %s (built without make): the image carries all of it", path)
	return image.PackRestorer(prog, false)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
