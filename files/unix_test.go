package files

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// socketCommand runs one socket command of the fd victim (fdVictimMain):
//
//	socketpair N M TYPE   a socketpair (stream, dgram, seqpacket) on fds N, M
//	socket N TYPE         a socket on fd N
//	bind N NAME           bind fd N to a path or an @abstract name
//	listen N              listen(N, 5)
//	connect N NAME        connect fd N
//	send N TEXT           send TEXT ("-": an empty message) on fd N
//	sendfd N M            send fd M over fd N (SCM_RIGHTS)
//	shutdown N rd|wr|rdwr
//	nonblock N            O_NONBLOCK on fd N
//	opt N NAME V          setsockopt(SOL_SOCKET) NAME: rcvbuf, sndbuf, passcred, peekoff
//	cd DIR                chdir
func socketCommand(f []string) error {
	num := func(i int) (int, error) {
		if i >= len(f) {
			return 0, errors.New("cannot parse")
		}
		return strconv.Atoi(f[i])
	}
	types := map[string]int{"stream": unix.SOCK_STREAM, "dgram": unix.SOCK_DGRAM, "seqpacket": unix.SOCK_SEQPACKET}
	place := func(fd, at int) error {
		if fd == at {
			return nil
		}
		if err := unix.Dup3(fd, at, 0); err != nil {
			return err
		}
		return unix.Close(fd)
	}
	addr := func(name string) *unix.SockaddrUnix { return &unix.SockaddrUnix{Name: name} }
	n, err := num(1)
	if err != nil && f[0] != "cd" {
		return err
	}
	switch f[0] {
	case "cd":
		return unix.Chdir(f[1])
	case "socketpair":
		m, err := num(2)
		if err != nil || len(f) < 4 {
			return errors.New("cannot parse")
		}
		fds, err := unix.Socketpair(unix.AF_UNIX, types[f[3]], 0)
		if err != nil {
			return err
		}
		// Both high first, so that neither lands on the other's number.
		a, err := unix.FcntlInt(uintptr(fds[0]), unix.F_DUPFD, 100)
		if err != nil {
			return err
		}
		b, err := unix.FcntlInt(uintptr(fds[1]), unix.F_DUPFD, 100)
		if err != nil {
			return err
		}
		unix.Close(fds[0])
		unix.Close(fds[1])
		if err := place(a, n); err != nil {
			return err
		}
		return place(b, m)
	case "socket":
		if len(f) < 3 {
			return errors.New("cannot parse")
		}
		fd, err := unix.Socket(unix.AF_UNIX, types[f[2]], 0)
		if err != nil {
			return err
		}
		return place(fd, n)
	case "bind":
		return unix.Bind(n, addr(f[2]))
	case "listen":
		return unix.Listen(n, 5)
	case "connect":
		return unix.Connect(n, addr(f[2]))
	case "send":
		text := f[2]
		if text == "-" {
			text = ""
		}
		_, err := unix.SendmsgN(n, []byte(text), nil, nil, unix.MSG_NOSIGNAL)
		return err
	case "sendfd":
		m, err := num(2)
		if err != nil {
			return err
		}
		return unix.Sendmsg(n, []byte("fd"), unix.UnixRights(m), nil, 0)
	case "shutdown":
		how := map[string]int{"rd": unix.SHUT_RD, "wr": unix.SHUT_WR, "rdwr": unix.SHUT_RDWR}[f[2]]
		return unix.Shutdown(n, how)
	case "nonblock":
		return unix.SetNonblock(n, true)
	case "opt":
		v, err := num(3)
		if err != nil {
			return err
		}
		opt := map[string]int{"rcvbuf": unix.SO_RCVBUF, "sndbuf": unix.SO_SNDBUF, "passcred": unix.SO_PASSCRED, "peekoff": unix.SO_PEEK_OFF}[f[2]]
		return unix.SetsockoptInt(n, unix.SOL_SOCKET, opt, v)
	}
	return errors.New("unknown command")
}

// thawInProcess builds the files of d's table in this process, as the
// restore helper would before moving them into the stub, and returns
// them by their lowest fd. d is closed first (the original's copies let
// go), and the victim killed: a thaw comes after the original is gone.
func thawInProcess(t *testing.T, d *Dumper, victim *exec.Cmd) map[int]*os.File {
	t.Helper()
	tab := d.Table()
	blobs := map[uint64][]byte{}
	for _, b := range d.blobs {
		blobs[b.id] = b.data
	}
	killWait(victim)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	r := &Restorer{P: &image.Process{Files: tab.Files, FDs: tab.FDs}}
	r.local, r.stub, r.state = map[int]*os.File{}, map[int]*os.File{}, map[image.FileKind]any{}
	r.sinks, r.fds, r.pidfd = map[uint64]func(uint64, []byte) error{}, map[int][]image.FD{}, -1
	t.Cleanup(r.close)
	for _, fd := range r.P.FDs {
		r.fds[fd.File] = append(r.fds[fd.File], fd)
	}
	if err := r.build(); err != nil {
		t.Fatalf("build: %v", err)
	}
	for id, data := range blobs {
		sink := r.sinks[id]
		if sink == nil {
			t.Fatalf("blob %d has no sink", id)
		}
		// In two pieces, as blobs may come.
		if err := sink(0, data[:len(data)/2]); err != nil {
			t.Fatal(err)
		}
		if err := sink(uint64(len(data)/2), data[len(data)/2:]); err != nil {
			t.Fatal(err)
		}
	}
	for _, fn := range r.afters {
		if err := fn(); err != nil {
			t.Fatalf("after: %v", err)
		}
	}
	got := map[int]*os.File{}
	for id, f := range r.local {
		got[r.firstFD(id)] = f
	}
	return got
}

// killWait kills the victim and reaps it: its files are released (the
// last of them in do_exit's task work, before it is a zombie, not when
// /proc stops showing its fds).
func killWait(victim *exec.Cmd) {
	victim.Process.Kill()
	victim.Wait()
}

// payloadOf returns the unix payload of fd n's file.
func payloadOf(t *testing.T, tab *Table, n int) unixPayload {
	t.Helper()
	for _, fd := range tab.FDs {
		if fd.Num != n {
			continue
		}
		f := tab.Files[fd.File-1]
		if f.Kind != FileUnix {
			t.Fatalf("fd %d is of kind %q", n, f.Kind)
		}
		var p unixPayload
		if err := getPayload(&f, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Fatalf("no fd %d", n)
	return unixPayload{}
}

// recvAll takes every message queued on fd, without waiting.
func recvAll(t *testing.T, fd int) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 1<<16)
	for {
		n, _, _, _, err := unix.Recvmsg(fd, buf, nil, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return got
		}
		if err != nil {
			return append(got, "error "+err.Error())
		}
		got = append(got, string(buf[:n]))
		if n == 0 && len(got) > 10 {
			return got // end of file, seen long enough
		}
	}
}

// The freeze side of unix sockets on a real process: what each is, how
// it will be built, its queue copied with boundaries, and the original
// left as it was (every byte there, SO_PEEK_OFF back).
func TestCollectUnix(t *testing.T) {
	dir := t.TempDir()
	abstract := fmt.Sprintf("@cryo-files-test-%d", os.Getpid())
	script := `socketpair 3 4 stream; send 3 abc; send 3 def; send 4 xy; shutdown 3 wr;
		socketpair 5 6 seqpacket; send 5 m1; send 5 -; send 5 m333;
		socketpair 7 8 dgram; send 8 d1; send 8 dd2; opt 7 peekoff 1;
		socket 9 stream; bind 9 $1/l.sock; listen 9;
		socket 10 seqpacket; bind 10 ` + abstract + `; listen 10;
		socket 11 dgram; bind 11 $1/d.sock; nonblock 11; opt 11 passcred 1;
		socket 12 seqpacket; connect 12 ` + abstract + `;
		socket 13 stream`
	cmd := fdVictim(t, script, dir)
	pid := cmd.Process.Pid
	// A datagram from a named sender of ours.
	from := testSocket(t, unix.AF_UNIX, unix.SOCK_DGRAM)
	if err := unix.Bind(int(from.Fd()), &unix.SockaddrUnix{Name: filepath.Join(dir, "sender.sock")}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(int(from.Fd()), []byte("from outside"), 0, &unix.SockaddrUnix{Name: filepath.Join(dir, "d.sock")}); err != nil {
		t.Fatal(err)
	}

	d, err := Collect(pid, DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tab := d.Table()
	for _, tc := range []struct {
		fd       int
		build    string
		typ      int
		msgs     []int
		queued   int
		shutdown uint8
		listen   bool
		name     string
		pending  int // fd of the pending client, 0: none
	}{
		{fd: 3, build: buildPair, typ: unix.SOCK_STREAM, queued: 2, shutdown: sendShutdown},
		{fd: 4, build: buildPair, typ: unix.SOCK_STREAM, queued: 6, shutdown: rcvShutdown},
		{fd: 5, build: buildPair, typ: unix.SOCK_SEQPACKET},
		{fd: 6, build: buildPair, typ: unix.SOCK_SEQPACKET, msgs: []int{2, 0, 4}, queued: 6},
		{fd: 7, build: buildPair, typ: unix.SOCK_DGRAM, msgs: []int{2, 3}, queued: 5},
		{fd: 9, build: buildAlone, typ: unix.SOCK_STREAM, listen: true, name: filepath.Join(dir, "l.sock")},
		{fd: 10, build: buildAlone, typ: unix.SOCK_SEQPACKET, listen: true, name: "\x00" + abstract[1:], pending: 12},
		{fd: 11, build: buildAlone, typ: unix.SOCK_DGRAM, msgs: []int{12}, queued: 12, name: filepath.Join(dir, "d.sock")},
		{fd: 12, build: buildAlone, typ: unix.SOCK_SEQPACKET},
		{fd: 13, build: buildAlone, typ: unix.SOCK_STREAM},
	} {
		p := payloadOf(t, tab, tc.fd)
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", pid, tc.fd), &st); err != nil {
			t.Fatal(err)
		}
		if p.Build != tc.build || p.Type != tc.typ || p.Queued != tc.queued || !slices.Equal(p.Msgs, tc.msgs) ||
			p.Shutdown != tc.shutdown || p.Listen != tc.listen || string(p.Name) != tc.name || p.Ino != uint32(st.Ino) {
			t.Errorf("fd %d: %+v\nwant build %q type %d queued %d msgs %v shutdown %d listen %v name %q ino %d",
				tc.fd, p, tc.build, tc.typ, tc.queued, tc.msgs, tc.shutdown, tc.listen, tc.name, st.Ino)
		}
		if tc.pending != 0 {
			c := payloadOf(t, tab, tc.pending)
			if !slices.Equal(p.Pending, []uint32{c.Ino}) || !c.Connected || c.Peer != 0 {
				t.Errorf("fd %d: pending %v, want fd %d's socket %d (%+v)", tc.fd, p.Pending, tc.pending, c.Ino, c)
			}
		}
	}
	if p := payloadOf(t, tab, 11); !p.Opts.PassCred || p.FileMode != 0o777&^uint32(umask()) || p.Dir != "" || p.Unlinked {
		t.Errorf("fd 11: %+v, want passcred, the file's mode %o", p, 0o777&^umask())
	}
	if p := payloadOf(t, tab, 7); p.Opts.PeekOff != 1 {
		t.Errorf("fd 7: peek offset %d, want the victim's 1", p.Opts.PeekOff)
	}
	if !strings.Contains(strings.Join(tab.Notes, "\n"), "fd 11: unix datagram socket: 1 datagram(s) queued on it came from "+filepath.Join(dir, "sender.sock")) {
		t.Errorf("notes %q: want one on fd 11's named sender", tab.Notes)
	}

	// The original is untouched: everything still queued, SO_PEEK_OFF
	// as it was.
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	take := func(n int) int {
		fd, err := unix.PidfdGetfd(pidfd, n, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	}
	s7 := take(7)
	if off, _ := unix.GetsockoptInt(s7, unix.SOL_SOCKET, unix.SO_PEEK_OFF); off != 1 {
		t.Errorf("fd 7's SO_PEEK_OFF is %d after the freeze, want 1", off)
	}
	for n, want := range map[int][]string{
		4: {"abcdef"}, 3: {"xy"}, 6: {"m1", "", "m333"}, 11: {"from outside"},
	} {
		if got := recvAll(t, take(n)); !slices.Equal(got[:min(len(got), len(want))], want) {
			t.Errorf("fd %d of the original holds %q, want %q", n, got, want)
		}
	}
}

func umask() uint32 {
	m := unix.Umask(0)
	unix.Umask(m)
	return uint32(m)
}

// Collect, then build in this process: each socket comes back with its
// queue, its boundaries, its name, its peer, and the note says what
// happens to a socket whose peer is outside.
func TestUnixRoundTrip(t *testing.T) {
	dir := t.TempDir()
	abstract := fmt.Sprintf("@cryo-files-rt-%d", os.Getpid())
	// A server of ours, and a datagram socket of ours.
	srv := testSocket(t, unix.AF_UNIX, unix.SOCK_STREAM)
	srvPath := filepath.Join(dir, "srv.sock")
	if err := unix.Bind(int(srv.Fd()), &unix.SockaddrUnix{Name: srvPath}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(int(srv.Fd()), 5); err != nil {
		t.Fatal(err)
	}
	logger := testSocket(t, unix.AF_UNIX, unix.SOCK_DGRAM)
	logPath := filepath.Join(dir, "log.sock")
	if err := unix.Bind(int(logger.Fd()), &unix.SockaddrUnix{Name: logPath}); err != nil {
		t.Fatal(err)
	}
	script := `cd $1; socketpair 3 4 stream; send 3 abc; send 4 xy;
		socketpair 5 6 seqpacket; send 5 m1; send 5 -; send 5 m333; send 6 back;
		socketpair 7 8 dgram; bind 7 @` + abstract[1:] + `.7; send 8 d1; send 8 dd2; nonblock 8;
		socket 9 stream; bind 9 rel.sock; listen 9;
		socket 10 seqpacket; bind 10 ` + abstract + `; listen 10;
		socket 11 seqpacket; connect 11 ` + abstract + `;
		socket 12 dgram; bind 12 $1/d.sock; opt 12 rcvbuf 100000;
		socket 13 stream; connect 13 $1/srv.sock;
		socket 14 dgram; connect 14 $1/log.sock`
	cmd := fdVictim(t, script, dir)
	nfd, _, err := unix.Accept(int(srv.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nfd)
	if _, err := unix.Write(nfd, []byte("hello from the server")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(int(logger.Fd()), []byte("to d.sock"), 0, &unix.SockaddrUnix{Name: filepath.Join(dir, "d.sock")}); err != nil {
		t.Fatal(err)
	}

	d, err := Collect(cmd.Process.Pid, DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	notes := strings.Join(d.Table().Notes, "\n")
	t.Logf("notes:\n%s", notes)
	for _, f := range d.Table().Files {
		t.Logf("file %d %s %s: %s", f.ID, f.Kind, f.Path, f.Payload)
	}
	for _, want := range []string{
		"fd 13: unix stream socket, connected to " + srvPath + " outside the process: thaw gives it a socket whose peer is gone (its reader gets the 21 bytes queued, then end of file; writing fails with EPIPE); thaw --fd 13=&N hands one in",
		"fd 14: unix datagram socket connected to " + logPath + ", outside the process: thaw connects it to " + logPath + " again",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes:\n%s\nwant:\n%s", notes, want)
		}
	}
	got := thawInProcess(t, d, cmd)
	fd := func(n int) int {
		t.Helper()
		f := got[n]
		if f == nil {
			t.Fatalf("fd %d was not built", n)
		}
		return int(f.Fd())
	}
	expect := func(n int, want ...string) {
		t.Helper()
		if got := recvAll(t, fd(n)); !slices.Equal(got, want) {
			t.Errorf("fd %d reads %q, want %q", n, got, want)
		}
	}
	expect(4, "abc")
	expect(3, "xy")
	expect(6, "m1", "", "m333")
	expect(5, "back")
	expect(7, "d1", "dd2")
	expect(12, "to d.sock")
	// Each pair is connected end to end.
	for _, pr := range [][2]int{{3, 4}, {5, 6}, {7, 8}} {
		if _, err := unix.Write(fd(pr[0]), []byte("ping")); err != nil {
			t.Fatal(err)
		}
		expect(pr[1], "ping")
	}
	// Names.
	name := func(n int) string {
		sa, err := unix.Getsockname(fd(n))
		if err != nil {
			t.Fatal(err)
		}
		return sa.(*unix.SockaddrUnix).Name
	}
	for n, want := range map[int]string{9: "rel.sock", 10: abstract, 7: abstract + ".7", 12: filepath.Join(dir, "d.sock")} {
		if got := name(n); got != want {
			t.Errorf("fd %d is named %q, want %q", n, got, want)
		}
	}
	// The pending connection waits in the listener again: accepted, it
	// is fd 11's.
	c, _, err := unix.Accept(fd(10))
	if err != nil {
		t.Fatalf("accept on fd 10: %v", err)
	}
	defer unix.Close(c)
	if _, err := unix.Write(fd(11), []byte("to the listener")); err != nil {
		t.Fatal(err)
	}
	if got := recvAll(t, c); !slices.Equal(got, []string{"to the listener"}) {
		t.Errorf("the accepted connection reads %q", got)
	}
	// The relative listener is at rel.sock in the directory, with the
	// mode it had.
	if err := unix.Connect(int(testSocket(t, unix.AF_UNIX, unix.SOCK_STREAM).Fd()), &unix.SockaddrUnix{Name: filepath.Join(dir, "rel.sock")}); err != nil {
		t.Errorf("connect to %s/rel.sock: %v", dir, err)
	}
	// Peer gone: the bytes, then end of file; writing: EPIPE.
	if got := recvAll(t, fd(13)); len(got) < 2 || got[0] != "hello from the server" || got[1] != "" {
		t.Errorf("fd 13 reads %q, want the server's bytes then end of file", got)
	}
	if _, err := unix.SendmsgN(fd(13), []byte("x"), nil, nil, unix.MSG_NOSIGNAL); !errors.Is(err, unix.EPIPE) {
		t.Errorf("writing to fd 13: %v, want EPIPE", err)
	}
	// Connected to /dev/log again, so to speak.
	if _, err := unix.Write(fd(14), []byte("a log line")); err != nil {
		t.Fatal(err)
	}
	if got := recvAll(t, int(logger.Fd())); !slices.Equal(got, []string{"a log line"}) {
		t.Errorf("the log socket reads %q", got)
	}
	// Flags and options.
	if fl, _ := unix.FcntlInt(uintptr(fd(8)), unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
		t.Errorf("fd 8 lost O_NONBLOCK: %#o", fl)
	}
	if v, _ := unix.GetsockoptInt(fd(12), unix.SOL_SOCKET, unix.SO_RCVBUF); v != 200000 {
		t.Errorf("fd 12's SO_RCVBUF is %d, want 200000", v)
	}
}

// A stale socket file at a listener's path is removed; another file or
// a live socket is never touched.
func TestUnixStalePath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string) // after the original is gone
		err   string
	}{
		{name: "stale socket file"},
		{name: "regular file", err: "a regular file is there and is not a socket: left alone",
			setup: func(t *testing.T, path string) {
				os.Remove(path)
				if err := os.WriteFile(path, []byte("mine"), 0o600); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "live socket", err: "a live socket is bound there",
			setup: func(t *testing.T, path string) {
				os.Remove(path)
				s := testSocket(t, unix.AF_UNIX, unix.SOCK_STREAM)
				if err := unix.Bind(int(s.Fd()), &unix.SockaddrUnix{Name: path}); err != nil {
					t.Fatal(err)
				}
				if err := unix.Listen(int(s.Fd()), 1); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "l.sock")
			cmd := fdVictim(t, `socket 3 stream; bind 3 $1; listen 3`, path)
			d, err := Collect(cmd.Process.Pid, DumpOptions{})
			if err != nil {
				t.Fatal(err)
			}
			killWait(cmd)
			if tc.setup != nil {
				tc.setup(t, path)
			}
			before, _ := os.ReadFile(path)
			r := &Restorer{P: &image.Process{Files: d.Table().Files, FDs: d.Table().FDs}}
			r.local, r.stub, r.state = map[int]*os.File{}, map[int]*os.File{}, map[image.FileKind]any{}
			r.sinks, r.fds, r.pidfd = map[uint64]func(uint64, []byte) error{}, map[int][]image.FD{}, -1
			defer r.close()
			d.Close()
			for _, fd := range r.P.FDs {
				r.fds[fd.File] = append(r.fds[fd.File], fd)
			}
			err = r.build()
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				c := testSocket(t, unix.AF_UNIX, unix.SOCK_STREAM)
				if err := unix.Connect(int(c.Fd()), &unix.SockaddrUnix{Name: path}); err != nil {
					t.Errorf("connect to the listener built again: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %v, want it to say %q", err, tc.err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
				t.Errorf("%s changed", path)
			}
		})
	}
}

// What freeze refuses of a unix socket, in one line naming the fd.
func TestCollectUnixRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, script, err string
	}{
		{"fds in flight", `socketpair 3 4 stream; sendfd 3 0`,
			"fd 4 (unix stream socket socket:["},
		{"fds in flight, seqpacket", `socketpair 3 4 seqpacket; send 3 first; sendfd 3 0`,
			"file descriptors in flight (SCM_RIGHTS, 1 in a queued message) cannot be carried: unsupported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := fdVictim(t, tc.script, t.TempDir())
			d, err := Collect(cmd.Process.Pid, DumpOptions{})
			if err == nil {
				d.Close()
				t.Fatalf("no error; files %+v", d.Table().Files)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q, want it to say %q", err, tc.err)
			}
		})
	}
}

// peekUnix on sockets of this test: boundaries, a message larger than
// its first buffer, a pending ECONNRESET, end of file after a shutdown;
// the socket keeps every byte and its peek offset.
func TestPeekQueue(t *testing.T) {
	send := func(fd int, msgs ...string) {
		t.Helper()
		for _, m := range msgs {
			if _, err := unix.SendmsgN(fd, []byte(m), nil, nil, unix.MSG_NOSIGNAL); err != nil {
				t.Fatal(err)
			}
		}
	}
	big := strings.Repeat("x", 100000)
	for _, tc := range []struct {
		name  string
		typ   int
		setup func(a, b int) // a is peeked
		msgs  []int          // nil: a stream
		data  string
		reset bool
	}{
		{name: "seqpacket, peer shut down", typ: unix.SOCK_SEQPACKET,
			setup: func(a, b int) { send(b, "x", "", "yy"); unix.Shutdown(b, unix.SHUT_WR) },
			msgs:  []int{1, 0, 2}, data: "xyy"},
		{name: "seqpacket, peer closed with bytes unread", typ: unix.SOCK_SEQPACKET,
			setup: func(a, b int) { send(b, "abc"); send(a, "z"); unix.Close(b) },
			msgs:  []int{3}, data: "abc", reset: true},
		{name: "datagram larger than the buffer", typ: unix.SOCK_DGRAM,
			setup: func(a, b int) { send(b, "s", big, "") },
			msgs:  []int{1, len(big), 0}, data: "s" + big},
		{name: "stream, peer closed with bytes unread", typ: unix.SOCK_STREAM,
			setup: func(a, b int) { send(b, "ab", "cd"); send(a, "z"); unix.Close(b) },
			data:  "abcd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fds, err := unix.Socketpair(unix.AF_UNIX, tc.typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			a := fds[0]
			defer unix.Close(a)
			defer unix.Close(fds[1]) // closed twice at worst
			if err := unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 2); err != nil {
				t.Fatal(err)
			}
			tc.setup(a, fds[1])
			dg, err := unixDiagOf(inodeOf(t, a), udiagShowRQLen)
			if err != nil {
				t.Fatal(err)
			}
			q, err := peekUnix(a, tc.typ, dg, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if string(q.data) != tc.data || !slices.Equal(q.msgs, tc.msgs) || q.reset != tc.reset {
				t.Errorf("peeked %d bytes %q, messages %v, reset %v; want %d bytes, %v, %v",
					len(q.data), q.data[:min(len(q.data), 10)], q.msgs, q.reset, len(tc.data), tc.msgs, tc.reset)
			}
			if off, _ := unix.GetsockoptInt(a, unix.SOL_SOCKET, unix.SO_PEEK_OFF); off != 2 {
				t.Errorf("SO_PEEK_OFF is %d after, want 2", off)
			}
			// Every byte is still there.
			unix.SetsockoptInt(a, unix.SOL_SOCKET, unix.SO_PEEK_OFF, -1)
			var got []byte
			buf := make([]byte, 1<<17)
			for i := 0; i < 10; i++ {
				n, _, err := unix.Recvfrom(a, buf, unix.MSG_DONTWAIT)
				if err != nil { // EAGAIN; end of file reads 0, and on
					break
				}
				got = append(got, buf[:n]...)
			}
			if string(got) != tc.data {
				t.Errorf("the socket holds %d bytes after, want %d", len(got), len(tc.data))
			}
		})
	}
}

// A socket whose peer is gone, built from a payload: its reader gets
// ECONNRESET when the original would have, then the bytes, then end of
// file; a datagram socket's sends fail.
func TestUnixPeerGoneBuild(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     unixPayload
		data  string
		reads []string
	}{
		{"seqpacket, reset", unixPayload{Type: unix.SOCK_SEQPACKET, Msgs: []int{3, 0, 1}, Reset: true}, "abcd",
			[]string{"error " + unix.ECONNRESET.Error(), "abc", "", "d", "", ""}},
		{"stream", unixPayload{Type: unix.SOCK_STREAM}, "hello", []string{"hello", "", ""}},
		{"dgram", unixPayload{Type: unix.SOCK_DGRAM, Msgs: []int{2, 1}}, "abc", []string{"ab", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			p.Ino, p.Build, p.Connected, p.Queued = 7, buildPeerGone, true, len(tc.data)
			f := image.File{ID: 1, Kind: FileUnix, Path: "socket:[7]", Flags: unix.O_RDWR, Blob: 1}
			if err := setPayload(&f, &p); err != nil {
				t.Fatal(err)
			}
			r := &Restorer{P: &image.Process{Files: []image.File{f}, FDs: []image.FD{{Num: 5, File: 1}}}}
			r.local, r.stub, r.state = map[int]*os.File{}, map[int]*os.File{}, map[image.FileKind]any{}
			r.sinks, r.fds, r.pidfd = map[uint64]func(uint64, []byte) error{}, map[int][]image.FD{1: r.P.FDs}, -1
			defer r.close()
			if err := r.build(); err != nil {
				t.Fatal(err)
			}
			if err := r.sinks[1](0, []byte(tc.data)); err != nil {
				t.Fatal(err)
			}
			for _, fn := range r.afters {
				if err := fn(); err != nil {
					t.Fatal(err)
				}
			}
			fd := int(r.local[1].Fd())
			var got []string
			buf := make([]byte, 64)
			for range tc.reads {
				n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
				if err != nil {
					got = append(got, "error "+err.Error())
					continue
				}
				got = append(got, string(buf[:n]))
			}
			if !slices.Equal(got, tc.reads) {
				t.Errorf("reads %q, want %q", got, tc.reads)
			}
			want := unix.EPIPE
			if p.Type == unix.SOCK_DGRAM {
				want = unix.ECONNREFUSED
			}
			if _, err := unix.SendmsgN(fd, []byte("x"), nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT); !errors.Is(err, want) {
				t.Errorf("send: %v, want %v", err, want)
			}
		})
	}
}
