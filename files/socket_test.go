package files

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// testSocket makes a socket of family, typ (and protocol) for the test;
// a family this kernel or this user cannot have is a skip.
func testSocket(t *testing.T, family, typ int, proto ...int) *os.File {
	t.Helper()
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, append(proto, 0)[0])
	if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) ||
		errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT) {
		t.Skipf("socket(%d, %d): %v", family, typ, err)
	}
	if err != nil {
		t.Fatalf("socket(%d, %d): %v", family, typ, err)
	}
	f := os.NewFile(uintptr(fd), "test socket")
	t.Cleanup(func() { f.Close() })
	return f
}

func TestSockIDOf(t *testing.T) {
	for _, tc := range []struct {
		name             string
		family, typ, pro int
	}{
		{"unix stream", unix.AF_UNIX, unix.SOCK_STREAM, 0},
		{"unix dgram", unix.AF_UNIX, unix.SOCK_DGRAM, 0},
		{"unix seqpacket", unix.AF_UNIX, unix.SOCK_SEQPACKET, 0},
		{"netlink route", unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE},
		{"inet tcp", unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_TCP},
		{"inet6 udp", unix.AF_INET6, unix.SOCK_DGRAM, unix.IPPROTO_UDP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := testSocket(t, tc.family, tc.typ)
			got, err := sockIDOf(int(f.Fd()))
			if err != nil {
				t.Fatal(err)
			}
			if want := (sockID{tc.family, tc.typ, tc.pro}); got != want {
				t.Errorf("sockIDOf = %+v, want %+v", got, want)
			}
		})
	}
	if _, err := sockIDOf(int(os.Stdin.Fd())); err == nil {
		t.Errorf("sockIDOf(stdin) gave no error")
	}
}

func TestFamilyPhrase(t *testing.T) {
	for domain, want := range map[int]string{
		unix.AF_NETLINK: "a netlink socket",
		unix.AF_INET6:   "an inet6 socket",
		unix.AF_UNIX:    "a unix socket",
		unix.AF_ALG:     "an alg (kernel crypto) socket",
		unix.AF_PACKET:  "a packet socket",
		250:             "a socket of address family 250",
	} {
		if got := familyPhrase(domain); got != want {
			t.Errorf("familyPhrase(%d) = %q, want %q", domain, got, want)
		}
	}
}

// The options set on one socket are read back from it, and set on a
// fresh socket they read the same there.
func TestSockOpts(t *testing.T) {
	for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_DGRAM, unix.SOCK_SEQPACKET} {
		a := testSocket(t, unix.AF_UNIX, typ)
		fd := int(a.Fd())
		fresh, err := readSockOpts(fd)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.PeekOff != -1 || fresh.RcvBuf == 0 || fresh.SndBuf == 0 || fresh.RcvLowat != 1 {
			t.Errorf("a fresh unix socket reads %+v: want peek_off -1, buffers, rcvlowat 1", fresh)
		}
		set := func(opt, v int) {
			t.Helper()
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, v); err != nil {
				t.Fatal(err)
			}
		}
		set(unix.SO_RCVBUF, 70000)
		set(unix.SO_SNDBUF, 50001)
		set(unix.SO_PASSCRED, 1)
		set(unix.SO_KEEPALIVE, 1)
		set(unix.SO_PRIORITY, 5)
		set(unix.SO_RCVLOWAT, 7)
		set(unix.SO_PEEK_OFF, 3)
		set(unix.SO_TIMESTAMPNS, 1)
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2, Usec: 500000}); err != nil {
			t.Fatal(err)
		}
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 9}); err != nil {
			t.Fatal(err)
		}
		o, err := readSockOpts(fd)
		if err != nil {
			t.Fatal(err)
		}
		want := fresh
		want.RcvBuf, want.SndBuf, want.PassCred, want.KeepAlive, want.Priority = 140000, 100002, true, true, 5
		want.RcvLowat, want.PeekOff, want.TimestampNS, want.RcvTimeo, want.Linger, want.LingerSec = 7, 3, true, 2500000, true, 9
		if o != want {
			t.Errorf("type %d: read\n %+v\nwant\n %+v", typ, o, want)
		}
		b := testSocket(t, unix.AF_UNIX, typ)
		if err := setSockOpts(int(b.Fd()), &o); err != nil {
			t.Fatal(err)
		}
		got, err := readSockOpts(int(b.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		if got != o {
			t.Errorf("type %d: set\n %+v\nreads\n %+v", typ, o, got)
		}
	}
}

// A buffer larger than the sysctl allows is set with the FORCE option
// where the thaw may, and is an error naming it where it may not.
func TestSetSockBufAboveMax(t *testing.T) {
	a := testSocket(t, unix.AF_UNIX, unix.SOCK_STREAM)
	want := 64 << 20 // above any default net.core.rmem_max
	err := setSockBuf(int(a.Fd()), unix.SO_RCVBUF, want)
	got, _ := unix.GetsockoptInt(int(a.Fd()), unix.SOL_SOCKET, unix.SO_RCVBUF)
	if err == nil && got != want {
		t.Errorf("no error, but SO_RCVBUF reads %d, want %d", got, want)
	}
	if err != nil && got == want {
		t.Errorf("SO_RCVBUF is %d as wanted, yet an error: %v", got, err)
	}
	t.Logf("SO_RCVBUF %d: %v (reads %d)", want, err, got)
}
