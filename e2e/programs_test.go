package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Real programs with threads, started the way people start them, through
// two freeze → thaw cycles and the /proc oracle: redis-server from bash
// with its log on >log 2>&1, a JVM running a multi-threaded program the
// same way, and vim on a terminal.

// program is the path of a program the test needs from the system, or a
// skip (a failure in CI, where .ci/run installs it; the arm64 guest has
// none of them).
func program(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if runtime.GOARCH == "arm64" {
			t.Skipf("no %s on this arm64 system", name)
		}
		skipOrFail(t, "%s not installed: %v", name, err)
	}
	return p
}

// redisConn is a client of redis-server speaking RESP.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRedis(t testing.TB, port string) *redisConn {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	var c net.Conn
	var err error
	// Refused until a thaw has its listener in place: tried again.
	for c, err = net.DialTimeout("tcp", "127.0.0.1:"+port, lineTimeout); err != nil && time.Now().Before(deadline); c, err = net.DialTimeout("tcp", "127.0.0.1:"+port, lineTimeout) {
		time.Sleep(time.Millisecond) // bounded above by deadline
	}
	if err != nil {
		t.Fatalf("connect to redis-server: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &redisConn{c: c, r: bufio.NewReader(c)}
}

// send writes commands, without reading their replies.
func (r *redisConn) send(t testing.TB, cmds ...[]string) {
	t.Helper()
	var b strings.Builder
	for _, args := range cmds {
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
	}
	_ = r.c.SetDeadline(time.Now().Add(lineTimeout))
	if _, err := r.c.Write([]byte(b.String())); err != nil {
		t.Fatalf("redis: write: %v", err)
	}
}

// reply reads one reply: a status, error, integer or bulk string as its
// text ("(nil)" for a null one).
func (r *redisConn) reply(t testing.TB) string {
	t.Helper()
	_ = r.c.SetDeadline(time.Now().Add(lineTimeout))
	line, err := r.r.ReadString('\n')
	if err != nil {
		t.Fatalf("redis: read reply: %v", err)
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		t.Fatal("redis: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:]
	case '-':
		return "ERR " + line[1:]
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			t.Fatalf("redis: bad bulk length %q", line)
		}
		if n < 0 {
			return "(nil)"
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(r.r, b); err != nil {
			t.Fatalf("redis: read bulk: %v", err)
		}
		return string(b[:n])
	}
	t.Fatalf("redis: unexpected reply %q", line)
	return ""
}

func (r *redisConn) do(t testing.TB, args ...string) string {
	t.Helper()
	r.send(t, args)
	return r.reply(t)
}

// TestRedisServer: redis-server (Debian's package: an event loop on
// epoll, a listener, background threads, jemalloc) started from bash
// with >log 2>&1, through two cycles and the oracle. Before each freeze
// the test writes 20,000 keys and bumps a counter; after each thaw every
// key is there with its value, the counter goes on, the log goes on in
// the same file, it serves new clients, and a BGSAVE (a fork of the
// thawed multi-threaded process) writes its dump.
func TestRedisServer(t *testing.T) {
	bin := program(t, "redis-server")
	port := freePort(t)
	const keys = 20000
	c := oracleCase{
		name: "redis-server/shell-log", victim: "redis-server", mode: startShellLog, stopped: true,
		args: []string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"},
		ready: func(t *testing.T, o *oproc) {
			for !strings.Contains(o.next(), "Ready to accept connections") {
			}
		},
		prepare: func(t *testing.T, o *oproc) string {
			r := dialRedis(t, port)
			n := r.do(t, "INCR", "cycle")
			var cmds [][]string
			for i := 0; i < keys; i++ {
				cmds = append(cmds, []string{"SET", fmt.Sprintf("key:%s:%d", n, i), fmt.Sprintf("value %d of cycle %s", i*7, n)})
			}
			r.send(t, cmds...)
			for i := 0; i < keys; i++ {
				if got := r.reply(t); got != "OK" {
					t.Fatalf("redis SET: %q", got)
				}
			}
			size := r.do(t, "DBSIZE")
			// No client connection across the freeze: the oracle
			// freezes with --leave-running and kills the original,
			// whose connection then closes with a FIN, and its orphan
			// holds the 4-tuple a repaired copy needs (TestTCPRepair
			// carries established connections).
			r.c.Close()
			onlyListener(t, o)
			return n + "|" + size
		},
		prove: func(t *testing.T, o *oproc, known string) {
			n, size, _ := strings.Cut(known, "|")
			r := dialRedis(t, port)
			defer r.c.Close()
			if got := r.do(t, "DBSIZE"); got != size {
				t.Errorf("redis after thaw: DBSIZE %s, want %s", got, size)
			}
			var cmds [][]string
			for i := 0; i < keys; i++ {
				cmds = append(cmds, []string{"GET", fmt.Sprintf("key:%s:%d", n, i)})
			}
			r.send(t, cmds...)
			for i := 0; i < keys; i++ {
				if got, want := r.reply(t), fmt.Sprintf("value %d of cycle %s", i*7, n); got != want {
					t.Fatalf("redis after thaw: key:%s:%d is %q, want %q", n, i, got, want)
				}
			}
			cycle, _ := strconv.Atoi(n)
			if got := r.do(t, "INCR", "cycle"); got != strconv.Itoa(cycle+1) {
				t.Errorf("redis after thaw: INCR cycle = %s, want %d", got, cycle+1)
			}
			if got := r.do(t, "DECR", "cycle"); got != n {
				t.Errorf("redis after thaw: DECR cycle = %s, want %s", got, n)
			}
			if got := r.do(t, "BGSAVE"); !strings.Contains(got, "started") {
				t.Fatalf("redis after thaw: BGSAVE: %q", got)
			}
			for {
				l := o.next()
				if strings.Contains(l, "Background saving terminated with success") {
					break
				}
				if strings.Contains(l, "Background saving error") || strings.Contains(l, "terminated by signal") {
					t.Fatalf("redis after thaw: %s", l)
				}
			}
			cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", o.pid))
			if err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(filepath.Join(cwd, "dump.rdb")); err != nil || st.Size() < keys*10 {
				t.Errorf("redis after thaw: dump.rdb: %v %v", st, err)
			}
		},
		finish: func(t *testing.T, o *oproc) {
			r := dialRedis(t, port)
			r.send(t, []string{"SHUTDOWN", "NOSAVE"})
			waitGone(t, o.pid)
		},
	}
	oracleCycles(t, c, bin)
}

// TestJVM: a multi-threaded Java program (testdata/jticker: four threads
// allocating so that the GC runs all the time, a thread reading stdin,
// the main thread printing a numbered line every 20 ms), compiled at test
// time and run by the JDK's java from bash with >log 2>&1, through two
// cycles and the oracle: its output goes on after each thaw without a
// gap or a repeat, its workers and the GC keep running.
func TestJVM(t *testing.T) {
	java := program(t, "java")
	classes := buildJava(t, "jticker")
	var last int64
	var lastGC int64
	var lastW [4]int64
	// tick reads the next line, which must be the next tick.
	tick := func(t *testing.T, o *oproc) {
		t.Helper()
		l := o.next()
		var n, gc int64
		var w [4]int64
		if _, err := fmt.Sscanf(l, "tick %d gc %d w %d %d %d %d", &n, &gc, &w[0], &w[1], &w[2], &w[3]); err != nil {
			t.Fatalf("java: line %q: %v\n%s", l, err, o.diag())
		}
		if last != 0 && n != last+1 {
			t.Fatalf("java: tick %d after tick %d: a gap or a repeat\n%s", n, last, o.diag())
		}
		if gc < lastGC {
			t.Fatalf("java: GC count went back from %d to %d", lastGC, gc)
		}
		for i := range w {
			if w[i] < lastW[i] {
				t.Fatalf("java: worker %d went back from %d to %d", i, lastW[i], w[i])
			}
		}
		last, lastGC, lastW = n, gc, w
	}
	c := oracleCase{
		name: "java/shell-log", victim: "java", mode: startShellLog, stopped: true,
		args: []string{"-Xmx64m", "-cp", classes, "Ticker"},
		ready: func(t *testing.T, o *oproc) {
			o.expect("ready")
		},
		prepare: func(t *testing.T, o *oproc) string {
			for i := 0; i < 5; i++ {
				tick(t, o)
			}
			return ""
		},
		prove: func(t *testing.T, o *oproc, _ string) {
			gc, w := lastGC, lastW
			for i := 0; i < 10 || lastGC <= gc; i++ {
				tick(t, o)
				if i > 500 {
					t.Fatalf("java after thaw: no GC in %d ticks (%d cycles before)", i, gc)
				}
			}
			for i := range w {
				if lastW[i] <= w[i] {
					t.Errorf("java after thaw: worker %d did not run on (%d, then %d)", i, w[i], lastW[i])
				}
			}
		},
		finish:     exitWith(5),
		anonMerged: true,
	}
	oracleCycles(t, c, java)
}

// buildJava compiles testdata/NAME/*.java with javac into a directory of
// classes, once per test binary.
func buildJava(t testing.TB, name string) string {
	t.Helper()
	javac := program(t, "javac")
	key := "java\x00" + name
	victimMu.Lock()
	defer victimMu.Unlock()
	if b, ok := victimCache[key]; ok {
		if b.err != nil {
			t.Fatal(b.err)
		}
		return b.path
	}
	src, err := filepath.Glob(filepath.Join("..", "testdata", name, "*.java"))
	if err != nil || len(src) == 0 {
		t.Fatalf("testdata/%s: no Java sources (%v)", name, err)
	}
	out := filepath.Join(victimDir, name)
	cmd := exec.Command(javac, append([]string{"-d", out}, src...)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		err = fmt.Errorf("javac %s: %v\n%s", name, err, msg)
		victimCache[key] = victimBuild{err: err}
		t.Fatal(err)
	}
	victimCache[key] = victimBuild{path: out}
	return out
}

// TestVim: vim on a terminal, editing a new file with some text typed
// (its swap file open, its SIGEV_THREAD timer with a thread of its own),
// frozen from outside and thawed on another terminal, twice, through the
// oracle: after each thaw the buffer is intact (vim writes it to a second
// file, compared), typing goes on, and at the end :wq writes the file
// with everything typed before and after the freezes.
func TestVim(t *testing.T) {
	bin := program(t, "vim")
	var dir string
	var text []string
	typeLine := func(o *oproc, s string) {
		o.write("Go" + s + "\x1b")
		text = append(text, s)
	}
	// saved waits for path to hold the lines typed so far.
	saved := func(t *testing.T, path string) {
		t.Helper()
		want := strings.Join(text, "\n") + "\n"
		deadline := time.Now().Add(lineTimeout)
		for {
			b, err := os.ReadFile(path)
			if err == nil && string(b) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("vim: %s holds %q (%v), want %q", filepath.Base(path), b, err, want)
			}
			time.Sleep(10 * time.Millisecond) // polling a file, bounded above
		}
	}
	c := oracleCase{
		name: "vim/tty", victim: "vim", mode: startTTY, stopped: true,
		args: []string{"-N", "-u", "NONE", "-i", "NONE", "-T", "xterm", "notes.txt"},
		ready: func(t *testing.T, o *oproc) {
			drainTerminal(t, o)
			cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", o.pid))
			if err != nil {
				t.Fatal(err)
			}
			dir = cwd
			// The first line of the buffer, then one more.
			o.write("i" + "typed before the first freeze" + "\x1b")
			text = append(text, "typed before the first freeze")
			typeLine(o, "second line")
		},
		prepare: func(t *testing.T, o *oproc) string {
			typeLine(o, fmt.Sprintf("line %d before a freeze", len(text)+1))
			check := filepath.Join(dir, "check.txt")
			os.Remove(check)
			o.write(":w! check.txt\r")
			saved(t, check)
			return ""
		},
		prove: func(t *testing.T, o *oproc, _ string) {
			drainTerminal(t, o)
			check := filepath.Join(dir, "check.txt")
			os.Remove(check)
			o.write(":w! check.txt\r")
			saved(t, check)
			typeLine(o, "typed after a thaw")
		},
		finish: func(t *testing.T, o *oproc) {
			o.write(":wq\r")
			saved(t, filepath.Join(dir, "notes.txt"))
			waitGone(t, o.pid)
			if _, err := os.Stat(filepath.Join(dir, ".notes.txt.swp")); err == nil {
				t.Errorf("vim: the swap file is left after :wq")
			}
		},
	}
	oracleCycles(t, c, bin)
}

// drainTerminal reads what a program on the terminal writes (vim's
// screen) until the test ends, so that it never blocks on a full
// terminal.
func drainTerminal(t *testing.T, o *oproc) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	lines := o.lines
	go func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, ok := lines(50 * time.Millisecond); !ok {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
}

// TestJobControl: a multi-threaded process (testdata/threads.c) frozen,
// then thawed as a job of an interactive bash on a terminal: it is in
// bash's session and the terminal's foreground process group, reads what
// is typed, stops on Ctrl-Z (bash reports it stopped), goes on with fg,
// and dies of Ctrl-C (status 130).
func TestJobControl(t *testing.T) {
	setup(t)
	bash := bashPath(t)
	dir := t.TempDir()
	p := startProc(t, "threads", buildVictim(t, "threads"), nil, inDir(dir))
	p.expect("ready")
	known := p.ask("tick", "tick ")
	img := filepath.Join(dir, "threads.bin")
	freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()

	m, s := openPTY(t)
	sh := startProc(t, "bash -i", bash, []string{"--norc", "--noprofile", "-i"}, withStdio(s), withCtty(s), inDir(dir))
	lines := ptyLines(m)
	typeIn := func(s string) {
		t.Helper()
		if _, err := m.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	typeIn("./threads.bin\n")
	// The thawed process: bash's child, running, traced by no one.
	var pid int
	deadline := time.Now().Add(lineTimeout)
	for pid == 0 {
		for _, k := range childList(sh.pid()) {
			f := strings.Fields(k)
			n, _ := strconv.Atoi(f[0])
			if st, err := procStatus(n); err == nil && st["TracerPid"] == "0" && st["Threads"] != "1" {
				pid = n
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no thawed process under bash within %v", lineTimeout)
		}
		time.Sleep(2 * time.Millisecond) // polling /proc, bounded above
	}
	stat := func(pid int) []string {
		t.Helper()
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+2:]) // from field 3
	}
	st, shst := stat(pid), stat(sh.pid())
	// Fields 5 (pgrp), 6 (session), 8 (tpgid).
	if st[3] != shst[3] {
		t.Errorf("the thawed process is in session %s, bash in %s", st[3], shst[3])
	}
	if st[2] != strconv.Itoa(pid) || st[5] != st[2] {
		t.Errorf("the thawed process %d: process group %s, the terminal's foreground group %s: want its own, in the foreground", pid, st[2], st[5])
	}
	typeIn("tick\n")
	known = nextTick(t, known)
	expectLine(t, lines, known)
	typeIn("\x1a") // Ctrl-Z
	expectLine(t, lines, "Stopped")
	if st, err := procStatus(pid); err != nil || !strings.HasPrefix(st["State"], "T") {
		t.Fatalf("after Ctrl-Z: %v %v, want stopped", st["State"], err)
	}
	typeIn("fg\n")
	typeIn("tick\n")
	expectLine(t, lines, nextTick(t, known))
	typeIn("\x03") // Ctrl-C
	waitGone(t, pid)
	typeIn("echo status $?\n")
	expectLine(t, lines, "status 130")
	typeIn("exit\n")
	sh.waitExit()
}
