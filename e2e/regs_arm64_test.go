package e2e

import (
	"path/filepath"
	"strconv"
	"testing"
)

// TestRegistersARM64: x1-x30, NZCV, v0-v31, FPCR, FPSR and TPIDR_EL0 of
// a process frozen inside a blocking read(2) are restored exactly, in the
// thawed copy and in the original a --leave-running freeze let go, and
// the read is re-issued rather than failed. (regs.c's arm64 twin; this
// file builds on arm64 only.)
func TestRegistersARM64(t *testing.T) {
	// answer gives the victim its byte and checks what it says.
	answer := func(t *testing.T, p *proc) {
		t.Helper()
		waitInSyscall(t, p, sysRead)
		if _, err := p.stdin.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		line, ok := p.out.nextLine(lineTimeout)
		if !ok || line != "regs ok" {
			t.Fatalf("%s: %q, want \"regs ok\"\n%s", p.name, line, p.diag())
		}
		if st := p.waitExit(); st.ExitCode() != 0 {
			t.Errorf("%s: %v, want exit status 0", p.name, st)
		}
	}
	t.Run("untouched", func(t *testing.T) {
		setup(t)
		p := startProc(t, "regs-arm64", buildVictim(t, "regs-arm64"), nil)
		p.expect("ready")
		answer(t, p)
	})
	t.Run("thawed", func(t *testing.T) {
		setup(t)
		p := startProc(t, "regs-arm64", buildVictim(t, "regs-arm64"), nil)
		p.expect("ready")
		waitInSyscall(t, p, sysRead)
		img := filepath.Join(t.TempDir(), "regs.bin")
		freezeKill(t, p, img)
		answer(t, thaw(t, img, false))
	})
	t.Run("left-running", func(t *testing.T) {
		setup(t)
		p := startProc(t, "regs-arm64", buildVictim(t, "regs-arm64"), nil)
		p.expect("ready")
		waitInSyscall(t, p, sysRead)
		img := filepath.Join(t.TempDir(), "regs.bin")
		freeze(t, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
		p.requireUndisturbed()
		answer(t, p)
		answer(t, thaw(t, img, true))
	})
}
