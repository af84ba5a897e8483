package e2e

import (
	"path/filepath"
	"testing"
)

// TestRegisters: general purpose, control, vector and mask registers of a
// process frozen inside a blocking read(2) are restored exactly, and the
// read is re-issued rather than failed.
func TestRegisters(t *testing.T) {
	requireAMD64(t)
	setup(t)
	dir := t.TempDir()
	p := startProc(t, "regs", buildVictim(t, "regs"), nil)
	t.Logf("victim: %s", p.expect("ready mode="))
	waitInSyscall(t, p, sysRead)

	img := filepath.Join(dir, "regs.bin")
	freezeKill(t, p, img)

	th := thaw(t, img, false)
	waitInSyscall(t, th, sysRead)
	if _, err := th.stdin.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	line, ok := th.out.nextLine(lineTimeout)
	if !ok || line != "regs ok" {
		t.Fatalf("thawed regs: %q, want \"regs ok\"\n%s", line, th.diag())
	}
	if st := th.waitExit(); st.ExitCode() != 0 {
		t.Errorf("thawed regs: %v, want exit status 0", st)
	}
	if th.errs.text() != "" {
		t.Logf("stderr:\n%s", th.errs)
	}
}
