package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// buildGoVictim builds testdata/NAME (a Go program) with the go command,
// static (CGO_ENABLED=0), cached like the C victims; under
// CRYO_E2E_VICTIM_DIR it is prebuilt (scripts/arm64/test.sh
// cross-builds it).
func buildGoVictim(tb testing.TB, name string) string {
	tb.Helper()
	key := "go\x00" + name
	victimMu.Lock()
	defer victimMu.Unlock()
	if b, ok := victimCache[key]; ok {
		if b.err != nil {
			tb.Fatal(b.err)
		}
		return b.path
	}
	if dir := os.Getenv(envVictimDir); dir != "" {
		out := filepath.Join(dir, name)
		if _, err := os.Stat(out); err != nil {
			tb.Fatalf("%s: prebuilt victim: %v", envVictimDir, err)
		}
		return out
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	out := filepath.Join(victimDir, name)
	cmd := exec.Command(goBin, "build", "-o", out, ".")
	cmd.Dir = filepath.Join("..", "testdata", name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		err = fmt.Errorf("go build %s: %v\n%s", name, err, msg)
		victimCache[key] = victimBuild{err: err}
		tb.Fatal(err)
	}
	victimCache[key] = victimBuild{path: out}
	return out
}

// TestGoProgram: a Go program (testdata/gocounter: the runtime's
// threads, a goroutine allocating so that the GC runs all the time)
// through two freeze → thaw cycles and the /proc oracle. Frozen stopped:
// which of its threads reads stdin is the runtime's choice. After each
// thaw the counter goes on from where it was and the GC keeps running.
func TestGoProgram(t *testing.T) {
	bin := buildGoVictim(t, "gocounter")
	gcs := func(o *oproc) int {
		n, err := strconv.Atoi(strings.TrimPrefix(o.ask("gc", "gc "), "gc "))
		if err != nil {
			t.Fatalf("gocounter: bad gc answer: %v", err)
		}
		return n
	}
	c := oracleCase{
		name: "gocounter/pipes", victim: "gocounter", mode: startPipes, stopped: true, ready: expectReady,
		prepare: func(t *testing.T, o *oproc) string {
			return o.ask("inc", "count ") + "|" + strconv.Itoa(gcs(o))
		},
		prove: func(t *testing.T, o *oproc, known string) {
			count, gc, _ := strings.Cut(known, "|")
			n, _ := strconv.Atoi(strings.TrimPrefix(count, "count "))
			if got := o.ask("inc", "count "); got != fmt.Sprintf("count %d", n+1) {
				t.Errorf("gocounter after thaw: %q, want count %d", got, n+1)
			}
			before, _ := strconv.Atoi(gc)
			deadline := time.Now().Add(lineTimeout)
			for gcs(o) <= before+2 {
				if time.Now().After(deadline) {
					t.Fatalf("the GC did not run after thaw (%d cycles before the freeze)\n%s", before, o.diag())
				}
				time.Sleep(10 * time.Millisecond) // polling the victim, bounded above
			}
		},
		finish: exitWith(3),
	}
	oracleCycles(t, c, bin)
}

// TestGoHTTPServer: the Go program serving its counter over HTTP
// (net/http: the runtime's netpoller on epoll, its listener, its
// goroutines) through two freeze → thaw cycles and the /proc oracle:
// after each thaw it answers on the same port, the counter goes on, and
// the GC keeps running.
func TestGoHTTPServer(t *testing.T) {
	bin := buildGoVictim(t, "gocounter")
	var port string
	get := func(t *testing.T) string {
		t.Helper()
		c := &http.Client{Timeout: lineTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://127.0.0.1:" + port + "/inc")
		if err != nil {
			t.Fatalf("GET /inc: %v", err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /inc: %s %q %v", resp.Status, b, err)
		}
		return string(b)
	}
	c := oracleCase{
		name: "gocounter/http", victim: "gocounter", mode: startPipes, stopped: true,
		ready: func(t *testing.T, o *oproc) {
			expectReady(t, o)
			port = strings.TrimPrefix(o.ask("http", "http "), "http ")
			if _, err := strconv.Atoi(port); err != nil {
				t.Fatalf("gocounter http: %q", port)
			}
		},
		prepare: func(t *testing.T, o *oproc) string {
			get(t)
			n := get(t)
			onlyListener(t, o)
			return n
		},
		prove: func(t *testing.T, o *oproc, known string) {
			n, _ := strconv.Atoi(strings.TrimPrefix(known, "count "))
			if got := get(t); got != fmt.Sprintf("count %d", n+1) {
				t.Errorf("gocounter over HTTP after thaw: %q, want count %d", got, n+1)
			}
			if got := o.ask("inc", "count "); got != fmt.Sprintf("count %d", n+2) {
				t.Errorf("gocounter on stdin after thaw: %q, want count %d", got, n+2)
			}
		},
		finish: exitWith(3),
	}
	oracleCycles(t, c, bin)
}

// TestGoMPTCPRefused: Go 1.24's listeners are multipath TCP by default
// where the kernel has it; freeze refuses such a socket in one line
// naming MPTCP and the way out, and the target runs on. Where the kernel
// has no MPTCP, Go listens on plain TCP and the freeze succeeds.
func TestGoMPTCPRefused(t *testing.T) {
	setup(t)
	mptcp := false
	if fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_MPTCP); err == nil {
		unix.Close(fd)
		mptcp = true
	}
	p := startProc(t, "gocounter", buildGoVictim(t, "gocounter"), nil)
	p.expect("ready")
	p.ask("httpdefault", "http ")
	img := filepath.Join(t.TempDir(), "mptcp.bin")
	r := runTool(t, freezeBin, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
	if !mptcp {
		if r.code != 0 {
			t.Fatalf("no MPTCP in this kernel: Go listens on TCP, and the freeze should succeed:\n%s", r)
		}
		return
	}
	requireToolError(t, r, 1, []string{"freeze: "}, "MPTCP", "GODEBUG=multipathtcp=0")
	p.ask("inc", "count 1")
}

// onlyListener waits until o holds one socket, its listener: the server
// has closed the connections the test's requests came on (with the
// client gone first, one is in CLOSE_WAIT until then, which freeze
// refuses).
func onlyListener(t *testing.T, o *oproc) {
	t.Helper()
	if socks := waitSockets(t, o.pid, 1); socks != 1 {
		t.Fatalf("%s still holds %d sockets after %v, want only its listener\n%s", o.name, socks, lineTimeout, o.diag())
	}
}

// waitSockets waits (up to lineTimeout) until pid holds want sockets, and
// returns how many it holds.
func waitSockets(tb testing.TB, pid, want int) int {
	tb.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		socks := 0
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, e := range ents {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
				socks++
			}
		}
		if socks == want || time.Now().After(deadline) {
			return socks
		}
		time.Sleep(2 * time.Millisecond) // polling /proc, bounded above
	}
}
