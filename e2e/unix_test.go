package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Unix sockets (files/unix.go): the unixsock victim holds one of every
// kind cryo carries, with bytes queued in them.

// unixConn connects a socket of typ to name (a path, or @abstract) and
// sends msg on it.
func unixConn(t *testing.T, typ int, name, msg string) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: name}); err != nil {
		t.Fatalf("connect to %s: %v", name, err)
	}
	if _, err := unix.Write(fd, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	return fd
}

// readAnswer reads what the victim answered on fd.
func readAnswer(t *testing.T, fd int) string {
	t.Helper()
	tv := unix.Timeval{Sec: int64(lineTimeout.Seconds())}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatalf("read the victim's answer: %v", err)
	}
	return string(buf[:n])
}

// unixsockServe proves the victim's listeners and bound socket work: a
// connection accepted on each listener, a datagram received.
func unixsockServe(t *testing.T, o interface {
	ask(cmd, prefix string) string
}, dir, name string) {
	t.Helper()
	c9 := unixConn(t, unix.SOCK_STREAM, filepath.Join(dir, "listen.sock"), "one\n")
	c10 := unixConn(t, unix.SOCK_SEQPACKET, "@"+name, "two")
	if got := o.ask("accept", "accepted "); got != "accepted one two" {
		t.Errorf("accept: %q, want \"accepted one two\"", got)
	}
	if got := readAnswer(t, c9); got != "echo one\n" {
		t.Errorf("the stream listener's connection answered %q", got)
	}
	if got := readAnswer(t, c10); got != "echo two\n" {
		t.Errorf("the seqpacket listener's connection answered %q", got)
	}
	s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	if err := unix.Sendto(s, []byte("a datagram"), 0, &unix.SockaddrUnix{Name: filepath.Join(dir, "dgram.sock")}); err != nil {
		t.Fatal(err)
	}
	if got := o.ask("recvdg", "recvdg "); got != "recvdg a datagram" {
		t.Errorf("recvdg: %q, want \"recvdg a datagram\"", got)
	}
}

// TestUnixSockets: socketpairs of the three types with bytes queued
// both ways, listeners at a path and an abstract name, a bound datagram
// socket: freeze --leave-running takes nothing from the original, and
// the thawed copy finds every byte, boundary, name, option and flag, and
// its listeners accept.
func TestUnixSockets(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	name := fmt.Sprintf("cryo-e2e-unixsock-%d", os.Getpid())
	p := startProc(t, "unixsock", buildVictim(t, "unixsock"), []string{dir, name})
	p.expect("ready")
	p.ask("check", "check ok")
	waitInSyscall(t, p, sysRead)

	left := filepath.Join(t.TempDir(), "left.bin")
	r := freeze(t, "--leave-running", "-o", left, strconv.Itoa(p.pid()))
	if r.stderr != "" {
		t.Errorf("freeze said %q: no socket's peer is outside the process", r.stderr)
	}
	if got := p.ask("check", "check "); got != "check ok" {
		t.Fatalf("the original after freeze --leave-running: %q", got)
	}
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(t.TempDir(), "unixsock.bin")
	freezeKill(t, p, img)

	for i, viaThaw := range []bool{true, false} {
		th := thaw(t, img, viaThaw)
		if got := th.ask("check", "check "); got != "check ok" {
			t.Errorf("thaw %d: %q", i+1, got)
		}
		unixsockServe(t, th, dir, name)
		th.ask("check", "check ok")
		// The copy is killed like its original: the next thaw finds
		// the path names stale and the abstract name free.
		th.kill()
	}
	// The image frozen with --leave-running thaws too.
	th := thaw(t, left, true)
	th.ask("check", "check ok")
	th.send("exit 3")
	if st := th.waitExit(); st.ExitCode() != 3 {
		t.Errorf("thawed unixsock: %v, want exit status 3", st)
	}
}

// TestUnixExternalPeer: a process connected to a server outside it (the
// test) thaws with the connection's peer gone, as freeze says: its
// reader gets the bytes the server had sent, then end of file; writing
// fails with EPIPE. Handed in with --fd 14=&3, the socket is the one the
// thaw's caller gave.
func TestUnixExternalPeer(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	name := fmt.Sprintf("cryo-e2e-unixext-%d", os.Getpid())
	srvPath := filepath.Join(dir, "srv.sock")
	srv, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(srv)
	if err := unix.Bind(srv, &unix.SockaddrUnix{Name: srvPath}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(srv, 1); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "unixsock", buildVictim(t, "unixsock"), []string{dir, name, srvPath})
	c, _, err := unix.Accept4(srv, unix.SOCK_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(c)
	if _, err := unix.Write(c, []byte("from server")); err != nil {
		t.Fatal(err)
	}
	p.expect("ready")
	waitInSyscall(t, p, sysRead)

	img := filepath.Join(t.TempDir(), "ext.bin")
	r := freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()
	want := "freeze: fd 14: unix stream socket, connected to " + srvPath + " outside the process: " +
		"thaw gives it a socket whose peer is gone (its reader gets the 11 bytes queued, then end of file; " +
		"writing fails with EPIPE); thaw --fd 14=&N hands one in\n"
	if r.stderr != want {
		t.Errorf("freeze said:\n%q\nwant:\n%q", r.stderr, want)
	}

	th := thaw(t, img, true)
	if got := th.ask("ext", "ext "); got != "ext from server eof=1 write=EPIPE" {
		t.Errorf("the socket whose peer is gone: %q, want \"ext from server eof=1 write=EPIPE\"", got)
	}
	th.ask("check", "check ok")
	th.kill()

	// Handed in: one end of a socketpair of ours is the thaw's fd 3.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "ours"), os.NewFile(uintptr(fds[1]), "handed in")
	defer mine.Close()
	th = startProc(t, "thaw --fd 14=&3", thawBin, []string{"--fd", "14=&3", img}, withFiles([]*os.File{theirs}))
	theirs.Close()
	th.ask("ping", "pong 1")
	if _, err := mine.Write([]byte("handed in")); err != nil {
		t.Fatal(err)
	}
	got := th.ask("ext", "ext ")
	if got != "ext handed in eof=0 write=ok" {
		t.Errorf("the handed-in socket: %q, want \"ext handed in eof=0 write=ok\"", got)
	}
	b := make([]byte, 8)
	if n, err := mine.Read(b); err != nil || string(b[:n]) != "x" {
		t.Errorf("the thawed process wrote %q (%v) to the handed-in socket, want \"x\"", b[:n], err)
	}
	mine.Close()
	if got := th.ask("ext", "ext "); !strings.HasSuffix(got, "eof=1 write=EPIPE") {
		t.Errorf("the handed-in socket, closed: %q, want end of file and EPIPE", got)
	}
}
