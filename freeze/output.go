package freeze

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
