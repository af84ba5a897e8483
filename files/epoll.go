package files

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileEpoll: an epoll instance and its interest list: each registered
// fd with its events (EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE,
// EPOLLWAKEUP among them) and its data, from fdinfo's "tfd:" lines
// (fs/eventpoll.c, ep_show_fdinfo).
//
// An item is keyed by the file and the fd number it was added through,
// in the process that added it. Freeze checks with kcmp(KCMP_EPOLL_TFD)
// that each item's fd number still points at the item's file in the
// target: an item added through an fd that was closed since (the file
// lives on through a dup) or that now holds another file, or one an
// inherited epoll got from another process, cannot be added again the
// same way, and is refused naming both fds.
//
// Thaw makes the epoll in the helper, and adds the items by injected
// epoll_ctl(EPOLL_CTL_ADD) calls once every fd is in place in the
// process, with the events the kernel shows. A one-shot item that fired
// shows no events but its flags; it is added for every event and fired
// once more by an epoll_wait of the helper's (see refire). An epoll
// watching another epoll is filled after it. What is ready is found again
// by the kernel when each item is added; an edge-triggered item that was
// ready and already reported is reported once more.
const FileEpoll image.FileKind = "epoll"

type epollItem struct {
	FD     int    `json:"fd"`
	Events uint32 `json:"events"`
	Data   uint64 `json:"data"`
}

type epollPayload struct {
	Items []epollItem `json:"items,omitempty"`
}

var epollKind = kind{
	name:  FileEpoll,
	match: func(d *Dumper, o *Object) bool { return o.Link == "anon_inode:[eventpoll]" },
	dump:  dumpEpoll,
	open:  openEpoll,
}

// epollLine is one "tfd:" line of an epoll's fdinfo:
//
//	tfd:        5 events:       19 data:                5  pos:0 ino:40e sdev:10
type epollLine struct {
	epollItem
	ino, sdev uint64
}

func parseEpollItems(info string) ([]epollLine, error) {
	var items []epollLine
	for _, l := range strings.Split(info, "\n") {
		if !strings.HasPrefix(l, "tfd:") {
			continue
		}
		f := strings.Fields(l)
		kv := map[string]string{}
		for i := 0; i < len(f); i++ {
			k, v, _ := strings.Cut(f[i], ":")
			if v == "" && i+1 < len(f) {
				v = f[i+1]
				i++
			}
			kv[k] = v
		}
		var it epollLine
		fd, err1 := strconv.Atoi(kv["tfd"])
		ev, err2 := strconv.ParseUint(kv["events"], 16, 32)
		data, err3 := strconv.ParseUint(kv["data"], 16, 64)
		ino, err4 := strconv.ParseUint(kv["ino"], 16, 64)
		sdev, err5 := strconv.ParseUint(kv["sdev"], 16, 64)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return nil, fmt.Errorf("cannot parse %q: %w", l, err)
		}
		it.FD, it.Events, it.Data, it.ino, it.sdev = fd, uint32(ev), data, ino, sdev
		items = append(items, it)
	}
	return items, nil
}

func dumpEpoll(d *Dumper, o *Object, f *image.File) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("fd %d is an epoll instance (%s): %s", o.Num, o.Link, fmt.Sprintf(format, args...))
	}
	lines, err := parseEpollItems(o.Info.Raw)
	if err != nil {
		return fail("%v", err)
	}
	seen := map[int]bool{}
	for _, l := range lines {
		if seen[l.FD] {
			return fail("two files are registered under fd %d (one was added, its fd closed, and the number reused): unsupported", l.FD)
		}
		seen[l.FD] = true
	}
	var p epollPayload
	for _, l := range lines {
		same, err := epollTargetIs(d.Pid, o.Num, l.FD)
		switch {
		case errors.Is(err, unix.EBADF):
			return fail("it watches a file registered through fd %d, which is closed now (the file lives on elsewhere): unsupported", l.FD)
		case errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP):
			// No KCMP_EPOLL_TFD in this kernel: the inode is all
			// there is to go by.
			var st unix.Stat_t
			if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", d.Pid, l.FD), &st); err != nil {
				return fail("it watches fd %d, which is closed now: unsupported", l.FD)
			}
			same = st.Ino == l.ino
		case err != nil:
			return fail("kcmp(KCMP_EPOLL_TFD) of its fd %d: %v", l.FD, err)
		}
		if !same {
			return fail("it watches a file registered through fd %d, which holds another file now: unsupported", l.FD)
		}
		p.Items = append(p.Items, l.epollItem)
	}
	return setPayload(f, &p)
}

// epollThaw is the thaw-side bookkeeping: the epolls to fill once every
// fd is in place.
type epollThaw struct {
	files []*image.File
}

func openEpoll(r *Restorer, f *image.File) (*os.File, error) {
	var p epollPayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fd %d: epoll_create1: %w", n, err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	if err := setStatusFlags(lf, f.Flags); err != nil {
		lf.Close()
		return nil, fmt.Errorf("fd %d: %w", n, err)
	}
	st, _ := r.state[FileEpoll].(*epollThaw)
	if st == nil {
		st = &epollThaw{}
		r.state[FileEpoll] = st
		r.late(func() error { return fillEpolls(r, st) })
	}
	st.files = append(st.files, f)
	return lf, nil
}

// fillEpolls adds every epoll's items in the thawing process, an epoll
// watched by another before the one watching it.
func fillEpolls(r *Restorer, st *epollThaw) error {
	payloads := map[int]*epollPayload{}
	byFD := map[int]int{} // fd number -> epoll file id
	for _, f := range st.files {
		var p epollPayload
		if err := getPayload(f, &p); err != nil {
			return err
		}
		payloads[f.ID] = &p
		for _, fd := range r.fds[f.ID] {
			byFD[fd.Num] = f.ID
		}
	}
	order, err := epollOrder(st.files, payloads, byFD)
	if err != nil {
		return err
	}
	for _, f := range order {
		efd := r.firstFD(f.ID)
		var fired, rest []epollItem
		for _, it := range payloads[f.ID].Items {
			if it.Events&epollOneshot != 0 && it.Events&^epollPrivate == 0 {
				fired = append(fired, it)
			} else {
				rest = append(rest, it)
			}
		}
		if err := refire(r, f, efd, fired); err != nil {
			return err
		}
		for _, it := range rest {
			if err := epollAdd(r, efd, it); err != nil {
				return err
			}
		}
	}
	return nil
}

// The flags of an item that are not events (fs/eventpoll.c,
// EP_PRIVATE_BITS), and every event.
const (
	epollOneshot = 1 << 30
	epollPrivate = unix.EPOLLWAKEUP | epollOneshot | unix.EPOLLET | unix.EPOLLEXCLUSIVE
	epollAll     = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLPRI | unix.EPOLLRDNORM | unix.EPOLLRDBAND |
		unix.EPOLLWRNORM | unix.EPOLLWRBAND | unix.EPOLLMSG | unix.EPOLLRDHUP
)

// refire makes again the one-shot items that had fired: the kernel
// keeps their flags and clears their events, but an item cannot be
// added without events (epoll_ctl adds EPOLLERR|EPOLLHUP to any), so
// each is added waiting for every event, before any other item, and
// made to fire by an epoll_wait of the helper's own.
func refire(r *Restorer, f *image.File, efd int, items []epollItem) error {
	if len(items) == 0 {
		return nil
	}
	for _, it := range items {
		it.Events |= epollAll
		if err := epollAdd(r, efd, it); err != nil {
			return err
		}
	}
	ep := r.local[f.ID]
	if ep == nil {
		return fmt.Errorf("epoll fd %d: not built", efd)
	}
	evs := make([]unix.EpollEvent, len(items)+1)
	n, err := unix.EpollWait(int(ep.Fd()), evs, 0)
	if err != nil {
		return fmt.Errorf("epoll fd %d: epoll_wait to fire its one-shot items again: %w", efd, err)
	}
	if n != len(items) {
		var fds []string
		for _, it := range items {
			fds = append(fds, strconv.Itoa(it.FD))
		}
		return fmt.Errorf("epoll fd %d: %d of its one-shot items that had fired (fds %s) could be fired again, the others' files are ready for nothing now",
			efd, n, strings.Join(fds, ", "))
	}
	return nil
}

// epollOrder sorts the epolls so that one another watches comes first.
func epollOrder(files []*image.File, payloads map[int]*epollPayload, byFD map[int]int) ([]*image.File, error) {
	byID := map[int]*image.File{}
	for _, f := range files {
		byID[f.ID] = f
	}
	const (
		todo = iota
		busy
		done
	)
	mark := map[int]int{}
	var order []*image.File
	var visit func(id int) error
	visit = func(id int) error {
		switch mark[id] {
		case busy:
			return fmt.Errorf("epoll fd %d: epolls watching each other in a loop", byFD[id])
		case done:
			return nil
		}
		mark[id] = busy
		for _, it := range payloads[id].Items {
			if t, ok := byFD[it.FD]; ok && t != id {
				if err := visit(t); err != nil {
					return err
				}
			}
		}
		mark[id] = done
		order = append(order, byID[id])
		return nil
	}
	ids := make([]int, 0, len(files))
	for _, f := range files {
		ids = append(ids, f.ID)
	}
	sort.Ints(ids)
	for _, id := range ids {
		if err := visit(id); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// epollAdd injects epoll_ctl(efd, EPOLL_CTL_ADD, it.FD, &event).
func epollAdd(r *Restorer, efd int, it epollItem) error {
	addr, err := r.T.Poke(0, epollEvent(it.Events, it.Data))
	if err != nil {
		return err
	}
	name := fmt.Sprintf("epoll_ctl(fd %d, EPOLL_CTL_ADD, fd %d, events %#x)", efd, it.FD, it.Events)
	if _, err := r.T.Syscall(name, r.Sys.EpollCtl, uint64(efd), unix.EPOLL_CTL_ADD, uint64(it.FD), addr); err != nil {
		return err
	}
	return nil
}

// epollEvent is struct epoll_event as this machine's kernel reads it:
// packed, 12 bytes, on x86-64; 16 bytes with the data aligned on arm64.
// The thawing process runs on this machine, and x/sys/unix's EpollEvent
// has the layout of its arch (Fd and Pad are the two halves of data).
func epollEvent(events uint32, data uint64) []byte {
	ev := unix.EpollEvent{Events: events, Fd: int32(uint32(data)), Pad: int32(uint32(data >> 32))}
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, &ev) // into a bytes.Buffer: cannot fail
	return b.Bytes()
}
