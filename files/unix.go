package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileUnix: a unix socket (AF_UNIX, unix(7)) of type SOCK_STREAM,
// SOCK_DGRAM or SOCK_SEQPACKET, not on fds 0-2 (those are the thaw's:
// std.go). Freeze asks sock_diag (sockdiag.go) for what only the kernel
// knows of it (its peer, its name and its file, a listener's backlog and
// waiting connections, its shutdown state) and copies the bytes queued
// to be read without taking them: MSG_PEEK stepping through the queue
// with SO_PEEK_OFF, one message at a time for datagrams and seqpackets
// (their boundaries are kept), SO_PEEK_OFF given back its old value (by
// default -1) whatever happens. With --leave-running the original finds
// every byte where it was.
//
// Thaw builds each socket in the helper, as the thawing user:
//
//   - Both ends of a connection inside the process (a socketpair, or a
//     client and the connection its own listener accepted): a socketpair,
//     each end's queued bytes written in order by the other end, messages
//     one by one. The names of connected stream and seqpacket sockets
//     are not given again (an accepted socket's is its listener's, which
//     the listener has): getsockname and getpeername of such a pair say
//     unnamed. Datagram sockets of a pair are bound to their names again.
//   - A listening socket: socket, bind to its name, listen with the
//     backlog it had (sock_diag; 128 where the kernel does not say). The
//     connections waiting to be accepted from outside the process are
//     not carried (their clients see the connection closed); one a
//     client inside the process made is made again, in queue order.
//   - A bound socket that is not connected (a datagram server): socket
//     and bind; its queued datagrams are sent to it again from an
//     unnamed socket of the helper, so recvfrom no longer tells their
//     sender (freeze says so when a sender had a name).
//   - A datagram socket connected to a named socket outside the process
//     (a syslog client's /dev/log): connected to that name again, as a
//     FIFO is reopened at its path; a thaw where nothing listens there
//     fails saying so.
//   - A socket whose peer is outside the process (a client of a server,
//     a socket a tool left on fd 9), or gone: never a reason to refuse.
//     It is rebuilt with its peer gone: a socketpair whose other end gets
//     the queued bytes written into it and is then closed. Its reader
//     gets the bytes, then end of file (a datagram socket: EAGAIN or
//     blocks); writing fails with EPIPE (a datagram socket:
//     ECONNREFUSED). Freeze prints one line for each, and `thaw --fd
//     N=&M` hands a descriptor in instead.
//
// Names: a path is bound again at the same path (a relative one in the
// directory that was the process's working directory at freeze, which
// its file must still be reachable from), with the socket file's mode
// and, when the thaw runs as root, its owner; an abstract name is bound
// again as it was (its leading NUL and every byte). A socket file left at
// the path by the killed original is removed first, only if it is a
// socket and nothing answers there (connect: ECONNREFUSED): another file
// is never removed, and a live socket there fails the thaw. A socket
// whose file was removed after bind is bound again and its new file
// removed at once, so getsockname says what it said.
//
// Also carried: the status flags (O_NONBLOCK), the shutdown state and the
// socket options (socket.go). Not carried, and refused when freeze sees
// them: file descriptors in flight (SCM_RIGHTS) in a queue, out-of-band
// data (MSG_OOB). Lost: the credentials of queued messages (a receiver
// with SO_PASSCRED gets those of the thaw's helper: its pid, the thawing
// user's uid and gid; the kernel stamps every message with its sender's,
// and a helper may not claim another pid unless root); a pending
// ECONNRESET that freeze's first peek took (only of a seqpacket socket
// whose peer closed with bytes unread: it is made again at thaw, but the
// original, with --leave-running, no longer gets it); zero-length
// datagrams at the end of a seqpacket queue whose peer has shut down
// (the kernel shows them as end of file).
const FileUnix image.FileKind = "unix"

// How thaw builds a unix socket.
const (
	buildAlone    = ""          // socket(); bound, listening, as it was
	buildPair     = "pair"      // socketpair() with its peer, which the process holds
	buildPeerGone = "peer-gone" // socketpair() whose other end is then closed
	buildConnect  = "connect"   // a datagram socket connected to PeerName again
)

// defaultBacklog is the listen(2) backlog of a listener whose backlog
// the kernel did not tell (sock_diag without UDIAG_SHOW_RQLEN): the
// kernel's own SOMAXCONN of old, clamped to net.core.somaxconn anyway.
const defaultBacklog = 128

type unixPayload struct {
	Type int `json:"type"` // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	// Ino is the socket's inode at freeze: its name in the image.
	Ino uint32 `json:"ino"`
	// Build is one of buildAlone, buildPair, buildPeerGone, buildConnect.
	Build string `json:"build,omitempty"`

	Listen  bool `json:"listen,omitempty"`
	Backlog int  `json:"backlog,omitempty"`
	// Pending are, for a listener, the inodes of the process's own
	// sockets whose connections wait to be accepted, in queue order.
	Pending []uint32 `json:"pending,omitempty"`

	// Name is the socket's address (sun_path: a path, or an abstract
	// name with its leading NUL); Bind says it is the socket's own, to
	// bind again (an accepted socket's is its listener's).
	Name []byte `json:"name,omitempty"`
	Bind bool   `json:"bind,omitempty"`
	// Dir is the directory a relative path is bound in.
	Dir string `json:"dir,omitempty"`
	// Unlinked: the path no longer led to the socket at freeze.
	Unlinked bool `json:"unlinked,omitempty"`
	// FileMode, FileUID, FileGID are the socket file's.
	FileMode uint32 `json:"file_mode,omitempty"`
	FileUID  int    `json:"file_uid,omitempty"`
	FileGID  int    `json:"file_gid,omitempty"`

	// Connected: it has a peer (Peer 0: one that closed, or a
	// connection still waiting in a listener's queue).
	Connected bool   `json:"connected,omitempty"`
	Peer      uint32 `json:"peer,omitempty"`
	PeerName  []byte `json:"peer_name,omitempty"`

	// Msgs are the sizes of the queued datagrams or seqpackets, in
	// order: the blob holds them end to end. A stream's blob is its
	// bytes.
	Msgs   []int `json:"msgs,omitempty"`
	Queued int   `json:"queued,omitempty"`
	// Shutdown is sk_shutdown: rcvShutdown | sendShutdown.
	Shutdown uint8 `json:"shutdown,omitempty"`
	// Reset: a read would have failed with ECONNRESET first.
	Reset bool     `json:"reset,omitempty"`
	Opts  sockOpts `json:"opts"`
}

var unixKind = kind{
	name:   FileUnix,
	match:  func(d *Dumper, o *Object) bool { return isSocketOf(o, unix.AF_UNIX) },
	dump:   dumpUnix,
	finish: finishUnix,
	open:   openUnix,
}

// unixSeen is what finishUnix needs of each unix socket dumped.
type unixSeen struct {
	diag *unixDiag
	// senders are the names datagrams queued on it came from.
	senders []string
}

func dumpUnix(d *Dumper, o *Object, f *image.File) error {
	s, err := socketOf(o)
	if err != nil {
		return fmt.Errorf("fd %d (%s): %w", o.Num, o.Link, err)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("fd %d (unix %s socket %s): %s", o.Num, typeName(s.Type), o.Link, fmt.Sprintf(format, args...))
	}
	switch s.Type {
	case unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_SEQPACKET:
	default:
		return fail("socket type %d: unsupported", s.Type)
	}
	ino := uint32(o.Stat.Ino)
	dg, err := unixDiagOf(ino, udiagShowName|udiagShowVFS|udiagShowPeer|udiagShowIcons|udiagShowRQLen)
	if errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOMEM) {
		// More waiting connections than a reply holds (a page):
		// without their list.
		dg, err = unixDiagOf(ino, udiagShowName|udiagShowVFS|udiagShowPeer|udiagShowRQLen)
	}
	if err != nil {
		return fail("%v (carrying unix sockets needs the kernel's unix_diag, CONFIG_UNIX_DIAG)", err)
	}
	fd := int(o.Local.Fd())
	p := unixPayload{Type: s.Type, Ino: ino, Shutdown: dg.Shutdown}
	if p.Opts, err = readSockOpts(fd); err != nil {
		return fail("%v", err)
	}
	if dg.Named {
		p.Name = dg.Name
	}
	p.Listen = dg.State == tcpListen
	p.Connected = dg.HasPeer
	if p.Connected {
		p.Peer = dg.Peer
		if p.Peer != 0 {
			if pd, err := unixDiagOf(p.Peer, udiagShowName); err == nil && pd.Named {
				p.PeerName = pd.Name
			}
		}
	}
	// A socket's own name is bound again; a connected stream's is its
	// listener's (accept), or lost.
	p.Bind = dg.Named && (s.Type == unix.SOCK_DGRAM || !p.Connected)
	if p.Bind && len(p.Name) > 0 && p.Name[0] != 0 {
		if err := unixPathOf(d, o, dg, &p); err != nil {
			return fail("%v", err)
		}
	}
	if p.Listen {
		p.Backlog = defaultBacklog
		if dg.HasRQLen {
			p.Backlog = int(dg.WQueue)
		}
	}
	seen := &unixSeen{diag: dg}
	if !p.Listen {
		q, err := peekUnix(fd, s.Type, dg, d.Opts.MaxBlob)
		if err != nil {
			return fail("%v", err)
		}
		p.Msgs, p.Queued, p.Reset, seen.senders = q.msgs, len(q.data), q.reset, q.senders
		if len(q.data) > 0 {
			f.Blob = d.addBlob(q.data)
		}
	}
	all, _ := d.state[FileUnix].(map[uint32]*unixSeen)
	if all == nil {
		all = map[uint32]*unixSeen{}
		d.state[FileUnix] = all
	}
	all[ino] = seen
	return setPayload(f, &p)
}

// unixPathOf records how the path p.Name is bound again: the directory
// a relative path is in, whether it still leads to the socket, and its
// file's mode and owner.
func unixPathOf(d *Dumper, o *Object, dg *unixDiag, p *unixPayload) error {
	name := string(p.Name)
	at := name // where freeze finds the file, as the process would
	if !strings.HasPrefix(name, "/") {
		cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", d.Pid))
		if err != nil {
			return fmt.Errorf("bound to the relative path %q: the process's working directory: %w", name, err)
		}
		if !strings.HasPrefix(cwd, "/") || strings.HasSuffix(cwd, " (deleted)") {
			return fmt.Errorf("bound to the relative path %q, and the working directory %s cannot be found again: unsupported", name, cwd)
		}
		p.Dir = cwd
		at = fmt.Sprintf("/proc/%d/cwd/%s", d.Pid, name)
	}
	var st unix.Stat_t
	err := unix.Lstat(at, &st)
	if err != nil || !dg.HasVFS || st.Ino != uint64(dg.VFSIno) || !vfsDevIs(dg.VFSDev, st.Dev) {
		if p.Dir != "" {
			// Bound in another directory, or its file removed: which,
			// only the inode of the file tells, and no path leads to it.
			return fmt.Errorf("bound to the relative path %q, which does not lead to its socket file from the working directory %s "+
				"(did the process change directory after bind, or remove the file?): unsupported", name, p.Dir)
		}
		// Bound, then its file removed (or replaced): nothing reaches
		// it by its name any more, and after the thaw neither.
		p.Unlinked = true
		return nil
	}
	p.FileMode, p.FileUID, p.FileGID = st.Mode&0o7777, int(st.Uid), int(st.Gid)
	return nil
}

// queued is what peekUnix copied.
type queued struct {
	data    []byte
	msgs    []int
	senders []string
	reset   bool
}

// peekUnix copies what fd's receive queue holds without taking it:
// MSG_PEEK with SO_PEEK_OFF moving through the queue, given back its old
// value at the end, whatever happens. A stream's bytes are read up to
// what sock_diag counted (never once more: a last empty peek would take
// a pending error from the socket); datagrams and seqpackets one at a
// time, each peeked whole.
func peekUnix(fd, typ int, dg *unixDiag, max int64) (q queued, err error) {
	if typ == unix.SOCK_STREAM && dg.HasRQLen && dg.RQueue == 0 {
		return q, nil // nothing queued (messages may be empty: those are always peeked)
	}
	old, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
	if err != nil {
		return q, fmt.Errorf("getsockopt SO_PEEK_OFF: %w", err)
	}
	setOff := func(off int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, off); err != nil {
			return fmt.Errorf("setsockopt SO_PEEK_OFF %d: %w", off, err)
		}
		return nil
	}
	if err := setOff(0); err != nil {
		return q, err
	}
	defer func() {
		if e := setOff(old); e != nil {
			err = errors.Join(err, fmt.Errorf("give SO_PEEK_OFF back its value %d: %w", old, e))
		}
	}()
	buf := make([]byte, 64<<10)
	oob := make([]byte, 4096)
	const flags = unix.MSG_PEEK | unix.MSG_DONTWAIT | unix.MSG_CMSG_CLOEXEC
	peek := func(b []byte, extra int) (int, int, unix.Sockaddr, error) {
		for {
			n, oobn, rflags, from, err := unix.Recvmsg(fd, b, oob, flags|extra)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err == nil {
				if e := checkControl(oob[:oobn], rflags); e != nil {
					return 0, 0, nil, e
				}
			}
			return n, rflags, from, err
		}
	}
	tooMuch := func(n int) error {
		if int64(len(q.data)+n) > max {
			return fmt.Errorf("more than %d bytes queued", max)
		}
		return nil
	}
	if typ == unix.SOCK_STREAM {
		want := -1
		if dg.HasRQLen {
			want = int(dg.RQueue)
		}
		for want < 0 || len(q.data) < want {
			b := buf
			if want >= 0 {
				b = buf[:min(len(buf), want-len(q.data))]
			}
			n, _, _, err := peek(b, 0)
			if errors.Is(err, unix.ECONNRESET) && !q.reset {
				// The error was pending (the peer closed with bytes
				// unread); this peek took it.
				q.reset = true
				continue
			}
			if errors.Is(err, unix.EAGAIN) || (err == nil && n == 0) {
				break
			}
			if err != nil {
				return q, fmt.Errorf("peek at the bytes queued: %w", err)
			}
			if err := tooMuch(n); err != nil {
				return q, err
			}
			q.data = append(q.data, b[:n]...)
		}
		if want >= 0 && len(q.data) != want {
			return q, fmt.Errorf("%d bytes are queued on it, of which %d can be read (out-of-band data, MSG_OOB?): unsupported", want, len(q.data))
		}
		return q, nil
	}
	// Datagrams, seqpackets: one message a peek. A seqpacket socket
	// whose peer shut down reads end of file (0) once the queue is
	// empty, like a zero-length message: past the bytes sock_diag
	// counted, a 0 is taken as the end.
	eof := typ == unix.SOCK_SEQPACKET && dg.Shutdown&rcvShutdown != 0
	total := -1
	if typ == unix.SOCK_SEQPACKET && dg.HasRQLen {
		total = int(dg.RQueue)
	}
	senders := map[string]bool{}
	for off := 0; ; {
		if len(q.msgs) > 1<<20 {
			return q, errors.New("more than a million messages queued")
		}
		n, rflags, from, err := peek(buf, unix.MSG_TRUNC)
		if errors.Is(err, unix.ECONNRESET) && !q.reset {
			q.reset = true
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return q, fmt.Errorf("peek at message %d queued: %w", len(q.msgs)+1, err)
		}
		if n == 0 && eof && (total < 0 || off >= total) {
			break
		}
		if rflags&unix.MSG_TRUNC != 0 || n > len(buf) {
			// Larger than the buffer (MSG_TRUNC says its size): again,
			// whole, from its start.
			if err := tooMuch(n); err != nil {
				return q, err
			}
			buf = make([]byte, n)
			if err := setOff(off); err != nil {
				return q, err
			}
			if n, _, from, err = peek(buf, unix.MSG_TRUNC); err != nil {
				return q, fmt.Errorf("peek at message %d queued: %w", len(q.msgs)+1, err)
			}
			if n > len(buf) {
				return q, fmt.Errorf("message %d queued grew while read", len(q.msgs)+1)
			}
		}
		if err := tooMuch(n); err != nil {
			return q, err
		}
		q.data = append(q.data, buf[:n]...)
		q.msgs = append(q.msgs, n)
		off += n
		if sa, ok := from.(*unix.SockaddrUnix); ok && sa.Name != "" && sa.Name != "@" && !senders[sa.Name] {
			senders[sa.Name] = true
			q.senders = append(q.senders, sa.Name)
		}
	}
	return q, nil
}

// checkControl looks at the control messages a peek brought: file
// descriptors in flight are refused (and freeze's copies of them
// closed); credentials are not carried (unix.go).
func checkControl(oob []byte, rflags int) error {
	if len(oob) == 0 {
		if rflags&unix.MSG_CTRUNC != 0 {
			return errors.New("a queued message carries more control data than freeze reads: unsupported")
		}
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return fmt.Errorf("control data of a queued message: %w", err)
	}
	rights := 0
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Level != unix.SOL_SOCKET {
			continue
		}
		switch m.Header.Type {
		case unix.SCM_RIGHTS:
			fds, _ := unix.ParseUnixRights(m)
			for _, fd := range fds {
				unix.Close(fd)
			}
			rights += len(fds)
		case unix.SCM_PIDFD:
			// A pidfd of the sender, given to every reader that
			// asked with SO_PASSPIDFD: freeze's copy is closed.
			if len(m.Data) >= 4 {
				unix.Close(int(int32(binary.NativeEndian.Uint32(m.Data))))
			}
		}
	}
	if rights > 0 {
		return fmt.Errorf("file descriptors in flight (SCM_RIGHTS, %d in a queued message) cannot be carried: unsupported", rights)
	}
	if rflags&unix.MSG_CTRUNC != 0 {
		return errors.New("a queued message carries more control data than freeze reads: unsupported")
	}
	return nil
}

// finishUnix tells how each socket is built again, now that every fd is
// seen (is its peer inside the process?), and tells the user what thaw
// will do with each whose peer is outside.
func finishUnix(d *Dumper) error {
	all, _ := d.state[FileUnix].(map[uint32]*unixSeen)
	if len(all) == 0 {
		return nil
	}
	pays := map[uint32]*unixPayload{}
	err := d.each(func(o *Object, f *image.File) error {
		if f.Kind != FileUnix {
			return nil
		}
		var p unixPayload
		if err := getPayload(f, &p); err != nil {
			return err
		}
		pays[p.Ino] = &p
		return nil
	})
	if err != nil {
		return err
	}
	// Clients inside the process whose connections wait in a listener
	// inside the process.
	waiting := map[uint32]bool{}
	for ino, p := range pays {
		if !p.Listen {
			continue
		}
		outside := 0
		for _, c := range all[ino].diag.Icons {
			if cp := pays[c]; c != 0 && cp != nil && cp.Connected && cp.Peer == 0 {
				p.Pending = append(p.Pending, c)
				waiting[c] = true
			} else {
				outside++
			}
		}
		if dg := all[ino].diag; dg.Icons == nil && dg.RQueue > 0 {
			outside = int(dg.RQueue)
		}
		if outside > 0 {
			d.Note("fd %s: listening unix socket %s has %d connection(s) from outside the process waiting to be accepted: thaw does not carry them (their clients see the connection closed)",
				fdsOf(d, ino), nameString(p.Name), outside)
		}
	}
	return d.each(func(o *Object, f *image.File) error {
		if f.Kind != FileUnix {
			return nil
		}
		p := pays[uint32(o.Stat.Ino)]
		seen := all[p.Ino]
		what := fmt.Sprintf("fd %d: unix %s socket", o.Num, typeName(p.Type))
		switch {
		case p.Listen || !p.Connected:
			p.Build = buildAlone
		case waiting[p.Ino]:
			p.Build = buildAlone // its listener connects it again
			if seen.diag.HasRQLen && seen.diag.WQueue > 0 {
				d.Note("%s, its connection waiting in the process's own listener: thaw connects it again, without the bytes it had sent", what)
			}
		case p.Peer != 0 && pays[p.Peer] != nil && (p.Type != unix.SOCK_DGRAM || pays[p.Peer].Peer == p.Ino):
			p.Build = buildPair
		case p.Type == unix.SOCK_DGRAM && p.Peer != 0 && len(p.PeerName) > 0:
			p.Build = buildConnect
			if pays[p.Peer] == nil {
				d.Note("%s connected to %s, outside the process: thaw connects it to %s again", what, nameString(p.PeerName), nameString(p.PeerName))
			}
		default:
			p.Build = buildPeerGone
			peer := "its peer outside the process"
			switch {
			case p.Peer == 0:
				peer = "its peer closed (or its connection not accepted yet)"
			case len(p.PeerName) > 0:
				peer = "connected to " + nameString(p.PeerName) + " outside the process"
			}
			d.Note("%s, %s: thaw gives it a socket whose peer is gone (%s); thaw --fd %d=&N hands one in",
				what, peer, peerGoneWhat(p), o.Num)
		}
		if len(seen.senders) > 0 {
			d.Note("%s: %d datagram(s) queued on it came from %s: thaw puts them back from an unnamed socket (a reply to them has no address)",
				what, len(p.Msgs), strings.Join(seen.senders, ", "))
		}
		return setPayload(f, p)
	})
}

// peerGoneWhat says what a socket whose peer is gone does.
func peerGoneWhat(p *unixPayload) string {
	var read string
	switch {
	case p.Type == unix.SOCK_STREAM && p.Queued > 0:
		read = fmt.Sprintf("its reader gets the %d bytes queued, then end of file", p.Queued)
	case p.Type == unix.SOCK_STREAM, p.Type == unix.SOCK_SEQPACKET && len(p.Msgs) == 0:
		read = "its reader gets end of file"
	case p.Type == unix.SOCK_SEQPACKET:
		read = fmt.Sprintf("its reader gets the %d messages queued, then end of file", len(p.Msgs))
	default:
		read = fmt.Sprintf("its reader gets the %d datagrams queued, then nothing more", len(p.Msgs))
	}
	if p.Reset {
		read = "its reader gets ECONNRESET, then " + strings.TrimPrefix(read, "its reader gets ")
	}
	if p.Type == unix.SOCK_DGRAM {
		return read + "; sending fails with ECONNREFUSED"
	}
	return read + "; writing fails with EPIPE"
}

// fdsOf names the fds of the unix socket ino.
func fdsOf(d *Dumper, ino uint32) string {
	for _, o := range d.objs {
		if uint32(o.Stat.Ino) == ino && o.Stat.Mode&unix.S_IFMT == unix.S_IFSOCK {
			return strconv.Itoa(o.Num)
		}
	}
	return "?"
}

func typeName(typ int) string {
	switch typ {
	case unix.SOCK_STREAM:
		return "stream"
	case unix.SOCK_DGRAM:
		return "datagram"
	case unix.SOCK_SEQPACKET:
		return "seqpacket"
	}
	return "type-" + strconv.Itoa(typ)
}

// nameString shows a unix address: a path as it is, an abstract name as
// @name (the ss(8) convention), with unprintable bytes escaped.
func nameString(name []byte) string {
	if len(name) == 0 {
		return "an unnamed socket"
	}
	s := string(name)
	if name[0] == 0 {
		s = "@" + s[1:]
	}
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		return q
	}
	return s
}

// sockaddrOf is the unix.Sockaddr of a name as sock_diag gave it.
func sockaddrOf(name []byte) *unix.SockaddrUnix {
	if len(name) > 0 && name[0] == 0 {
		return &unix.SockaddrUnix{Name: "@" + string(name[1:])}
	}
	return &unix.SockaddrUnix{Name: string(name)}
}

// Thaw.

// unixThaw is the thaw-side bookkeeping: the pairs being built, and
// every socket built, by its inode at freeze.
type unixThaw struct {
	pairs map[uint32]*unixPair
	built map[uint32]*unixBuilt
}

// unixBuilt is one socket being built.
type unixBuilt struct {
	f    *image.File
	p    *unixPayload
	n    int      // its lowest fd
	sock *os.File // the helper's, moved into the process
	data []byte   // its blob: what it will read
	// unlinkLater: its path is removed once its queue is refilled, if
	// the file there is still the one its bind made (ino, dev).
	unlinkLater bool
	ino, dev    uint64
}

// unixPair is a socketpair: socks[i] is ends[i]'s; ends[0] is the end
// with the lower inode. A peer-gone socket is ends[0], its gone peer
// socks[1] with no end.
type unixPair struct {
	socks [2]*os.File
	ends  [2]*unixBuilt
	gone  bool
}

func unixThawOf(r *Restorer) *unixThaw {
	st, _ := r.state[FileUnix].(*unixThaw)
	if st == nil {
		st = &unixThaw{pairs: map[uint32]*unixPair{}, built: map[uint32]*unixBuilt{}}
		r.state[FileUnix] = st
	}
	return st
}

func openUnix(r *Restorer, f *image.File) (*os.File, error) {
	var p unixPayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	st := unixThawOf(r)
	b := &unixBuilt{f: f, p: &p, n: r.firstFD(f.ID)}
	switch p.Build {
	case buildPair:
		key, i := min(p.Ino, p.Peer), 0
		if p.Ino > p.Peer {
			i = 1
		}
		pr := st.pairs[key]
		if pr == nil {
			var err error
			if pr, err = newUnixPair(r, b); err != nil {
				return nil, err
			}
			st.pairs[key] = pr
		}
		if pr.ends[i] != nil {
			return nil, fmt.Errorf("fd %d: socket:[%d] is twice in the image", b.n, p.Ino)
		}
		pr.ends[i], b.sock = b, pr.socks[i]
	case buildPeerGone:
		pr, err := newUnixPair(r, b)
		if err != nil {
			return nil, err
		}
		pr.gone = true
		pr.ends[0], b.sock = b, pr.socks[0]
	case buildAlone, buildConnect:
		fd, err := unix.Socket(unix.AF_UNIX, p.Type|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("fd %d: socket(AF_UNIX, %s): %w", b.n, typeName(p.Type), err)
		}
		b.sock = os.NewFile(uintptr(fd), f.Path)
		r.after(func() error { return b.finish(r) })
	default:
		return nil, fmt.Errorf("fd %d: a unix socket built as %q, which this cryo does not know", b.n, p.Build)
	}
	if p.Bind {
		if err := b.bind(); err != nil {
			b.sock.Close()
			return nil, err
		}
	}
	if p.Listen {
		if err := unix.Listen(int(b.sock.Fd()), p.Backlog); err != nil {
			b.sock.Close()
			return nil, fmt.Errorf("fd %d: listen(%d) on %s: %w", b.n, p.Backlog, nameString(p.Name), err)
		}
	}
	if f.Blob != 0 {
		r.sink(f.Blob, func(off uint64, data []byte) error {
			b.data = append(b.data, data...)
			return nil
		})
	}
	st.built[p.Ino] = b
	return b.sock, nil
}

// newUnixPair makes the socketpair of b (and of its peer), and has it
// finished once every blob is in.
func newUnixPair(r *Restorer, b *unixBuilt) (*unixPair, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, b.p.Type|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("fd %d: socketpair(AF_UNIX, %s): %w", b.n, typeName(b.p.Type), err)
	}
	pr := &unixPair{}
	for i, fd := range fds {
		pr.socks[i] = os.NewFile(uintptr(fd), b.f.Path)
		// Held until the end (an end no File claims is closed by
		// finish; the others are moved into the process).
		r.keep(pr.socks[i])
	}
	r.after(func() error { return pr.finish(r) })
	return pr, nil
}

// finish fills each end's queue through the other end, closes the ends
// the process does not have (a gone peer), then gives each end its
// shutdown state, options and flags.
func (pr *unixPair) finish(r *Restorer) error {
	for i, e := range pr.ends {
		if e == nil || len(e.data) == 0 {
			continue
		}
		if err := sendQueued(pr.socks[1-i], e, nil); err != nil {
			return err
		}
	}
	if e := pr.ends[0]; pr.gone && e.p.Reset {
		// A byte left unread in the gone peer: its close gives the
		// socket ECONNRESET (unix_release_sock).
		if _, err := unix.Write(int(pr.socks[0].Fd()), []byte{0}); err != nil {
			return fmt.Errorf("fd %d: leave a byte in its gone peer: %w", e.n, err)
		}
	}
	for i, e := range pr.ends {
		if e == nil {
			if err := pr.socks[i].Close(); err != nil {
				return fmt.Errorf("close the gone peer of a unix socket: %w", err)
			}
		}
	}
	for _, e := range pr.ends {
		if e != nil {
			if err := e.settle(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish refills a socket of its own (not of a pair): its datagrams sent
// to its name again, then its connection made.
func (b *unixBuilt) finish(r *Restorer) error {
	if len(b.data) > 0 {
		if !b.p.Bind {
			return fmt.Errorf("fd %d: %d bytes are queued on an unnamed unix socket with no peer: they cannot be put back", b.n, len(b.data))
		}
		err := inDir(b.p.Dir, func() error {
			fd, err := unix.Socket(unix.AF_UNIX, b.p.Type|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("fd %d: a socket to put its queue back: %w", b.n, err)
			}
			from := os.NewFile(uintptr(fd), "unix sender")
			defer from.Close()
			return sendQueued(from, b, sockaddrOf(b.p.Name))
		})
		if err != nil {
			return err
		}
	}
	if b.p.Build == buildConnect {
		if err := unix.Connect(int(b.sock.Fd()), sockaddrOf(b.p.PeerName)); err != nil {
			return fmt.Errorf("fd %d: connect the unix datagram socket to %s again: %w (thaw --fd %d=&N hands one in)",
				b.n, nameString(b.p.PeerName), err, b.n)
		}
	}
	if b.p.Listen {
		if err := b.connectPending(r); err != nil {
			return err
		}
	}
	return b.settle(r)
}

// connectPending connects again, in queue order, the process's own
// sockets whose connections waited in this listener.
func (b *unixBuilt) connectPending(r *Restorer) error {
	st := unixThawOf(r)
	for _, ino := range b.p.Pending {
		c := st.built[ino]
		if c == nil {
			continue // handed in with --fd
		}
		fd := int(c.sock.Fd())
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			return err
		}
		// Never wait: a full backlog is an error, not a hang.
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl|unix.O_NONBLOCK); err != nil {
			return err
		}
		err = inDir(b.p.Dir, func() error { return unix.Connect(fd, sockaddrOf(b.p.Name)) })
		if _, e := unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl); e != nil && err == nil {
			err = e
		}
		if err != nil {
			return fmt.Errorf("fd %d: connect it to its listener %s (fd %d) again: %w", c.n, nameString(b.p.Name), b.n, err)
		}
	}
	return nil
}

// settle gives the socket, its queue refilled, its shutdown state, its
// options and its status flags. (After the queue: SO_PASSCRED on a
// sender binds it to an automatic name, and a shut down socket takes no
// bytes.)
func (b *unixBuilt) settle(r *Restorer) error {
	fd := int(b.sock.Fd())
	if b.unlinkLater {
		err := inDir(b.p.Dir, func() error {
			var st unix.Stat_t
			if unix.Lstat(string(b.p.Name), &st) != nil || st.Ino != b.ino || st.Dev != b.dev {
				return nil // not the file bind made: left alone
			}
			return unix.Unlink(string(b.p.Name))
		})
		if err != nil {
			return fmt.Errorf("fd %d: remove %s again (its file had been removed): %w", b.n, b.where(), err)
		}
	}
	if sh := b.p.Shutdown & (rcvShutdown | sendShutdown); sh != 0 && !b.p.Listen {
		// SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2 for the bits 1, 2, 3.
		if err := unix.Shutdown(fd, int(sh)-1); err != nil && !errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("fd %d: shutdown(%d): %w", b.n, sh-1, err)
		}
	}
	if err := setSockOpts(fd, &b.p.Opts); err != nil {
		return fmt.Errorf("fd %d: %w", b.n, err)
	}
	if err := setStatusFlags(b.sock, b.f.Flags); err != nil {
		return fmt.Errorf("fd %d: %w", b.n, err)
	}
	return nil
}

// sendQueued writes b's queued bytes into the socket from, whose sends
// b receives (its peer, or a socket sending to its name to). It never
// waits: a full buffer is grown once (as far as the thawing user may),
// then an error.
func sendQueued(from *os.File, b *unixBuilt, to unix.Sockaddr) error {
	fd := int(from.Fd())
	const flags = unix.MSG_DONTWAIT | unix.MSG_NOSIGNAL
	grown := false
	grow := func(err error, sent int) error {
		if !errors.Is(err, unix.EAGAIN) || grown {
			hint := ""
			if errors.Is(err, unix.EAGAIN) && b.p.Type == unix.SOCK_DGRAM && to != nil {
				hint = " (see net.unix.max_dgram_qlen)"
			}
			return fmt.Errorf("fd %d: put back the bytes queued on %s: %d of %d sent: %w%s", b.n, b.f.Path, sent, len(b.data), err, hint)
		}
		grown = true
		need := 2*len(b.data) + 64<<10
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, need) != nil {
			// Not CAP_NET_ADMIN: as far as net.core.wmem_max.
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, need)
		}
		return nil
	}
	if b.p.Msgs == nil {
		for sent := 0; sent < len(b.data); {
			n, err := unix.SendmsgN(fd, b.data[sent:], nil, to, flags)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				if err := grow(err, sent); err != nil {
					return err
				}
				continue
			}
			sent += n
		}
		return nil
	}
	off := 0
	for i := 0; i < len(b.p.Msgs); {
		m := b.p.Msgs[i]
		if m < 0 || off+m > len(b.data) {
			return fmt.Errorf("fd %d: the image has %d bytes for messages of %d", b.n, len(b.data), off+m)
		}
		_, err := unix.SendmsgN(fd, b.data[off:off+m], nil, to, flags)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if err := grow(err, off); err != nil {
				return err
			}
			continue
		}
		off += m
		i++
	}
	if off != len(b.data) {
		return fmt.Errorf("fd %d: the image has %d bytes for messages of %d", b.n, len(b.data), off)
	}
	return nil
}

// bind binds the socket to its name again (unix.go: names).
func (b *unixBuilt) bind() error {
	p := b.p
	sa := sockaddrOf(p.Name)
	fd := int(b.sock.Fd())
	if p.Name[0] == 0 {
		if err := unix.Bind(fd, sa); err != nil {
			hint := ""
			if errors.Is(err, unix.EADDRINUSE) {
				hint = " (is the original still running?)"
			}
			return fmt.Errorf("fd %d: bind to the abstract name %s: %w%s", b.n, nameString(p.Name), err, hint)
		}
		return nil
	}
	path := string(p.Name)
	return inDir(p.Dir, func() error {
		err := unix.Bind(fd, sa)
		if errors.Is(err, unix.EADDRINUSE) {
			if p.Unlinked {
				return fmt.Errorf("fd %d: bind to %s: another file is there now, and the socket's own had been removed", b.n, b.where())
			}
			if err := removeStale(path, p.Type); err != nil {
				return fmt.Errorf("fd %d: bind to %s: %w", b.n, b.where(), err)
			}
			err = unix.Bind(fd, sa)
		}
		if err != nil {
			return fmt.Errorf("fd %d: bind to %s: %w", b.n, b.where(), err)
		}
		if p.Unlinked {
			var st unix.Stat_t
			if err := unix.Lstat(path, &st); err != nil {
				return fmt.Errorf("fd %d: stat %s: %w", b.n, b.where(), err)
			}
			b.unlinkLater, b.ino, b.dev = true, st.Ino, st.Dev
			return nil
		}
		if err := unix.Chmod(path, p.FileMode); err != nil {
			return fmt.Errorf("fd %d: chmod %o %s: %w", b.n, p.FileMode, b.where(), err)
		}
		if os.Geteuid() == 0 {
			if err := unix.Lchown(path, p.FileUID, p.FileGID); err != nil {
				return fmt.Errorf("fd %d: chown %d:%d %s: %w", b.n, p.FileUID, p.FileGID, b.where(), err)
			}
		}
		return nil
	})
}

// where names the socket's path for a message.
func (b *unixBuilt) where() string {
	if b.p.Dir != "" {
		return fmt.Sprintf("%s (in %s)", b.p.Name, b.p.Dir)
	}
	return string(b.p.Name)
}

// removeStale removes the socket file at path if no socket is bound to
// it any more (what a killed process leaves behind): connecting there
// is refused. Anything else is left alone, and said.
func removeStale(path string, typ int) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fmt.Errorf("it is in use: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s is there and is not a socket: left alone", modeName(st.Mode))
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	unix.Close(fd)
	if !errors.Is(err, unix.ECONNREFUSED) {
		return errors.New("a live socket is bound there (is the original still running?)")
	}
	if err := unix.Unlink(path); err != nil {
		return fmt.Errorf("remove the socket file the original left: %w", err)
	}
	return nil
}

// inDir runs fn with dir as its working directory, on an OS thread of
// its own (unshare(CLONE_FS)) that ends with it, so that the helper's
// other threads keep theirs. dir "": fn runs as it is.
func inDir(dir string, fn func() error) error {
	if dir == "" {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, whose working directory is no
		// longer the process's, exits with this goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			done <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			done <- fmt.Errorf("chdir %s: %w", dir, err)
			return
		}
		done <- fn()
	}()
	return <-done
}
