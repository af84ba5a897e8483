package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Privilege: an ordinary user freezes and thaws their own processes; a
// thaw never gives the restored process more than the thawing user has;
// a process more privileged than the caller is refused.

var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// privDir makes a directory an unprivileged user can use and copies the
// tools and the named victims into it; it returns the directory and the
// copies' paths by name.
func privDir(t *testing.T, victims ...string) (string, map[string]string) {
	t.Helper()
	setup(t)
	if os.Geteuid() != 0 {
		skipOrFail(t, "dropping privileges needs root")
	}
	dir, err := os.MkdirTemp("", "cryo-priv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	paths := map[string]string{}
	copyExe := func(name, src string) {
		dst := filepath.Join(dir, name)
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		paths[name] = dst
	}
	copyExe("freeze", freezeBin)
	copyExe("thaw", thawBin)
	for _, v := range victims {
		copyExe(v, buildVictim(t, v))
	}
	return dir, paths
}

// userDir is a directory owned by nobody inside dir.
func userDir(t *testing.T, dir string) string {
	t.Helper()
	d := filepath.Join(dir, "nobody")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, int(nobody.Uid), int(nobody.Gid)); err != nil {
		t.Fatal(err)
	}
	return d
}

// requireCreds checks the uid, gid and capabilities of a live process.
func requireCreds(t *testing.T, pid int, uid, gid uint32) {
	t.Helper()
	st, err := procStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	u, g := strconv.Itoa(int(uid)), strconv.Itoa(int(gid))
	if f := strings.Fields(st["Uid"]); len(f) != 4 || f[0] != u || f[1] != u || f[2] != u || f[3] != u {
		t.Errorf("pid %d: Uid %q, want %s everywhere", pid, st["Uid"], u)
	}
	if f := strings.Fields(st["Gid"]); len(f) != 4 || f[0] != g || f[1] != g || f[2] != g || f[3] != g {
		t.Errorf("pid %d: Gid %q, want %s everywhere", pid, st["Gid"], g)
	}
	for _, k := range []string{"CapEff", "CapPrm"} {
		if strings.Trim(st[k], "0") != "" {
			t.Errorf("pid %d: %s %s, want none", pid, k, st[k])
		}
	}
}

// TestUnprivilegedFreezeThaw: nobody freezes and thaws nobody's process.
func TestUnprivilegedFreezeThaw(t *testing.T) {
	dir, bin := privDir(t, "pipe")
	home := userDir(t, dir)
	p := startProc(t, "pipe", bin["pipe"], nil, asUser(nobody), inDir(home))
	p.expect("ready")
	p.ask("one", "got one")
	waitInSyscall(t, p, sysRead)

	img := filepath.Join(home, "pipe.bin")
	r := runToolWith(t, toolEnv{cred: nobody}, bin["freeze"], "-o", img, strconv.Itoa(p.pid()))
	if r.code != 0 {
		t.Fatalf("freeze as nobody failed:\n%s", r)
	}
	p.waitExit()
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody.Uid || fi.Mode().Perm() != 0o700 {
		t.Errorf("image: owner %d mode %v, want %d and -rwx------", st.Uid, fi.Mode(), nobody.Uid)
	}
	th := thaw(t, img, false, asUser(nobody))
	th.ask("two", "got two")
	requireCreds(t, th.pid(), nobody.Uid, nobody.Gid)
}

// TestThawAsOtherUser: root's process, frozen by root and thawed by
// nobody, runs as nobody: the image carries memory, not privilege.
func TestThawAsOtherUser(t *testing.T) {
	dir, bin := privDir(t, "pipe")
	home := userDir(t, dir)
	p := startProc(t, "pipe", bin["pipe"], nil, inDir(dir))
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(home, "root.bin")
	freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()
	if err := os.Chown(img, int(nobody.Uid), int(nobody.Gid)); err != nil {
		t.Fatal(err)
	}
	th := thaw(t, img, false, asUser(nobody))
	th.ask("hello", "got hello")
	requireCreds(t, th.pid(), nobody.Uid, nobody.Gid)
}

// TestRefuseMorePrivileged: nobody may not freeze root's process nor a
// setuid-root one; the target goes on untouched.
func TestRefuseMorePrivileged(t *testing.T) {
	dir, bin := privDir(t, "pipe")
	home := userDir(t, dir)
	suid := filepath.Join(dir, "pipe-suid")
	if err := os.Link(bin["pipe"], suid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		cred *syscall.Credential
	}{
		{"root-process", bin["pipe"], nil},
		{"setuid-root", suid, nobody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProc(t, "pipe", tc.path, nil, asUser(tc.cred), inDir(dir))
			p.expect("ready")
			waitInSyscall(t, p, sysRead)
			before := procSnapshot(t, p.pid())
			st, _ := procStatus(p.pid())
			t.Logf("target Uid %s", st["Uid"])
			out := filepath.Join(home, tc.name+".bin")
			r := runToolWith(t, toolEnv{cred: nobody}, bin["freeze"], "-o", out, strconv.Itoa(p.pid()))
			requireToolError(t, r, 1, []string{"freeze: "}, "only root")
			if _, err := os.Stat(out); err == nil {
				t.Errorf("refused freeze left %s", out)
			}
			p.requireUndisturbed()
			if after := procSnapshot(t, p.pid()); after != before {
				t.Errorf("target changed:\n--- before\n%s--- after\n%s", before, after)
			}
			p.ask("still", "got still")
		})
	}
}

// TestUnprivilegedShm: nobody freezes and thaws the shm victim. Its
// memfd and unlinked file mapped with no fd left cannot be opened
// through /proc/PID/map_files without privilege: freeze carries them as
// the mappings show them, and says so.
func TestUnprivilegedShm(t *testing.T) {
	dir, bin := privDir(t, "shm")
	home := userDir(t, dir)
	p := startProc(t, "shm", bin["shm"], nil, asUser(nobody), inDir(home))
	p.expect("ready")
	if got := p.ask("check", "check "); got != "check ok" {
		t.Fatalf("shm before the freeze: %s", got)
	}
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(home, "shm.bin")
	r := runToolWith(t, toolEnv{cred: nobody}, bin["freeze"], "-o", img, strconv.Itoa(p.pid()))
	if r.code != 0 {
		t.Fatalf("freeze as nobody failed:\n%s", r)
	}
	for _, want := range []string{"/memfd:orphan (deleted), which no fd holds, is carried as the mappings show it", "shm.gone (deleted), which no fd holds"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("freeze did not say %q:\n%s", want, r)
		}
	}
	p.waitExit()
	th := thaw(t, img, false, asUser(nobody), inDir(home))
	if got := th.ask("check", "check "); got != "check ok" {
		t.Errorf("shm after an unprivileged thaw: %s", got)
	}
	th.send("exit 0")
	th.waitExit()
}

// TestUnprivilegedEvents: nobody freezes and thaws nobody's event fds.
// Without CAP_DAC_READ_SEARCH freeze finds the inotify watches' paths
// below the process's working directory (files/inotify.go); the timer
// ticks and the epoll items need no privilege.
func TestUnprivilegedEvents(t *testing.T) {
	dir, bin := privDir(t, "events")
	home := userDir(t, dir)
	p := startProc(t, "events", bin["events"], nil, asUser(nobody), inDir(home))
	p.expect("ready")
	before := p.ask("check", "check ")
	if !strings.HasPrefix(before, "check ok ") {
		t.Fatal(before)
	}
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(home, "events.bin")
	r := runToolWith(t, toolEnv{cred: nobody}, bin["freeze"], "-o", img, strconv.Itoa(p.pid()))
	if r.code != 0 {
		t.Fatalf("freeze as nobody failed:\n%s", r)
	}
	p.waitExit()
	th := thaw(t, img, false, asUser(nobody), inDir(home))
	if got := th.ask("check", "check "); got != before {
		t.Errorf("event fds after an unprivileged freeze and thaw:\n  before %s\n  after  %s", before, got)
	}
	requireCreds(t, th.pid(), nobody.Uid, nobody.Gid)
}
