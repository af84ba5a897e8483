package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// countLines reads the counter's log: the complete lines, which must be
// "0", "1", ... without gap or repeat (a trailing partial line is ignored).
func countLines(tb testing.TB, path string) int {
	tb.Helper()
	n, err := checkCounterLog(path)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func checkCounterLog(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		b = nil
	}
	n := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		line := string(b[:i])
		b = b[i+1:]
		if line != strconv.Itoa(n) {
			return n, fmt.Errorf("%s: line %d is %q, want %q (the count must continue without gap or repeat)\n%s",
				path, n+1, line, strconv.Itoa(n), logExcerpt(path, n))
		}
		n++
	}
	return n, nil
}

// logExcerpt shows the log's lines around line n.
func logExcerpt(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(b, []byte("\n"))
	lo, hi := max(0, n-5), min(len(lines), n+5)
	var s string
	for i := lo; i < hi; i++ {
		s += fmt.Sprintf("\t%5d: %q\n", i+1, lines[i])
	}
	return s
}

// waitLogLines polls the log (a regular file: there is no pipe to block on)
// until it holds at least n consecutive lines.
func waitLogLines(tb testing.TB, path string, n int, who *proc) int {
	tb.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		got, err := checkCounterLog(path)
		if err != nil {
			tb.Fatal(err)
		}
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %d lines after %v, want %d\n%s", path, got, lineTimeout, n, who.diag())
		}
		time.Sleep(10 * time.Millisecond) // polling a file, bounded above
	}
}

// TestCounterFile: a process writing to a regular file is frozen (and
// killed) and thawed; the thawed process reopens the file at its offset and
// the count continues exactly where it stopped.
func TestCounterFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(testing.TB) string
	}{
		{"dynamic", func(tb testing.TB) string { return buildVictim(tb, "counter", flagsDynamic...) }},
		{"static", func(tb testing.TB) string { return buildStaticVictim(tb, "counter") }},
		{"pie", func(tb testing.TB) string { return buildVictim(tb, "counter", flagsPIE...) }},
		{"nopie", func(tb testing.TB) string { return buildVictim(tb, "counter", flagsNoPIE...) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setup(t)
			testCounterFile(t, tc.build(t))
		})
	}
}

func testCounterFile(t *testing.T, bin string) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "counter.log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "counter", bin, nil, withStdout(f))
	f.Close()

	waitLogLines(t, logPath, 20, p)
	img := filepath.Join(dir, "counter.bin")
	freeze(t, strconv.Itoa(p.pid()), "-o", img) // the "PID -o OUT" order
	p.waitExit()
	atFreeze := countLines(t, logPath)
	t.Logf("%d lines at freeze", atFreeze)

	// The thawed process's stdout is a pipe of ours, but its fd 1 must be
	// the log again, reopened at the offset it had.
	th := thaw(t, img, false)
	got := waitLogLines(t, logPath, atFreeze+40, th)
	th.kill()
	final := countLines(t, logPath)
	t.Logf("%d lines after thaw (%d when 40 more were seen)", final, got)
	if th.out != nil {
		if line, ok := th.out.nextLine(0); ok {
			t.Errorf("the thawed counter wrote %q to the thaw's stdout instead of the log", line)
		}
	}
}
