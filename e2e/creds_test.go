package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// credsWant is what the creds victim reports once it has dropped its
// privileges the way a daemon does (testdata/creds.c).
const credsWant = "creds uid=1000/1000/0 gid=100/100/100 groups=1,2,3"

// TestCredsRestoredAsRoot: a process that changed its uids, gids, groups
// and capabilities comes back with exactly those when root thaws it, and
// again after a second freeze of the thawed copy.
func TestCredsRestoredAsRoot(t *testing.T) {
	dir, bin := privDir(t, "creds")
	p := startProc(t, "creds", bin["creds"], nil, inDir(dir))
	p.expect("ready")
	want := p.ask("creds", "creds ")
	if !strings.HasPrefix(want, credsWant) || !strings.Contains(want, "keepcaps=1") {
		t.Fatalf("victim before freeze: %q, want %q... keepcaps=1", want, credsWant)
	}
	requireLockedFuture(t, p)
	waitInSyscall(t, p, sysRead)
	cur := p
	for cycle := 1; cycle <= 2; cycle++ {
		img := filepath.Join(dir, "creds"+strconv.Itoa(cycle)+".bin")
		freezeKill(t, cur, img)
		cur = thaw(t, img, false)
		if got := cur.ask("creds", "creds "); got != want {
			t.Errorf("cycle %d: after thaw\n got %q\nwant %q", cycle, got, want)
		}
		requireLockedFuture(t, cur)
		waitInSyscall(t, cur, sysRead)
	}
	cur.send("exit 0")
	cur.waitExit()
}

// TestCredsThawedByNobody: the same image thawed by nobody runs as nobody,
// with no capabilities: an image carries memory, not privilege.
func TestCredsThawedByNobody(t *testing.T) {
	dir, bin := privDir(t, "creds")
	home := userDir(t, dir)
	p := startProc(t, "creds", bin["creds"], nil, inDir(dir))
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(home, "creds.bin")
	freezeKill(t, p, img)
	if err := os.Chown(img, int(nobody.Uid), int(nobody.Gid)); err != nil {
		t.Fatal(err)
	}
	th := thaw(t, img, false, asUser(nobody))
	got := th.ask("creds", "creds ")
	if want := "creds uid=65534/65534/65534 gid=65534/65534/65534 groups= eff=0 prm=0 inh=0 amb=0"; !strings.HasPrefix(got, want) {
		t.Errorf("thawed by nobody:\n got %q\nwant %q...", got, want)
	}
	requireCreds(t, th.pid(), nobody.Uid, nobody.Gid)
}

// requireLockedFuture checks that mlockall(MCL_FUTURE) is in force in
// the creds victim: a page it maps now is locked.
func requireLockedFuture(t *testing.T, p *proc) {
	t.Helper()
	if got := p.ask("newmap", "newmap "); got != "newmap locked=1" {
		t.Errorf("pid %d: a new mapping is not locked (%q): mlockall(MCL_FUTURE) was lost", p.pid(), got)
	}
}
