package amd64

import (
	"testing"

	"golang.org/x/arch/x86/x86asm"
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
	// user_regs_struct order: rip is field 16, fs_base 21.
	b := r.Encode()
	if got := b[16*8]; got != 17 {
		t.Errorf("rip at offset %d holds %d", 16*8, got)
	}
}

func TestPrepareResume(t *testing.T) {
	neg := func(e int64) uint64 { return uint64(-e) }
	for _, tc := range []struct {
		name             string
		orig, rax        uint64
		wantRax, wantRip uint64
		wantDesc         bool
		rdx              uint64 // the third argument
	}{
		{"not in a syscall", ^uint64(0), 7, 7, 0x1000, false, 0},
		{"read ERESTARTSYS", 0, neg(ERESTARTSYS), 0, 0x1000 - 2, true, 0},
		{"wait4 ERESTARTNOINTR", 61, neg(ERESTARTNOINTR), 61, 0x1000 - 2, true, 0},
		{"pause ERESTARTNOHAND", 34, neg(ERESTARTNOHAND), 34, 0x1000 - 2, true, 0},
		{"clock_nanosleep RESTARTBLOCK", 230, neg(ERESTART_RESTARTBLOCK), neg(EINTR), 0x1000, true, 0},
		{"poll with a timeout RESTARTBLOCK", 7, neg(ERESTART_RESTARTBLOCK), neg(EINTR), 0x1000, true, 1000},
		{"poll with no timeout RESTARTBLOCK", 7, neg(ERESTART_RESTARTBLOCK), 7, 0x1000 - 2, true, 0xffffffff},
		{"another call RESTARTBLOCK, its rdx -1", 230, neg(ERESTART_RESTARTBLOCK), neg(EINTR), 0x1000, true, 0xffffffff},
		{"completed syscall", 1, 5, 5, 0x1000, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Regs{OrigRax: tc.orig, Rax: tc.rax, Rip: 0x1000, Rdx: tc.rdx}
			desc := r.PrepareResume()
			if r.Rax != tc.wantRax || r.Rip != tc.wantRip || (desc != "") != tc.wantDesc {
				t.Errorf("rax=%#x rip=%#x desc=%q; want rax=%#x rip=%#x", r.Rax, r.Rip, desc, tc.wantRax, tc.wantRip)
			}
			if int64(r.OrigRax) != -1 {
				t.Errorf("orig_rax = %#x, want -1 so the kernel adds no restart of its own", r.OrigRax)
			}
		})
	}
}

// The injection and stub bytes decode to what their comments say.
func TestInstructionBytes(t *testing.T) {
	inst, err := x86asm.Decode(SyscallInsn, 64)
	if err != nil || inst.Op != x86asm.SYSCALL || inst.Len != len(SyscallInsn) {
		t.Fatalf("SyscallInsn decodes to %v (len %d, err %v)", inst, inst.Len, err)
	}
	code := StubCode()
	var ops []x86asm.Op
	off := 0
	syscallAt := -1
	for off < len(code) {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil {
			t.Fatalf("stub code at %d: %v", off, err)
		}
		if inst.Op == x86asm.SYSCALL {
			syscallAt = off
		}
		ops = append(ops, inst.Op)
		off += inst.Len
	}
	want := []x86asm.Op{x86asm.MOV, x86asm.MOV, x86asm.SYSCALL, x86asm.UD2}
	if len(ops) != len(want) {
		t.Fatalf("stub decodes to %v, want %v", ops, want)
	}
	for i := range want {
		if ops[i] != want[i] {
			t.Fatalf("stub decodes to %v, want %v", ops, want)
		}
	}
	if syscallAt != StubSyscallOffset {
		t.Errorf("syscall at offset %d, StubSyscallOffset = %d", syscallAt, StubSyscallOffset)
	}
}
