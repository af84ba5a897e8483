package restore

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"runtime"
	"testing"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// ownVDSO reads this process's vdso and its group's mappings.
func ownVDSO(t *testing.T) ([]byte, []proc.Mapping) {
	t.Helper()
	maps, err := proc.Maps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	for _, m := range maps {
		if m.Path == "[vdso]" {
			b := make([]byte, m.Len())
			if _, err := mem.ReadAt(b, int64(m.Start)); err != nil {
				t.Fatalf("read the vdso: %v", err)
			}
			return b, maps
		}
	}
	t.Fatal("this process has no vdso")
	return nil, nil
}

func vdsoPrefix() string {
	if runtime.GOARCH == "arm64" {
		return "__kernel_"
	}
	return "__vdso_"
}

// frozenGroup is the image's view of maps' vdso group.
func frozenGroup(maps []proc.Mapping) []image.VMA {
	var vmas []image.VMA
	for _, m := range maps {
		switch {
		case m.Path == "[vdso]":
			vmas = append(vmas, image.VMA{Start: m.Start, End: m.End, Kind: image.VMAVDSO, Path: m.Path})
		case len(m.Path) > 5 && m.Path[:5] == "[vvar":
			vmas = append(vmas, image.VMA{Start: m.Start, End: m.End, Kind: image.VMAVVAR, Path: m.Path})
		}
	}
	return vmas
}

// TestVDSOFuncs: this kernel's vdso parses, with clock_gettime among its
// functions.
func TestVDSOFuncs(t *testing.T) {
	b, _ := ownVDSO(t)
	funcs, syms, err := vdsoFuncs(b)
	if err != nil {
		t.Fatal(err)
	}
	off, ok := syms[vdsoPrefix()+"clock_gettime"]
	if !ok || off == 0 || off >= uint64(len(b)) {
		t.Fatalf("%sclock_gettime at %#x (found %v) in a %d-byte vdso", vdsoPrefix(), off, ok, len(b))
	}
	for i := 1; i < len(funcs); i++ {
		if funcs[i].off <= funcs[i-1].off {
			t.Fatalf("functions out of order: %v", funcs)
		}
	}
	if _, _, err := vdsoFuncs(b[:64]); err == nil {
		t.Error("a truncated vdso parsed")
	}
	// The same functions as debug/elf finds.
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, s := range dyn {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Section == elf.SHN_UNDEF {
			continue
		}
		want++
		if off, ok := syms[s.Name]; !ok || off != s.Value {
			t.Errorf("%s: %#x (found %v), debug/elf says %#x", s.Name, off, ok, s.Value)
		}
	}
	if len(syms) != want {
		t.Errorf("%d functions, debug/elf finds %d", len(syms), want)
	}
}

// TestPlanVDSO: the same vdso is kept; another build with the same
// layout is moved; a differing layout, or a symbol moved, is proxied.
func TestPlanVDSO(t *testing.T) {
	b, maps := ownVDSO(t)
	frozen := frozenGroup(maps)
	arch := image.ArchAMD64
	if runtime.GOARCH == "arm64" {
		arch = image.ArchARM64
	}
	mode := func(old []byte, frozen []image.VMA) vdsoMode {
		t.Helper()
		p, err := planVDSO(arch, frozen, old, maps, b)
		if err != nil {
			t.Fatal(err)
		}
		return p.mode
	}
	if m := mode(b, frozen); m != vdsoSame {
		t.Errorf("the same vdso: %v", m)
	}
	other := append([]byte(nil), b...)
	_, syms, _ := vdsoFuncs(b)
	other[syms[vdsoPrefix()+"clock_gettime"]+1] ^= 0xff // another build, same symbols
	if m := mode(other, frozen); m != vdsoMoved {
		t.Errorf("another build of the same layout: %v", m)
	}
	// The frozen group with its vvar pages elsewhere: another layout.
	moved := append([]image.VMA(nil), frozen...)
	for i := range moved {
		if moved[i].Kind == image.VMAVVAR {
			moved[i].Start -= 1 << 20
			moved[i].End -= 1 << 20
		}
	}
	if m := mode(b, moved); m != vdsoProxy {
		t.Errorf("another vvar layout: %v", m)
	}
	t.Setenv(envVDSOMode, "proxy")
	if m := mode(b, frozen); m != vdsoProxy {
		t.Errorf("%s=proxy: %v", envVDSOMode, m)
	}
	bad := append([]byte(nil), b...)
	bad[0] = 0
	if _, err := planVDSO(arch, frozen, bad, maps, b); err == nil {
		t.Error("a frozen vdso that is no ELF was accepted")
	}
}

// TestVDSOProxy: each function of the frozen vdso (this kernel's)
// becomes a jump to the same function of a new vdso at another address,
// or, for one the new vdso lacks, its system call; on both
// architectures' encodings.
func TestVDSOProxy(t *testing.T) {
	b, _ := ownVDSO(t)
	funcs, syms, err := vdsoFuncs(b)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	for _, arch := range []image.Arch{image.ArchAMD64, image.ArchARM64} {
		// The new vdso lacks clock_gettime (all its names).
		if nr := vdsoSyscalls[image.ArchAMD64]["__vdso_clock_gettime"]; nr != 228 || string(syscallCode(image.ArchAMD64, nr)) != "\xb8\xe4\x00\x00\x00\x0f\x05\xc3" {
			t.Fatalf("amd64 clock_gettime: % x", syscallCode(image.ArchAMD64, nr))
		}
		if nr := vdsoSyscalls[image.ArchARM64]["__kernel_clock_gettime"]; nr != 113 || le.Uint32(syscallCode(image.ArchARM64, nr)) != 0xd2800e28 {
			t.Fatalf("arm64 clock_gettime: % x", syscallCode(image.ArchARM64, nr))
		}
		missing := map[string]bool{}
		newSyms := map[string]uint64{}
		for name, off := range syms {
			newSyms[name] = off + 0x40 // another layout
		}
		for _, f := range funcs {
			if f.off == syms[vdsoPrefix()+"clock_gettime"] {
				for _, n := range f.names {
					delete(newSyms, n)
					missing[n] = true
				}
			}
		}
		for _, far := range []bool{false, true} {
			oldBase, newBase := uint64(0x7f0000000000), uint64(0x7f0000100000)
			if far {
				newBase = 0x100000000
			}
			p := &vdsoPlan{mode: vdsoProxy, oldFuncs: funcs, newSyms: newSyms}
			out, err := p.proxy(arch, b, oldBase, newBase)
			if err != nil {
				t.Fatalf("%v far=%v: %v", arch, far, err)
			}
			for _, f := range funcs {
				code := out[f.off:]
				entry := oldBase + f.off
				want := newBase + f.off + 0x40
				if missing[f.names[0]] {
					// Its system call where the architecture's table
					// knows the name (the host's names are only in the
					// host's), else -ENOSYS.
					want := enosysCode(arch)
					for _, n := range f.names {
						if nr, ok := vdsoSyscalls[arch][n]; ok {
							want = syscallCode(arch, nr)
						}
					}
					if string(code[:len(want)]) != string(want) {
						t.Errorf("%v %v: % x, want % x", arch, f.names, code[:len(want)], want)
					}
					continue
				}
				var got uint64
				switch {
				case arch == image.ArchAMD64 && code[0] == 0xe9:
					got = entry + 5 + uint64(int64(int32(le.Uint32(code[1:]))))
				case arch == image.ArchAMD64 && code[0] == 0xff && code[1] == 0x25 && le.Uint32(code[2:]) == 0:
					got = le.Uint64(code[6:])
				case arch == image.ArchARM64 && le.Uint32(code)>>26 == 0x05:
					got = entry + uint64(int64(int32(le.Uint32(code)<<6))>>4)
				case arch == image.ArchARM64 && le.Uint32(code) == 0x58000050 && le.Uint32(code[4:]) == 0xd61f0200:
					got = le.Uint64(code[8:])
				default:
					t.Errorf("%v far=%v %v: % x is no jump", arch, far, f.names, code[:16])
					continue
				}
				if got != want {
					t.Errorf("%v far=%v %v jumps to %#x, want %#x", arch, far, f.names, got, want)
				}
			}
		}
	}
}
