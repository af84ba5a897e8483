package files

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileSignalfd: a signalfd(2): its signal mask, from fdinfo "sigmask"
// (fs/signalfd.c, signalfd_show_fdinfo; bit N-1 is signal N). The signals
// it reads are the reading process's own pending signals, which the
// thaw restores on their own; a new signalfd with the same mask (made in
// the helper, read by the process) reads them as the old one did.
// SFD_NONBLOCK is O_NONBLOCK, a status flag.
const FileSignalfd image.FileKind = "signalfd"

type signalfdPayload struct {
	Mask uint64 `json:"mask"`
}

var signalfdKind = kind{
	name:  FileSignalfd,
	match: func(d *Dumper, o *Object) bool { return o.Link == "anon_inode:[signalfd]" },
	dump: func(d *Dumper, o *Object, f *image.File) error {
		s, ok := infoFields(o.Info.Raw)["sigmask"]
		if !ok {
			return fmt.Errorf("fd %d is a signalfd (%s): no sigmask in its fdinfo", o.Num, o.Link)
		}
		mask, err := strconv.ParseUint(s, 16, 64)
		if err != nil {
			return fmt.Errorf("fd %d is a signalfd (%s): sigmask %q: %w", o.Num, o.Link, s, err)
		}
		return setPayload(f, &signalfdPayload{Mask: mask})
	},
	open: func(r *Restorer, f *image.File) (*os.File, error) {
		var p signalfdPayload
		if err := getPayload(f, &p); err != nil {
			return nil, err
		}
		n := r.firstFD(f.ID)
		var set unix.Sigset_t
		set.Val[0] = p.Mask
		fd, err := unix.Signalfd(-1, &set, unix.SFD_CLOEXEC|unix.SFD_NONBLOCK)
		if err != nil {
			return nil, fmt.Errorf("fd %d: signalfd(mask %#x): %w", n, p.Mask, err)
		}
		lf := os.NewFile(uintptr(fd), f.Path)
		if err := setStatusFlags(lf, f.Flags); err != nil {
			lf.Close()
			return nil, fmt.Errorf("fd %d: %w", n, err)
		}
		return lf, nil
	},
}
