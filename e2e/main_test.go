package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

const (
	// Environment variables understood by the test binary.
	envCI     = "CI"               // "true": skips for a missing facility become failures
	envBinDir = "CRYO_E2E_BIN_DIR" // use prebuilt freeze and thaw from here

	// Internal helper modes of the test binary itself (see TestMain).
	envProbe = "CRYO_E2E_PTRACE_PROBE" // seize this pid, stop it, detach
	envIdle  = "CRYO_E2E_IDLE"         // block reading stdin until EOF
)

var (
	freezeBin, thawBin string
	toolsErr           error // why freeze/thaw could not be built

	victimDir string // where buildVictim puts compiled victims
)

func TestMain(m *testing.M) {
	// Helper modes: the test binary re-executed as a small tool.
	if pid := os.Getenv(envProbe); pid != "" {
		os.Exit(ptraceProbe(pid))
	}
	if os.Getenv(envIdle) != "" {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Descriptors inherited from whoever ran us without close-on-exec would
	// leak into every victim (Go's exec passes on any fd not marked so) and
	// make it unfreezable: victims get exactly fds 0-2.
	closeInheritedFds()
	// No progress bar on the tests' terminals: a thaw slowed past its
	// second by a loaded machine would draw one between the lines a test
	// reads. TestProgress asks for them.
	os.Setenv(envProgressDelay, "1h")

	tmp, err := os.MkdirTemp("", "cryo-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	victimDir = filepath.Join(tmp, "victims")
	if err := os.Mkdir(victimDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}

	if dir := os.Getenv(envBinDir); dir != "" {
		freezeBin, thawBin = filepath.Join(dir, "freeze"), filepath.Join(dir, "thaw")
		for _, p := range []string{freezeBin, thawBin} {
			if _, err := os.Stat(p); err != nil {
				toolsErr = fmt.Errorf("%s: %v", envBinDir, err)
			}
		}
	} else {
		freezeBin, thawBin, toolsErr = buildTools(filepath.Join(tmp, "bin"))
	}
	if toolsErr != nil {
		// Tests that need the tools fail with this; the rest still run.
		fmt.Fprintf(os.Stderr, "e2e: cannot build freeze/thaw: %v\n", toolsErr)
	}

	// Become a child subreaper: any process a test's freeze or thaw leaves
	// behind is re-parented to us, where checkNoStrays finds it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: PR_SET_CHILD_SUBREAPER:", err)
		return 1
	}
	return m.Run()
}

// buildTools builds cmd/freeze and cmd/thaw (CGO_ENABLED=0) into dir,
// and attaches the packed restorer to freeze as make does (cmd/restorer,
// stripped: see the Makefile).
func buildTools(dir string) (freeze, thaw string, err error) {
	// go test puts its own go command first in PATH.
	for _, args := range [][]string{
		{"build", "-trimpath", "-o", dir + string(filepath.Separator), "./cmd/freeze", "./cmd/thaw"},
		{"build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "restorer"), "./cmd/restorer"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = ".." // the module root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	freeze, thaw = filepath.Join(dir, "freeze"), filepath.Join(dir, "thaw")
	prog, err := os.ReadFile(filepath.Join(dir, "restorer"))
	if err != nil {
		return "", "", err
	}
	packed, err := image.PackRestorer(prog, true)
	if err != nil {
		return "", "", err
	}
	f, err := os.OpenFile(freeze, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return "", "", err
	}
	if err := image.AttachRestorer(f, packed); err != nil {
		f.Close()
		return "", "", fmt.Errorf("attach the restorer to %s: %v", freeze, err)
	}
	return freeze, thaw, f.Close()
}

func inCI() bool { return os.Getenv(envCI) == "true" }

// skipOrFail skips the test, except in CI, where a skipped test would hide
// a broken setup, so it fails.
func skipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if inCI() {
		tb.Fatalf("CI=true, not skipping: "+format, args...)
	}
	tb.Skipf(format, args...)
}

// needTools fails the test if freeze and thaw were not built.
func needTools(tb testing.TB) {
	tb.Helper()
	if toolsErr != nil {
		tb.Fatalf("freeze/thaw unavailable: %v", toolsErr)
	}
}

var (
	ptraceOnce sync.Once
	ptraceErr  error
)

// requirePtrace skips the test (fails it when CI=true) unless one process
// can ptrace another that is not its child: exactly what freeze must do
// to a victim started by the test. The probe runs once per test binary.
func requirePtrace(tb testing.TB) {
	tb.Helper()
	ptraceOnce.Do(func() { ptraceErr = probePtrace() })
	if ptraceErr != nil {
		skipOrFail(tb, "ptrace is not usable here: %v", ptraceErr)
	}
}

// setup is the common start of a freeze/thaw test: ptrace and the tools
// must be available, and when the test ends (after all its other cleanups,
// which kill and reap its processes) no process of its may remain.
func setup(tb testing.TB) {
	tb.Helper()
	requirePtrace(tb)
	needTools(tb)
	tb.Cleanup(func() { checkNoStrays(tb) })
}

// probePtrace starts an idle process (the test binary in idle mode) and
// has a second one (the test binary in probe mode, a sibling, not its
// parent) seize, interrupt and detach it.
func probePtrace() error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	target := exec.Command(self)
	target.Env = append(os.Environ(), envIdle+"=1")
	stdin, err := target.StdinPipe()
	if err != nil {
		return err
	}
	if err := target.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		_ = target.Process.Kill()
		_ = target.Wait()
	}()

	probe := exec.Command(self)
	probe.Env = append(os.Environ(), envProbe+"="+strconv.Itoa(target.Process.Pid))
	out, err := probe.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ptraceProbe is the probe mode: PTRACE_SEIZE pid, PTRACE_INTERRUPT it,
// wait for the stop, detach.
func ptraceProbe(pidStr string) int {
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	runtime.LockOSThread()
	if err := unix.PtraceSeize(pid); err != nil {
		fmt.Printf("PTRACE_SEIZE %d: %v\n", pid, err)
		return 1
	}
	if err := unix.PtraceInterrupt(pid); err != nil {
		fmt.Printf("PTRACE_INTERRUPT %d: %v\n", pid, err)
		return 1
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		fmt.Printf("wait4 %d: %v\n", pid, err)
		return 1
	}
	if !ws.Stopped() {
		fmt.Printf("wait4 %d: not stopped: %#x\n", pid, ws)
		return 1
	}
	if err := unix.PtraceDetach(pid); err != nil {
		fmt.Printf("PTRACE_DETACH %d: %v\n", pid, err)
		return 1
	}
	return 0
}

// closeInheritedFds marks every descriptor above 2 close-on-exec.
func closeInheritedFds() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
