package amd64

import (
	"encoding/binary"
	"sort"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/cryo-project/cryo/arch/loaderdata"
)

// loaderInsn is one decoded instruction of the loader.
type loaderInsn struct {
	off  int
	inst x86asm.Inst
}

// decodeLoader decodes loaderText linearly: every byte must belong to an
// instruction.
func decodeLoader(t *testing.T) []loaderInsn {
	t.Helper()
	var out []loaderInsn
	for off := 0; off < len(loaderText); {
		inst, err := x86asm.Decode(loaderText[off:], 64)
		if err != nil || inst.Len == 0 {
			t.Fatalf("loader byte %#x: %v", off, err)
		}
		out = append(out, loaderInsn{off, inst})
		off += inst.Len
	}
	return out
}

// loaderItems names the offsets in LoaderCode of what the code may refer
// to, as loaderdata.Data lays them out.
func loaderItems() map[int]string {
	items := map[int]string{}
	base := (len(loaderText) + 7) &^ 7
	for off, name := range loaderdata.Items() {
		items[base+off] = name
		if name == "env_prefix" {
			items[base+off+6] = "env_prefix+6" // its second 8-byte load
		}
	}
	return items
}

// The loader decodes to whole instructions, makes only the syscalls it
// should, and each of its jumps lands on an instruction of its own.
func TestLoaderInstructions(t *testing.T) {
	insns := decodeLoader(t)
	starts := map[int]bool{}
	for _, in := range insns {
		starts[in.off] = true
	}
	calls := map[int64]int{}
	var eax int64 = -1
	for _, in := range insns {
		switch in.inst.Op {
		case x86asm.MOV:
			if r, ok := in.inst.Args[0].(x86asm.Reg); ok && r == x86asm.EAX {
				if imm, ok := in.inst.Args[1].(x86asm.Imm); ok {
					eax = int64(imm)
				}
			}
		case x86asm.SYSCALL:
			if eax < 0 {
				t.Errorf("syscall at %#x without a number in eax", in.off)
			}
			calls[eax]++
		case x86asm.CALL, x86asm.RET, x86asm.INT:
			t.Errorf("%v at %#x: the loader calls nothing", in.inst, in.off)
		}
		for _, a := range in.inst.Args {
			if rel, ok := a.(x86asm.Rel); ok {
				if to := in.off + in.inst.Len + int(rel); !starts[to] {
					t.Errorf("%v at %#x jumps to %#x, no instruction of the loader", in.inst, in.off, to)
				}
			}
		}
	}
	want := map[int64]int{SysOpenat: 1, SysLseek: 1, SysPread64: 2, SysMmap: 2, SysMemfdCreate: 2, SysFtruncate: 1,
		SysMunmap: 1, SysExecveat: 1, SysWritev: 1, SysExitGroup: 1}
	if len(calls) != len(want) {
		t.Errorf("syscalls %v, want %v", calls, want)
	}
	for nr, n := range want {
		if calls[nr] != n {
			t.Errorf("syscall %d made %d times, want %d (all: %v)", nr, calls[nr], n, calls)
		}
	}
	if last := insns[len(insns)-1].inst.Op; last != x86asm.UD2 {
		t.Errorf("the loader ends with %v, want ud2 after its last exit_group", last)
	}
}

// Every rip-relative reference lands on the data item it was written
// for, and every item is used.
func TestLoaderReferences(t *testing.T) {
	code := LoaderCode()
	items := loaderItems()
	used := map[string]bool{}
	for _, in := range decodeLoader(t) {
		for _, a := range in.inst.Args {
			m, ok := a.(x86asm.Mem)
			if !ok || m.Base != x86asm.RIP {
				continue
			}
			to := in.off + in.inst.Len + int(m.Disp)
			name, ok := items[to]
			if !ok {
				t.Errorf("%v at %#x refers to %#x, no item of the loader's data", in.inst, in.off, to)
			}
			used[name] = true
		}
	}
	for _, name := range items {
		if !used[name] {
			t.Errorf("%s is never referred to", name)
		}
	}
	// The items hold what they are named for.
	at := map[string]int{}
	for off, name := range items {
		at[name] = off
	}
	le := binary.LittleEndian
	if string(code[at["magic"]:at["magic"]+8]) != loaderdata.Magic ||
		le.Uint64(code[at["fnv_offset"]:]) != loaderdata.SumOffset || le.Uint64(code[at["fnv_prime"]:]) != loaderdata.SumPrime {
		t.Error("magic or FNV constants misplaced")
	}
	for name, want := range map[string]string{"path_exe": "/proc/self/exe\x00", "name_memfd": "cryo-restorer\x00",
		"name_cryo": "cryo\x00", "empty": "\x00", "env_prefix": loaderdata.Env + "="} {
		if got := string(code[at[name] : at[name]+len(want)]); got != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	var offs []int
	for off := range items {
		offs = append(offs, off)
	}
	sort.Ints(offs)
	for _, off := range offs {
		if name := items[off]; strings.HasPrefix(name, "msg_") {
			n := int(code[off])
			msg := string(code[off+1 : off+1+n])
			if !strings.HasPrefix(msg, ": ") || !strings.HasSuffix(msg, "\n") || strings.Count(msg, "\n") != 1 {
				t.Errorf("%s is %q: want \": ...\" and one newline", name, msg)
			}
		}
	}
	if end := len(code); at["msg_exec"]+1+int(code[at["msg_exec"]]) != end {
		t.Errorf("the data does not end with msg_exec")
	}
}
