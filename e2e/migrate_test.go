//go:build migrate

package e2e

// make test-migrate (scripts/migrate/test.sh) runs these around a guest
// booted with another kernel and CPU (Debian's 6.1 under
// qemu-system-x86_64, -cpu Haswell-v4):
//
//  1. TestMigrateFreezeHost, on the host: freezes victims into
//     $CRYO_MIGRATE_DIR/in/ and writes the guest's steps for them to
//     in/plan (scripts/migrate/init's plan format);
//  2. the guest runs scripts/migrate/guest.plan (freezes its own
//     victims) and in/plan (thaws the host's images), and hands back
//     what they left: $CRYO_MIGRATE_DIR/out/;
//  3. TestMigrateFromGuest thaws the guest's images here and checks that
//     each goes on with its state; TestMigrateToGuest checks what
//     the host's images did in the guest.
//
// Built only with -tags migrate: without the guest they have nothing to
// look at.

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryo-project/cryo/image"
)

const envMigrateDir = "CRYO_MIGRATE_DIR"

func migrateDir(t *testing.T, sub string) string {
	t.Helper()
	dir := os.Getenv(envMigrateDir)
	if dir == "" {
		t.Fatalf("%s is not set: run make test-migrate", envMigrateDir)
	}
	return filepath.Join(dir, sub)
}

// guestFile reads a file the guest left in out/.
func guestFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(migrateDir(t, "out"), name))
	if err != nil {
		t.Fatalf("the guest left no %s: %v", name, err)
	}
	return string(b)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestMigrateFromGuest: processes frozen in the guest (another kernel,
// whose vdso differs, and an older CPU) thawed here go on with their
// state.
func TestMigrateFromGuest(t *testing.T) {
	setup(t)
	out := migrateDir(t, "out")
	t.Logf("guest kernel %s", strings.TrimSpace(guestFile(t, "kernel")))

	t.Run("counter", func(t *testing.T) {
		// The guest read everything the counter wrote before freeze
		// killed it: the copy's first line is the next number.
		last, err := strconv.Atoi(lastLine(guestFile(t, "counter.out")))
		if err != nil {
			t.Fatalf("counter.out: %v", err)
		}
		p := thaw(t, filepath.Join(out, "counter.bin"), true)
		for i := 1; i <= 50; i++ {
			if got := p.expect(""); got != strconv.Itoa(last+i) {
				t.Fatalf("line %d after the thaw: %q, want %d\n%s", i, got, last+i, p.diag())
			}
		}
	})

	t.Run("vdsoclock", func(t *testing.T) {
		var tick, calls, back uint64
		var real float64
		tickLine := regexp.MustCompile(`^tick (\d+) calls (\d+) back (\d+) real (\d+\.\d+)$`)
		parse := func(line string) {
			t.Helper()
			m := tickLine.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("vdsoclock: %q is no tick line", line)
			}
			tick, _ = strconv.ParseUint(m[1], 10, 64)
			calls, _ = strconv.ParseUint(m[2], 10, 64)
			back, _ = strconv.ParseUint(m[3], 10, 64)
			real, _ = strconv.ParseFloat(m[4], 64)
		}
		parse(lastLine(guestFile(t, "vdsoclock.out")))
		if back != 0 {
			t.Fatalf("in the guest, a monotonic clock went backwards %d times", back)
		}
		p := thaw(t, filepath.Join(out, "vdsoclock.bin"), true)
		for i := 0; i < 10; i++ {
			prevTick, prevCalls := tick, calls
			parse(p.expect("tick "))
			now := float64(time.Now().UnixNano()) / 1e9
			switch {
			case tick != prevTick+1:
				t.Fatalf("tick %d after tick %d\n%s", tick, prevTick, p.diag())
			case calls <= prevCalls:
				t.Fatalf("tick %d: %d calls, %d at the tick before\n%s", tick, calls, prevCalls, p.diag())
			case back != 0:
				t.Fatalf("tick %d: a monotonic clock went backwards %d times\n%s", tick, back, p.diag())
			case real < now-5 || real > now+1:
				t.Fatalf("tick %d: CLOCK_REALTIME %.3f, the host's %.3f\n%s", tick, real, now, p.diag())
			}
		}
		t.Logf("%d rounds of clock calls by tick %d", calls, tick)
		// Another kernel's vdso: proxied (its clock_gettime is elsewhere).
		meta := metaOf(t, filepath.Join(out, "vdsoclock.bin"))
		for _, v := range meta.VMAs {
			if v.Kind == image.VMAVDSO {
				vdso, at := vdsoOf(t, p.pid(), v.Start)
				if vdso == v.Start || !strings.Contains(at, " r-xp ") || strings.Contains(at, "[vdso]") {
					t.Errorf("[vdso] at %#x, at the frozen vdso's %#x: %q; want the proxy there", vdso, v.Start, at)
				}
				t.Logf("the guest's vdso proxied at %#x, this kernel's at %#x", v.Start, vdso)
			}
		}
	})

	t.Run("gocounter", func(t *testing.T) {
		// The guest had it count to 2 (guest.plan).
		if got := lastLine(guestFile(t, "gocounter.out")); got != "count 2" {
			t.Fatalf("gocounter.out ends with %q, want count 2", got)
		}
		p := thaw(t, filepath.Join(out, "gocounter.bin"), true)
		p.ask("inc", "count 3")
		gc := func() int {
			n, err := strconv.Atoi(strings.TrimPrefix(p.ask("gc", "gc "), "gc "))
			if err != nil {
				t.Fatalf("gocounter: bad gc answer: %v", err)
			}
			return n
		}
		before := gc()
		deadline := time.Now().Add(lineTimeout)
		for gc() <= before+2 {
			if time.Now().After(deadline) {
				t.Fatalf("the GC did not run after the thaw (%d cycles)\n%s", before, p.diag())
			}
			time.Sleep(10 * time.Millisecond) // polling the victim, bounded above
		}
		p.ask("inc", "count 4")
		p.send("exit 3")
		if st := p.waitExit(); st.ExitCode() != 3 {
			t.Fatalf("gocounter exited with %v, want 3", st)
		}
	})
}

// toGuest are the processes frozen here and thawed in the guest: name,
// how to start and prepare it, the plan steps the guest runs with the
// image (NAME and IMAGE in them are its name and its path there), and
// how to judge what it left (nil: the refusal for the CPU).
type toGuestCase struct {
	name    string
	start   func(t *testing.T) *proc
	prepare func(t *testing.T, p *proc) string // what judge is told
	steps   string
	judge   func(t *testing.T, known, status, output string)
}

var toGuest = []toGuestCase{
	{
		name: "host-counter",
		start: func(t *testing.T) *proc {
			return startProc(t, "counter", buildVictim(t, "counter", flagsStatic...), nil, inDir("/"))
		},
		prepare: func(t *testing.T, p *proc) string { p.expect("0"); return "" },
		steps:   "start NAME /cryo/bin/thaw IMAGE\nwait NAME 20\n",
	},
	{
		name: "host-gocounter",
		start: func(t *testing.T) *proc {
			return startProc(t, "gocounter", buildGoVictim(t, "gocounter"), nil, inDir("/"))
		},
		prepare: func(t *testing.T, p *proc) string {
			p.expect("ready")
			p.ask("inc", "count 1")
			return ""
		},
		steps: "start NAME /cryo/bin/thaw IMAGE\nsend NAME inc\nwait NAME 20\n",
	},
	// The vdso proxy in the other direction: 6.18's vdso (getrandom, a
	// [vvar_vclock]) proxied into 6.1's, the CPU check overridden (the
	// victims use nothing the guest CPU lacks: no AVX-512 on either).
	{
		name: "host-vdsoclock-ignorecpu",
		start: func(t *testing.T) *proc {
			return startProc(t, "vdsoclock", buildVictim(t, "vdsoclock", flagsStatic...), nil, inDir("/"))
		},
		prepare: func(t *testing.T, p *proc) string {
			for i := 0; i < 3; i++ {
				p.expect("tick ")
			}
			return ""
		},
		steps: "start NAME /cryo/bin/thaw --ignore-cpu IMAGE\nwait NAME 15\n",
		judge: func(t *testing.T, _, status, output string) {
			tickLine := regexp.MustCompile(`^tick (\d+) calls (\d+) back (\d+) real`)
			var ticks []string
			for _, l := range strings.Split(output, "\n") {
				if strings.HasPrefix(l, "tick ") {
					ticks = append(ticks, l)
				}
			}
			if status != "killed" || len(ticks) < 3 {
				t.Fatalf("thawed in the guest: %s, %d ticks:\n%s", status, len(ticks), output)
			}
			var prev, prevBack int
			for i, l := range ticks {
				m := tickLine.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("%q is no tick line", l)
				}
				tick, _ := strconv.Atoi(m[1])
				back, _ := strconv.Atoi(m[3])
				// The guest has been up for less time than the host: its
				// monotonic clock is behind, seen in the first rounds
				// after the thaw (two when the freeze split a round
				// between the clocks' readings), never again.
				if (i > 0 && tick != prev+1) || (i > 1 && back != prevBack) || back > 2 {
					t.Fatalf("tick line %q after tick %d, back %d\n%s", l, prev, prevBack, output)
				}
				prev, prevBack = tick, back
			}
			t.Logf("%d ticks in the guest, the last %q", len(ticks), ticks[len(ticks)-1])
		},
	},
	{
		name: "host-gocounter-ignorecpu",
		start: func(t *testing.T) *proc {
			// containermaxprocs=0: the Go runtime (1.25+) keeps the
			// cgroup's CPU quota file open to follow it, and the guest
			// has no cgroup file system at that path.
			return startProc(t, "gocounter", buildGoVictim(t, "gocounter"), nil, inDir("/"), withEnv("GODEBUG=containermaxprocs=0"))
		},
		prepare: func(t *testing.T, p *proc) string {
			p.expect("ready")
			p.ask("inc", "count 1")
			return p.ask("rand", "rand ") // its getrandom state made (MAP_DROPPABLE here)
		},
		steps: "start NAME /cryo/bin/thaw --ignore-cpu IMAGE\nsend NAME inc\nsend NAME rand\nsend NAME rand\nsend NAME exit 3\nwait NAME 60\n",
		judge: func(t *testing.T, known, status, output string) {
			lines := strings.Split(strings.TrimSpace(output), "\n")
			if status != "exit 3" || len(lines) != 3 || lines[0] != "count 2" ||
				!strings.HasPrefix(lines[1], "rand ") || !strings.HasPrefix(lines[2], "rand ") ||
				lines[1] == lines[2] || lines[1] == known {
				t.Fatalf("thawed in the guest: %s, saying (%s before the freeze):\n%s", status, known, output)
			}
		},
	},
}

// TestMigrateFreezeHost, before the guest runs, freezes the victims of
// toGuest here.
func TestMigrateFreezeHost(t *testing.T) {
	setup(t)
	in := migrateDir(t, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	for _, c := range toGuest {
		p := c.start(t)
		known := c.prepare(t, p)
		freezeKill(t, p, filepath.Join(in, c.name+".bin"))
		if err := os.WriteFile(filepath.Join(in, c.name+".known"), []byte(known), 0o644); err != nil {
			t.Fatal(err)
		}
		steps := strings.ReplaceAll(c.steps, "NAME", c.name)
		plan.WriteString(strings.ReplaceAll(steps, "IMAGE", "/cryo/in/"+c.name+".bin"))
	}
	if err := os.WriteFile(filepath.Join(in, "plan"), []byte(plan.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateToGuest, after the guest ran, judges what each image of
// toGuest did there: by default, that the guest, whose CPU lacks
// features this one has, refused it with the missing ones listed.
func TestMigrateToGuest(t *testing.T) {
	in := migrateDir(t, "in")
	guest := map[string]bool{}
	for _, f := range strings.Fields(guestFile(t, "cpuflags")) {
		guest[f] = true
	}
	listed := regexp.MustCompile(`lacks features the frozen process may use: ([a-z0-9_ .]+?) \(`)
	for _, c := range toGuest {
		t.Run(c.name, func(t *testing.T) {
			status := strings.TrimSpace(guestFile(t, c.name+".status"))
			output := guestFile(t, c.name+".out")
			if c.judge != nil {
				known, err := os.ReadFile(filepath.Join(in, c.name+".known"))
				if err != nil {
					t.Fatal(err)
				}
				c.judge(t, string(known), status, output)
				return
			}
			meta := metaOf(t, filepath.Join(in, c.name+".bin"))
			var missing []string
			for _, f := range meta.CPUFeatures {
				if !guest[f] {
					missing = append(missing, f)
				}
			}
			if len(missing) == 0 {
				t.Fatalf("the guest CPU has every feature the image records: this test proves no refusal (status %s)\n%s", status, output)
			}
			m := listed.FindStringSubmatch(output)
			if status != "exit 1" || m == nil {
				t.Fatalf("the guest lacks %v, but its thaw ended with %s, saying:\n%s", missing, status, output)
			}
			for _, f := range strings.Fields(m[1]) {
				if guest[f] {
					t.Errorf("the refusal lists %s, which the guest CPU has", f)
				}
			}
			if !strings.Contains(m[1], "avx512f") && contains(missing, "avx512f") {
				t.Errorf("the refusal does not list avx512f, which the process may use and the guest lacks: %s", m[1])
			}
			t.Logf("refused: %s", strings.TrimSpace(output))
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
