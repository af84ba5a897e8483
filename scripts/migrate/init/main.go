// Command init is PID 1 of the guest that scripts/migrate/test.sh boots
// under qemu-system-x86_64 (Debian's 6.1 kernel, a Haswell CPU): it
// mounts /proc, /sys, /dev and /tmp, loads the modules of the virtio-blk
// disk, runs the plan's steps (start victims, talk to them, freeze them,
// thaw images frozen on the host), writes what they left in /out to the
// disk as a tar archive, prints one result marker on the console and
// powers the machine off. The guest judges nothing about the processes:
// the host's tests do (e2e/migrate_test.go) from the archive.
//
// The plan (/cryo/plan, written by test.sh) has one step a line; NAME
// names a process the guest started, TEXT is the rest of the line:
//
//	env KEY=VALUE         set for every process started after it
//	uid N                 start the processes after it as user and group
//	                      N (default: root, as init)
//	module PATH           load the kernel module PATH (finit_module)
//	start NAME PATH ARGS  start PATH with pipes on 0-2 (stderr with stdout)
//	send NAME TEXT        write TEXT and a newline to its stdin
//	expect NAME TEXT      wait (60 s at most) for an output line that
//	                      starts with TEXT
//	freeze NAME ARGS      /cryo/bin/freeze ARGS -o /out/NAME.bin PID: its
//	                      output goes to /out/NAME.freeze; then waits for
//	                      the process to end (freeze kills it)
//	wait NAME SECONDS     wait that long at most for it to exit; kill it
//	                      if it has not
//
// Every process's whole output goes to /out/NAME.out and the way it ended
// to /out/NAME.status ("exit N", "signal NAME" or "killed" when wait
// killed it), written when it ends. /out/cpuflags holds the guest CPU's
// flags from /proc/cpuinfo, /out/kernel its release.
//
// The result marker is the line "CRYO_MIGRATE_RESULT=" followed by PASS
// when every step did what it says (a freeze that fails, an expect that
// times out, a process that cannot start: FAIL) and the archive is on the
// disk; INITERROR when the guest could not be set up or the plan read.
package main

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	planPath = "/cryo/plan"
	outDir   = "/out"
	disk     = "/dev/vda"
	marker   = "CRYO_MIGRATE_RESULT="
)

func main() {
	result := "INITERROR"
	err := setup()
	if err == nil {
		result, err = runPlan(planPath)
		if err2 := writeArchive(); err2 != nil {
			fmt.Printf("init: %v\n", err2)
			result = "INITERROR"
		}
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

func setup() error {
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
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(outDir, "kernel"), []byte(unix.ByteSliceToString(uts.Release[:])+"\n"), 0o644); err != nil {
		return err
	}
	cpuinfo, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return err
	}
	flags := regexp.MustCompile(`(?m)^flags\s*:\s*(.*)$`).FindSubmatch(cpuinfo)
	if flags == nil {
		return errors.New("no flags line in /proc/cpuinfo")
	}
	return os.WriteFile(filepath.Join(outDir, "cpuflags"), append(flags[1], '\n'), 0o644)
}

// proc is a process the plan started.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string // output lines so far
	cond  *sync.Cond
	done  chan struct{} // closed once it has ended and its files are written
}

func (p *proc) reader(r io.Reader, out *os.File) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fmt.Fprintln(out, sc.Text())
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		p.cond.Broadcast()
		p.mu.Unlock()
	}
	io.Copy(out, r)
	err := p.cmd.Wait()
	status := "exit 0"
	if ee, ok := err.(*exec.ExitError); ok {
		ws := ee.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			status = "signal " + unix.SignalName(ws.Signal())
		default:
			status = "exit " + strconv.Itoa(ws.ExitStatus())
		}
	} else if err != nil {
		status = err.Error()
	}
	out.Close()
	os.WriteFile(filepath.Join(outDir, p.name+".status"), []byte(status+"\n"), 0o644)
	fmt.Printf("init: %s ended: %s\n", p.name, status)
	p.mu.Lock()
	p.cond.Broadcast()
	p.mu.Unlock()
	close(p.done)
}

func (p *proc) ended() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// expect waits for a line starting with text, after those already
// matched by an earlier expect.
func (p *proc) expect(text string, seen *int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer t.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for ; *seen < len(p.lines); *seen++ {
			if strings.HasPrefix(p.lines[*seen], text) {
				*seen++
				return nil
			}
		}
		if p.ended() {
			return fmt.Errorf("%s ended without printing %q", p.name, text)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s printed no %q within %v", p.name, text, timeout)
		}
		p.cond.Wait()
	}
}

func runPlan(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "INITERROR", err
	}
	env := []string{"PATH=/cryo/bin:/usr/bin:/bin", "HOME=/tmp"}
	var cred *syscall.Credential
	procs := map[string]*proc{}
	seen := map[string]*int{}
	result := "PASS"
	fail := func(format string, args ...any) {
		fmt.Printf("init: FAIL: "+format+"\n", args...)
		result = "FAIL"
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		fmt.Printf("init: %s\n", line)
		var p *proc
		if len(f) >= 2 && f[0] != "env" && f[0] != "module" && f[0] != "start" && f[0] != "uid" {
			if p = procs[f[1]]; p == nil {
				return "INITERROR", fmt.Errorf("%s: %q: no process %s started", path, line, f[1])
			}
		}
		rest := ""
		if len(f) >= 3 {
			rest = strings.TrimSpace(strings.SplitN(strings.TrimSpace(line), " "+f[1]+" ", 2)[1])
		}
		switch {
		case f[0] == "env" && len(f) == 2:
			env = append(env, f[1])
		case f[0] == "uid" && len(f) == 2:
			id, err := strconv.ParseUint(f[1], 10, 32)
			if err != nil {
				return "INITERROR", fmt.Errorf("%s: %q: %v", path, line, err)
			}
			cred = &syscall.Credential{Uid: uint32(id), Gid: uint32(id)}
		case f[0] == "module" && len(f) == 2:
			if err := loadModule(f[1]); err != nil {
				return "INITERROR", err
			}
		case f[0] == "start" && len(f) >= 3:
			if procs[f[1]] != nil {
				return "INITERROR", fmt.Errorf("%s: %q: %s started twice", path, line, f[1])
			}
			p, err := start(f[1], f[2], f[3:], env, cred)
			if err != nil {
				fail("start %s: %v", f[1], err)
				continue
			}
			procs[f[1]] = p
			seen[f[1]] = new(int)
		case f[0] == "send" && len(f) >= 2:
			if _, err := io.WriteString(p.stdin, rest+"\n"); err != nil {
				fail("send to %s: %v", p.name, err)
			}
		case f[0] == "expect" && len(f) >= 3:
			if err := p.expect(rest, seen[p.name], 60*time.Second); err != nil {
				fail("%v", err)
			}
		case f[0] == "freeze" && len(f) >= 2:
			args := append(append([]string{}, f[2:]...), "-o", filepath.Join(outDir, p.name+".bin"), strconv.Itoa(p.cmd.Process.Pid))
			start := time.Now()
			out, err := exec.Command("/cryo/bin/freeze", args...).CombinedOutput()
			os.WriteFile(filepath.Join(outDir, p.name+".freeze"), out, 0o644)
			fmt.Printf("%s", out)
			if err != nil {
				fail("freeze %s: %v", p.name, err)
				continue
			}
			fmt.Printf("init: froze %s in %v\n", p.name, time.Since(start).Round(time.Millisecond))
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				fail("%s still runs 30 s after its freeze", p.name)
			}
		case f[0] == "wait" && len(f) == 3:
			s, err := strconv.ParseFloat(f[2], 64)
			if err != nil {
				return "INITERROR", fmt.Errorf("%s: %q: %v", path, line, err)
			}
			select {
			case <-p.done:
			case <-time.After(time.Duration(s * float64(time.Second))):
				p.cmd.Process.Kill()
				<-p.done
				os.WriteFile(filepath.Join(outDir, p.name+".status"), []byte("killed\n"), 0o644)
			}
		default:
			return "INITERROR", fmt.Errorf("%s: bad line %q", path, line)
		}
	}
	for _, p := range procs {
		if !p.ended() {
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	return result, nil
}

func start(name, path string, args, env []string, cred *syscall.Credential) (*proc, error) {
	out, err := os.Create(filepath.Join(outDir, name+".out"))
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	p.cmd.Env, p.cmd.Dir = env, "/tmp"
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		w.Close()
		r.Close()
		out.Close()
		return nil, err
	}
	w.Close()
	go p.reader(r, out)
	return p, nil
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
	return nil
}

// writeArchive writes /out to the disk as a tar archive: the host reads
// the raw disk with tar -x.
func writeArchive() error {
	// The disk's driver probes it after its module loaded: wait a little.
	d, err := os.OpenFile(disk, os.O_WRONLY, 0)
	for i := 0; i < 100 && errors.Is(err, os.ErrNotExist); i++ {
		time.Sleep(100 * time.Millisecond)
		d, err = os.OpenFile(disk, os.O_WRONLY, 0)
	}
	if err != nil {
		return err
	}
	defer d.Close()
	tw := tar.NewWriter(d)
	ents, err := os.ReadDir(outDir)
	if err != nil {
		return err
	}
	var total int64
	for _, e := range ents {
		path := filepath.Join(outDir, e.Name())
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", disk, err)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		n, err := io.Copy(tw, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", disk, err)
		}
		total += n
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("%s: %w", disk, err)
	}
	if err := d.Sync(); err != nil {
		return fmt.Errorf("%s: %w", disk, err)
	}
	fmt.Printf("init: wrote %d files (%d bytes) to %s\n", len(ents), total, disk)
	return nil
}
