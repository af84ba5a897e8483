package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a new pseudo-terminal's master and slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		skipOrFail(t, "no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// ptyLines reads the master's output as lines ("\r" dropped).
func ptyLines(m *os.File) <-chan string {
	ch := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(m)
		for sc.Scan() {
			ch <- strings.TrimRight(sc.Text(), "\r")
		}
		close(ch)
	}()
	return ch
}

func expectLine(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	deadline := time.After(lineTimeout)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("terminal closed before %q", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q on the terminal within %v", want, lineTimeout)
		}
	}
}

// TestTerminal: a process on a terminal in raw mode, with a copy of it on
// fd 255 (an editor, a shell), thawed on another, cooked terminal: the
// new terminal gets the raw modes, fd 0 stays read-only (the terminal is
// opened again with the access mode it had, not shared read-write with
// the thaw) and fd 255 is a copy of it.
func TestTerminal(t *testing.T) {
	setup(t)
	m, s := openPTY(t)
	p := startProc(t, "rawtty", buildVictim(t, "rawtty"), nil, withStdio(s))
	lines := ptyLines(m)
	expectLine(t, lines, "ready")
	m.Write([]byte("q"))
	expectLine(t, lines, "icanon=0 echo=0 fd255=1 ro=1")
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(t.TempDir(), "tty.bin")
	freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()

	m2, s2 := openPTY(t)
	var before unix.Termios
	if tio, err := unix.IoctlGetTermios(int(s2.Fd()), unix.TCGETS); err == nil {
		before = *tio
	}
	if before.Lflag&unix.ICANON == 0 {
		t.Fatalf("a new terminal should start cooked: lflag %#x", before.Lflag)
	}
	th := startProc(t, "./tty.bin", img, nil, withStdio(s2))
	lines2 := ptyLines(m2)
	m2.Write([]byte("q"))
	expectLine(t, lines2, "icanon=0 echo=0 fd255=1 ro=1")
	m2.Write([]byte("x"))
	if st := th.waitExit(); st.ExitCode() != 0 {
		t.Errorf("thawed rawtty: %v, want exit status 0", st)
	}
}

const ptysPairCheck = "check a.slave=1 a.raw=1 a.ws=1 a.talk=1 a.ro=1 a.excl=1 b.lock=1 b.pkt=1 b.ws=1 c.hup=1"

// TestPtyPair: pseudo-terminal pairs the process holds both sides of
// (script, a terminal emulator) come back as new pairs: ptsname names the
// new slave and the slave fds are on it, with the slave's raw modes, the
// window size, a second read-only slave description, the slave's
// exclusive mode (TIOCEXCL, not the master's), a master left
// locked in packet mode, and a master whose slave is closed (EIO); master
// and slave still talk.
func TestPtyPair(t *testing.T) {
	setup(t)
	for _, viaThaw := range []bool{false, true} {
		t.Run(fmt.Sprintf("viaThaw=%v", viaThaw), func(t *testing.T) {
			p := startProc(t, "ptys pair", buildVictim(t, "ptys"), []string{"pair"})
			p.expect("ready")
			if got := p.ask("check", "check "); got != ptysPairCheck {
				t.Fatalf("before the freeze: %q, want %q", got, ptysPairCheck)
			}
			names := p.ask("names", "names ")
			waitInSyscall(t, p, sysRead)
			img := filepath.Join(t.TempDir(), "ptys.bin")
			freezeKill(t, p, img)

			th := thaw(t, img, viaThaw)
			if got := th.ask("check", "check "); got != ptysPairCheck {
				t.Errorf("after thaw: %q, want %q", got, ptysPairCheck)
			}
			t.Logf("before: %s; after: %s", names, th.ask("names", "names "))
			th.send("exit 4")
			if st := th.waitExit(); st.ExitCode() != 4 {
				t.Errorf("thawed ptys: %v, want exit status 4", st)
			}
		})
	}
}

// TestPtyQueuedBytes: bytes in a pair the process has not read cannot be
// read without taking them: freeze refuses, naming the fd, and the
// process keeps its bytes and runs on.
func TestPtyQueuedBytes(t *testing.T) {
	setup(t)
	for _, tc := range []struct {
		name, cmd, answer, drained string
		keywords                   []string
	}{
		{"input", "queue", "queued", "drained abc", []string{"fd 4", "/dev/pts/", "3 bytes of input"}},
		{"output", "outq", "outq", "drained xyz", []string{"fd 3", "master", "3 bytes of output"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := startProc(t, "ptys pair", buildVictim(t, "ptys"), []string{"pair"})
			p.expect("ready")
			p.ask(tc.cmd, tc.answer)
			waitInSyscall(t, p, sysRead)
			freezeFails(t, dir, []string{"-o", filepath.Join(dir, "ptys.bin"), strconv.Itoa(p.pid())}, tc.keywords...)
			if got := p.ask("drain", "drained"); got != tc.drained {
				t.Errorf("after the refused freeze: %q, want %q", got, tc.drained)
			}
			if got := p.ask("check", "check "); got != ptysPairCheck {
				t.Errorf("after the refused freeze: %q, want %q", got, ptysPairCheck)
			}
		})
	}
}

const cttyCheck = "check tty5.ro=1 tty5.dev=1 tty5.pgrp=1 tty5.sid=1 fd3.sid=1 echo=0"

// TestCttyBeyondStdio: a process whose controlling terminal is on fd 3
// (by its path) and /dev/tty, read-only, on fd 5, with 0-2 pipes, thawed
// in another session on another terminal: both fds are the thaw's
// controlling terminal, fd 5 still /dev/tty and read-only, the process is
// its foreground process group, and the terminal has the modes it set
// (echo off). Thawed without a controlling terminal, it is refused.
func TestCttyBeyondStdio(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	_, s := openPTY(t)
	p := startProc(t, "ptys ctty", buildVictim(t, "ptys"), []string{"ctty"}, withCtty(s))
	p.expect("ready")
	if got := p.ask("check", "check "); got != cttyCheck {
		t.Fatalf("before the freeze: %q, want %q", got, cttyCheck)
	}
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(dir, "ctty.bin")
	freeze(t, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
	p.kill()

	// No controlling terminal: refused, naming the fd.
	noTTY := startProc(t, "thaw, no terminal", thawBin, []string{img}, withSession())
	msg, _ := noTTY.errs.nextLine(lineTimeout)
	if st := noTTY.waitExit(); st.ExitCode() == 0 {
		t.Errorf("thaw without a controlling terminal: %v, want a failure", st)
	}
	if !strings.Contains(msg, "fd 3") || !strings.Contains(msg, "controlling terminal") {
		t.Errorf("thaw without a controlling terminal says %q, want it to name fd 3 and the controlling terminal", msg)
	}

	m2, s2 := openPTY(t)
	th := startProc(t, "thaw ctty", thawBin, []string{img}, withCtty(s2))
	if got := th.ask("check", "check "); got != cttyCheck {
		t.Errorf("after thaw: %q, want %q", got, cttyCheck)
	}
	th.send("read5")
	if _, err := m2.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if got := th.expect("tty5 "); got != "tty5 hello" {
		t.Errorf("read from /dev/tty after thaw: %q, want \"tty5 hello\"", got)
	}
	th.send("exit 6")
	if st := th.waitExit(); st.ExitCode() != 6 {
		t.Errorf("thawed ptys: %v, want exit status 6", st)
	}
}

// TestPtySlaveOutside: a pty slave on fd 3 whose master is another
// process's (here the test's) is an external peer: freeze says what the
// thaw does with it, and the thaw gives the process a new terminal that
// is hung up: writes fail with EIO, reads end. So is one whose master
// had closed already (a daemon whose terminal window closed).
func TestPtySlaveOutside(t *testing.T) {
	setup(t)
	for _, tc := range []struct {
		name        string
		closeMaster bool
		note        string
	}{
		{"master open", false, "hung up (reads end"},
		{"master closed", true, "a terminal that is hung up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, s := openPTY(t)
			p := startProc(t, "pipe", buildVictim(t, "pipe"), nil, withFiles([]*os.File{s}))
			p.expect("ready")
			if tc.closeMaster {
				m.Close()
			}
			waitInSyscall(t, p, sysRead)
			img := filepath.Join(t.TempDir(), "slave.bin")
			r := freeze(t, "-o", img, strconv.Itoa(p.pid()))
			p.waitExit()
			if out := r.stdout + r.stderr; !strings.Contains(out, "fd 3: "+s.Name()) || !strings.Contains(out, tc.note) {
				t.Errorf("freeze should say fd 3 comes back %s:\n%s", tc.note, r)
			}

			th := thaw(t, img, false)
			th.ask("hello", "got hello")
			pidfd, err := unix.PidfdOpen(th.pid(), 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(pidfd)
			fd, err := unix.PidfdGetfd(pidfd, 3, 0)
			if err != nil {
				t.Fatalf("the thawed process's fd 3: %v", err)
			}
			defer unix.Close(fd)
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) < 136 || unix.Major(st.Rdev) > 143 {
				t.Errorf("the thawed process's fd 3: mode %#o rdev %d:%d (%v), want a pty slave", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), err)
			}
			if _, err := unix.Write(fd, []byte("x")); err != unix.EIO {
				t.Errorf("write to the thawed fd 3: %v, want EIO (hung up)", err)
			}
			if n, err := unix.Read(fd, make([]byte, 8)); n != 0 || err != nil {
				t.Errorf("read from the thawed fd 3: %d, %v; want end of file (hung up)", n, err)
			}
			th.send("exit 0")
			th.waitExit()
		})
	}
}

// TestTerminalThawOnDevTTY: the thaw's stdin is /dev/tty, read-write (its
// controlling terminal, opened by name): the process's terminal on fd 0 is
// /dev/tty opened again by the thawing process, read-only as it was (not
// the thaw's read-write description), in raw mode.
func TestTerminalThawOnDevTTY(t *testing.T) {
	setup(t)
	m, s := openPTY(t)
	p := startProc(t, "rawtty", buildVictim(t, "rawtty"), nil, withStdio(s))
	lines := ptyLines(m)
	expectLine(t, lines, "ready")
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(t.TempDir(), "tty.bin")
	freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()

	m2, s2 := openPTY(t)
	th := startProc(t, "bash: exec IMG 0<>/dev/tty", bashPath(t), []string{"-c", `exec "$0" 0<>/dev/tty 3<&-`, img}, withStdio(s2), withCtty(s2))
	lines2 := ptyLines(m2)
	m2.Write([]byte("q"))
	expectLine(t, lines2, "icanon=0 echo=0 fd255=1 ro=1")
	if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/0", th.pid())); err != nil || link != "/dev/tty" {
		t.Errorf("the thawed fd 0 is %q (%v), want /dev/tty", link, err)
	}
	m2.Write([]byte("x"))
	if st := th.waitExit(); st.ExitCode() != 0 {
		t.Errorf("thawed rawtty: %v, want exit status 0", st)
	}
}
