package files

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func inodeOf(t *testing.T, fd int) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

func socketpair(t *testing.T, typ int) (int, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

func diag(t *testing.T, fd int) *unixDiag {
	t.Helper()
	d, err := unixDiagOf(inodeOf(t, fd), udiagShowName|udiagShowVFS|udiagShowPeer|udiagShowIcons|udiagShowRQLen)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// sock_diag asked about sockets of this test: their peers, names,
// queues, listeners' waiting connections and shutdown states.
func TestUnixDiag(t *testing.T) {
	t.Run("stream pair", func(t *testing.T) {
		a, b := socketpair(t, unix.SOCK_STREAM)
		if _, err := unix.Write(a, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if err := unix.Shutdown(a, unix.SHUT_WR); err != nil {
			t.Fatal(err)
		}
		da, db := diag(t, a), diag(t, b)
		if da.Ino != inodeOf(t, a) || !da.HasPeer || da.Peer != inodeOf(t, b) || db.Peer != inodeOf(t, a) {
			t.Errorf("a %+v\nb %+v: want each the other's peer", da, db)
		}
		if da.Type != unix.SOCK_STREAM || da.State != tcpEstablished || da.Named {
			t.Errorf("a %+v: want an unnamed connected stream socket", da)
		}
		if !db.HasRQLen || db.RQueue != 5 || da.RQueue != 0 {
			t.Errorf("queued: a %d, b %d; want 0 and 5", da.RQueue, db.RQueue)
		}
		if da.Shutdown != sendShutdown || db.Shutdown != rcvShutdown {
			t.Errorf("shutdown: a %d, b %d; want %d and %d", da.Shutdown, db.Shutdown, sendShutdown, rcvShutdown)
		}
	})
	t.Run("abstract listener", func(t *testing.T) {
		l := testSocket(t, unix.AF_UNIX, unix.SOCK_SEQPACKET)
		name := fmt.Sprintf("@cryo-diag-test-%d", os.Getpid())
		if err := unix.Bind(int(l.Fd()), &unix.SockaddrUnix{Name: name}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(int(l.Fd()), 7); err != nil {
			t.Fatal(err)
		}
		c := testSocket(t, unix.AF_UNIX, unix.SOCK_SEQPACKET)
		if err := unix.Connect(int(c.Fd()), &unix.SockaddrUnix{Name: name}); err != nil {
			t.Fatal(err)
		}
		dl, dc := diag(t, int(l.Fd())), diag(t, int(c.Fd()))
		if want := append([]byte{0}, name[1:]...); !dl.Named || !bytes.Equal(dl.Name, want) || dl.HasVFS {
			t.Errorf("listener named %q (vfs %v), want %q", dl.Name, dl.HasVFS, want)
		}
		if dl.State != tcpListen || dl.RQueue != 1 || dl.WQueue != 7 {
			t.Errorf("listener: state %d, %d waiting, backlog %d; want %d, 1, 7", dl.State, dl.RQueue, dl.WQueue, tcpListen)
		}
		if !slices.Equal(dl.Icons, []uint32{inodeOf(t, int(c.Fd()))}) {
			t.Errorf("listener's waiting clients %v, want the client %d", dl.Icons, inodeOf(t, int(c.Fd())))
		}
		// Connected to a socket not accepted yet: it has no inode.
		if !dc.HasPeer || dc.Peer != 0 || dc.State != tcpEstablished {
			t.Errorf("client %+v: want connected, to peer inode 0", dc)
		}
	})
	t.Run("path-bound dgram", func(t *testing.T) {
		s := testSocket(t, unix.AF_UNIX, unix.SOCK_DGRAM)
		path := filepath.Join(t.TempDir(), "d.sock")
		if err := unix.Bind(int(s.Fd()), &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		c := testSocket(t, unix.AF_UNIX, unix.SOCK_DGRAM)
		if err := unix.Connect(int(c.Fd()), &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"four", "seven77"} {
			if _, err := unix.Write(int(c.Fd()), []byte(m)); err != nil {
				t.Fatal(err)
			}
		}
		ds, dc := diag(t, int(s.Fd())), diag(t, int(c.Fd()))
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if string(ds.Name) != path || !ds.HasVFS || uint64(ds.VFSIno) != st.Ino || !vfsDevIs(ds.VFSDev, st.Dev) {
			t.Errorf("bound socket: name %q vfs %v %d:%#x; want %q, inode %d dev %#x", ds.Name, ds.HasVFS, ds.VFSIno, ds.VFSDev, path, st.Ino, st.Dev)
		}
		if ds.HasPeer || ds.RQueue != 4 {
			t.Errorf("bound socket: peer %v, first datagram %d bytes; want none, 4", ds.HasPeer, ds.RQueue)
		}
		if !dc.HasPeer || dc.Peer != ds.Ino || dc.Named {
			t.Errorf("client %+v: want an unnamed socket connected to %d", dc, ds.Ino)
		}
	})
	t.Run("no such socket", func(t *testing.T) {
		f, err := os.Open("/")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := unixDiagOf(inodeOf(t, int(f.Fd())), udiagShowName); err == nil {
			t.Errorf("the inode of / is a unix socket?")
		}
	})
}

func TestVFSDevIs(t *testing.T) {
	for _, tc := range []struct {
		major, minor uint32
	}{{0, 0}, {8, 1}, {259, 3}, {0, 0x1234}, {253, 70000}} {
		kdev := tc.major<<20 | tc.minor
		if !vfsDevIs(kdev, unix.Mkdev(tc.major, tc.minor)) {
			t.Errorf("%d:%d: kernel dev %#x is not st_dev %#x", tc.major, tc.minor, kdev, unix.Mkdev(tc.major, tc.minor))
		}
		if vfsDevIs(kdev, unix.Mkdev(tc.major+1, tc.minor)) {
			t.Errorf("%d:%d matches major %d", tc.major, tc.minor, tc.major+1)
		}
	}
}
