package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestThawLowMapping: the process holds the lowest addresses a process
// may map, where the restorer would look for room first: the restorer
// goes elsewhere and the memory comes back whole.
func TestThawLowMapping(t *testing.T) {
	setup(t)
	p := startProc(t, "lowmap", buildVictim(t, "lowmap"), nil)
	t.Logf("victim: %s", p.expect("ready "))
	sum := p.ask("sum", "sum ")
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(t.TempDir(), "low.bin")
	freezeKill(t, p, img)
	th := thaw(t, img, false)
	if got := th.ask("sum", "sum "); got != sum {
		t.Errorf("low mapping after thaw: %s, want %s", got, sum)
	}
}

// TestThawMissingFile: a file the process had open is gone at thaw: a
// clear error naming it, and nothing left running.
func TestThawMissingFile(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "counter.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "counter", buildVictim(t, "counter"), nil, withStdout(f))
	f.Close()
	waitLogLines(t, logPath, 5, p)
	img := filepath.Join(dir, "counter.bin")
	freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()
	if err := os.Remove(logPath); err != nil {
		t.Fatal(err)
	}
	for _, via := range []bool{false, true} {
		var r toolResult
		if via {
			r = runTool(t, thawBin, img)
		} else {
			r = runTool(t, img)
		}
		requireToolError(t, r, 1, []string{"thaw: "}, logPath, "no such file")
		if _, err := os.Stat(logPath); err == nil {
			t.Errorf("a failed thaw created %s", logPath)
			os.Remove(logPath)
		}
	}
}
