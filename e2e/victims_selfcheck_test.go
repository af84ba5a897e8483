package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestVictims checks the victims and this harness without freeze or thaw:
// each victim behaves as the freeze/thaw tests expect when nothing happens
// to it. It needs only gcc.
func TestVictims(t *testing.T) {
	t.Cleanup(func() { checkNoStrays(t) })

	t.Run("counter", func(t *testing.T) {
		for name, flags := range map[string][]string{
			"dynamic": flagsDynamic, "static": flagsStatic, "pie": flagsPIE, "nopie": flagsNoPIE,
		} {
			t.Run(name, func(t *testing.T) {
				var bin string
				if name == "static" {
					bin = buildStaticVictim(t, "counter")
				} else {
					bin = buildVictim(t, "counter", flags...)
				}
				logPath := filepath.Join(t.TempDir(), "counter.log")
				f, err := os.Create(logPath)
				if err != nil {
					t.Fatal(err)
				}
				p := startProc(t, "counter", bin, nil, withStdout(f))
				f.Close()
				waitLogLines(t, logPath, 20, p)
				p.kill()
				countLines(t, logPath)
			})
		}
	})

	t.Run("counter-demo", func(t *testing.T) {
		buildVictim(t, "counter-demo")
	})

	t.Run("memcheck", func(t *testing.T) {
		p := startProc(t, "memcheck", buildVictim(t, "memcheck"), nil)
		p.expect("ready")
		a := p.ask("sum", "sum ")
		if len(strings.Fields(a)) != 6 {
			t.Errorf("sum answer %q should have 5 hashes", a)
		}
		if b := p.ask("sum", "sum "); a != b {
			t.Errorf("sum changed: %q then %q", a, b)
		}
		p.ask("inc", "inc 42")
		p.ask("inc", "inc 43")
		p.ask("pid", "pid "+strconv.Itoa(p.pid()))
		st, _ := procStatus(p.pid())
		t.Logf("memcheck: VmRSS %s, VmSize %s", st["VmRSS"], st["VmSize"])
		p.send("exit 7")
		if st := p.waitExit(); st.ExitCode() != 7 {
			t.Errorf("memcheck: %v, want exit status 7", st)
		}
	})

	t.Run("regs", func(t *testing.T) {
		requireAMD64(t)
		bin := buildVictim(t, "regs")
		for mode := 0; mode <= 3; mode++ {
			t.Run(fmt.Sprint("mode", mode), func(t *testing.T) {
				p := startProc(t, "regs", bin, []string{strconv.Itoa(mode)})
				ready := p.expect("ready mode=")
				if !strings.HasPrefix(ready, fmt.Sprintf("ready mode=%d ", mode)) {
					t.Skipf("CPU does not support mode %d: %q", mode, ready)
				}
				waitInSyscall(t, p, sysRead)
				p.stdin.Write([]byte("x"))
				p.expect("regs ok")
				if st := p.waitExit(); st.ExitCode() != 0 {
					t.Errorf("regs: %v", st)
				}
			})
		}
		p := startProc(t, "regs", bin, nil)
		p.expect("ready")
		p.stdin.Write([]byte("y"))
		p.expect("regs bad data=")
		if st := p.waitExit(); st.ExitCode() != 1 {
			t.Errorf("regs with a wrong byte: %v, want exit status 1", st)
		}
	})

	t.Run("sleeper", func(t *testing.T) {
		bin := buildVictim(t, "sleeper")
		for _, tc := range []struct {
			mode string
			nrs  []int64
		}{
			{"clock", []int64{sysClockNanosleep}},
			{"sleep", []int64{sysClockNanosleep, sysNanosleep}},
			{"nanosleep", []int64{sysNanosleep}},
		} {
			t.Run(tc.mode, func(t *testing.T) {
				p := startProc(t, "sleeper", bin, []string{tc.mode, "1"})
				p.expect("sleeping " + tc.mode)
				waitInSyscall(t, p, tc.nrs...)
				if got := p.expect("woke "); got != "woke 0 0" {
					t.Errorf("%q, want \"woke 0 0\"", got)
				}
				p.ask("ping", "pong 1")
				p.ask("ping", "pong 2")
			})
		}
	})

	t.Run("pipe", func(t *testing.T) {
		p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
		p.expect("ready")
		p.ask("one", "got one")
		p.stdin.Write([]byte("hel"))
		p.expect("buffered 3")
		waitInSyscall(t, p, sysRead)
		p.stdin.Write([]byte("lo\n"))
		p.expect("got hello")
		p.stdin.Close()
		if st := p.waitExit(); st.ExitCode() != 0 {
			t.Errorf("pipe at EOF: %v", st)
		}
	})

	t.Run("sockfd", func(t *testing.T) {
		bin := buildVictim(t, "sockfd")
		for _, mode := range []string{"unix", "inet", "netlink"} {
			t.Run(mode, func(t *testing.T) {
				p := startProc(t, "sockfd", bin, []string{mode})
				p.expect("ready")
				link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", p.pid()))
				if err != nil || !strings.HasPrefix(link, "socket:") {
					t.Errorf("fd 3 is %q (%v), want a socket", link, err)
				}
				p.ask("ping", "pong 1")
			})
		}
	})

	t.Run("unixsock", func(t *testing.T) {
		dir := t.TempDir()
		name := fmt.Sprintf("cryo-e2e-selfcheck-%d", os.Getpid())
		p := startProc(t, "unixsock", buildVictim(t, "unixsock"), []string{dir, name})
		p.expect("ready")
		p.ask("check", "check ok")
		p.ask("check", "check ok") // the queues as they were
		unixsockServe(t, p, dir, name)
		p.ask("recvdg", "recvdg none")
		p.ask("ext", "ext none")
	})

	t.Run("tracer", func(t *testing.T) {
		p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
		p.expect("ready")
		tr := startProc(t, "tracer", buildVictim(t, "tracer"), []string{strconv.Itoa(p.pid())})
		tr.expect("traced " + strconv.Itoa(tr.pid()))
		if st, _ := procStatus(p.pid()); st["TracerPid"] != strconv.Itoa(tr.pid()) {
			t.Errorf("TracerPid %q, want %d", st["TracerPid"], tr.pid())
		}
		p.ask("traced", "got traced")
		tr.kill()
		p.requireUndisturbed()
		p.ask("free", "got free")
	})

	t.Run("big", func(t *testing.T) {
		p := startProc(t, "big", buildVictim(t, "big"), nil)
		p.expect("ready")
		p.ask("ping", "pong")
		st, _ := procStatus(p.pid())
		var rssKB int
		fmt.Sscanf(st["VmRSS"], "%d", &rssKB)
		if rssKB < 256<<10 {
			t.Errorf("big: VmRSS %s, want at least 256 MiB present", st["VmRSS"])
		}
	})
}
