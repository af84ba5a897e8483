package arm64

import (
	"encoding/binary"
	"strings"
	"testing"

	"golang.org/x/arch/arm64/arm64asm"
)

func TestRegsRoundTrip(t *testing.T) {
	var r Regs
	for i, f := range r.fields() {
		*f = uint64(i+1) * 0x0101010101010101
	}
	var back Regs
	if err := back.Decode(r.Encode()); err != nil {
		t.Fatal(err)
	}
	if back != r {
		t.Fatalf("round trip: got %+v, want %+v", back, r)
	}
	if err := back.Decode(make([]byte, RegsSize-8)); err == nil {
		t.Fatal("short register set accepted")
	}
	// struct user_pt_regs: regs[31], sp, pc, pstate.
	b := r.Encode()
	le := binary.LittleEndian
	for _, tc := range []struct {
		name string
		off  int
		want uint64
	}{
		{"x0", 0, r.X[0]}, {"x8", 8 * 8, r.X[8]}, {"x30", 30 * 8, r.X[30]},
		{"sp", 31 * 8, r.Sp}, {"pc", 32 * 8, r.Pc}, {"pstate", 33 * 8, r.Pstate},
	} {
		if got := le.Uint64(b[tc.off:]); got != tc.want {
			t.Errorf("%s at offset %d holds %#x, want %#x", tc.name, tc.off, got, tc.want)
		}
	}
}

func TestSetSyscall(t *testing.T) {
	var r Regs
	for i := range r.X {
		r.X[i] = 0xaa00 + uint64(i)
	}
	r.Pstate = 0x60000000
	r.SetSyscall(0x7000, SysMmap, 1, 2, 3, 4, 5, 6)
	if r.Pc != 0x7000 || r.X[8] != SysMmap {
		t.Errorf("pc %#x x8 %d; want pc 0x7000 x8 %d", r.Pc, r.X[8], SysMmap)
	}
	for i := 0; i < 6; i++ {
		if r.X[i] != uint64(i+1) {
			t.Errorf("x%d = %#x, want %d", i, r.X[i], i+1)
		}
	}
	// Everything else is left as it was: x7 in particular, which the
	// kernel puts back from the call's entry after a syscall stop.
	for _, i := range []int{6, SyscallStopScratch, 9, 30} {
		if r.X[i] != 0xaa00+uint64(i) {
			t.Errorf("x%d changed to %#x", i, r.X[i])
		}
	}
	if r.Pstate != 0x60000000 {
		t.Errorf("pstate changed to %#x", r.Pstate)
	}
	r.X[0] = 42
	if r.Return() != 42 {
		t.Errorf("Return() = %d, want x0", r.Return())
	}
}

// The kernel has already rewound an interrupted call by the time a tracer
// reads the registers: PrepareResume changes nothing.
func TestPrepareResume(t *testing.T) {
	for _, tc := range []struct {
		name string
		x0   uint64
		pc   uint64
	}{
		{"read re-issued by the kernel", 0, 0x1000},
		{"completed call", 5, 0x1004},
		{"restart code left in x0", uint64(1<<64 - ERESTARTSYS), 0x1004},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Regs{Pc: tc.pc}
			r.X[0], r.X[8] = tc.x0, SysRead
			want := r
			if desc := r.PrepareResume(); desc != "" || r != want {
				t.Errorf("PrepareResume changed %+v to %+v (%q)", want, r, desc)
			}
		})
	}
}

func decode(t *testing.T, code []byte) []string {
	t.Helper()
	var out []string
	for off := 0; off < len(code); off += 4 {
		inst, err := arm64asm.Decode(code[off:])
		if err != nil {
			t.Fatalf("%x at %d: %v", code[off:off+4], off, err)
		}
		out = append(out, strings.ToLower(arm64asm.GNUSyntax(inst)))
	}
	return out
}

// The injection, stub and sigreturn bytes decode to what their comments
// say.
func TestInstructionBytes(t *testing.T) {
	if got := decode(t, SyscallInsn); len(got) != 1 || got[0] != "svc #0x0" {
		t.Errorf("SyscallInsn decodes to %q, want svc #0x0", got)
	}
	if SyscallInsnLen != len(SyscallInsn) {
		t.Errorf("SyscallInsnLen %d, instruction is %d bytes", SyscallInsnLen, len(SyscallInsn))
	}
	want := []string{"mov x0, #0x7f", "mov x8, #0x5e", "svc #0x0", "brk #0x0"}
	got := decode(t, StubCode())
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("stub decodes to %q, want %q", got, want)
	}
	if got[StubSyscallOffset/4] != "svc #0x0" {
		t.Errorf("StubSyscallOffset %d points at %q", StubSyscallOffset, got[StubSyscallOffset/4])
	}
	want = []string{"mov x8, #0x8b", "svc #0x0"}
	if got := decode(t, SigreturnCode()); strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("sigreturn decodes to %q, want %q", got, want)
	}
}

func TestFindSyscall(t *testing.T) {
	nop := []byte{0x1f, 0x20, 0x03, 0xd5}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		code []byte
		at   int
		ok   bool
	}{
		{"first word", cat(SyscallInsn, nop), 0, true},
		{"after two", cat(nop, nop, SyscallInsn), 8, true},
		// The bytes of svc #0 straddling two words are no instruction.
		{"misaligned", cat([]byte{0, 0}, SyscallInsn, []byte{0, 0}), 0, false},
		{"short tail", SyscallInsn[:3], 0, false},
		{"none", cat(nop, nop), 0, false},
		{"the stub's", StubCode(), StubSyscallOffset, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, ok := FindSyscall(tc.code)
			if ok != tc.ok || (ok && at != tc.at) {
				t.Errorf("found=%v at %d; want found=%v at %d", ok, at, tc.ok, tc.at)
			}
		})
	}
}

func TestSizes(t *testing.T) {
	if FPSIMDSize != 528 {
		t.Errorf("sizeof(struct user_fpsimd_state) = %d, want 528", FPSIMDSize)
	}
	if RegsSize != 272 {
		t.Errorf("sizeof(struct user_pt_regs) = %d, want 272", RegsSize)
	}
}
