package freeze

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cryo-project/cryo/image"
)

// output is the image file being written: a temporary name in the
// destination directory, mode 0700 whatever the umask, renamed into place
// only once complete and fsynced.
type output struct {
	path string
	tmp  string
	f    *os.File
	size int64
}

func newOutput(path string) (*output, error) {
	if path == "" {
		return nil, errors.New("no output file given (-o FILE)")
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

func (o *output) abort() {
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
	exe, err := image.NewExecutable(out.f, f.host.Loader, restorer)
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
