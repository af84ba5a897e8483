package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TCP and UDP (files/inet.go, files/tcp.go). The listening and bound
// sockets are in TestOracle (the inet victim); here are the established
// connections, whose peer is this test (not frozen), and a real server.

// tcpPeer is the server end of one connection, in the test process. Its
// receive buffer is small, so that a client that writes without being
// read fills its own send queue.
type tcpPeer struct {
	t       *testing.T
	ln      net.Listener
	mu      sync.Mutex
	accepts int
	conn    net.Conn
	rd      *bufio.Reader
	got     chan net.Conn
}

func newTCPPeer(t *testing.T, network, addr string) *tcpPeer {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 8192)
		})
		return errors.Join(err, serr)
	}}
	ln, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	p := &tcpPeer{t: t, ln: ln, got: make(chan net.Conn, 4)}
	t.Cleanup(func() {
		ln.Close()
		if p.conn != nil {
			p.conn.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.accepts++
			p.mu.Unlock()
			p.got <- c
		}
	}()
	return p
}

func (p *tcpPeer) port() string {
	_, port, _ := net.SplitHostPort(p.ln.Addr().String())
	return port
}

func (p *tcpPeer) accept() {
	p.t.Helper()
	select {
	case c := <-p.got:
		p.conn, p.rd = c, bufio.NewReader(c)
	case <-time.After(lineTimeout):
		p.t.Fatal("the client did not connect")
	}
}

// requireOneAccept: the server saw the one connection, never a second.
func (p *tcpPeer) requireOneAccept() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.accepts != 1 {
		p.t.Errorf("the server accepted %d connections, want 1 (the same connection all along)", p.accepts)
	}
}

func (p *tcpPeer) write(s string) {
	p.t.Helper()
	p.conn.SetWriteDeadline(time.Now().Add(lineTimeout))
	if _, err := io.WriteString(p.conn, s); err != nil {
		p.t.Fatalf("server write: %v", err)
	}
}

// readLine reads one line the client sent; the connection must be alive.
func (p *tcpPeer) readLine() string {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(lineTimeout))
	s, err := p.rd.ReadString('\n')
	if err != nil {
		p.t.Fatalf("server read: %v (the connection must be the same, never closed nor reset)", err)
	}
	return strings.TrimSuffix(s, "\n")
}

// readStream reads the n bytes of the client's fill stream from offset
// from, and checks each.
func (p *tcpPeer) readStream(from, n int64) {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(lineTimeout))
	buf := make([]byte, 64<<10)
	for i := from; i < from+n; {
		m, err := p.rd.Read(buf[:min(int64(len(buf)), from+n-i)])
		for j := 0; j < m; j++ {
			k := i + int64(j)
			if want := byte((k*7 + k/251) & 0xff); buf[j] != want {
				p.t.Fatalf("server: stream byte %d is %#x, want %#x", k, buf[j], want)
			}
		}
		i += int64(m)
		if err != nil {
			p.t.Fatalf("server read at stream byte %d of %d: %v", i, from+n, err)
		}
	}
}

// requireNetAdmin: TCP_REPAIR needs CAP_NET_ADMIN (freeze and thaw run
// as this test's user).
func requireNetAdmin(t *testing.T) {
	t.Helper()
	st, err := procStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	eff, err := strconv.ParseUint(st["CapEff"], 16, 64)
	if err != nil || eff&(1<<unix.CAP_NET_ADMIN) == 0 {
		skipOrFail(t, "TCP_REPAIR needs CAP_NET_ADMIN (CapEff %s)", st["CapEff"])
	}
}

// TestTCPRepair: a client holding an established connection to a server
// that is not frozen, with bytes in flight both ways (the server's not
// yet read by the client, the client's not yet acknowledged because the
// server does not read), is frozen and thawed twice; the thawed client
// reads the earlier bytes, the server gets every byte of the client's in
// order, and both go on talking on the same connection: the server never
// sees a new connection, an end of file or a reset. First, freezes that
// fail at each step, and a --leave-running one: the original keeps its
// connection working.
func TestTCPRepair(t *testing.T) {
	for _, v := range []struct{ name, network, addr, arg string }{
		{"v4", "tcp4", "127.0.0.1:0", ""},
		{"v6", "tcp6", "[::1]:0", "6"},
	} {
		t.Run(v.name, func(t *testing.T) {
			setup(t)
			requireNetAdmin(t)
			t.Cleanup(func() { checkNoStrays(t) })
			dir := t.TempDir()
			srv := newTCPPeer(t, v.network, v.addr)
			args := []string{srv.port()}
			if v.arg != "" {
				args = append(args, v.arg)
			}
			cur := startProc(t, "tcpclient", buildVictim(t, "tcpclient"), args)
			cur.expect("ready")
			srv.accept()
			conn := cur.ask("conn", "conn ")
			var streamed int64

			// A freeze that fails after the connection was put in
			// repair mode gives it back working.
			for _, step := range []string{"collected", "written", "fsync"} {
				waitInSyscall(t, cur, sysRead)
				r := runToolWith(t, toolEnv{env: []string{"CRYO_TEST_FAULT=" + step}}, freezeBin, "-o", filepath.Join(dir, "fault.bin"), strconv.Itoa(cur.pid()))
				requireToolError(t, r, 0, []string{"freeze: "}, step)
				cur.requireUndisturbed()
				srv.write("after " + step + "\n")
				if got := cur.ask("readline", "line "); got != "line after "+step {
					t.Errorf("after a freeze failed at %s: %q", step, got)
				}
				cur.ask("send back "+step, "sent")
				if got := srv.readLine(); got != "back "+step {
					t.Errorf("server after a freeze failed at %s: %q", step, got)
				}
			}

			// Snapshot: the original goes on, out of repair mode.
			srv.write("before\n")
			waitInq(t, cur, 7)
			waitInSyscall(t, cur, sysRead)
			r := freeze(t, "--leave-running", "-o", filepath.Join(dir, "snap.bin"), strconv.Itoa(cur.pid()))
			if !strings.Contains(r.stderr, "thaw restores the same connection") {
				t.Errorf("freeze should say what thaw does with the connection:\n%s", r)
			}
			if got := cur.ask("readline", "line "); got != "line before" {
				t.Errorf("after --leave-running: %q, want \"line before\"", got)
			}
			cur.ask("send still", "sent")
			if got := srv.readLine(); got != "still" {
				t.Errorf("server got %q from the original after --leave-running, want \"still\"", got)
			}

			for cycle := 1; cycle <= 2; cycle++ {
				// In flight: a line the client has not read, and the
				// client's stream the server does not read.
				msg := fmt.Sprintf("hello %d", cycle)
				srv.write(msg + "\n")
				waitInq(t, cur, len(msg)+1)
				filled, _ := strconv.ParseInt(strings.TrimPrefix(cur.ask("fill", "filled "), "filled "), 10, 64)
				waitInSyscall(t, cur, sysRead)
				img := filepath.Join(dir, fmt.Sprintf("cycle%d.bin", cycle))
				r := freeze(t, "-o", img, strconv.Itoa(cur.pid()))
				cur.waitExit()
				if !strings.Contains(r.stderr, "fd 3: TCP") || !strings.Contains(r.stderr, "thaw restores the same connection") {
					t.Errorf("freeze should say what thaw does with fd 3:\n%s", r)
				}
				next := thaw(t, img, cycle == 1)
				if got := next.ask("conn", "conn "); got != conn {
					t.Errorf("cycle %d: %q after thaw, want %q", cycle, got, conn)
				}
				if got := next.ask("readline", "line "); got != "line "+msg {
					t.Errorf("cycle %d: the client read %q, want %q (sent before the freeze)", cycle, got, "line "+msg)
				}
				srv.readStream(streamed, filled-streamed)
				streamed = filled
				next.ask("send more", "sent")
				if got := srv.readLine(); got != "more" {
					t.Errorf("cycle %d: server got %q, want \"more\"", cycle, got)
				}
				srv.write("bye\n")
				if got := next.ask("readline", "line "); got != "line bye" {
					t.Errorf("cycle %d: the client read %q, want \"line bye\"", cycle, got)
				}
				cur = next
			}
			srv.requireOneAccept()
			cur.send("exit 0")
			cur.waitExit()
		})
	}
}

// waitInq waits until n bytes wait in the client's receive queue.
func waitInq(t *testing.T, p *proc, n int) {
	t.Helper()
	want := "inq " + strconv.Itoa(n)
	deadline := time.Now().Add(lineTimeout)
	for {
		got := p.ask("inq", "inq ")
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %q, want %q", p.name, got, want)
		}
		time.Sleep(5 * time.Millisecond) // loopback delivery, bounded above
	}
}

// TestTCPUnprivileged: without CAP_NET_ADMIN (nobody freezes nobody's
// client) an established connection is refused by default, with one
// line naming the fd, the connection and the flag, and the client goes
// on undisturbed; with --tcp-established=reset the thawed client finds
// its connection reset (ECONNRESET), not hanging.
func TestTCPUnprivileged(t *testing.T) {
	dir, bin := privDir(t, "tcpclient")
	t.Cleanup(func() { checkNoStrays(t) })
	home := userDir(t, dir)
	srv := newTCPPeer(t, "tcp4", "127.0.0.1:0")
	p := startProc(t, "tcpclient", bin["tcpclient"], []string{srv.port()}, asUser(nobody), inDir(home))
	p.expect("ready")
	srv.accept()
	conn := strings.Fields(p.ask("conn", "conn "))
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(home, "c.bin")

	r := runToolWith(t, toolEnv{cred: nobody}, bin["freeze"], "-o", img, strconv.Itoa(p.pid()))
	requireToolError(t, r, 1, []string{"freeze: "}, "fd 3", conn[1], conn[2], "CAP_NET_ADMIN", "--tcp-established=reset")
	if _, err := os.Stat(img); err == nil {
		t.Errorf("a refused freeze left %s", img)
	}
	p.requireUndisturbed()
	p.ask("send alive", "sent")
	if got := srv.readLine(); got != "alive" {
		t.Errorf("server got %q after the refused freeze, want \"alive\"", got)
	}
	srv.write("pong\n")
	if got := p.ask("readline", "line "); got != "line pong" {
		t.Errorf("client after the refused freeze: %q", got)
	}

	waitInSyscall(t, p, sysRead)
	r = runToolWith(t, toolEnv{cred: nobody}, bin["freeze"], "--tcp-established=reset", "-o", img, strconv.Itoa(p.pid()))
	if r.code != 0 {
		t.Fatalf("freeze --tcp-established=reset as nobody:\n%s", r)
	}
	if !strings.Contains(r.stderr, "fd 3: TCP "+conn[1]+" -> "+conn[2]) || !strings.Contains(r.stderr, "reset connection") {
		t.Errorf("freeze should say fd 3 comes back reset:\n%s", r)
	}
	p.waitExit()
	th := startProc(t, "thaw c.bin", bin["thaw"], []string{img}, asUser(nobody), inDir(home))
	if got := th.ask("readline", "error "); got != "error "+strconv.Itoa(int(unix.ECONNRESET)) {
		t.Errorf("the thawed client's read: %q, want ECONNRESET (%d)", got, unix.ECONNRESET)
	}
	th.send("exit 0")
	th.waitExit()

	// A connection root carried with TCP_REPAIR: nobody cannot thaw it,
	// and is told why, in one line.
	requireNetAdmin(t)
	srv2 := newTCPPeer(t, "tcp4", "127.0.0.1:0")
	p = startProc(t, "tcpclient", bin["tcpclient"], []string{srv2.port()}, asUser(nobody), inDir(home))
	p.expect("ready")
	srv2.accept()
	conn = strings.Fields(p.ask("conn", "conn "))
	waitInSyscall(t, p, sysRead)
	img2 := filepath.Join(home, "r.bin")
	freeze(t, "-o", img2, strconv.Itoa(p.pid()))
	p.waitExit()
	if err := os.Chown(img2, int(nobody.Uid), int(nobody.Gid)); err != nil {
		t.Fatal(err)
	}
	r = runToolWith(t, toolEnv{cred: nobody}, bin["thaw"], img2)
	requireToolError(t, r, 0, []string{"thaw: "}, "fd 3", conn[1], conn[2], "CAP_NET_ADMIN")
}

// TestUDPQueuedNote: datagrams waiting on a UDP socket are not carried,
// and freeze says so; a --leave-running original still has them.
func TestUDPQueuedNote(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	p := startProc(t, "inet", buildVictim(t, "inet"), nil)
	p.expect("ready")
	port := strings.Fields(p.ask("ports", "ports "))[3]
	u, err := net.Dial("udp4", "127.0.0.1:"+port)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	fmt.Fprint(u, "queued")
	waitInSyscall(t, p, sysRead)
	r := freeze(t, "--leave-running", "-o", filepath.Join(dir, "u.bin"), strconv.Itoa(p.pid()))
	if !strings.Contains(r.stderr, "fd 5: UDP 127.0.0.1:"+port+" has datagrams waiting to be read") || !strings.Contains(r.stderr, "thaw drops them") {
		t.Errorf("freeze should say fd 5's datagram is dropped:\n%s", r)
	}
	if got := p.ask("recvudp", "udp "); got != "udp queued" {
		t.Errorf("the original after --leave-running: %q, want \"udp queued\"", got)
	}
}

// inetCase: TCP listeners (IPv4, IPv6) and UDP sockets (bound, connected)
// with their options, through the oracle; the copy shows every socket's
// address and options unchanged, accepts a connection on each listener
// and exchanges datagrams. With pair, the victim also holds both ends of
// an established connection on its listener's port, with a line in
// flight each way (TCP_REPAIR: it needs CAP_NET_ADMIN).
func inetCase(pair bool) oracleCase {
	c := oracleCase{name: "inet/pipes", victim: "inet", mode: startPipes, ready: expectReady}
	if pair {
		c.name, c.args = "inet/pair", []string{"pair"}
	}
	c.prepare = func(t *testing.T, o *oproc) string { return o.ask("state", "state ") }
	c.finish = exitWith(0)
	c.prove = func(t *testing.T, o *oproc, known string) {
		if pair {
			if got := o.ask("talk", "talk "); got != "talk from 8 | from 9 | again 8 | again 9" {
				t.Errorf("the connection inside the process after thaw: %q", got)
			}
		}
		if got := o.ask("state", "state "); got != known {
			t.Errorf("sockets after thaw:\n  before %s\n  after  %s", known, got)
		}
		ports := strings.Fields(o.ask("ports", "ports "))
		for i, l := range []struct{ network, host, cmd string }{{"tcp4", "127.0.0.1", "accept4"}, {"tcp6", "::1", "accept6"}} {
			c, err := net.DialTimeout(l.network, net.JoinHostPort(l.host, ports[1+i]), lineTimeout)
			if err != nil {
				t.Fatalf("connect to the thawed listener: %v", err)
			}
			fmt.Fprintf(c, "hi %s\n", l.network)
			if got := o.ask(l.cmd, "accepted "); got != "accepted hi "+l.network {
				t.Errorf("%s: %q", l.cmd, got)
			}
			c.SetReadDeadline(time.Now().Add(lineTimeout))
			if b, err := io.ReadAll(c); err != nil || string(b) != "ok hi "+l.network+"\n" {
				t.Errorf("%s: the answer %q, %v", l.network, b, err)
			}
			c.Close()
		}
		if got := o.ask("udp", "udp "); got != "udp hi re:hi" {
			t.Errorf("connected UDP: %q, want \"udp hi re:hi\"", got)
		}
		u, err := net.Dial("udp4", "127.0.0.1:"+ports[3])
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		fmt.Fprint(u, "ping")
		if got := o.ask("recvudp", "udp "); got != "udp ping" {
			t.Errorf("recvudp: %q", got)
		}
		u.SetReadDeadline(time.Now().Add(lineTimeout))
		b := make([]byte, 64)
		if n, err := u.Read(b); err != nil || string(b[:n]) != "pong ping" {
			t.Errorf("the UDP answer: %q, %v", b[:n], err)
		}
	}
	return c
}

// TestPythonHTTPServer: a real server, `python3 -m http.server` on
// 127.0.0.1, frozen and thawed twice, answers HTTP on the same port
// after each thaw.
func TestPythonHTTPServer(t *testing.T) {
	setup(t)
	py := pythonPath(t)
	t.Cleanup(func() { checkNoStrays(t) })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.txt"), []byte("frozen and thawed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cur := startProc(t, "python3 -m http.server", py, []string{"-m", "http.server", port, "--bind", "127.0.0.1"}, inDir(dir))
	get := func(what string, wait bool) {
		t.Helper()
		deadline := time.Now().Add(lineTimeout)
		for {
			body, err := httpGet("127.0.0.1:" + port)
			if err == nil && body == "frozen and thawed\n" {
				return
			}
			if !wait || time.Now().After(deadline) {
				t.Fatalf("%s: GET /index.txt: %q, %v\n%s", what, body, err, cur.diag())
			}
			time.Sleep(20 * time.Millisecond) // the server starting, bounded above
		}
	}
	get("python before the freeze", true)
	for cycle := 1; cycle <= 2; cycle++ {
		waitThreads(t, cur.pid(), 1)
		img := filepath.Join(dir, fmt.Sprintf("py%d.bin", cycle))
		freeze(t, "-o", img, strconv.Itoa(cur.pid()))
		cur.waitExit()
		cur = thaw(t, img, cycle == 1)
		get(fmt.Sprintf("cycle %d, thawed", cycle), true) // the thaw binds the port once it has the fds ready
		get(fmt.Sprintf("cycle %d, thawed, again", cycle), false)
	}
	cur.kill()
}

// pythonPath is the python3 interpreter itself (not a pyenv shim, which
// would be frozen instead of python). It is required on amd64 (.ci/run
// installs it); the arm64 test system has none.
func pythonPath(t testing.TB) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		if runtime.GOARCH == "arm64" {
			t.Skip("no python3 on this arm64 system")
		}
		skipOrFail(t, "python3 not installed: %v", err)
	}
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("python3 -c sys.executable: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// freePort is a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// httpGet fetches /index.txt from addr, on a new connection.
func httpGet(addr string) (string, error) {
	c := http.Client{Timeout: lineTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/index.txt")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitThreads waits until pid has n threads (python's server answers
// each request on a thread of its own, which ends after it).
func waitThreads(t *testing.T, pid, n int) {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d has %d threads, want %d", pid, len(ents), n)
		}
		time.Sleep(5 * time.Millisecond) // polling /proc, bounded above
	}
}
