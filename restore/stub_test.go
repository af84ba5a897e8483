package restore

import (
	"bytes"
	"debug/elf"
	"testing"

	"github.com/cryo-project/cryo/arch"
)

func TestStubELF(t *testing.T) {
	const addr = 0x10000
	b, site := stubELF(arch.Current, addr)
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("stub is not a valid ELF: %v", err)
	}
	if f.Type != elf.ET_EXEC || f.Machine != elf.Machine(arch.Current.ELFMachine) {
		t.Errorf("type %v machine %v", f.Type, f.Machine)
	}
	if len(f.Progs) != 2 || f.Progs[0].Type != elf.PT_LOAD || f.Progs[0].Vaddr != addr || f.Progs[0].Flags != elf.PF_R|elf.PF_X {
		t.Fatalf("program headers: %+v", f.Progs)
	}
	if f.Progs[1].Type != elf.PT_GNU_STACK || f.Progs[1].Flags&elf.PF_X != 0 {
		t.Errorf("stack must not be executable: %+v", f.Progs[1])
	}
	off := site - addr
	if !bytes.Equal(b[off:off+uint64(len(arch.Current.SyscallInsn))], arch.Current.SyscallInsn) {
		t.Errorf("no syscall instruction at the site %#x", site)
	}
	if f.Entry < addr || f.Entry >= site {
		t.Errorf("entry %#x not before the site %#x", f.Entry, site)
	}
	// The helper computes the site from stubCodeOffset: keep them in step.
	if site != addr+stubCodeOffset+arch.Current.StubSyscallOffset {
		t.Errorf("site %#x disagrees with stubCodeOffset", site)
	}
}

func TestFindHole(t *testing.T) {
	used := []span{{0x20000, 0x30000}, {0x10000, 0x12000}, {0x31000, 0x40000}}
	for _, tc := range []struct {
		size, min uint64
		want      uint64
	}{
		{0x1000, 0x10000, 0x12000},
		{0x1000, 0x0, 0x0},
		{0x1000, 0x30000, 0x30000},
		{0x2000, 0x30000, 0x40000},
		{0x20000, 0x10000, 0x40000},
	} {
		got, ok := findHole(append([]span(nil), used...), tc.size, tc.min, 0x1000)
		if !ok || got != tc.want {
			t.Errorf("findHole(size %#x, min %#x) = %#x, %v; want %#x", tc.size, tc.min, got, ok, tc.want)
		}
	}
	if _, ok := findHole([]span{{0, 1 << 47}}, 0x1000, 0, 0x1000); ok {
		t.Error("found a hole in a full address space")
	}
}
