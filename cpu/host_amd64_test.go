package cpu

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch/amd64"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/ptrace"
)

// skipOrFail skips, except under CI=true where a skip would hide a
// regression.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, not skipping: "+format, args...)
	}
	t.Skipf(format, args...)
}

// TestHostFeaturesAgreeWithKernel: every feature read from CPUID is one
// the kernel lists in /proc/cpuinfo, and every listed flag the table
// knows is read, unless the OS left its register state disabled.
func TestHostFeaturesAgreeWithKernel(t *testing.T) {
	host, err := HostFeatures()
	if err != nil {
		t.Fatal(err)
	}
	flags, err := proc.CPUFlags()
	if err != nil {
		t.Fatal(err)
	}
	kernel := map[string]bool{}
	for _, f := range flags {
		kernel[f] = true
	}
	mine := map[string]bool{}
	for _, f := range host {
		mine[f] = true
		if !kernel[f] {
			t.Errorf("CPUID says %s, /proc/cpuinfo does not", f)
		}
	}
	x := xcr0()
	for _, f := range x86Features {
		if kernel[f.name] && !mine[f.name] && x&f.state == f.state {
			t.Errorf("/proc/cpuinfo says %s, CPUID (with XCR0 %#x) does not", f.name, x)
		}
	}
	for _, base := range []string{"sse2", "cmov", "fxsr"} {
		if !mine[base] {
			t.Errorf("x86-64 baseline feature %s not found", base)
		}
	}
	t.Logf("%d features: %s", len(host), strings.Join(host, " "))
}

// stoppedChild starts a process and stops it under ptrace, from the
// calling (locked) thread.
func stoppedChild(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := ptrace.Seize(pid, 0); err != nil {
		skipOrFail(t, "ptrace: %v", err)
	}
	if err := ptrace.Interrupt(pid); err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil || !ws.Stopped() {
		t.Fatalf("wait for the stop: %v %v", ws, err)
	}
	return pid
}

// TestXSaveLayoutOfRealThread: the layout read from CPUID is the one the
// kernel's NT_X86_XSTATE has; an area read from a real thread, converted
// to a Haswell layout (832 bytes, x87 SSE AVX) and back, keeps its XMM and
// YMM registers, and the kernel takes the result into the thread, which
// then holds exactly those registers.
func TestXSaveLayoutOfRealThread(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l, err := HostXSave()
	if err != nil || l == nil {
		t.Fatalf("HostXSave: %v %v", l, err)
	}
	if _, ok := l.Component(2); !ok {
		t.Skip("this CPU has no AVX state")
	}
	pid := stoppedChild(t)
	area, err := ptrace.GetRegset(pid, amd64.NT_X86_XSTATE, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if len(area) != l.Size || amd64.AreaXCR0(area) != l.XCR0 {
		t.Fatalf("kernel area %d bytes XCR0 %#x, CPUID layout %d bytes XCR0 %#x", len(area), amd64.AreaXCR0(area), l.Size, l.XCR0)
	}
	t.Logf("host area %d bytes, XCR0 %#x, XSTATE_BV %#x, in use %#x", len(area), l.XCR0, amd64.XStateBV(area), amd64.XSaveInUse(area, l))

	// Give the thread recognisable XMM and YMM registers.
	pattern := func(i int) byte { return byte(i*7 + 3) }
	for i := 160; i < 160+256; i++ { // XMM0-15
		area[i] = pattern(i)
	}
	ymm, _ := l.Component(2)
	for i := 0; i < ymm.Size; i++ {
		area[ymm.Offset+i] = pattern(i + 1000)
	}
	binary.LittleEndian.PutUint64(area[512:], amd64.XStateBV(area)|1<<1|1<<2)
	if err := ptrace.SetRegset(pid, amd64.NT_X86_XSTATE, area); err != nil {
		t.Fatal(err)
	}
	set, err := ptrace.GetRegset(pid, amd64.NT_X86_XSTATE, 64<<10)
	if err != nil {
		t.Fatal(err)
	}

	haswell := &amd64.XSaveLayout{Size: 832, XCR0: 7, Components: []amd64.XComponent{{Feature: 2, Offset: 576, Size: 256}}}
	small, dropped, err := amd64.ConvertXSave(set, l, haswell, make([]byte, 832), false)
	if err != nil {
		t.Fatalf("to Haswell: %v", err)
	}
	if len(small) != 832 || dropped != 0 || amd64.XStateBV(small)&^7 != 0 || amd64.XStateBV(small)&4 == 0 {
		t.Fatalf("to Haswell: %d bytes, XSTATE_BV %#x, dropped %#x", len(small), amd64.XStateBV(small), dropped)
	}
	if !bytes.Equal(small[576:832], set[ymm.Offset:ymm.Offset+ymm.Size]) || !bytes.Equal(small[:464], set[:464]) {
		t.Fatal("to Haswell: registers differ")
	}
	cur, err := ptrace.GetRegset(pid, amd64.NT_X86_XSTATE, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := amd64.ConvertXSave(small, haswell, l, cur, false)
	if err != nil {
		t.Fatalf("back from Haswell: %v", err)
	}
	// Put every component in its initial state, then load the converted
	// area.
	initArea := append([]byte(nil), cur...)
	for i := 160; i < 416; i++ {
		initArea[i] = 0
	}
	binary.LittleEndian.PutUint64(initArea[512:], 0)
	if err := ptrace.SetRegset(pid, amd64.NT_X86_XSTATE, initArea); err != nil {
		t.Fatal(err)
	}
	if cleared, err := ptrace.GetRegset(pid, amd64.NT_X86_XSTATE, 64<<10); err != nil || bytes.Equal(cleared[ymm.Offset:ymm.Offset+ymm.Size], set[ymm.Offset:ymm.Offset+ymm.Size]) {
		t.Fatalf("the thread's YMM registers survive an initial XSTATE_BV (%v)", err)
	}
	if err := ptrace.SetRegset(pid, amd64.NT_X86_XSTATE, back); err != nil {
		t.Fatalf("the kernel refuses the converted area: %v", err)
	}
	got, err := ptrace.GetRegset(pid, amd64.NT_X86_XSTATE, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[160:416], set[160:416]) || !bytes.Equal(got[ymm.Offset:ymm.Offset+ymm.Size], set[ymm.Offset:ymm.Offset+ymm.Size]) {
		t.Fatal("the thread's XMM/YMM registers differ after the round trip")
	}
	if pk, ok := l.Component(amd64.XFeaturePKRU); ok {
		if v := binary.LittleEndian.Uint32(got[pk.Offset:]); v != amd64.PKRUDefault {
			t.Errorf("PKRU after a round trip through a CPU without it: %#x, want the default %#x", v, uint32(amd64.PKRUDefault))
		}
	}
}
