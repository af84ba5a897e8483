package files

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileEventfd: an eventfd(2). Its counter and its semaphore mode come
// from fdinfo (fs/eventfd.c, eventfd_show_fdinfo: "eventfd-count",
// "eventfd-semaphore"), never from a read, which would take the count.
// At thaw a new eventfd gets the same count (written, since eventfd2's
// initial value is only 32 bits) and flags; EFD_NONBLOCK is O_NONBLOCK,
// a status flag. "eventfd-id" is a number the kernel hands out to every
// eventfd of the machine: the copy has another one.
const FileEventfd image.FileKind = "eventfd"

type eventfdPayload struct {
	Count     uint64 `json:"count"`
	Semaphore bool   `json:"semaphore,omitempty"`
}

var eventfdKind = kind{
	name:  FileEventfd,
	match: func(d *Dumper, o *Object) bool { return o.Link == "anon_inode:[eventfd]" },
	dump:  dumpEventfd,
	open:  openEventfd,
}

func dumpEventfd(d *Dumper, o *Object, f *image.File) error {
	p, err := parseEventfd(o.Info.Raw)
	if err != nil {
		return fmt.Errorf("fd %d is an eventfd (%s): %w", o.Num, o.Link, err)
	}
	return setPayload(f, &p)
}

func parseEventfd(info string) (eventfdPayload, error) {
	var p eventfdPayload
	kv := infoFields(info)
	c, ok := kv["eventfd-count"]
	if !ok {
		return p, fmt.Errorf("no eventfd-count in its fdinfo")
	}
	var err error
	if p.Count, err = strconv.ParseUint(c, 16, 64); err != nil {
		return p, fmt.Errorf("eventfd-count %q: %w", c, err)
	}
	// Before Linux 6.6 fdinfo does not say whether the eventfd is a
	// semaphore, and nothing else does without taking a count.
	s, ok := kv["eventfd-semaphore"]
	if !ok {
		return p, fmt.Errorf("this kernel's fdinfo does not tell whether it is a semaphore (eventfd-semaphore, Linux 6.6): unsupported")
	}
	p.Semaphore = s == "1"
	return p, nil
}

func openEventfd(r *Restorer, f *image.File) (*os.File, error) {
	var p eventfdPayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	flags := unix.EFD_CLOEXEC | unix.EFD_NONBLOCK
	if p.Semaphore {
		flags |= unix.EFD_SEMAPHORE
	}
	fd, err := unix.Eventfd(0, flags)
	if err != nil {
		return nil, fmt.Errorf("fd %d: eventfd: %w", n, err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	if p.Count > 0 {
		var b [8]byte
		binary.NativeEndian.PutUint64(b[:], p.Count)
		if _, err := unix.Write(fd, b[:]); err != nil {
			lf.Close()
			return nil, fmt.Errorf("fd %d: give the eventfd its count %d: %w", n, p.Count, err)
		}
	}
	if err := setStatusFlags(lf, f.Flags); err != nil {
		lf.Close()
		return nil, fmt.Errorf("fd %d: %w", n, err)
	}
	return lf, nil
}

// infoFields reads the "key: value" lines of an fdinfo text (the value
// trimmed; the first line of a key wins).
func infoFields(info string) map[string]string {
	kv := map[string]string{}
	for _, l := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		if _, seen := kv[k]; !seen {
			kv[k] = strings.TrimSpace(v)
		}
	}
	return kv
}
