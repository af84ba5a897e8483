package e2e

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestZombieChildren: a process frozen with two unreaped children, one
// exited with status 42 and one killed by SIGTERM, finds both after the
// thaw with those statuses (docs/state.md: zombie children), and then
// ECHILD; twice, the thawed copy being frozen again before it reaps.
func TestZombieChildren(t *testing.T) {
	setup(t)
	p := startProc(t, "zombies", buildVictim(t, "zombies"), nil)
	var a, b int
	if _, err := fmt.Sscanf(p.expect("ready "), "ready %d %d", &a, &b); err != nil {
		t.Fatalf("zombies victim: %v", err)
	}
	waitInSyscall(t, p, sysRead)
	cur := p
	for cycle := 1; cycle <= 2; cycle++ {
		img := filepath.Join(t.TempDir(), fmt.Sprintf("zombies%d.bin", cycle))
		freezeKill(t, cur, img)
		cur = thaw(t, img, false)
		waitInSyscall(t, cur, sysRead)
	}
	cur.send("reap")
	var got []string
	pids := map[string]string{}
	for i := 0; i < 2; i++ {
		line := cur.expect("reaped ")
		f := strings.Fields(line) // reaped PID exit|signal N
		if len(f) != 4 {
			t.Fatalf("reap: %q", line)
		}
		got = append(got, f[2]+" "+f[3])
		pids[f[2]+" "+f[3]] = f[1]
	}
	sort.Strings(got)
	if want := []string{"exit 42", "signal 15"}; strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("the thawed process reaped %q, want %q", got, want)
	}
	if done := cur.expect("done "); done != "done ECHILD" {
		t.Errorf("after the zombies: %q, want done ECHILD", done)
	}
	// Their pids come back when the thaw may choose them and they are
	// free (the original's zombies, reparented, may still hold them).
	t.Logf("zombie pids: %d -> %s, %d -> %s", a, pids["exit 42"], b, pids["signal 15"])
	cur.send("exit 0")
	cur.waitExit()
}
