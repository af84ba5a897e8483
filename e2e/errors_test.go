package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var freezePrefix = []string{"freeze: "}

// requireDirEntries fails unless dir holds exactly the named entries: a
// failed freeze leaves neither its output nor a temporary file behind.
func requireDirEntries(tb testing.TB, dir string, want ...string) {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, "/") != strings.Join(want, "/") {
		tb.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

// unusedPid returns a pid no process has.
func unusedPid(tb testing.TB) int {
	tb.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		tb.Fatal(err)
	}
	pidMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		tb.Fatal(err)
	}
	// Pids run from 1 to pid_max-1: pid_max itself never names a process,
	// whereas a free pid below it may be taken by the time freeze looks.
	return pidMax
}

// freezeFails runs freeze with args, which must fail with exit status 1,
// one "freeze: ..." line mentioning the keywords, and nothing left in dir.
func freezeFails(t *testing.T, dir string, args []string, keywords ...string) toolResult {
	t.Helper()
	r := runTool(t, freezeBin, args...)
	requireToolError(t, r, 1, freezePrefix, keywords...)
	if dir != "" {
		requireDirEntries(t, dir)
	}
	t.Logf("%s", r)
	return r
}

// TestFreezeErrors: each failure is one "freeze: ..." line with exit
// status 1, leaves no file behind and the target running as before. (The
// subtest names stay clear of the keywords: they end up in temp paths.)
func TestFreezeErrors(t *testing.T) {
	setup(t)

	t.Run("nopid", func(t *testing.T) {
		dir := t.TempDir()
		freezeFails(t, dir, []string{"-o", filepath.Join(dir, "out.bin"), strconv.Itoa(unusedPid(t))},
			"no such process")
	})

	t.Run("kthread", func(t *testing.T) {
		comm, err := os.ReadFile("/proc/2/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "kthreadd" {
			t.Skipf("pid 2 is not kthreadd here (%q, %v): in a pid namespace?", comm, err)
		}
		dir := t.TempDir()
		freezeFails(t, dir, []string{"-o", filepath.Join(dir, "out.bin"), "2"}, "kernel thread|ptrace")
	})

	t.Run("tracer", func(t *testing.T) {
		dir := t.TempDir()
		p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
		p.expect("ready")
		tr := startProc(t, "tracer", buildVictim(t, "tracer"), []string{strconv.Itoa(p.pid())})
		tr.expect("traced ")
		st, err := procStatus(p.pid())
		if err != nil {
			t.Fatal(err)
		}
		tracer := strconv.Itoa(tr.pid())
		if st["TracerPid"] != tracer {
			t.Fatalf("victim's TracerPid is %q, want the tracer's pid %s", st["TracerPid"], tracer)
		}
		freezeFails(t, dir, []string{"-o", filepath.Join(dir, "out.bin"), strconv.Itoa(p.pid())},
			"already traced", tracer)
		p.ask("still", "got still")
		if st, _ := procStatus(p.pid()); st["TracerPid"] != tracer {
			t.Errorf("after the failed freeze, TracerPid is %q, want %s", st["TracerPid"], tracer)
		}
		tr.kill()
		p.requireUndisturbed()
		p.ask("free", "got free")
	})

	t.Run("exited-main-thread", func(t *testing.T) {
		// The main thread exits alone: the leader is a zombie, the other
		// threads run on (but the waiter on the robust mutex main held,
		// which returns EOWNERDEAD and ends). Refused, left as it was.
		dir := t.TempDir()
		p := startProc(t, "threads", buildVictim(t, "threads"), []string{"exitmain"})
		p.expect("ready")
		deadline := time.Now().Add(lineTimeout)
		for {
			// The leader a zombie and the waiter gone: 8 tasks.
			if st, err := procStatus(p.pid()); err == nil && strings.HasPrefix(st["State"], "Z") && countTasks(t, p.pid()) == 8 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the main thread of %d did not exit: %s", p.pid(), procStateLine(p.pid()))
			}
			time.Sleep(2 * time.Millisecond) // polling /proc, bounded above
		}
		freezeFails(t, dir, []string{"-o", filepath.Join(dir, "out.bin"), strconv.Itoa(p.pid())},
			"main thread has exited while 7 others run on")
		if n := countTasks(t, p.pid()); n != 8 {
			t.Errorf("after the failed freeze: %d threads, want 8", n)
		}
		if st, _ := procStatus(p.pid()); st["TracerPid"] != "0" {
			t.Errorf("after the failed freeze, TracerPid is %q", st["TracerPid"])
		}
	})

	t.Run("nodir", func(t *testing.T) {
		dir := t.TempDir()
		p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
		p.expect("ready")
		out := filepath.Join(dir, "nonexistent-dir", "x.bin")
		freezeFails(t, dir, []string{"-o", out, strconv.Itoa(p.pid())}, out)
		p.requireUndisturbed()
		p.ask("still", "got still")
	})

	t.Run("isdir", func(t *testing.T) {
		dir := t.TempDir()
		p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
		p.expect("ready")
		out := filepath.Join(dir, "taken")
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		freezeFails(t, "", []string{"-o", out, strconv.Itoa(p.pid())}, out)
		requireDirEntries(t, dir, "taken")
		requireDirEntries(t, out)
		p.requireUndisturbed()
		p.ask("still", "got still")
	})

	// Sockets freeze refuses (sockfd unix is carried: TestOracle).
	for _, mode := range []string{"inet", "netlink"} {
		t.Run("sock-"+mode, func(t *testing.T) {
			dir := t.TempDir()
			p := startProc(t, "sockfd", buildVictim(t, "sockfd"), []string{mode})
			p.expect("ready")
			p.ask("ping", "pong 1")
			waitInSyscall(t, p, sysRead)
			keywords := []string{"fd 3 is a netlink socket (socket:[", "): unsupported"}
			if mode == "inet" {
				// fds 3 and 4, a TCP connection, are put in repair
				// mode (as root) before fd 5 is refused; they must be
				// given back working.
				keywords = []string{"fd 5", "1 connection(s) waiting to be accepted"}
				if os.Geteuid() != 0 {
					keywords = []string{"fd 3", "CAP_NET_ADMIN"}
				}
			}
			freezeFails(t, dir, []string{"-o", filepath.Join(dir, "out.bin"), strconv.Itoa(p.pid())}, keywords...)
			p.requireUndisturbed()
			if got := p.ask("ping", "pong "); got != "pong 2" {
				t.Errorf("after the failed freeze: %q, want \"pong 2\"", got)
			}
			if mode == "inet" {
				if got := p.ask("talk", "talk "); got != "talk ab" {
					t.Errorf("the TCP connection after the failed freeze: %q, want \"talk ab\"", got)
				}
			}
		})
	}

	// Anonymous-inode files cryo cannot carry, and an inotify instance
	// with events queued: one line naming fd 5, what it is and why.
	for _, tc := range []struct {
		name, mode string
		keywords   []string
	}{
		{"anon-ring", "io_uring", []string{"fd 5 is an io_uring instance (anon_inode:[io_uring]): unsupported"}},
		{"anon-uffd", "userfaultfd", []string{"fd 5 is a userfaultfd (anon_inode:[userfaultfd]): unsupported"}},
		{"anon-pid", "pidfd", []string{"fd 5 is a pidfd of process ", "(anon_inode:[pidfd]): unsupported"}},
		{"anon-fan", "fanotify", []string{"fd 5 is a fanotify instance (anon_inode:[fanotify]): unsupported"}},
		{"anon-secret", "secretmem", []string{"fd 5 is a memfd_secret area (/secretmem (deleted)): unsupported"}},
		{"anon-queue", "inotify-queued", []string{"fd 5 is an inotify instance (anon_inode:inotify): ", "bytes of events not read yet"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mode == "fanotify" && os.Geteuid() != 0 {
				skipOrFail(t, "fanotify_init needs CAP_SYS_ADMIN")
			}
			dir := t.TempDir()
			p := startProc(t, "anonfd", buildVictim(t, "anonfd"), []string{tc.mode}, inDir(t.TempDir()))
			if l := p.expect(""); l != "ready" {
				// memfd_secret: Linux 5.14, and off by default before 6.5
				// (secretmem.enable)
				if tc.mode == "secretmem" && strings.Contains(l, "Function not implemented") {
					skipOrFail(t, "%s", l)
				}
				t.Fatalf("anonfd %s: %s", tc.mode, l)
			}
			p.ask("ping", "pong 1")
			waitInSyscall(t, p, sysRead)
			freezeFails(t, dir, []string{"-o", filepath.Join(dir, "out.bin"), strconv.Itoa(p.pid())}, tc.keywords...)
			p.requireUndisturbed()
			if got := p.ask("ping", "pong "); got != "pong 2" {
				t.Errorf("after the failed freeze: %q, want \"pong 2\"", got)
			}
		})
	}
}

// TestThawErrors: damaged images are refused with one clear line and
// nothing left running, both by "thaw OUT" and by running OUT directly.
func TestThawErrors(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	good, _ := frozenPipeVictim(t, dir)
	im := readImageFile(t, good)
	mid := int(im.off + im.length/2)

	for i, tc := range []struct {
		name     string
		damage   func(b []byte) []byte
		keywords []string
	}{
		{"cut", func(b []byte) []byte { return b[:mid] }, []string{"truncated"}},
		{"flip", func(b []byte) []byte { b[mid] ^= 0x40; return b }, []string{"checksum|corrupt"}},
		{"flip-header", func(b []byte) []byte { b[im.off+20] ^= 0x01; return b }, []string{"checksum|corrupt"}},
		{"other-arch", func(b []byte) []byte {
			c := *im
			c.data = b
			c.setArch(archOther)
			return c.data
		}, []string{archOtherName, archNativeName}},
		{"plain-elf", func([]byte) []byte {
			b, err := os.ReadFile(buildVictim(t, "pipe"))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Neither the file's name nor its directory may contain a
			// keyword the message is checked for: thaw names the file.
			bad := filepath.Join(dir, fmt.Sprintf("damaged%d.bin", i))
			if err := os.WriteFile(bad, tc.damage(append([]byte(nil), im.data...)), 0o700); err != nil {
				t.Fatal(err)
			}
			t.Run("thaw", func(t *testing.T) {
				r := runTool(t, thawBin, bad)
				requireToolError(t, r, 0, []string{"thaw: "}, tc.keywords...)
				t.Logf("%s", r)
			})
			t.Run("direct", func(t *testing.T) {
				if tc.name == "plain-elf" {
					t.Skip("a plain program runs fine by itself")
				}
				r := runTool(t, bad)
				requireToolError(t, r, 0, []string{"thaw: ", filepath.Base(bad) + ": "}, tc.keywords...)
				t.Logf("%s", r)
			})
			checkNoStrays(t)
		})
	}

	t.Run("nofile", func(t *testing.T) {
		r := runTool(t, thawBin, filepath.Join(dir, "absent.bin"))
		requireToolError(t, r, 0, []string{"thaw: "})
		t.Logf("%s", r)
	})

	// The undamaged image still works.
	th := thaw(t, good, true)
	th.ask("intact", "got intact")
}
