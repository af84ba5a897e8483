package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Deadlines. Nothing here sleeps to synchronize: each wait is for an
// observable event (a line, an exit, a /proc state) and gives up after its
// deadline, reporting what it saw.
const (
	lineTimeout = 10 * time.Second // an expected answer line
	exitTimeout = 10 * time.Second // a process to exit
	toolTimeout = 2 * time.Minute  // one freeze or thaw command
)

// lineLog collects the lines a process writes to one pipe.
type lineLog struct {
	mu      sync.Mutex
	lines   []string
	partial string
	eof     bool
	readErr error
	changed chan struct{} // closed and replaced at every change
	next    int           // the next line nextLine returns
}

func newLineLog() *lineLog { return &lineLog{changed: make(chan struct{})} }

func (l *lineLog) feed(r io.ReadCloser) {
	defer r.Close()
	br := bufio.NewReader(r)
	for {
		s, err := br.ReadString('\n')
		l.mu.Lock()
		if strings.HasSuffix(s, "\n") {
			l.lines = append(l.lines, strings.TrimSuffix(l.partial+s, "\n"))
			l.partial = ""
		} else {
			l.partial += s
		}
		if err != nil {
			l.eof = true
			if !errors.Is(err, io.EOF) {
				l.readErr = err
			}
		}
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// nextLine returns the next line not yet returned, waiting up to timeout.
// ok is false at end of output or timeout.
func (l *lineLog) nextLine(timeout time.Duration) (line string, ok bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		if l.next < len(l.lines) {
			line = l.lines[l.next]
			l.next++
			l.mu.Unlock()
			return line, true
		}
		if l.eof {
			l.mu.Unlock()
			return "", false
		}
		ch := l.changed
		l.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return "", false
		}
	}
}

// text is everything received, as is.
func (l *lineLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, s := range l.lines {
		b.WriteString(s + "\n")
	}
	return b.String() + l.partial
}

// String is the whole transcript, for failure messages.
func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for i, s := range l.lines {
		mark := " "
		if i == l.next-1 {
			mark = ">" // the last line consumed
		}
		fmt.Fprintf(&b, "\t%s %q\n", mark, s)
	}
	if l.partial != "" {
		fmt.Fprintf(&b, "\t  %q (no newline)\n", l.partial)
	}
	if l.eof {
		b.WriteString("\t  <EOF>\n")
	}
	if l.readErr != nil {
		fmt.Fprintf(&b, "\t  read error: %v\n", l.readErr)
	}
	return b.String()
}

// proc is a running victim (or thawed image) whose stdin we write and whose
// stdout we read line by line. Its stdin, stdout and stderr are pipes
// unless stated otherwise, so that thaw connects the restored process to
// fresh pipes of ours.
type proc struct {
	tb    testing.TB
	name  string
	cmd   *exec.Cmd
	stdin *os.File
	out   *lineLog // nil when stdout is a file
	errs  *lineLog

	done    chan struct{}
	state   *os.ProcessState
	waitErr error
}

type procConfig struct {
	stdin  *os.File
	stderr *os.File
	stdout *os.File
	cred   *syscall.Credential
	dir    string
	stdio  *os.File   // all of stdin, stdout and stderr (a terminal)
	files  []*os.File // fds 3 and up (exec.Cmd.ExtraFiles)
	env    []string   // added to the environment
	// setsid starts the process in a session of its own; with ctty,
	// that terminal (its fd 3) is the session's controlling terminal.
	setsid bool
	ctty   *os.File
}

type procOpt func(*procConfig)

// withStdin gives the process this file as its stdin (instead of a pipe;
// p.stdin then reaches nobody).
func withStdin(f *os.File) procOpt { return func(c *procConfig) { c.stdin = f } }

// withErr gives the process this file as its stderr (instead of a pipe;
// p.errs then sees nothing).
func withErr(f *os.File) procOpt { return func(c *procConfig) { c.stderr = f } }

// withStdout gives the process this file as its stdout (instead of a pipe).
func withStdout(f *os.File) procOpt { return func(c *procConfig) { c.stdout = f } }

// withStdio gives the process f as stdin, stdout and stderr (a terminal);
// p.stdin, p.out and p.errs then see nothing.
func withStdio(f *os.File) procOpt {
	return func(c *procConfig) { c.stdio, c.stdout = f, f }
}

// withFiles gives the process files[i] as fd 3+i (nil: closed).
func withFiles(files []*os.File) procOpt { return func(c *procConfig) { c.files = files } }

// withEnv adds "K=V" variables to the process's environment.
func withEnv(kv ...string) procOpt { return func(c *procConfig) { c.env = append(c.env, kv...) } }

// withCtty starts the process in a new session whose controlling
// terminal is tty, which is also its fd 3.
func withCtty(tty *os.File) procOpt {
	return func(c *procConfig) { c.setsid, c.ctty = true, tty }
}

// withSession starts the process in a new session, without a
// controlling terminal.
func withSession() procOpt { return func(c *procConfig) { c.setsid = true } }

// inDir runs the process in dir.
func inDir(dir string) procOpt { return func(c *procConfig) { c.dir = dir } }

// asUser runs the process with these credentials.
func asUser(cred *syscall.Credential) procOpt { return func(c *procConfig) { c.cred = cred } }

var (
	trackedMu sync.Mutex
	tracked   = map[int]string{} // pid -> name, for checkNoStrays
)

// startProc starts path with args. A cleanup kills and reaps it.
func startProc(tb testing.TB, name, path string, args []string, opts ...procOpt) *proc {
	tb.Helper()
	var cfg procConfig
	for _, o := range opts {
		o(&cfg)
	}
	p := &proc{tb: tb, name: name, errs: newLineLog(), done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cfg.cred, Setsid: cfg.setsid}
	p.cmd.Dir = cfg.dir
	p.cmd.ExtraFiles = cfg.files
	if cfg.env != nil {
		p.cmd.Env = append(os.Environ(), cfg.env...)
	}
	if cfg.ctty != nil {
		p.cmd.ExtraFiles = append([]*os.File{cfg.ctty}, cfg.files...)
		p.cmd.SysProcAttr.Setctty, p.cmd.SysProcAttr.Ctty = true, 3
	}

	var childEnds []*os.File
	pipe := func() (r, w *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			tb.Fatal(err)
		}
		return r, w
	}
	inR, inW := pipe()
	p.cmd.Stdin, p.stdin = inR, inW
	childEnds = append(childEnds, inR)
	var outR *os.File
	if cfg.stdout != nil {
		p.cmd.Stdout = cfg.stdout
	} else {
		var outW *os.File
		outR, outW = pipe()
		p.cmd.Stdout = outW
		childEnds = append(childEnds, outW)
		p.out = newLineLog()
	}
	errR, errW := pipe()
	p.cmd.Stderr = errW
	childEnds = append(childEnds, errW)
	if cfg.stdin != nil {
		p.cmd.Stdin = cfg.stdin
	}
	if cfg.stderr != nil {
		p.cmd.Stderr = cfg.stderr
	}
	if cfg.stdio != nil {
		p.cmd.Stdin, p.cmd.Stderr = cfg.stdio, cfg.stdio
	}

	err := p.cmd.Start()
	for _, f := range childEnds {
		f.Close()
	}
	if err != nil {
		inW.Close()
		errR.Close()
		if outR != nil {
			outR.Close()
		}
		tb.Fatalf("start %s: %v", name, err)
	}
	if p.out != nil {
		go p.out.feed(outR)
	}
	go p.errs.feed(errR)

	pid := p.cmd.Process.Pid
	trackedMu.Lock()
	tracked[pid] = name
	trackedMu.Unlock()
	go func() {
		p.waitErr = p.cmd.Wait()
		p.state = p.cmd.ProcessState
		trackedMu.Lock()
		delete(tracked, pid)
		trackedMu.Unlock()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.kill()
		p.stdin.Close()
	})
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// diag describes the process for a failure message.
func (p *proc) diag() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (pid %d", p.name, p.pid())
	if p.exited() {
		fmt.Fprintf(&b, ", exited: %v", p.state)
	} else {
		fmt.Fprintf(&b, ", running, %s", procStateLine(p.pid()))
	}
	b.WriteString(")\n")
	if p.out != nil {
		fmt.Fprintf(&b, "  stdout:\n%s", p.out)
	}
	fmt.Fprintf(&b, "  stderr:\n%s", p.errs)
	return b.String()
}

// send writes one line to the process's stdin.
func (p *proc) send(line string) {
	p.tb.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.tb.Fatalf("write %q to %s: %v\n%s", line, p.name, err, p.diag())
	}
}

// expect returns the next stdout line, which must start with prefix.
func (p *proc) expect(prefix string) string {
	p.tb.Helper()
	line, ok := p.out.nextLine(lineTimeout)
	if !ok {
		p.tb.Fatalf("%s: no line %q within %v\n%s", p.name, prefix+"...", lineTimeout, p.diag())
	}
	if !strings.HasPrefix(line, prefix) {
		p.tb.Fatalf("%s: got line %q, want %q...\n%s", p.name, line, prefix, p.diag())
	}
	return line
}

// ask sends cmd and returns the answer, which must start with prefix.
func (p *proc) ask(cmd, prefix string) string {
	p.tb.Helper()
	p.send(cmd)
	return p.expect(prefix)
}

// waitExit waits for the process to exit and returns its state.
func (p *proc) waitExit() *os.ProcessState {
	p.tb.Helper()
	select {
	case <-p.done:
		return p.state
	case <-time.After(exitTimeout):
		p.tb.Fatalf("%s did not exit within %v\n%s", p.name, exitTimeout, p.diag())
		return nil
	}
}

// kill kills the process, if it still runs, and reaps it.
func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		p.tb.Errorf("%s (pid %d) survived SIGKILL for %v", p.name, p.pid(), exitTimeout)
	}
}

// requireUndisturbed fails unless the process still runs, untraced and not
// stopped: how a failed freeze must leave its target.
func (p *proc) requireUndisturbed() {
	p.tb.Helper()
	if p.exited() {
		p.tb.Fatalf("%s died\n%s", p.name, p.diag())
	}
	st, err := procStatus(p.pid())
	if err != nil {
		p.tb.Fatalf("%s: %v", p.name, err)
	}
	if st["TracerPid"] != "0" {
		p.tb.Errorf("%s is still traced by pid %s", p.name, st["TracerPid"])
	}
	if s := st["State"]; strings.HasPrefix(s, "t") || strings.HasPrefix(s, "T") {
		p.tb.Errorf("%s left stopped: State %q", p.name, s)
	}
}

// toolResult is the outcome of one freeze or thaw command.
type toolResult struct {
	args   []string
	code   int // exit status, -1 if killed by a signal
	stdout string
	stderr string
	dur    time.Duration
}

func (r toolResult) String() string {
	return fmt.Sprintf("%s: exit %d after %v\n  stdout: %q\n  stderr: %q",
		strings.Join(r.args, " "), r.code, r.dur.Round(time.Millisecond), r.stdout, r.stderr)
}

// runTool runs a command to completion (bounded by toolTimeout) with
// stdin from /dev/null.
func runTool(tb testing.TB, path string, args ...string) toolResult {
	tb.Helper()
	return runToolWith(tb, toolEnv{}, path, args...)
}

// toolEnv adds environment variables and credentials to a tool's run.
type toolEnv struct {
	env   []string
	cred  *syscall.Credential
	clone uintptr         // CLONE_NEW* flags: the tool runs in new namespaces
	start func(*exec.Cmd) // called once the tool has started
}

func runToolWith(tb testing.TB, te toolEnv, path string, args ...string) toolResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	if te.env != nil {
		cmd.Env = append(os.Environ(), te.env...)
	}
	if te.cred != nil || te.clone != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: te.cred, Cloneflags: te.clone}
	}
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Start()
	if err == nil {
		if te.start != nil {
			te.start(cmd)
		}
		err = cmd.Wait()
	}
	r := toolResult{
		args:   append([]string{filepath.Base(path)}, args...),
		stdout: stdout.String(),
		stderr: stderr.String(),
		dur:    time.Since(start),
	}
	if cmd.ProcessState == nil {
		tb.Fatalf("%s: %v", strings.Join(r.args, " "), err)
	}
	r.code = cmd.ProcessState.ExitCode()
	if ctx.Err() != nil {
		tb.Fatalf("%s: timed out after %v\n%s", strings.Join(r.args, " "), toolTimeout, r)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		// exec.ErrWaitDelay: it exited, but something it left behind still
		// holds its stdout or stderr.
		tb.Errorf("%s: %v: a process it started outlived it\n%s", strings.Join(r.args, " "), err, r)
	}
	return r
}

// requireNoCrash fails if a tool's stderr shows a Go panic or traceback.
func requireNoCrash(tb testing.TB, r toolResult) {
	tb.Helper()
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		tb.Errorf("%s crashed:\n%s", r.args[0], r)
	}
}

// requireToolError checks a failed command: exit status (wantCode, or any
// non-zero if wantCode is 0), stderr exactly one line starting with one of
// the prefixes and containing every keyword, case-insensitively (a keyword
// "a|b" accepts either alternative), and no panic.
func requireToolError(tb testing.TB, r toolResult, wantCode int, prefixes []string, keywords ...string) {
	tb.Helper()
	requireNoCrash(tb, r)
	switch {
	case r.code == 0:
		tb.Fatalf("succeeded, want failure:\n%s", r)
	case r.code < 0:
		tb.Fatalf("killed by a signal, want a clean failure:\n%s", r)
	case wantCode != 0 && r.code != wantCode:
		tb.Errorf("exit status %d, want %d:\n%s", r.code, wantCode, r)
	}
	msg := strings.TrimRight(r.stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") {
		tb.Errorf("stderr should be exactly one line:\n%s", r)
	}
	okPrefix := false
	for _, pre := range prefixes {
		okPrefix = okPrefix || strings.HasPrefix(msg, pre)
	}
	if !okPrefix {
		tb.Errorf("stderr should start with one of %q:\n%s", prefixes, r)
	}
	lower := strings.ToLower(msg)
	for _, kw := range keywords {
		found := false
		for _, alt := range strings.Split(kw, "|") {
			found = found || strings.Contains(lower, strings.ToLower(alt))
		}
		if !found {
			tb.Errorf("stderr should mention %q:\n%s", kw, r)
		}
	}
}

// freeze runs the freeze command, which must succeed, and checks the
// image it wrote.
func freeze(tb testing.TB, args ...string) toolResult {
	tb.Helper()
	out := ""
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			out = args[i+1]
		}
	}
	before := dirNames(filepath.Dir(out))

	r := runTool(tb, freezeBin, args...)
	requireNoCrash(tb, r)
	if r.code != 0 {
		tb.Fatalf("freeze failed:\n%s", r)
	}
	if out != "" {
		// Nothing but OUT may appear next to it: no temporary file left.
		for name := range dirNames(filepath.Dir(out)) {
			if !before[name] && name != filepath.Base(out) {
				tb.Errorf("freeze left %s next to its output", filepath.Join(filepath.Dir(out), name))
			}
		}
		fi, err := os.Stat(out)
		if err != nil {
			tb.Fatalf("freeze succeeded but: %v\n%s", err, r)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o700 {
			tb.Errorf("image %s has mode %v, want -rwx------", out, fi.Mode())
		}
	}
	tb.Logf("%s (%v)", strings.Join(r.args, " "), r.dur.Round(time.Millisecond))
	return r
}

// dirNames is the set of names in dir.
func dirNames(dir string) map[string]bool {
	m := map[string]bool{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		m[e.Name()] = true
	}
	return m
}

// freezeKill freezes p into out (default mode: the original is killed once
// the image is on disk) and waits for the original to be gone.
func freezeKill(tb testing.TB, p *proc, out string) {
	tb.Helper()
	freeze(tb, "-o", out, strconv.Itoa(p.pid()))
	st := p.waitExit()
	tb.Logf("original %s after freeze: %v", p.name, st)
}

// thaw starts an image as a new process, either by running the image
// itself ("./OUT") or through the thaw command ("thaw OUT"): either way
// the process started becomes the restored victim.
func thaw(tb testing.TB, image string, viaThaw bool, opts ...procOpt) *proc {
	tb.Helper()
	if viaThaw {
		return startProc(tb, "thaw "+filepath.Base(image), thawBin, []string{image}, opts...)
	}
	return startProc(tb, "./"+filepath.Base(image), image, nil, opts...)
}

// procStatus parses /proc/PID/status.
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

func procStateLine(pid int) string {
	st, err := procStatus(pid)
	if err != nil {
		return err.Error()
	}
	sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", pid))
	return fmt.Sprintf("State %s, TracerPid %s, syscall %q", st["State"], st["TracerPid"], strings.TrimSpace(string(sc)))
}

// waitInSyscall waits until the process is blocked in one of the given
// system calls (per /proc/PID/syscall; for read, on fd 0), so that a
// freeze catches it there and not on its way in.
func waitInSyscall(tb testing.TB, p *proc, nrs ...int64) {
	tb.Helper()
	deadline := time.Now().Add(lineTimeout)
	path := fmt.Sprintf("/proc/%d/syscall", p.pid())
	var last string
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatalf("%s: %v\n%s", p.name, err, p.diag())
		}
		last = strings.TrimSpace(string(b))
		f := strings.Fields(last)
		if len(f) >= 2 {
			nr, err := strconv.ParseInt(f[0], 10, 64)
			if err == nil {
				for _, want := range nrs {
					if nr == want && (nr != sysRead || f[1] == "0x0") {
						if st, err := procStatus(p.pid()); err == nil && strings.HasPrefix(st["State"], "S") {
							return
						}
					}
				}
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s not blocked in syscall %v within %v; /proc/%d/syscall: %q\n%s",
				p.name, nrs, lineTimeout, p.pid(), last, p.diag())
		}
		time.Sleep(5 * time.Millisecond) // polling a /proc state, bounded above
	}
}

// checkNoStrays fails the test if a process other than those it started
// and still tracks is our child: as a child subreaper we inherit whatever
// freeze or thaw left behind. Such strays are reported and killed; zombies
// are reaped silently.
func checkNoStrays(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		strays := scanChildren()
		if len(strays) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for pid, desc := range strays {
				tb.Errorf("process %d left running: %s", pid, desc)
				_ = unix.Kill(pid, unix.SIGKILL)
				var ws unix.WaitStatus
				_, _ = unix.Wait4(pid, &ws, 0, nil)
			}
			return
		}
		time.Sleep(20 * time.Millisecond) // strays may be on their way out
	}
}

// scanChildren returns our untracked, running children; it reaps untracked
// zombies.
func scanChildren() map[int]string {
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	strays := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(self) {
			continue
		}
		trackedMu.Lock()
		_, known := tracked[pid]
		trackedMu.Unlock()
		if known {
			continue
		}
		if f[0] == "Z" || f[0] == "X" {
			var ws unix.WaitStatus
			_, _ = unix.Wait4(pid, &ws, unix.WNOHANG, nil)
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		strays[pid] = fmt.Sprintf("%s, state %s, cmdline %q", s[:i+1], f[0],
			strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return strays
}
