package e2e

import (
	"encoding/binary"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cryo-project/cryo/arch/amd64"
	"github.com/cryo-project/cryo/cpu"
	"github.com/cryo-project/cryo/image"
	cproc "github.com/cryo-project/cryo/proc"
)

func toAMD64Layout(l *image.XSaveLayout) *amd64.XSaveLayout {
	out := &amd64.XSaveLayout{Size: l.Size, XCR0: l.XCR0}
	for _, c := range l.Components {
		out.Components = append(out.Components, amd64.XComponent{Feature: c.Feature, Offset: c.Offset, Size: c.Size})
	}
	return out
}

func toImageLayout(l *amd64.XSaveLayout) *image.XSaveLayout {
	out := &image.XSaveLayout{Size: l.Size, XCR0: l.XCR0}
	for _, c := range l.Components {
		out.Components = append(out.Components, image.XSaveComponent{Feature: c.Feature, Offset: c.Offset, Size: c.Size})
	}
	return out
}

// frozenRegs freezes the regs victim (at most AVX: mode 1) in its
// blocking read and returns the image.
func frozenRegs(t *testing.T) string {
	t.Helper()
	p := startProc(t, "regs", buildVictim(t, "regs"), []string{"1"})
	mode := p.expect("ready mode=")
	if !strings.HasPrefix(mode, "ready mode=1") {
		t.Skipf("the CPU has no AVX: %s", mode)
	}
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(t.TempDir(), "regs.bin")
	freezeKill(t, p, img)
	return img
}

// finishRegs lets a thawed regs victim compare its registers.
func finishRegs(t *testing.T, th *proc) {
	t.Helper()
	waitInSyscall(t, th, sysRead)
	if _, err := th.stdin.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if line, ok := th.out.nextLine(lineTimeout); !ok || line != "regs ok" {
		t.Fatalf("thawed regs: %q, want \"regs ok\"\n%s", line, th.diag())
	}
}

// TestThawXSaveFromHaswell: an image made as if on a Haswell CPU (832-
// byte XSAVE areas: x87, SSE, AVX) thaws here, its areas converted to
// this CPU's layout, with every XMM and YMM register as it was.
func TestThawXSaveFromHaswell(t *testing.T) {
	requireAMD64(t)
	setup(t)
	img := frozenRegs(t)
	haswell := &amd64.XSaveLayout{Size: 832, XCR0: 0x7, Components: []amd64.XComponent{{Feature: 2, Offset: 576, Size: 256}}}
	here := make([]byte, 832)
	binary.LittleEndian.PutUint64(here[amd64.XSaveXCR0Offset:], haswell.XCR0)
	old := filepath.Join(filepath.Dir(img), "haswell.bin")
	var from int
	rewriteImage(t, img, old, func(p *image.Process) {
		if p.XSave == nil {
			t.Fatal("the image records no XSAVE layout")
		}
		if p.XSaveInUse&(1<<2) == 0 {
			t.Errorf("the image records AVX state in use %#x, want bit 2 (the victim holds YMM values)", p.XSaveInUse)
		}
		from = p.XSave.Size
		hostL := toAMD64Layout(p.XSave)
		for i := range p.Threads {
			// Drop what Haswell lacks (AVX-512 state the C library may hold).
			out, _, err := amd64.ConvertXSave(p.Threads[i].FPU, hostL, haswell, here, true)
			if err != nil {
				t.Fatal(err)
			}
			p.Threads[i].FPU = out
		}
		p.XSave, p.XSaveMask, p.XSaveInUse = toImageLayout(haswell), haswell.XCR0, p.XSaveInUse&haswell.XCR0
	}, nil)
	t.Logf("areas of %d bytes rewritten as Haswell's 832", from)
	th := thaw(t, old, true)
	finishRegs(t, th)
}

// TestThawXSaveLacking: an image whose threads hold state in a component
// this CPU lacks is refused, naming it; --ignore-cpu thaws it without
// that state, with a warning, and the registers this CPU has are intact.
func TestThawXSaveLacking(t *testing.T) {
	requireAMD64(t)
	setup(t)
	img := frozenRegs(t)
	bad := filepath.Join(filepath.Dir(img), "apx.bin")
	var name string
	rewriteImage(t, img, bad, func(p *image.Process) {
		l := p.XSave
		feature := -1
		for _, f := range []int{19, 5, 17} { // APX, AVX-512 opmask, AMX tile config
			if l.XCR0&(1<<f) == 0 {
				feature = f
				break
			}
		}
		if feature < 0 {
			t.Skip("this CPU has APX, AVX-512 and AMX")
		}
		name = amd64.XFeatureName(feature)
		// The lacking component goes after the others, as a CPU with it
		// would place it.
		off := l.Size
		l.Components = append(l.Components, image.XSaveComponent{Feature: feature, Offset: off, Size: 64})
		l.Size += 64
		l.XCR0 |= 1 << feature
		p.XSaveMask = l.XCR0
		for i := range p.Threads {
			fpu := append(p.Threads[i].FPU, make([]byte, 64)...)
			for j := off; j < off+64; j++ {
				fpu[j] = byte(j)
			}
			binary.LittleEndian.PutUint64(fpu[512:], amd64.XStateBV(fpu)|1<<feature)
			binary.LittleEndian.PutUint64(fpu[amd64.XSaveXCR0Offset:], l.XCR0)
			p.Threads[i].FPU = fpu
		}
	}, nil)
	requireToolError(t, runTool(t, thawBin, bad), 1, []string{"thaw: "}, "lacks xsave state", name)
	requireToolError(t, runTool(t, bad), 1, []string{"thaw: "}, "lacks xsave state", name)

	th := startProc(t, "thaw --ignore-cpu", thawBin, []string{"--ignore-cpu", bad})
	finishRegs(t, th)
	if !strings.Contains(th.errs.text(), "dropped: "+name) {
		t.Errorf("thaw --ignore-cpu: stderr %q, want a warning naming %s", th.errs.text(), name)
	}
}

// TestCPUFeaturesRecorded: what freeze records of the CPU follows the
// switches of the process's start-up environment and the runtimes in
// it: glibc's tunable leaves features out of a C program's record but
// not a Go program's, whose runtime GODEBUG switches; CRYO_CPU covers
// what no runtime dispatches on. Each case runs only if this CPU has
// the features it is about.
func TestCPUFeaturesRecorded(t *testing.T) {
	requireAMD64(t)
	setup(t)
	host, err := cpu.HostFeatures()
	if err != nil {
		t.Fatal(err)
	}
	has := map[string]bool{}
	for _, f := range host {
		has[f] = true
	}
	for _, tc := range []struct {
		name      string
		victim    string
		env       []string
		left, kep []string // left out, kept
	}{
		{"C, no switch", "counter", nil, nil, []string{"avx2", "bmi2", "aes", "sse4_2"}},
		{"C, glibc tunable", "counter", []string{"GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-BMI2"},
			[]string{"avx2", "bmi2"}, []string{"avx", "aes", "sse4_2"}},
		{"static C, glibc tunable", "counter-static", []string{"GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-BMI2"},
			[]string{"avx2", "bmi2"}, []string{"avx", "aes", "sse4_2"}},
		{"static C, CRYO_CPU level alone", "counter-static", []string{"CRYO_CPU=x86-64-v2"},
			[]string{"aes", "sha_ni"}, []string{"avx2", "movbe"}},
		{"C, CRYO_CPU level alone", "counter", []string{"CRYO_CPU=x86-64-v2"},
			[]string{"aes", "sha_ni", "rdrand"}, []string{"avx2", "sse4_2", "movbe"}},
		{"Go, glibc tunable", "gocounter", []string{"GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2"}, nil, []string{"avx2"}},
		{"Go, GODEBUG", "gocounter", []string{"GODEBUG=cpu.avx2=off,cpu.aes=off"}, []string{"avx2", "aes"}, []string{"avx", "sse4_2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, f := range append(append([]string(nil), tc.left...), tc.kep...) {
				if !has[f] {
					t.Skipf("this CPU has no %s", f)
				}
			}
			var bin string
			switch tc.victim {
			case "gocounter":
				bin = buildGoVictim(t, tc.victim)
			case "counter-static": // glibc found by its tunables' names
				bin = buildVictim(t, "counter", flagsStatic...)
			default:
				bin = buildVictim(t, tc.victim)
			}
			p := startProc(t, tc.victim, bin, nil, withEnv(tc.env...))
			if tc.victim == "gocounter" {
				p.expect("ready")
			} else {
				p.expect("0")
			}
			img := filepath.Join(t.TempDir(), "img.bin")
			freezeKill(t, p, img)
			meta := metaOf(t, img)
			rec := map[string]bool{}
			for _, f := range meta.CPUFeatures {
				rec[f] = true
				if !has[f] {
					t.Errorf("recorded %s, which this CPU lacks", f)
				}
			}
			for _, f := range tc.left {
				if rec[f] {
					t.Errorf("%s recorded, want it left out", f)
				}
			}
			for _, f := range tc.kep {
				if !rec[f] {
					t.Errorf("%s left out, want it recorded", f)
				}
			}
			if len(meta.CPUFeatures)+len(meta.CPUFeaturesOff) != len(host) {
				t.Errorf("%d recorded + %d left out, this CPU has %d", len(meta.CPUFeatures), len(meta.CPUFeaturesOff), len(host))
			}
			wantRT := "glibc" // dynamic: libc.so.6 mapped; static: its tunables' names
			if tc.victim == "gocounter" {
				wantRT = "go" // static, no glibc
			}
			if got := strings.Join(meta.CPURuntimes, " "); got != wantRT {
				t.Errorf("runtimes found: %q, want %q", got, wantRT)
			}
			t.Logf("%d recorded, left out: %s", len(meta.CPUFeatures), strings.Join(meta.CPUFeaturesOff, ", "))
			// It thaws here, as ever.
			th := thaw(t, img, false)
			if tc.victim != "gocounter" {
				th.expect("")
			} else {
				th.ask("inc", "count ")
			}
		})
	}
}

// TestThawLegacyCPURecord: an image made before the features came from
// CPUID recorded every /proc/cpuinfo flag (and no runtimes); it thaws on
// the same CPU, its non-ISA flags (constant_tsc, hypervisor...) and
// names unknown to the table ignored, while a missing feature of the
// table refuses it.
func TestThawLegacyCPURecord(t *testing.T) {
	requireAMD64(t)
	setup(t)
	img := frozenPipe(t)
	flags, err := cproc.CPUFlags()
	if err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(filepath.Dir(img), "legacy.bin")
	rewriteImage(t, img, legacy, func(p *image.Process) {
		p.CPUFeatures, p.CPUFeaturesOff, p.CPURuntimes = append(flags, "avx1024f"), nil, nil
	}, nil)
	th := thaw(t, legacy, true)
	th.ask("legacy", "got legacy")

	host, err := cpu.HostFeatures()
	if err != nil {
		t.Fatal(err)
	}
	lacking := ""
	for _, f := range []string{"avx512f", "amx_tile", "avx512_fp16", "sse4a", "sha_ni"} {
		if !slices.Contains(host, f) {
			lacking = f
			break
		}
	}
	if lacking == "" {
		t.Skip("this CPU has every feature the test could say it lacks")
	}
	refused := filepath.Join(filepath.Dir(img), "legacy-refused.bin")
	rewriteImage(t, img, refused, func(p *image.Process) {
		p.CPUFeatures, p.CPUFeaturesOff, p.CPURuntimes = append(flags, lacking), nil, nil
	}, nil)
	requireToolError(t, runTool(t, thawBin, refused), 1, []string{"thaw: "}, "lacks", lacking)
}

// TestCPUSwitchTypo: a CRYO_CPU the freeze cannot read refuses the freeze
// with the variable named; the process goes on.
func TestCPUSwitchTypo(t *testing.T) {
	requireAMD64(t)
	setup(t)
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil, withEnv("CRYO_CPU=x86-64-v9"))
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	dir := t.TempDir()
	r := runTool(t, freezeBin, "-o", filepath.Join(dir, "typo.bin"), strconv.Itoa(p.pid()))
	requireToolError(t, r, 1, []string{"freeze: "}, "CRYO_CPU", "x86-64-v9")
	requireNoOutput(t, dir)
	p.requireUndisturbed()
	p.ask("ping", "got ping")
}
