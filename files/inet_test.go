package files

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestInetQueues: sock_diag gives a listener's backlog and the
// connections waiting in its accept queue.
func TestInetQueues(t *testing.T) {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ln)
	if err := unix.Bind(ln, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(ln, 5); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(ln, &st); err != nil {
		t.Fatal(err)
	}
	const listen = 1 << unix.BPF_TCP_LISTEN
	rq, wq, found, err := inetQueues(unix.AF_INET, unix.IPPROTO_TCP, listen, st.Ino)
	if err != nil || !found || rq != 0 || wq != 5 {
		t.Fatalf("listener: rq %d wq %d found %v err %v, want 0, 5, true", rq, wq, found, err)
	}
	sa, _ := unix.Getsockname(ln)
	c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(c)
	if err := unix.Connect(c, sa); err != nil {
		t.Fatal(err)
	}
	// connect returns once the SYN-ACK is in; the handshake's last ACK
	// may reach the listener a moment later (softirq: slow under
	// emulation), and only then is the connection in its queue.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rq, _, _, err = inetQueues(unix.AF_INET, unix.IPPROTO_TCP, listen, st.Ino)
		if err != nil || rq == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond) // bounded above by deadline
	}
	if err != nil || rq != 1 {
		t.Errorf("one connection waiting: rq %d, err %v", rq, err)
	}
	if n, err := procNetAcceptQueue(unix.AF_INET, st.Ino); err != nil || n != 1 {
		t.Errorf("/proc/net/tcp: %d waiting, %v; want 1", n, err)
	}
	if _, _, found, _ := inetQueues(unix.AF_INET, unix.IPPROTO_TCP, listen, st.Ino+1<<40); found {
		t.Error("found a socket by an inode no socket has")
	}
}

func TestParseTCPPolicy(t *testing.T) {
	for in, want := range map[string]TCPPolicy{"": TCPAuto, "auto": TCPAuto, "repair": TCPRepair, "reset": TCPReset, "refuse": TCPRefuse} {
		if got, err := ParseTCPPolicy(in); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseTCPPolicy("drop"); err == nil {
		t.Error("drop: no error")
	}
}

// TestDropAll: the filter freeze puts on a connection it reads drops
// every packet, and is seen (and removed) as a filter.
func TestDropAll(t *testing.T) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	if err := unix.Bind(s, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(s)
	if n, err := filterLen(s); err != nil || n != 0 {
		t.Fatalf("a new socket's filter: %d instructions, %v", n, err)
	}
	if err := attachDropAll(s); err != nil {
		t.Fatal(err)
	}
	if n, err := filterLen(s); err != nil || n != len(dropAll) {
		t.Errorf("filter: %d instructions, %v; want %d", n, err, len(dropAll))
	}
	buf := make([]byte, 8)
	if err := unix.Sendto(s, []byte("x"), 0, sa); err != nil {
		t.Fatal(err)
	}
	if _, _, err := unix.Recvfrom(s, buf, unix.MSG_DONTWAIT); err != unix.EAGAIN {
		t.Errorf("with the filter, recv: %v, want EAGAIN (dropped)", err)
	}
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(s, []byte("y"), 0, sa); err != nil {
		t.Fatal(err)
	}
	if n, _, err := unix.Recvfrom(s, buf, unix.MSG_DONTWAIT); err != nil || string(buf[:n]) != "y" {
		t.Errorf("without the filter: %q, %v", buf[:n], err)
	}
}
