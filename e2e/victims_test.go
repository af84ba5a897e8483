package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The victims are plain C programs in ../testdata, compiled with gcc at
// test time, once per name and flag set (like delve's BuildFixture). With
// CRYO_E2E_VICTIM_DIR set they are taken prebuilt from there instead (for
// a machine without gcc, such as the arm64 guest of scripts/arm64), named
// as victimFile names them.

const envVictimDir = "CRYO_E2E_VICTIM_DIR"

// victimFile is the file name of victim name built with flags: the name
// and the flags as they are, "counter", "counter-static",
// "counter-pie-fPIE".
func victimFile(name string, flags []string) string { return name + strings.Join(flags, "") }

var (
	victimMu    sync.Mutex
	victimCache = map[string]victimBuild{}
)

type victimBuild struct {
	path string
	err  error
}

// Flag sets the tests build victims with.
var (
	flagsDynamic = []string{}
	flagsStatic  = []string{"-static"}
	flagsPIE     = []string{"-pie", "-fPIE"}
	flagsNoPIE   = []string{"-no-pie", "-fno-pie"}
)

// buildVictimErr compiles ../testdata/NAME.c with extra gcc flags and
// returns the executable's path.
func buildVictimErr(name string, flags ...string) (string, error) {
	key := name + "\x00" + strings.Join(flags, "\x00")
	victimMu.Lock()
	defer victimMu.Unlock()
	if b, ok := victimCache[key]; ok {
		return b.path, b.err
	}
	if dir := os.Getenv(envVictimDir); dir != "" {
		out := filepath.Join(dir, victimFile(name, flags))
		if _, err := os.Stat(out); err != nil {
			return "", fmt.Errorf("%s: prebuilt victim: %w", envVictimDir, err)
		}
		return out, nil
	}

	src, err := filepath.Abs(filepath.Join("..", "testdata", name+".c"))
	if err != nil {
		return "", err
	}
	out := filepath.Join(victimDir, victimFile(name, flags))
	args := append([]string{"-O2", "-g", "-Wall", "-o", out, src}, flags...)
	cmd := exec.Command("gcc", args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		err = fmt.Errorf("gcc %s: %v\n%s", strings.Join(args, " "), err, msg)
		victimCache[key] = victimBuild{err: err}
		return "", err
	}
	victimCache[key] = victimBuild{path: out}
	return out, nil
}

// buildVictim is buildVictimErr that fails the test on error (and skips it,
// outside CI, when there is no gcc).
func buildVictim(tb testing.TB, name string, flags ...string) string {
	tb.Helper()
	if _, err := exec.LookPath("gcc"); err != nil && os.Getenv(envVictimDir) == "" {
		skipOrFail(tb, "gcc not found: %v", err)
	}
	p, err := buildVictimErr(name, flags...)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// buildStaticVictim builds with -static; a missing static libc is a skip
// (outside CI), not a failure.
func buildStaticVictim(tb testing.TB, name string) string {
	tb.Helper()
	if _, err := exec.LookPath("gcc"); err != nil && os.Getenv(envVictimDir) == "" {
		skipOrFail(tb, "gcc not found: %v", err)
	}
	p, err := buildVictimErr(name, flagsStatic...)
	if err != nil {
		if strings.Contains(err.Error(), "cannot find -lc") {
			skipOrFail(tb, "no static libc: %v", err)
		}
		tb.Fatal(err)
	}
	return p
}
