package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileEventfd: an eventfd(2). Its counter and its semaphore mode come
// from fdinfo (fs/eventfd.c, eventfd_show_fdinfo: "eventfd-count",
// "eventfd-semaphore"), never from a read that would take the count;
// before Linux 6.6, which does not show the mode, from a probe that puts
// the count back (probeSemaphore).
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
	if err == errNoSemaphoreLine {
		p.Semaphore, err = probeSemaphore(o.Local, p.Count)
	}
	if err != nil {
		return fmt.Errorf("fd %d is an eventfd (%s): %w", o.Num, o.Link, err)
	}
	return setPayload(f, &p)
}

// errNoSemaphoreLine: before Linux 6.6 fdinfo does not say whether an
// eventfd is a semaphore.
var errNoSemaphoreLine = errors.New("this kernel's fdinfo does not tell whether it is a semaphore (eventfd-semaphore, Linux 6.6)")

// probeSemaphore tells whether the eventfd f, whose count is c, is in
// semaphore mode, where fdinfo cannot say (before Linux 6.6): a read
// takes 1 from a semaphore and everything from a counter. The count is
// made at least 2 first (a read of 0 would block; the description may
// be blocking), and put back as it was after. What a process can see of
// it: the count is the same, but a waiter elsewhere (an edge-triggered
// epoll) may be woken once, as by any write.
func probeSemaphore(f *os.File, c uint64) (bool, error) {
	var b [8]byte
	add := func(v uint64) error {
		binary.NativeEndian.PutUint64(b[:], v)
		_, err := unix.Write(int(f.Fd()), b[:])
		return err
	}
	take := func() (uint64, error) {
		n, err := unix.Read(int(f.Fd()), b[:])
		if err == nil && n != 8 {
			err = fmt.Errorf("read %d bytes", n)
		}
		return binary.NativeEndian.Uint64(b[:]), err
	}
	have := c
	if c < 2 {
		if err := add(2); err != nil {
			return false, fmt.Errorf("probe its mode: %w", err)
		}
		have = c + 2
	}
	v, err := take()
	if err != nil {
		return false, fmt.Errorf("probe its mode: %w", err)
	}
	sem := v == 1
	left := have - v
	switch {
	case left > c: // the 2 added, less the 1 a semaphore gave
		_, err = take()
	case left < c:
		err = add(c - left)
	}
	if err != nil {
		return false, fmt.Errorf("probe its mode: its count %d could not be put back: %w", c, err)
	}
	return sem, nil
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
	s, ok := kv["eventfd-semaphore"]
	if !ok {
		return p, errNoSemaphoreLine
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
