package e2e

import (
	"os"
	"os/exec"
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

// TestCredsThawLacksCapability: root thawing a process that held a
// capability root here does not have (setpriv drops CAP_NET_RAW from the
// thaw's bounding set, as a container's root lacks some) is refused
// before anything is rebuilt, in one line naming the capability, and the
// same image then thaws where root has it.
func TestCredsThawLacksCapability(t *testing.T) {
	setup(t)
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		skipOrFail(t, "setpriv (util-linux) not installed: %v", err)
	}
	dir := t.TempDir()
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil, inDir(dir))
	p.expect("ready")
	st, err := procStatus(p.pid())
	if err != nil {
		t.Fatal(err)
	}
	if prm, _ := strconv.ParseUint(st["CapPrm"], 16, 64); prm&(1<<13) == 0 {
		skipOrFail(t, "root here lacks CAP_NET_RAW (CapPrm %s)", st["CapPrm"])
	}
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(dir, "pipe.bin")
	freezeKill(t, p, img)
	r := runTool(t, setpriv, "--bounding-set=-net_raw", img)
	if r.code == 0 || !strings.Contains(r.stderr, "CAP_NET_RAW") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("thaw without CAP_NET_RAW: want one line naming it, got\n%s", r)
	}
	th := thaw(t, img, false)
	th.ask("one", "got one")
	th.send("exit 0")
	th.waitExit()
}
