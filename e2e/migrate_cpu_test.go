//go:build migrate

package e2e

// The CPU side of make test-migrate (e2e/migrate_test.go): processes
// started here with the switches that keep them off the features a
// Haswell CPU lacks (package cpu, README "Moving to an older CPU") are
// frozen here and must run in the guest, where the same processes
// started without them are refused (TestMigrateToGuest).

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Switches that leave out what the guest's Haswell lacks: glibc's
// AVX-512 and XSAVEC (its dynamic linker's register save), Go's, and
// CRYO_CPU=x86-64-v3 for the program's own code.
var (
	haswellGlibc = "GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512CD,-AVX512BW,-AVX512DQ,-AVX512VL,-AVX512ER,-AVX512PF,-XSAVEC"
	haswellGo    = "GODEBUG=cpu.avx512f=off,cpu.avx512cd=off,cpu.avx512bw=off,cpu.avx512dq=off,cpu.avx512vl=off,cpu.adx=off,cpu.sha=off,cpu.vpclmulqdq=off"
	// Not a CPU switch: the Go runtime (1.25+) otherwise keeps its
	// cgroup's CPU quota file open, which the guest lacks.
	noCgroup    = "containermaxprocs=0"
	haswellCryo = "CRYO_CPU=x86-64-v3"
)

// portableToGuest are frozen here by TestMigrateFreezeHostPortable; the
// guest runs their steps from in/plan-cpu. They run in /, a directory the
// guest has too.
var portableToGuest = []struct {
	name    string
	start   func(t *testing.T) *proc
	prepare func(t *testing.T, p *proc)
	steps   string
	check   func(t *testing.T, status, output string)
}{
	{
		name: "portable-counter",
		start: func(t *testing.T) *proc {
			return startProc(t, "counter", buildVictim(t, "counter", flagsStatic...), nil, withEnv(haswellGlibc, haswellCryo), inDir("/"))
		},
		prepare: func(t *testing.T, p *proc) { p.expect("0") },
		steps:   "start NAME /cryo/bin/thaw IMAGE\nwait NAME 10\n",
		check: func(t *testing.T, status, output string) {
			// Still counting when wait killed it, by one each line.
			lines := strings.Split(strings.TrimSpace(output), "\n")
			if status != "killed" || len(lines) < 50 {
				t.Fatalf("the guest's thaw ended with %s after %d lines:\n%s", status, len(lines), output)
			}
			prev, err := strconv.Atoi(lines[0])
			if err != nil {
				t.Fatalf("first line %q: %v", lines[0], err)
			}
			for _, l := range lines[1 : len(lines)-1] { // the last may be cut short
				n, err := strconv.Atoi(l)
				if err != nil || n != prev+1 {
					t.Fatalf("line %q after %d", l, prev)
				}
				prev = n
			}
			t.Logf("counted from %s to %d in the guest", lines[0], prev)
		},
	},
	{
		name: "portable-gocounter",
		start: func(t *testing.T) *proc {
			return startProc(t, "gocounter", buildGoVictim(t, "gocounter"), nil, withEnv(haswellGo+","+noCgroup, haswellCryo), inDir("/"))
		},
		prepare: func(t *testing.T, p *proc) {
			p.expect("ready")
			p.ask("inc", "count 1")
		},
		steps: "start NAME /cryo/bin/thaw IMAGE\nsend NAME inc\nexpect NAME count 2\nsend NAME gc\nexpect NAME gc\nsend NAME exit 3\nwait NAME 20\n",
		check: func(t *testing.T, status, output string) {
			if status != "exit 3" || !strings.Contains(output, "count 2") {
				t.Fatalf("the guest's thaw ended with %s, want exit 3 after count 2:\n%s", status, output)
			}
		},
	},
}

// TestMigrateFreezeHostPortable, before the guest runs, freezes the
// victims of portableToGuest and writes their steps to in/plan-cpu.
func TestMigrateFreezeHostPortable(t *testing.T) {
	setup(t)
	in := migrateDir(t, "in")
	if err := os.MkdirAll(in, 0o755); err != nil {
		t.Fatal(err)
	}
	var plan strings.Builder
	for _, c := range portableToGuest {
		p := c.start(t)
		c.prepare(t, p)
		img := filepath.Join(in, c.name+".bin")
		freezeKill(t, p, img)
		meta := metaOf(t, img)
		t.Logf("%s: %d features recorded, %d left out: %s", c.name, len(meta.CPUFeatures), len(meta.CPUFeaturesOff), strings.Join(meta.CPUFeaturesOff, ", "))
		steps := strings.ReplaceAll(c.steps, "NAME", c.name)
		plan.WriteString(strings.ReplaceAll(steps, "IMAGE", "/cryo/in/"+c.name+".bin"))
	}
	if err := os.WriteFile(filepath.Join(in, "plan-cpu"), []byte(plan.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateToGuestPortable, after the guest ran: each process of
// portableToGuest ran there.
func TestMigrateToGuestPortable(t *testing.T) {
	for _, c := range portableToGuest {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, strings.TrimSpace(guestFile(t, c.name+".status")), guestFile(t, c.name+".out"))
		})
	}
}
