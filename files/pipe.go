package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FilePipe: a pipe or a named FIFO (not on fds 0-2, which are the
// thaw's). Each end is a File; the pipe itself is found again by its
// inode. Its buffered bytes are read at freeze without taking them (tee:
// with --leave-running the original still finds them unread) and are in
// the new pipe before the process runs. A FIFO is reopened at its path.
//
// A pipe with an end outside the process (its peer is another process,
// like a pipe a tool leaked on fd 251) is built with that end gone: a
// reader gets the buffered bytes, then EOF; a writer gets EPIPE (and
// SIGPIPE). A named FIFO's other end can be opened again by anyone; an
// anonymous one can be handed in with thaw --fd.
const FilePipe image.FileKind = "pipe"

type pipePayload struct {
	// Pipe is the pipe's inode: the ends of one pipe share it.
	Pipe uint64 `json:"pipe"`
	// Named is set for a FIFO, reopened at Path.
	Named bool `json:"named,omitempty"`
	// Size is the pipe's buffer size (F_GETPIPE_SZ).
	Size int `json:"size"`
	// PeerOutside is set when the process holds only this side of the
	// pipe (only readers or only writers).
	PeerOutside bool `json:"peer_outside,omitempty"`
}

var pipeKind = kind{
	name:   FilePipe,
	match:  func(d *Dumper, o *Object) bool { return o.Stat.Mode&unix.S_IFMT == unix.S_IFIFO },
	dump:   dumpPipe,
	finish: finishPipes,
	open:   openPipe,
}

// pipeSeen is the freeze-side bookkeeping: the pipes whose bytes are read.
type pipeSeen map[uint64]bool

func dumpPipe(d *Dumper, o *Object, f *image.File) error {
	p := pipePayload{Pipe: o.Stat.Ino, Named: o.Link[0] == '/'}
	if p.Named && !reachable(o) {
		return fmt.Errorf("fd %d is the FIFO %s, whose path was deleted: unsupported", o.Num, o.Link)
	}
	size, err := unix.FcntlInt(o.Local.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return fmt.Errorf("fd %d (%s): F_GETPIPE_SZ: %w", o.Num, o.Link, err)
	}
	p.Size = size
	seen, _ := d.state[FilePipe].(pipeSeen)
	if seen == nil {
		seen = pipeSeen{}
		d.state[FilePipe] = seen
	}
	if !seen[p.Pipe] {
		seen[p.Pipe] = true
		data, err := pipeBytes(d, o, size)
		if err != nil {
			return fmt.Errorf("fd %d (%s): read the bytes in the pipe: %w", o.Num, o.Link, err)
		}
		if len(data) > 0 {
			f.Blob = d.addBlob(data)
		}
	}
	return setPayload(f, &p)
}

// pipeBytes copies what the pipe of o holds, leaving it there: tee(2)
// from a read end into a pipe of freeze's own.
func pipeBytes(d *Dumper, o *Object, size int) ([]byte, error) {
	src := o.Local
	if o.Info.Flags&unix.O_ACCMODE == unix.O_WRONLY {
		// Only a write end here: open the pipe again for reading
		// (what /proc/PID/fd allows), without blocking.
		fd, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", d.Pid, o.Num), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open a read end: %w", err)
		}
		src = os.NewFile(uintptr(fd), o.Link)
		defer src.Close()
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, err
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if _, err := unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, size); err != nil {
		return nil, fmt.Errorf("make a pipe of %d bytes to copy it into: %w", size, err)
	}
	n, err := unix.Tee(int(src.Fd()), p[1], size, unix.SPLICE_F_NONBLOCK)
	if errors.Is(err, unix.EAGAIN) {
		return nil, nil // empty
	}
	if err != nil {
		return nil, fmt.Errorf("tee: %w", err)
	}
	buf := make([]byte, n)
	for got := 0; got < int(n); {
		m, err := unix.Read(p[0], buf[got:])
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return nil, fmt.Errorf("copy ended at %d of %d bytes", got, n)
		}
		got += m
	}
	return buf, nil
}

// finishPipes marks the pipes the process holds only one side of, and
// tells the user what thaw will do with each such end.
func finishPipes(d *Dumper) error {
	type sides struct{ r, w bool }
	have := map[uint64]*sides{}
	err := d.each(func(o *Object, f *image.File) error {
		if f.Kind != FilePipe {
			return nil
		}
		s := have[o.Stat.Ino]
		if s == nil {
			s = &sides{}
			have[o.Stat.Ino] = s
		}
		acc := f.Flags & unix.O_ACCMODE
		s.r = s.r || acc != unix.O_WRONLY
		s.w = s.w || acc != unix.O_RDONLY
		return nil
	})
	if err != nil {
		return err
	}
	return d.each(func(o *Object, f *image.File) error {
		if f.Kind != FilePipe {
			return nil
		}
		s := have[o.Stat.Ino]
		if s.r && s.w {
			return nil
		}
		var p pipePayload
		if err := getPayload(f, &p); err != nil {
			return err
		}
		p.PeerOutside = true
		what := "its reader gets what the pipe holds, then end of file"
		if s.w {
			what = "writing to it fails with EPIPE (SIGPIPE)"
		}
		if p.Named {
			d.Note("fd %d: the FIFO %s, its other end outside the process: thaw reopens it at its path", o.Num, o.Link)
		} else {
			d.Note("fd %d: %s end of %s, its other end outside the process: thaw gives it a pipe with that end gone (%s); thaw --fd %d=PATH or --fd %d=&N hands one in",
				o.Num, endName(f.Flags), o.Link, what, o.Num, o.Num)
		}
		return setPayload(f, &p)
	})
}

func endName(flags uint32) string {
	switch flags & unix.O_ACCMODE {
	case unix.O_RDONLY:
		return "the read"
	case unix.O_WRONLY:
		return "the write"
	}
	return "a read-write"
}

// pipeObj is one pipe being built at thaw: the helper's own read and
// write ends (a FIFO's: one read-write descriptor), from which each
// File's descriptor is made.
type pipeObj struct {
	rd, wr *os.File
	given  map[uint32]bool // access modes already given to a File
}

func openPipe(r *Restorer, f *image.File) (*os.File, error) {
	var p pipePayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	objs, _ := r.state[FilePipe].(map[uint64]*pipeObj)
	if objs == nil {
		objs = map[uint64]*pipeObj{}
		r.state[FilePipe] = objs
	}
	po := objs[p.Pipe]
	if po == nil {
		var err error
		if po, err = newPipe(r, f, &p, n); err != nil {
			return nil, err
		}
		objs[p.Pipe] = po
	}
	if f.Blob != 0 {
		r.sink(f.Blob, func(off uint64, data []byte) error {
			if _, err := po.wr.Write(data); err != nil {
				return fmt.Errorf("fd %d: put back the bytes of %s: %w", n, f.Path, err)
			}
			return nil
		})
	}
	acc := f.Flags & unix.O_ACCMODE
	var lf *os.File
	if p.Named {
		fd, err := unix.Open(f.Path, int(acc)|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("fd %d: reopen the FIFO %s: %w", n, f.Path, err)
		}
		lf = os.NewFile(uintptr(fd), f.Path)
	} else {
		src := po.rd
		if acc == unix.O_WRONLY {
			src = po.wr
		}
		if acc != unix.O_RDWR && !po.given[acc] {
			// The pipe's own end: the open file description pipe2 made.
			fd, err := unix.FcntlInt(src.Fd(), unix.F_DUPFD_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("fd %d: dup: %w", n, err)
			}
			lf = os.NewFile(uintptr(fd), f.Path)
		} else {
			// Another open file description of the same pipe (opened
			// again through /proc, as the process once did).
			fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(src.Fd())), int(acc)|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, fmt.Errorf("fd %d: open the pipe again: %w", n, err)
			}
			lf = os.NewFile(uintptr(fd), f.Path)
		}
		po.given[acc] = true
	}
	r.after(func() error {
		if err := setStatusFlags(lf, f.Flags); err != nil {
			return fmt.Errorf("fd %d: %w", n, err)
		}
		return nil
	})
	return lf, nil
}

// newPipe makes the pipe of f (a FIFO: opens it) with its buffer size.
func newPipe(r *Restorer, f *image.File, p *pipePayload, n int) (*pipeObj, error) {
	po := &pipeObj{given: map[uint32]bool{}}
	if p.Named {
		fd, err := unix.Open(f.Path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("fd %d: reopen the FIFO %s: %w", n, f.Path, err)
		}
		po.rd = os.NewFile(uintptr(fd), f.Path)
		po.wr = po.rd
		r.keep(po.rd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFIFO {
			return nil, fmt.Errorf("fd %d: %s is %s now, it was a FIFO", n, f.Path, modeName(st.Mode))
		}
		if err := unix.SetNonblock(fd, false); err != nil {
			return nil, err
		}
	} else {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("fd %d: pipe2: %w", n, err)
		}
		po.rd, po.wr = os.NewFile(uintptr(fds[0]), f.Path), os.NewFile(uintptr(fds[1]), f.Path)
		r.keep(po.rd)
		r.keep(po.wr)
	}
	cur, err := unix.FcntlInt(po.wr.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return nil, err
	}
	if p.Size > 0 && cur != p.Size {
		if _, err := unix.FcntlInt(po.wr.Fd(), unix.F_SETPIPE_SZ, p.Size); err != nil {
			return nil, fmt.Errorf("fd %d: give %s its buffer of %d bytes: %w (see fs.pipe-max-size)", n, f.Path, p.Size, err)
		}
	}
	return po, nil
}
