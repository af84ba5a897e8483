// Command init is PID 1 of the arm64 test guest that scripts/arm64/test.sh
// boots under qemu: it mounts /proc, /sys, /dev (with devpts) and /tmp, sets the loopback interface up, runs the test
// binaries its plan lists one after the other, prints one result marker
// on the console and powers the machine off.
//
// The plan (/cryo/plan, written by test.sh) has one directive a line:
//
//	env KEY=VALUE              set for every test binary run after it
//	module PATH                load the kernel module PATH (finit_module)
//	run DIR BINARY ARGS...     run BINARY in DIR with ARGS (no spaces)
//
// The result marker is the line "CRYO_ARM64_RESULT=" followed by PASS only
// when every binary exited 0 and each ran at least one test; otherwise
// FAIL (a binary failed), NOTESTS (one ran no test) or INITERROR (the
// guest could not be set up or the plan not read).
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	planPath = "/cryo/plan"
	marker   = "CRYO_ARM64_RESULT="
)

func main() {
	result := "INITERROR"
	err := mountAll()
	if err == nil {
		result, err = runPlan(planPath)
	}
	if err != nil {
		fmt.Printf("init: %v\n", err)
	}
	fmt.Printf("\n%s%s\n", marker, result)
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		// Exiting PID 1 panics the kernel: the host sees it and fails.
		fmt.Printf("init: power off: %v\n", err)
	}
	os.Exit(1)
}

func mountAll() error {
	// /tmp keeps setuid: the privilege tests run a setuid-root victim
	// from there.
	for _, m := range []struct {
		fs, dir string
		flags   uintptr
	}{
		{"proc", "/proc", unix.MS_NOSUID}, {"sysfs", "/sys", unix.MS_NOSUID},
		{"devtmpfs", "/dev", unix.MS_NOSUID}, {"tmpfs", "/tmp", 0},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fs, m.dir, m.fs, m.flags, ""); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.fs, m.dir, err)
		}
	}
	// Pseudo-terminals for the terminal test: devpts, and /dev/ptmx
	// pointing at its multiplexer where devtmpfs has none.
	if err := os.MkdirAll("/dev/pts", 0o755); err != nil {
		return err
	}
	if err := unix.Mount("devpts", "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "ptmxmode=0666,mode=0620"); err != nil {
		return fmt.Errorf("mount devpts on /dev/pts: %w", err)
	}
	if _, err := os.Stat("/dev/ptmx"); err != nil {
		if err := os.Symlink("pts/ptmx", "/dev/ptmx"); err != nil {
			return err
		}
	}
	if err := os.Chmod("/tmp", 0o1777); err != nil {
		return err
	}
	return loopbackUp()
}

// loopbackUp sets the loopback interface up, which gives it 127.0.0.1
// and ::1: the socket tests talk over them.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback: SIOCSIFFLAGS: %w", err)
	}
	return nil
}

// Lines of `go test -v` output (subtests are indented).
var (
	passLine = regexp.MustCompile(`^\s*--- PASS: `)
	failLine = regexp.MustCompile(`^\s*--- FAIL: `)
)

func runPlan(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "INITERROR", err
	}
	env := []string{"PATH=/cryo/bin:/usr/bin:/bin", "HOME=/tmp"}
	failed, noTests := false, false
	var passed, fails, binaries int
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#"):
		case f[0] == "env" && len(f) == 2:
			env = append(env, f[1])
		case f[0] == "module" && len(f) == 2:
			if err := loadModule(f[1]); err != nil {
				return "INITERROR", err
			}
		case f[0] == "run" && len(f) >= 3:
			binaries++
			p, n, err := runTest(f[1], f[2], f[3:], env)
			passed += p
			fails += n
			switch {
			case err != nil:
				fmt.Printf("init: %s: %v\n", f[2], err)
				failed = true
			case p == 0:
				fmt.Printf("init: %s ran no test\n", f[2])
				noTests = true
			}
		default:
			return "INITERROR", fmt.Errorf("%s: bad line %q", path, line)
		}
	}
	fmt.Printf("arm64: %d passed, %d failed\n", passed, fails)
	switch {
	case failed:
		return "FAIL", nil
	case noTests || binaries == 0:
		return "NOTESTS", nil
	}
	return "PASS", nil
}

// loadModule loads the kernel module at path (one the kernel has built
// in or loaded already is fine).
func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("finit_module %s: %w", path, err)
	}
	fmt.Printf("init: loaded %s\n", path)
	return nil
}

// runTest runs one test binary, copying its output to the console, and
// counts the tests that passed and failed.
func runTest(dir, bin string, args, env []string) (passed, failed int, err error) {
	fmt.Printf("init: %s %s (in %s)\n", bin, strings.Join(args, " "), dir)
	start := time.Now()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	r, w, err := os.Pipe()
	if err != nil {
		return 0, 0, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		w.Close()
		r.Close()
		return 0, 0, err
	}
	w.Close()
	sc := bufio.NewScanner(io.TeeReader(r, os.Stdout))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		switch {
		case passLine.MatchString(sc.Text()):
			passed++
		case failLine.MatchString(sc.Text()):
			failed++
		}
	}
	if sc.Err() != nil {
		io.Copy(os.Stdout, r) // an overlong line: keep the pipe flowing
	}
	r.Close()
	err = cmd.Wait()
	fmt.Printf("init: %s: %d passed, %d failed, %v, after %v\n", bin, passed, failed, cmd.ProcessState, time.Since(start).Round(time.Millisecond))
	return passed, failed, err
}
