package e2e

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// How the oracle (oracle_test.go) starts its victims: the way people do,
// not only cleanly from Go, and how it talks to them whatever their stdout
// is: a pipe of ours, a log file, a terminal.

// startMode is how a victim is started, and how its thawed copies are
// started too: the thaw gets stdio of the same kind.
type startMode string

const (
	// From Go: stdin, stdout and stderr are three pipes (a supervisor, a
	// pipeline). Thawed by "./IMG" (first cycle), then "thaw IMG".
	startPipes startMode = "pipes"
	// From bash, as "victim >LOG 2>&1": stdout and stderr are one open
	// file description of a regular file; bash is the victim's parent
	// and waits for it. Thawed the same way, "./IMG >>LOG 2>&1" (with
	// ">" the shell would truncate the log the image goes on writing).
	startShellLog startMode = "shell-log"
	// From Go with one more descriptor: a regular file the parent
	// opened (read-write, at offset 3, not close-on-exec) on fd 7.
	startInherited startMode = "fd7"
	// From bash, as "{ sleep 0.05; exit 7; } & exec victim": the victim
	// inherits a child it never waits for, which exits with status 7 and
	// stays a zombie.
	startZombie startMode = "zombie"
	// On a pseudo-terminal (stdin, stdout and stderr); thawed on another.
	startTTY startMode = "tty"
	// From Go with stdin, stdout and stderr pipes, in a session of its
	// own whose controlling terminal is a pseudo-terminal, also on fd 3
	// (a daemon-ish program started from a terminal with its stdio
	// redirected); thawed the same way on another.
	startCtty startMode = "ctty"
)

// oproc is one victim process under the oracle: what we started (the
// victim itself, or the shell that runs it), the victim's pid, its stdin,
// and its answers.
type oproc struct {
	tb    testing.TB
	name  string
	top   *proc // what we started
	pid   int   // the victim
	in    io.Writer
	lines func(timeout time.Duration) (string, bool)
	seen  []string   // the lines read so far, for failure messages
	tty   *os.File   // the terminal's master (startTTY)
	log   *fileLines // the log (startShellLog)
}

// send writes one line to the victim.
func (o *oproc) send(line string) { o.write(line + "\n") }

func (o *oproc) write(s string) {
	o.tb.Helper()
	if _, err := io.WriteString(o.in, s); err != nil {
		o.tb.Fatalf("write %q to %s: %v\n%s", s, o.name, err, o.diag())
	}
}

// next returns the victim's next line.
func (o *oproc) next() string {
	o.tb.Helper()
	line, ok := o.lines(lineTimeout)
	if !ok {
		o.tb.Fatalf("%s: no line within %v\n%s", o.name, lineTimeout, o.diag())
	}
	o.seen = append(o.seen, line)
	return line
}

// expect returns the next line, which must start with prefix.
func (o *oproc) expect(prefix string) string {
	o.tb.Helper()
	line := o.next()
	if !strings.HasPrefix(line, prefix) {
		o.tb.Fatalf("%s: got line %q, want %q...\n%s", o.name, line, prefix, o.diag())
	}
	return line
}

// ask sends cmd and returns the answer, which must start with prefix.
func (o *oproc) ask(cmd, prefix string) string {
	o.tb.Helper()
	o.send(cmd)
	return o.expect(prefix)
}

func (o *oproc) diag() string {
	var b strings.Builder
	fmt.Fprintf(&b, "victim %s, pid %d: %s\n", o.name, o.pid, procStateLine(o.pid))
	fmt.Fprintf(&b, "  its lines so far:\n")
	for _, l := range o.seen {
		fmt.Fprintf(&b, "\t%q\n", l)
	}
	b.WriteString("  started as: " + o.top.diag())
	if o.log != nil {
		fmt.Fprintf(&b, "  the log %s:\n", o.log.path)
		for _, l := range o.log.complete() {
			fmt.Fprintf(&b, "\t%q\n", l)
		}
	}
	return b.String()
}

// kill kills the victim and waits until it is gone (reaped by us or by
// its shell, which then exits).
func (o *oproc) kill() {
	o.tb.Helper()
	if o.pid == o.top.pid() {
		o.top.kill()
		return
	}
	_ = syscall.Kill(o.pid, syscall.SIGKILL)
	waitGone(o.tb, o.pid)
	o.top.waitExit()
}

// waitGone waits until pid no longer exists (not even as a zombie).
func waitGone(tb testing.TB, pid int) {
	tb.Helper()
	deadline := time.Now().Add(exitTimeout)
	for {
		st, err := procStatus(pid)
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pid %d still there after %v: State %s", pid, exitTimeout, st["State"])
		}
		time.Sleep(5 * time.Millisecond) // polling /proc, bounded above
	}
}

// oracleStdio is what a case's processes share across cycles: the log
// file of the shell modes (read on from where the last process left it).
type oracleStdio struct {
	mode startMode
	dir  string
	log  *fileLines
}

// startVictim starts bin with args the way mode says, in dir.
func startVictim(t *testing.T, mode startMode, name, bin string, args []string, dir string) (*oproc, *oracleStdio) {
	t.Helper()
	sio := &oracleStdio{mode: mode, dir: dir}
	o := &oproc{tb: t, name: name}
	switch mode {
	case startPipes:
		o.top = startProc(t, name, bin, args, inDir(dir))
	case startInherited:
		f, err := os.OpenFile(filepath.Join(dir, "inherited.txt"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("parent's file\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(3, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		// Entries 3-6 nil: closed in the child; the file is fd 7.
		o.top = startProc(t, name, bin, args, inDir(dir), withFiles([]*os.File{nil, nil, nil, nil, f}))
		f.Close()
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/7", o.top.pid()))
		if err != nil || !strings.HasPrefix(string(info), "pos:\t3\nflags:\t0100002\n") {
			t.Fatalf("%s: fd 7 should be the parent's file, read-write at offset 3: %q (%v)", name, info, err)
		}
	case startShellLog:
		sio.log = &fileLines{path: filepath.Join(dir, name+".log")}
		script := `"$0" "${@:2}" >"$1" 2>&1; echo "shell: $0 exited $?"`
		o.top = startProc(t, "bash: "+name+" >log 2>&1", bashPath(t), append([]string{"-c", script, bin, sio.log.path}, args...), inDir(dir))
	case startZombie:
		script := `{ sleep 0.05; exit 7; } & exec "$0" "$@"`
		o.top = startProc(t, "bash: sleep & exec "+name, bashPath(t), append([]string{"-c", script, bin}, args...), inDir(dir))
	case startTTY:
		m, s := openPTY(t)
		o.top = startProc(t, name, bin, args, withStdio(s), inDir(dir))
		o.tty = m
	case startCtty:
		m, s := openPTY(t)
		o.top = startProc(t, name, bin, args, withCtty(s), inDir(dir))
		o.tty = m
	default:
		t.Fatalf("unknown start mode %q", mode)
	}
	sio.attach(t, o)
	return o, sio
}

// thawVictim runs img (through the thaw command if viaThaw) with stdio of
// the kind the case's victim had; the process it starts (or the shell's
// child) becomes the restored victim.
func (s *oracleStdio) thawVictim(t *testing.T, name, img string, viaThaw bool) *oproc {
	t.Helper()
	prog, args := img, []string(nil)
	if viaThaw {
		prog, args = thawBin, []string{img}
	}
	tag := filepath.Base(prog)
	if viaThaw {
		tag += " " + filepath.Base(img)
	}
	o := &oproc{tb: t, name: name + " (" + tag + ")"}
	switch s.mode {
	case startPipes, startInherited, startZombie:
		o.top = startProc(t, tag, prog, args, inDir(s.dir))
	case startShellLog:
		script := `"$0" "${@:2}" >>"$1" 2>&1; echo "shell: $0 exited $?"`
		o.top = startProc(t, "bash: "+tag+" >>log 2>&1", bashPath(t), append([]string{"-c", script, prog, s.log.path}, args...), inDir(s.dir))
	case startTTY:
		m, slave := openPTY(t)
		o.top = startProc(t, tag, prog, args, withStdio(slave), inDir(s.dir))
		o.tty = m
	case startCtty:
		m, slave := openPTY(t)
		o.top = startProc(t, tag, prog, args, withCtty(slave), inDir(s.dir))
		o.tty = m
	}
	s.attach(t, o)
	return o
}

// attach finds the victim's pid and its input and output.
func (s *oracleStdio) attach(t *testing.T, o *oproc) {
	t.Helper()
	o.pid, o.in, o.lines = o.top.pid(), o.top.stdin, nil
	if o.top.out != nil {
		o.lines = o.top.out.nextLine
	}
	switch s.mode {
	case startShellLog:
		o.lines, o.log = s.log.next, s.log
		o.pid = onlyChild(t, o.top)
		// Kill the victim before the shell (cleanups run last first):
		// a victim that outlived its shell would be ours, a stray. Only
		// while it is still the shell's child: the shell, not reaped
		// yet, keeps its own pid, so this pid is not someone else's.
		pid, shell := o.pid, o.top
		t.Cleanup(func() {
			if !shell.exited() && parentOf(pid) == shell.pid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	case startTTY:
		ch := ptyLines(o.tty)
		o.in = o.tty
		o.lines = func(timeout time.Duration) (string, bool) {
			select {
			case l, ok := <-ch:
				return l, ok
			case <-time.After(timeout):
				return "", false
			}
		}
	}
}

// bashPath is bash, or a skip (a failure in CI) without it.
func bashPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("bash")
	if err != nil {
		skipOrFail(t, "no bash to start the victim from: %v", err)
	}
	return p
}

// onlyChild waits for the shell's one child (the victim, or the image it
// runs) and returns its pid.
func onlyChild(t *testing.T, shell *proc) int {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/task/%d/children", shell.pid(), shell.pid())
	deadline := time.Now().Add(lineTimeout)
	for {
		b, _ := os.ReadFile(path)
		if f := strings.Fields(string(b)); len(f) == 1 {
			pid, err := strconv.Atoi(f[0])
			if err == nil {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no single child within %v (children: %q)\n%s", shell.name, lineTimeout, b, shell.diag())
		}
		time.Sleep(2 * time.Millisecond) // polling /proc, bounded above
	}
}

// parentOf is pid's parent, or -1.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if err != nil || i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return ppid
}

// childList is pid's children, "PID STATE exit CODE" each, sorted.
func childList(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var kids []string
	for _, c := range strings.Fields(string(b)) {
		st, err := os.ReadFile("/proc/" + c + "/stat")
		if err != nil {
			continue // reaped meanwhile
		}
		s := string(st)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // f[0] is field 3
		code := "?"
		if len(f) >= 50 {
			code = f[49] // field 52, exit_code
		}
		kids = append(kids, fmt.Sprintf("%s %s exit %s", c, f[0], code))
	}
	sort.Strings(kids)
	return kids
}

// childStates is the state letters of pid's children.
func childStates(pid int) []string {
	var states []string
	for _, k := range childList(pid) {
		states = append(states, strings.Fields(k)[1])
	}
	return states
}

// waitZombieChild waits until every child of pid is a zombie, and there
// is at least one.
func waitZombieChild(t *testing.T, o *oproc) {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		st := childStates(o.pid)
		if len(st) > 0 && strings.Trim(strings.Join(st, ""), "Z") == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: children %v, want zombies only\n%s", o.name, st, o.diag())
		}
		time.Sleep(5 * time.Millisecond) // polling /proc, bounded above
	}
}

// fileLines reads a log file line by line as it grows.
type fileLines struct {
	path string
	n    int // lines returned so far
}

// next returns the next complete line, waiting up to timeout.
func (f *fileLines) next(timeout time.Duration) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		if lines := f.complete(); len(lines) > f.n {
			f.n++
			return lines[f.n-1], true
		}
		if time.Now().After(deadline) {
			return "", false
		}
		time.Sleep(5 * time.Millisecond) // polling a file, bounded above
	}
}

// complete is the file's complete lines.
func (f *fileLines) complete() []string {
	b, _ := os.ReadFile(f.path)
	i := bytes.LastIndexByte(b, '\n')
	if i < 0 {
		return nil
	}
	return strings.Split(string(b[:i]), "\n")
}
