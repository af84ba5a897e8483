package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ptyCapture collects all a pty master reads.
type ptyCapture struct {
	mu   sync.Mutex
	b    bytes.Buffer
	done chan struct{}
}

func capturePTY(m *os.File) *ptyCapture {
	c := &ptyCapture{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			c.mu.Lock()
			c.b.Write(buf[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return c
}

func (c *ptyCapture) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

// waitFor polls until the capture holds every word, or fails.
func (c *ptyCapture) waitFor(t *testing.T, what string, words ...string) string {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		s := c.String()
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the terminal got %q, want %q", what, s, words)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// envProgressDelay is how long the tools keep a bar hidden (package
// progress; a second unless set). TestMain hides them.
const envProgressDelay = "CRYO_TEST_PROGRESS_DELAY"

// noDelay shows the bars at once.
const noDelay = envProgressDelay + "=0s"

// defaultDelay is the environment without envProgressDelay.
func defaultDelay() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, envProgressDelay+"=") {
			env = append(env, e)
		}
	}
	return env
}

// TestProgress: freeze and thaw (of a file and of a stream) draw a bar
// with bytes and rate on stderr when it is a terminal, and erase it;
// on a pipe they print nothing; a freeze shorter than the delay draws
// nothing either.
func TestProgress(t *testing.T) {
	setup(t)
	p := startProc(t, "big", buildVictim(t, "big"), []string{"64"})
	p.expect("ready")
	sum := p.ask("sum", "sum ")
	waitInSyscall(t, p, sysRead)
	pid := strconv.Itoa(p.pid())
	img := filepath.Join(t.TempDir(), "big.bin")
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()

	t.Run("freeze_pipe", func(t *testing.T) {
		r := runToolWith(t, toolEnv{env: []string{noDelay}}, freezeBin, "--leave-running", "-o", img, pid)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("freeze with stderr a pipe: want success and nothing on stderr:\n%s", r)
		}
	})
	t.Run("freeze_tty", func(t *testing.T) {
		m, s := openPTY(t)
		c := capturePTY(m)
		cmd := exec.CommandContext(ctx, freezeBin, "--leave-running", "-o", img, pid)
		cmd.Env = append(os.Environ(), noDelay)
		cmd.Stderr = s
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("freeze: %v %q\n%s", err, out, c.String())
		}
		s.Close()
		<-c.done
		out := c.String()
		if !strings.Contains(out, "freeze") || !strings.Contains(out, "iB") || !strings.Contains(out, "%") || !strings.Contains(out, "/s") {
			t.Fatalf("no bar with bytes, percentage and rate on the terminal: %q", out)
		}
		if !strings.HasSuffix(strings.TrimRight(out, " \r"), "]") || !strings.HasSuffix(out, " \r") {
			t.Errorf("the bar was not erased at the end: %q", out[max(0, len(out)-200):])
		}
		p.requireUndisturbed()
	})
	t.Run("thaw_tty", func(t *testing.T) {
		m, s := openPTY(t)
		c := capturePTY(m)
		// thaw, not ./big.bin: the restorer an image carries has no bar.
		th := startProc(t, "thaw big.bin", thawBin, []string{img}, withEnv(noDelay), withErr(s))
		if got := th.ask("sum", "sum "); got != sum {
			t.Errorf("thawed memory %s, want %s", got, sum)
		}
		c.waitFor(t, "thaw", "thaw", "iB", "%")
	})
	t.Run("stream_tty", func(t *testing.T) {
		m, s := openPTY(t)
		c := capturePTY(m)
		stream, wait := startFreezeStream(t, "--leave-running", pid)
		cmdR, cmdW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		th := startProc(t, "thaw -", thawBin, []string{"--fd", "0=&3", "-"}, withStdin(stream), withFiles([]*os.File{cmdR}), withEnv(noDelay), withErr(s))
		stream.Close()
		cmdR.Close()
		th.stdin.Close()
		th.stdin = cmdW
		if r := wait(); r.code != 0 {
			t.Fatalf("freeze -o - failed:\n%s", r)
		}
		th.ask("ping", "pong")
		// Bytes in any unit: a fast machine streams the 64 MiB within the
		// bar's first 100 ms, so its one drawing says KiB.
		c.waitFor(t, "thaw -", "thaw", "iB", "/s")
	})
	t.Run("short", func(t *testing.T) {
		sl := startProc(t, "sleeper", buildVictim(t, "sleeper"), nil)
		m, s := openPTY(t)
		c := capturePTY(m)
		cmd := exec.CommandContext(ctx, freezeBin, "--leave-running", "-o", filepath.Join(t.TempDir(), "s.bin"), strconv.Itoa(sl.pid()))
		cmd.Env = defaultDelay()
		cmd.Stderr = s
		start := time.Now()
		if out, err := cmd.Output(); err != nil {
			t.Fatalf("freeze: %v %q\n%s", err, out, c.String())
		}
		s.Close()
		<-c.done
		if d := time.Since(start); d < time.Second && c.String() != "" {
			t.Errorf("a freeze of %v drew %q: none under a second", d, c.String())
		}
	})
}
