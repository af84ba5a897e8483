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
// new terminal gets the raw modes and fd 255 is a copy of it.
func TestTerminal(t *testing.T) {
	setup(t)
	m, s := openPTY(t)
	p := startProc(t, "rawtty", buildVictim(t, "rawtty"), nil, withStdio(s))
	lines := ptyLines(m)
	expectLine(t, lines, "ready")
	m.Write([]byte("q"))
	expectLine(t, lines, "icanon=0 echo=0 fd255=1")
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
	expectLine(t, lines2, "icanon=0 echo=0 fd255=1")
	m2.Write([]byte("x"))
	if st := th.waitExit(); st.ExitCode() != 0 {
		t.Errorf("thawed rawtty: %v, want exit status 0", st)
	}
}
