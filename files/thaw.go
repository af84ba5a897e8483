package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// Target is the thawing process (the stub), stopped under the helper's
// ptrace, where calls are injected.
type Target interface {
	// Syscall runs one injected call and names it in the error.
	Syscall(name string, nr uint64, args ...uint64) (uint64, error)
	// Poke writes b into the stub's scratch area at off and returns its
	// address there.
	Poke(off uint64, b []byte) (uint64, error)
	// Peek reads len(b) bytes of the stub's memory at addr.
	Peek(addr uint64, b []byte) error
}

// Handoff is a descriptor the user hands in at thaw for fd Num
// (`--fd N=PATH`, `--fd N=&M`).
type Handoff struct {
	Num  int
	Path string // open this path with the fd's access mode
	From int    // or use the thaw's own fd From (Path empty)
}

// ParseHandoff parses "N=PATH" or "N=&M".
func ParseHandoff(s string) (Handoff, error) {
	k, v, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(k)
	if !ok || err != nil || n < 0 || v == "" {
		return Handoff{}, fmt.Errorf("--fd %q: want N=PATH or N=&M (N, M: fd numbers)", s)
	}
	if m, ok := strings.CutPrefix(v, "&"); ok {
		from, err := strconv.Atoi(m)
		if err != nil || from < 0 {
			return Handoff{}, fmt.Errorf("--fd %q: after & comes one of the thaw's fd numbers", s)
		}
		return Handoff{Num: n, From: from}, nil
	}
	return Handoff{Num: n, Path: v, From: -1}, nil
}

// String is the form ParseHandoff reads.
func (h Handoff) String() string {
	if h.Path != "" {
		return fmt.Sprintf("%d=%s", h.Num, h.Path)
	}
	return fmt.Sprintf("%d=&%d", h.Num, h.From)
}

// RestoreOptions tune the thaw of the files.
type RestoreOptions struct {
	Handoffs []Handoff
	// AllowChanged thaws even when a file changed since the freeze.
	AllowChanged bool
}

// Restorer rebuilds the descriptor table of a frozen process in the stub.
type Restorer struct {
	P    *image.Process
	T    Target
	Sys  arch.Sysno
	Pid  int // the stub
	Opts RestoreOptions
	// Chan is the stub's end of the socket files are moved over (its fd
	// number there); ChanLocal is the helper's end.
	Chan      int
	ChanLocal *os.File
	// Winch is set when terminal modes were set: the process gets a
	// SIGWINCH once running, to redraw.
	Winch bool
	Log   func(format string, args ...any)

	pidfd  int
	stub   map[int]*os.File // the stub's own fds, taken with pidfd_getfd
	local  map[int]*os.File // the built file of each File id
	fds    map[int][]image.FD
	sinks  map[uint64]func(off uint64, data []byte) error
	afters []func() error // once every blob is in
	lates  []func() error // once every fd is in place in the stub
	extra  []*os.File     // helper-side files to close at the end
	state  map[image.FileKind]any
	// objs are the memfds and deleted files rebuilt, by their identity
	// at freeze, kept until MappingsDone (shmem.go).
	objs map[shmemKey]*shmemObj
	// mapFDs are the stub's descriptors of them for its mappings.
	mapFDs map[mapKey]int
}

// Restore builds every File and puts it on its fds in the stub; blobs
// are read from next (image.Reader.NextBlob) until io.EOF. It returns
// each File's fds, sorted, by file id.
func (r *Restorer) Restore(next func() (id, off uint64, data []byte, err error)) (map[int][]image.FD, error) {
	r.local, r.stub, r.state = map[int]*os.File{}, map[int]*os.File{}, map[image.FileKind]any{}
	r.sinks = map[uint64]func(uint64, []byte) error{}
	r.fds = map[int][]image.FD{}
	r.objs, r.mapFDs = map[shmemKey]*shmemObj{}, map[mapKey]int{}
	r.pidfd = -1
	defer r.close()
	for _, fd := range r.P.FDs {
		r.fds[fd.File] = append(r.fds[fd.File], fd)
	}
	for id := range r.fds {
		sort.Slice(r.fds[id], func(a, b int) bool { return r.fds[id][a].Num < r.fds[id][b].Num })
	}
	var err error
	if r.pidfd, err = unix.PidfdOpen(r.Pid, 0); err != nil {
		return nil, fmt.Errorf("pidfd_open of the thawing process: %w", err)
	}
	if err := r.build(); err != nil {
		return nil, err
	}
	for {
		id, off, data, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		sink := r.sinks[id]
		if sink == nil && len(r.Opts.Handoffs) > 0 {
			continue // the bytes of a file the user replaced
		}
		if sink == nil {
			return nil, fmt.Errorf("blob %d: no file of the image takes it", id)
		}
		if err := sink(off, data); err != nil {
			return nil, err
		}
	}
	for _, fn := range r.afters {
		if err := fn(); err != nil {
			return nil, err
		}
	}
	if err := r.place(); err != nil {
		return nil, err
	}
	for _, fn := range r.lates {
		if err := fn(); err != nil {
			return nil, err
		}
	}
	if err := restoreLocks(r, r.fds); err != nil {
		return nil, err
	}
	return r.fds, nil
}

// build makes each File in the helper.
func (r *Restorer) build() error {
	// The handoffs first: a File any of whose fds is handed in is the
	// handed-in file.
	handed := map[int]Handoff{}
	for _, h := range r.Opts.Handoffs {
		found := false
		for _, fd := range r.P.FDs {
			if fd.Num == h.Num {
				handed[fd.File], found = h, true
			}
		}
		if !found {
			return fmt.Errorf("--fd %s: the frozen process has no fd %d", h, h.Num)
		}
	}
	// A file no fd holds is built when a mapping maps it.
	mapped := map[int]bool{}
	for _, v := range r.P.VMAs {
		if v.Kind == image.VMASharedObject {
			mapped[v.File] = true
		}
	}
	for i := range r.P.Files {
		f := &r.P.Files[i]
		if len(r.fds[f.ID]) == 0 && !mapped[f.ID] {
			continue
		}
		var lf *os.File
		var err error
		if h, ok := handed[f.ID]; ok {
			lf, err = r.handoff(f, h)
			if f.Blob != 0 {
				// What was queued in the frozen one belongs to it,
				// not to the file handed in.
				r.sink(f.Blob, func(uint64, []byte) error { return nil })
				r.logf("fd %d: handed in (--fd %s): the bytes queued in the frozen one are dropped", h.Num, h)
			}
		} else {
			k := kindNamed(f.Kind)
			if k == nil {
				return fmt.Errorf("fd %d is a %q file, which this cryo cannot restore", r.fds[f.ID][0].Num, f.Kind)
			}
			lf, err = k.open(r, f)
		}
		if err != nil {
			return err
		}
		if lf != nil {
			r.local[f.ID] = lf
		}
	}
	return nil
}

// handoff opens what the user handed in for f.
func (r *Restorer) handoff(f *image.File, h Handoff) (*os.File, error) {
	if h.Path == "" {
		return r.StubFD(h.From)
	}
	flags := int(f.Flags)&(unix.O_ACCMODE|unix.O_APPEND|unix.O_NONBLOCK) | unix.O_CREAT | unix.O_CLOEXEC
	fd, err := unix.Open(h.Path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--fd %s: open: %w", h, err)
	}
	return os.NewFile(uintptr(fd), h.Path), nil
}

// StubFD returns the thawing process's own fd n, taken into the helper;
// nil if it has none.
func (r *Restorer) StubFD(n int) (*os.File, error) {
	if f, ok := r.stub[n]; ok {
		return f, nil
	}
	fd, err := unix.PidfdGetfd(r.pidfd, n, 0)
	if errors.Is(err, unix.EBADF) {
		r.stub[n] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("take the thaw's fd %d: %w", n, err)
	}
	f := os.NewFile(uintptr(fd), "thaw fd "+strconv.Itoa(n))
	r.stub[n] = f
	return f, nil
}

// sink routes the bytes of blob id to fn as they are read.
func (r *Restorer) sink(id uint64, fn func(off uint64, data []byte) error) {
	r.sinks[id] = fn
}

// after runs fn once every blob is read, before the files are moved.
func (r *Restorer) after(fn func() error) { r.afters = append(r.afters, fn) }

// late runs fn once every fd is in place in the stub.
func (r *Restorer) late(fn func() error) { r.lates = append(r.lates, fn) }

// keep holds f open in the helper until the files are moved (the other
// end of a pipe whose peer is gone must outlive the move...).
func (r *Restorer) keep(f *os.File) { r.extra = append(r.extra, f) }

// firstFD is the lowest fd number of file id.
func (r *Restorer) firstFD(id int) int { return r.fds[id][0].Num }

// place moves each built file into the stub and onto its numbers.
func (r *Restorer) place() error {
	have, err := proc.FDs(r.Pid)
	if err != nil {
		return err
	}
	want := map[int]bool{}
	for _, fd := range r.P.FDs {
		want[fd.Num] = true
	}
	// The channel goes to the lowest number no fd of the image has, so
	// that no received file can land on it, and every other fd the stub
	// has is closed.
	ch := 0
	for want[ch] {
		ch++
	}
	if ch != r.Chan {
		if _, err := r.T.Syscall("move the file channel", r.Sys.Dup3, uint64(r.Chan), uint64(ch), unix.O_CLOEXEC); err != nil {
			return err
		}
		r.Chan = ch
	}
	if ch > 0 {
		if _, err := r.T.Syscall("close the thaw's fds", r.Sys.CloseRange, 0, uint64(ch-1), 0); err != nil {
			return err
		}
	}
	top := ch
	for _, n := range have {
		top = max(top, n)
	}
	if top > ch {
		if _, err := r.T.Syscall("close the thaw's fds", r.Sys.CloseRange, uint64(ch+1), uint64(top), 0); err != nil {
			return err
		}
	}
	// In the order of each file's lowest fd.
	var ids []int
	for id, fds := range r.fds {
		if r.local[id] != nil && len(fds) > 0 {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return r.firstFD(ids[a]) < r.firstFD(ids[b]) })
	for _, id := range ids {
		got, err := r.move(r.local[id])
		if err != nil {
			return fmt.Errorf("move the file of fd %d into the thawing process: %w", r.firstFD(id), err)
		}
		keep := false
		for _, fd := range r.fds[id] {
			fl := uint64(0)
			if fd.Cloexec {
				fl = unix.O_CLOEXEC
			}
			if fd.Num == got {
				keep = true
				cl := uint64(0)
				if fd.Cloexec {
					cl = unix.FD_CLOEXEC
				}
				if _, err := r.T.Syscall(fmt.Sprintf("fcntl(%d, F_SETFD)", got), r.Sys.Fcntl, uint64(got), unix.F_SETFD, cl); err != nil {
					return err
				}
				continue
			}
			if _, err := r.T.Syscall(fmt.Sprintf("dup3 to fd %d", fd.Num), r.Sys.Dup3, uint64(got), uint64(fd.Num), fl); err != nil {
				return err
			}
		}
		if !keep {
			if _, err := r.T.Syscall("close", r.Sys.Close, uint64(got)); err != nil {
				return err
			}
		}
	}
	if err := r.moveMapped(); err != nil {
		return err
	}
	if _, err := r.T.Syscall("close the file channel", r.Sys.Close, uint64(ch)); err != nil {
		return err
	}
	r.Chan = -1
	return nil
}

// move sends f over the channel and receives it in the stub with an
// injected recvmsg; it returns the fd number the stub got.
func (r *Restorer) move(f *os.File) (int, error) {
	rights := unix.UnixRights(int(f.Fd()))
	if err := unix.Sendmsg(int(r.ChanLocal.Fd()), []byte{0}, rights, nil, 0); err != nil {
		return -1, fmt.Errorf("sendmsg: %w", err)
	}
	// struct msghdr (56 bytes) at 0, its iovec at 64, one data byte at
	// 80, the control buffer at 96.
	const msgOff, iovOff, dataOff, ctlOff, ctlLen = 0, 64, 80, 96, 24
	base, err := r.T.Poke(0, make([]byte, ctlOff+ctlLen))
	if err != nil {
		return -1, err
	}
	msg := make([]byte, 56)
	binary.LittleEndian.PutUint64(msg[16:], base+iovOff) // msg_iov
	binary.LittleEndian.PutUint64(msg[24:], 1)           // msg_iovlen
	binary.LittleEndian.PutUint64(msg[32:], base+ctlOff) // msg_control
	binary.LittleEndian.PutUint64(msg[40:], ctlLen)      // msg_controllen
	iov := make([]byte, 16)
	binary.LittleEndian.PutUint64(iov[0:], base+dataOff)
	binary.LittleEndian.PutUint64(iov[8:], 1)
	if _, err := r.T.Poke(msgOff, msg); err != nil {
		return -1, err
	}
	if _, err := r.T.Poke(iovOff, iov); err != nil {
		return -1, err
	}
	if _, err := r.T.Syscall("recvmsg", r.Sys.Recvmsg, uint64(r.Chan), base+msgOff, unix.MSG_CMSG_CLOEXEC); err != nil {
		return -1, err
	}
	ctl := make([]byte, ctlLen)
	if err := r.T.Peek(base+ctlOff, ctl); err != nil {
		return -1, err
	}
	msgs, err := unix.ParseSocketControlMessage(ctl)
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("recvmsg brought no descriptor (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, fmt.Errorf("recvmsg brought no descriptor (%v)", err)
	}
	return fds[0], nil
}

func (r *Restorer) close() {
	for _, f := range r.local {
		f.Close()
	}
	for _, f := range r.stub {
		if f != nil {
			f.Close()
		}
	}
	for _, f := range r.extra {
		f.Close()
	}
	if r.pidfd >= 0 {
		unix.Close(r.pidfd)
	}
}

// setStatusFlags gives f's open file description the status flags the
// frozen one had (O_NONBLOCK, O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME).
func setStatusFlags(f *os.File, flags uint32) error {
	const settable = unix.O_APPEND | unix.O_NONBLOCK | unix.O_ASYNC | unix.O_DIRECT | unix.O_NOATIME
	cur, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		return fmt.Errorf("F_GETFL: %w", err)
	}
	nw := cur&^settable | int(flags)&settable
	if nw == cur {
		return nil
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETFL, nw); err != nil {
		return fmt.Errorf("F_SETFL %#o: %w", nw, err)
	}
	return nil
}
