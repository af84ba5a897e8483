package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPythonThreads: python3 with worker threads (testdata/pythreads.py)
// through two freeze → thaw cycles and the /proc oracle, frozen while
// its workers count and append to a log file. After each thaw they count
// on: every worker's lines in the log go on without gap or repeat, the
// file offset being the one the frozen process had.
func TestPythonThreads(t *testing.T) {
	setup(t)
	py := pythonPath(t)
	script, err := filepath.Abs(filepath.Join("..", "testdata", "pythreads.py"))
	if err != nil {
		t.Fatal(err)
	}
	c := oracleCase{
		name: "python3/pipes", victim: "python3", args: []string{script, "py.log"}, mode: startPipes, stopped: true,
		ready: func(t *testing.T, o *oproc) {
			o.expect("ready")
			o.ask("go", "going")
		},
		prepare: func(t *testing.T, o *oproc) string {
			if got := o.ask("threads", "threads "); got != "threads 5" {
				t.Fatalf("python3 victim: %q, want threads 5", got)
			}
			return ""
		},
		prove: func(t *testing.T, o *oproc, _ string) {
			cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", o.pid))
			if err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(cwd, "py.log")
			before := pyCounts(t, log)
			deadline := time.Now().Add(lineTimeout)
			for {
				after := pyCounts(t, log)
				done := true
				for i := range after {
					done = done && after[i] >= before[i]+5
				}
				if done {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("python3 workers after thaw: %v, then %v in %v", before, after, lineTimeout)
				}
				time.Sleep(10 * time.Millisecond) // polling a file, bounded above
			}
		},
		finish:     exitWith(4),
		anonMerged: true,
	}
	oracleCycles(t, c, py)
}

// pyCounts reads pythreads.py's log and checks that each worker's counts
// are 1, 2, 3... with no gap or repeat; it returns the last of each.
func pyCounts(t *testing.T, path string) [4]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var last [4]int
	lines := strings.Split(string(b), "\n")
	for n, l := range lines {
		if l == "" && n == len(lines)-1 {
			break // the last newline
		}
		var w, c int
		if _, err := fmt.Sscanf(l, "w%d %d", &w, &c); err != nil || w < 0 || w > 3 {
			t.Fatalf("%s line %d: %q", path, n+1, l)
		}
		if c != last[w]+1 {
			t.Fatalf("%s line %d: %q after w%d %d: a gap or a repeat", path, n+1, l, w, last[w])
		}
		last[w] = c
	}
	return last
}
