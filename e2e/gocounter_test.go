package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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
