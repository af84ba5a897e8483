package e2e

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cryo-project/cryo/image"
)

// vdsoOf returns the address of pid's [vdso] and what is mapped at addr
// (its maps line), "" when nothing.
func vdsoOf(t *testing.T, pid int, addr uint64) (vdso uint64, at string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		lo, hi, _ := strings.Cut(f[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		end, _ := strconv.ParseUint(hi, 16, 64)
		if len(f) == 6 && f[5] == "[vdso]" {
			vdso = start
		}
		if addr >= start && addr < end {
			at = line
		}
	}
	return vdso, at
}

// TestVDSOProxy: the vdso proxy of a thaw on another kernel
// (restore/vdso.go), forced on this one with CRYO_THAW_VDSO=proxy: the
// kernel's vdso goes elsewhere, a copy of the frozen one whose entry
// points jump into it stays at the frozen address. A glibc program that
// reads the clocks in a tight loop (frozen inside the vdso: freeze steps
// it out) and a Go program (its runtime's own vdso table) go on; a
// second freeze and thaw of the proxied process works too.
func TestVDSOProxy(t *testing.T) {
	setup(t)
	tickLine := regexp.MustCompile(`^tick (\d+) calls (\d+) back (\d+) real`)
	ticks := func(p *proc, n int) int {
		t.Helper()
		last := 0
		for i := 0; i < n; i++ {
			line := p.expect("tick ")
			m := tickLine.FindStringSubmatch(line)
			if m == nil || m[3] != "0" {
				t.Fatalf("vdsoclock: %q\n%s", line, p.diag())
			}
			tick, _ := strconv.Atoi(m[1])
			if last != 0 && tick != last+1 {
				t.Fatalf("tick %d after %d\n%s", tick, last, p.diag())
			}
			last = tick
		}
		return last
	}
	for _, flags := range [][]string{flagsDynamic, flagsStatic} {
		t.Run("vdsoclock"+strings.Join(flags, ""), func(t *testing.T) {
			p := startProc(t, "vdsoclock", buildVictim(t, "vdsoclock", flags...), nil)
			last := ticks(p, 3)
			img := filepath.Join(t.TempDir(), "vdsoclock.bin")
			freezeKill(t, p, img)
			// The ticks the original wrote before it was killed.
			for {
				line, ok := p.out.nextLine(lineTimeout)
				if !ok {
					break
				}
				if m := tickLine.FindStringSubmatch(line); m != nil {
					last, _ = strconv.Atoi(m[1])
				}
			}
			var frozenVDSO uint64
			for _, v := range metaOf(t, img).VMAs {
				if v.Kind == image.VMAVDSO {
					frozenVDSO = v.Start
				}
			}
			for cycle := 1; cycle <= 2; cycle++ {
				th := thaw(t, img, true, withEnv("CRYO_THAW_VDSO=proxy"))
				line := th.expect("tick ")
				m := tickLine.FindStringSubmatch(line)
				if m == nil || m[1] != strconv.Itoa(last+1) {
					t.Fatalf("cycle %d: first line %q, want tick %d\n%s", cycle, line, last+1, th.diag())
				}
				last = ticks(th, 5) // through the proxy
				vdso, at := vdsoOf(t, th.pid(), frozenVDSO)
				if vdso == frozenVDSO || !strings.Contains(at, " r-xp ") || strings.Contains(at, "[vdso]") {
					t.Fatalf("cycle %d: [vdso] at %#x, at the frozen vdso's %#x: %q; want the proxy (anonymous, r-x) there", cycle, vdso, frozenVDSO, at)
				}
				t.Logf("cycle %d: proxy at %#x, [vdso] at %#x", cycle, frozenVDSO, vdso)
				img = filepath.Join(t.TempDir(), "again.bin")
				freezeKill(t, th, img)
				for {
					line, ok := th.out.nextLine(lineTimeout)
					if !ok {
						break
					}
					if m := tickLine.FindStringSubmatch(line); m != nil {
						last, _ = strconv.Atoi(m[1])
					}
				}
			}
		})
	}
	// A process frozen in a job-control stop is not stepped (it stays
	// as it was): a thread stopped inside the vdso is refused by a
	// proxying thaw, by name; one stopped outside thaws and goes on.
	t.Run("stopped", func(t *testing.T) {
		for try := 0; try < 3; try++ {
			p := startProc(t, "vdsoclock", buildVictim(t, "vdsoclock", flagsStatic...), nil)
			p.expect("tick ")
			if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			waitStopped(t, p.pid())
			img := filepath.Join(t.TempDir(), "stopped.bin")
			freezeKill(t, p, img)
			th := thaw(t, img, true, withEnv("CRYO_THAW_VDSO=proxy"))
			deadline := time.Now().Add(lineTimeout)
			for !th.exited() && !strings.HasPrefix(procStateLine(th.pid()), "State T") {
				if time.Now().After(deadline) {
					t.Fatalf("the thaw neither stopped nor ended\n%s", th.diag())
				}
				time.Sleep(5 * time.Millisecond) // polling /proc, bounded above
			}
			if th.exited() {
				if st := th.waitExit(); st.ExitCode() != 1 || !strings.Contains(th.errs.text(), "frozen inside the vdso") {
					t.Fatalf("try %d: the thaw ended with %v\n%s", try, st, th.diag())
				}
				t.Logf("try %d: refused: %s", try, strings.TrimSpace(th.errs.text()))
				continue
			}
			if err := th.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			ticks(th, 3)
			t.Logf("try %d: stopped outside the vdso, thawed", try)
		}
	})
	// The Go program draws random bytes before the freeze (Go 1.24+ on
	// Linux 6.11+: through the vdso's getrandom, its state in a
	// MAP_DROPPABLE mapping), and after a thaw whose kernel "lacks"
	// getrandom: the proxy's getrandom is then the system call.
	t.Run("gocounter", func(t *testing.T) {
		p := startProc(t, "gocounter", buildGoVictim(t, "gocounter"), nil)
		p.expect("ready")
		p.ask("inc", "count 1")
		r0 := p.ask("rand", "rand ")
		smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", p.pid()))
		if err != nil {
			t.Fatal(err)
		}
		droppable := regexp.MustCompile(`(?m)^VmFlags:.* dp\b`).Match(smaps)
		img := filepath.Join(t.TempDir(), "gocounter.bin")
		freezeKill(t, p, img)
		meta := metaOf(t, img)
		th := thaw(t, img, true, withEnv("CRYO_THAW_VDSO=proxy:-getrandom"))
		th.ask("inc", "count 2")
		r1, r2 := th.ask("rand", "rand "), th.ask("rand", "rand ")
		if r1 == r2 || r1 == r0 || len(r1) != len("rand ")+32 {
			t.Fatalf("random bytes before the freeze %q, after the thaw %q and %q", r0, r1, r2)
		}
		// The proxy's getrandom is the system call.
		var frozenVDSO uint64
		for _, v := range meta.VMAs {
			if v.Kind == image.VMAVDSO {
				frozenVDSO = v.Start
			}
		}
		if off, ok := vdsoSymbol(t, meta.VDSO, "__vdso_getrandom"); ok && runtime.GOARCH == "amd64" {
			code := make([]byte, 8)
			mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", th.pid()))
			if err != nil {
				t.Fatal(err)
			}
			_, err = mem.ReadAt(code, int64(frozenVDSO+off))
			mem.Close()
			if err != nil {
				t.Fatal(err)
			}
			if want := []byte{0xb8, 0x3e, 0x01, 0, 0, 0x0f, 0x05, 0xc3}; !bytes.Equal(code, want) {
				t.Fatalf("the proxy's getrandom: % x, want % x (mov eax, 318; syscall; ret)", code, want)
			}
		}
		t.Logf("a MAP_DROPPABLE mapping before the freeze: %v", droppable)
		gc := func() int {
			n, _ := strconv.Atoi(strings.TrimPrefix(th.ask("gc", "gc "), "gc "))
			return n
		}
		before := gc()
		deadline := time.Now().Add(lineTimeout)
		for gc() <= before+2 {
			if time.Now().After(deadline) {
				t.Fatalf("the GC did not run after the thaw\n%s", th.diag())
			}
			time.Sleep(10 * time.Millisecond) // polling the victim, bounded above
		}
		th.ask("inc", "count 3")
		th.send("exit 3")
		if st := th.waitExit(); st.ExitCode() != 3 {
			t.Fatalf("gocounter exited with %v, want 3", st)
		}
	})
}

// vdsoSymbol is the offset of name in a vdso image.
func vdsoSymbol(t *testing.T, vdso []byte, name string) (uint64, bool) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(vdso))
	if err != nil {
		t.Fatalf("the image's vdso: %v", err)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatalf("the image's vdso: %v", err)
	}
	for _, s := range syms {
		if s.Name == name {
			return s.Value, true // the vdso is linked at 0
		}
	}
	return 0, false
}

// metaOf reads an image's metadata.
func metaOf(t *testing.T, path string) *image.Process {
	t.Helper()
	_, p := openImage(t, path)
	return p
}

// openImage opens the image in the executable path (closed when the test
// ends) and reads its metadata; the reader goes on from there.
func openImage(t *testing.T, path string) (*image.Reader, *image.Process) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	sec, err := image.OpenEmbedded(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	r, err := image.NewReader(sec)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	p, err := r.Meta()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r, p
}
