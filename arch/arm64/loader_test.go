package arm64

import (
	"encoding/binary"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/arch/arm64/arm64asm"

	"github.com/cryo-project/cryo/arch/loaderdata"
)

// decodeLoader decodes every word of loaderText.
func decodeLoader(t *testing.T) []arm64asm.Inst {
	t.Helper()
	code := LoaderCode()
	var out []arm64asm.Inst
	for off := 0; off < 4*len(loaderText); off += 4 {
		inst, err := arm64asm.Decode(code[off:])
		if err != nil {
			t.Fatalf("loader word %#x (%08x): %v", off, loaderText[off/4], err)
		}
		out = append(out, inst)
	}
	return out
}

// loaderItems names the offsets in LoaderCode of what the code may refer
// to, as loaderdata.Data lays them out.
func loaderItems() map[int]string {
	items := map[int]string{}
	base := (4*len(loaderText) + 7) &^ 7 // loaderText is in 4-byte instructions
	for off, name := range loaderdata.Items() {
		items[base+off] = name
	}
	return items
}

// The loader decodes, makes only the syscalls it should (the number
// is the last value moved into x8 before each svc), each of its branches
// lands on its own code, and each pc-relative load or adr on the data
// item it was written for.
func TestLoaderInstructions(t *testing.T) {
	insns := decodeLoader(t)
	items := loaderItems()
	used := map[string]bool{}
	calls := map[int64]int{}
	var x8 int64 = -1
	for i, inst := range insns {
		off := 4 * i
		text := strings.ToLower(arm64asm.GNUSyntax(inst))
		switch {
		case strings.HasPrefix(text, "mov x8, #"):
			n, err := strconv.ParseInt(strings.TrimPrefix(text, "mov x8, #"), 0, 64)
			if err != nil {
				t.Fatalf("%q at %#x: %v", text, off, err)
			}
			x8 = n
		case text == "svc #0x0":
			if x8 < 0 {
				t.Errorf("svc at %#x without a number in x8", off)
			}
			calls[x8]++
		case inst.Op == arm64asm.BL || inst.Op == arm64asm.BLR || inst.Op == arm64asm.RET:
			t.Errorf("%q at %#x: the loader calls nothing", text, off)
		}
		for _, a := range inst.Args {
			rel, ok := a.(arm64asm.PCRel)
			if !ok {
				continue
			}
			to := off + int(rel)
			switch inst.Op {
			case arm64asm.ADR, arm64asm.LDR:
				name, ok := items[to]
				if !ok {
					t.Errorf("%q at %#x refers to %#x, no item of the loader's data", text, off, to)
				}
				used[name] = true
			default:
				if to < 0 || to >= 4*len(loaderText) || to%4 != 0 {
					t.Errorf("%q at %#x branches to %#x, outside the loader's code", text, off, to)
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
	if last := strings.ToLower(arm64asm.GNUSyntax(insns[len(insns)-1])); last != "brk #0x0" {
		t.Errorf("the loader ends with %q, want brk #0 after its last exit_group", last)
	}
	// env_prefix is read through a register (ldr/ldur from x2 after
	// adr), not pc-relatively: adr counts for it.
	for _, name := range items {
		if !used[name] {
			t.Errorf("%s is never referred to", name)
		}
	}
}

// The data items hold what they are named for.
func TestLoaderData(t *testing.T) {
	code := LoaderCode()
	at := map[string]int{}
	for off, name := range loaderItems() {
		at[name] = off
	}
	le := binary.LittleEndian
	if string(code[at["magic"]:at["magic"]+8]) != loaderdata.Magic ||
		le.Uint64(code[at["fnv_offset"]:]) != loaderdata.SumOffset || le.Uint64(code[at["fnv_prime"]:]) != loaderdata.SumPrime {
		t.Error("magic or FNV constants misplaced")
	}
	if at["magic"]%8 != 0 {
		t.Errorf("the 8-byte literals are at %#x, not 8-byte aligned", at["magic"])
	}
	for name, want := range map[string]string{"path_exe": "/proc/self/exe\x00", "name_memfd": "cryo-restorer\x00",
		"name_cryo": "cryo\x00", "empty": "\x00", "env_prefix": loaderdata.Env + "="} {
		if got := string(code[at[name] : at[name]+len(want)]); got != want {
			t.Errorf("%s holds %q, want %q", name, got, want)
		}
	}
	for name, off := range at {
		if strings.HasPrefix(name, "msg_") {
			msg := string(code[off+1 : off+1+int(code[off])])
			if !strings.HasPrefix(msg, ": ") || !strings.HasSuffix(msg, "\n") || strings.Count(msg, "\n") != 1 {
				t.Errorf("%s is %q: want \": ...\" and one newline", name, msg)
			}
		}
	}
	if at["msg_exec"]+1+int(code[at["msg_exec"]]) != len(code) {
		t.Errorf("the data does not end with msg_exec")
	}
}
