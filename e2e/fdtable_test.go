package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cryo-project/cryo/files"
	"github.com/cryo-project/cryo/image"
)

// TestPipesLeaveRunning: freeze reads a pipe's bytes without taking them
// (tee): the original, let run, still has every byte.
func TestPipesLeaveRunning(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	p := startProc(t, "pipes", buildVictim(t, "pipes"), nil, inDir(dir))
	p.expect("ready")
	before := p.ask("check", "check ")
	if !strings.HasPrefix(before, "check ok ") {
		t.Fatal(before)
	}
	waitInSyscall(t, p, sysRead)
	freeze(t, "--leave-running", "-o", filepath.Join(dir, "pipes.bin"), strconv.Itoa(p.pid()))
	if got := p.ask("check", "check "); got != before {
		t.Errorf("the original after freeze --leave-running:\n  before %s\n  after  %s", before, got)
	}
}

// TestEventsLeaveRunning: freeze reads the event fds without taking
// anything (fdinfo, timerfd_gettime; never a read): the original, let run,
// finds every count, expiration, signal and watch as it was.
func TestEventsLeaveRunning(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	p := startProc(t, "events", buildVictim(t, "events"), nil, inDir(dir))
	p.expect("ready")
	before := p.ask("check", "check ")
	if !strings.HasPrefix(before, "check ok ") {
		t.Fatal(before)
	}
	waitInSyscall(t, p, sysRead)
	freeze(t, "--leave-running", "-o", filepath.Join(dir, "events.bin"), strconv.Itoa(p.pid()))
	if got := p.ask("check", "check "); got != before {
		t.Errorf("the original after freeze --leave-running:\n  before %s\n  after  %s", before, got)
	}
}

// TestTailFollow: GNU tail -f, blocked in poll on its inotify fd (and
// its stdout), thaws and goes on following its file.
func TestTailFollow(t *testing.T) {
	setup(t)
	tail, err := exec.LookPath("tail")
	if err != nil {
		skipOrFail(t, "no tail: %v", err)
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	if err := os.WriteFile(log, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "tail -f", tail, []string{"-f", log}, inDir(dir))
	p.expect("one")
	waitInSyscall(t, p, sysPoll, sysPpoll)
	img := filepath.Join(dir, "tail.bin")
	freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()
	th := thaw(t, img, true)
	waitInSyscall(t, th, sysPoll, sysPpoll)
	f, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("two\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if got := th.expect("two"); got != "two" {
		t.Errorf("the thawed tail -f printed %q, want \"two\"", got)
	}
}

// externalPipes starts the pipes victim with fd 20 the read end of a pipe
// the test writes ("abc" is in it), and fd 21 the write end of a pipe the
// test reads: both peers outside the process. It freezes it and returns
// the image and what freeze said.
func externalPipes(t *testing.T, dir string) (string, string) {
	r1, w1, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w1.WriteString("abc"); err != nil {
		t.Fatal(err)
	}
	files := make([]*os.File, 19) // fd 3+17 = 20, 3+18 = 21
	files[17], files[18] = r1, w2
	p := startProc(t, "pipes", buildVictim(t, "pipes"), nil, inDir(dir), withFiles(files))
	r1.Close()
	w2.Close()
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(dir, "ext.bin")
	res := freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()
	w1.Close()
	r2.Close()
	return img, res.stderr
}

// TestExternalPipes: a pipe whose other end is another process's never
// stops a freeze. freeze says, one line per fd, what thaw will do: the
// reader gets the bytes the pipe held, then end of file; the writer gets
// EPIPE. thaw --fd hands descriptors in instead.
func TestExternalPipes(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	img, said := externalPipes(t, dir)
	for _, want := range []string{"freeze: fd 20: the read end of pipe:[", "freeze: fd 21: the write end of pipe:["} {
		if !strings.Contains(said, want) {
			t.Errorf("freeze said %q, want a line with %q", said, want)
		}
	}
	if n := strings.Count(said, "\n"); n != 2 {
		t.Errorf("freeze said %d lines, want 2: %q", n, said)
	}

	t.Run("default", func(t *testing.T) {
		th := thaw(t, img, true)
		th.ask("read 20", "read 20 abc")
		th.ask("read 20", "read 20 eof")
		th.ask("write 21 x", "write 21 EPIPE")
		if got := th.ask("check", "check "); !strings.HasPrefix(got, "check ok ") {
			t.Error(got)
		}
	})
	t.Run("handed in", func(t *testing.T) {
		in, feed, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer feed.Close()
		out := filepath.Join(dir, "fd21.txt")
		// The thaw's fd 3 is in; --fd 20=&3 makes it the process's fd 20.
		th := startProc(t, "thaw --fd", thawBin, []string{"--fd", "20=&3", "--fd", "21=" + out, img}, withFiles([]*os.File{in}))
		in.Close()
		if _, err := feed.WriteString("xyz"); err != nil {
			t.Fatal(err)
		}
		th.ask("read 20", "read 20 xyz")
		th.ask("write 21 hello", "write 21 ok")
		if b, err := os.ReadFile(out); err != nil || string(b) != "hello" {
			t.Errorf("%s: %q, %v; want hello", out, b, err)
		}
	})
	t.Run("bad --fd", func(t *testing.T) {
		for _, arg := range []string{"99=&3", "x=y", "20=&z", "20="} {
			r := runTool(t, thawBin, "--fd", arg, img)
			requireToolError(t, r, 1, []string{"thaw: "}, "--fd")
		}
	})
}

// fdKindProof names, for every kind of file the files package knows,
// the victim in testdata that holds one and checks it after thaw (each
// goes through TestOracle or its own test).
var fdKindProof = map[image.FileKind]string{
	image.FileStd:        "pipe",     // TestOracle pipe/*: pipes, a log, an inherited file
	files.FilePipe:       "pipes",    // TestOracle pipes/*, TestExternalPipes
	image.FileReg:        "pipe",     // TestOracle pipe/fd7 and pipe/shell-log
	image.FileDir:        "allstate", // fd 33
	image.FileDevice:     "allstate", // fd 34: /dev/null
	files.FilePath:       "paths",    // TestOracle paths/pipes: fds 3, 5, 6
	files.FileNS:         "paths",    // fds 12, 13; TestThawOtherNamespace
	files.FileDeletedDir: "paths",    // fd 10
	files.FileDeletedDev: "paths",    // fd 33; TestThawDeletedNodeUnprivileged
	files.FileMemfd:      "shm",      // TestOracle shm/pipes, TestUnprivilegedShm: memfds, sealed, mapped
	files.FileUnlinked:   "shm",      // the same: an unlinked file with a hole, two descriptions, mapped
	files.FileTTY:        "ptys",     // TestOracle ptys/*, TestPtyPair, TestCttyBeyondStdio (rawtty: std terminals)
	files.FileInet:       "inet",     // TestOracle inet/pipes, inet/pair; tcpclient: TestTCPRepair, TestTCPUnprivileged
	files.FileEventfd:    "events",   // TestOracle events/pipes: fds 10-12 (and allfds: every kind at once)
	files.FileTimerfd:    "events",   // fds 13-18
	files.FileSignalfd:   "events",   // fd 19
	files.FileInotify:    "events",   // fd 20
	files.FileEpoll:      "events",   // fds 23, 24
	files.FileAnon:       "anonfd",   // TestFreezeErrors anon-*: refused by name
	files.FileUnix:       "unixsock", // TestOracle unixsock/pipes, TestUnixSockets, TestUnixExternalPeer
	files.FileSocket:     "sockfd",   // refused by family: TestFreezeErrors/sock-netlink
}

// Every kind of fd has a victim that proves it; a kind added without
// one fails here.
func TestFDKindsProved(t *testing.T) {
	for _, k := range files.KindNames() {
		v, ok := fdKindProof[k]
		if !ok {
			t.Errorf("fd kind %q has no victim in fdKindProof", k)
			continue
		}
		if _, err := os.Stat(filepath.Join("..", "testdata", v+".c")); err != nil {
			t.Errorf("fd kind %q: victim %s: %v", k, v, err)
		}
	}
	for k := range fdKindProof {
		if !slices.Contains(files.KindNames(), k) {
			t.Errorf("fdKindProof names %q, which files does not know", k)
		}
	}
}

// TestUnlinkedOverTheLimit: an unlinked file with more data than
// --max-file-size fails the freeze by name, size and flag; the target
// goes on as it was.
func TestUnlinkedOverTheLimit(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	p := startProc(t, "shm", buildVictim(t, "shm"), nil, inDir(dir))
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	out := filepath.Join(t.TempDir(), "img.bin")
	// fd 3: a page of data at 0 and 113 bytes past 1 MiB, where the
	// file ends (the hole between carries nothing): 4209 bytes.
	freezeFails(t, filepath.Dir(out), []string{"--max-file-size", "4K", "-o", out, strconv.Itoa(p.pid())},
		"fd 3 is "+filepath.Join(dir, "shm.unlinked")+" (deleted), 4209 bytes of data", "more than the 4 KiB", "--max-file-size")
	if got := p.ask("check", "check "); got != "check ok" {
		t.Errorf("shm after a refused freeze: %s", got)
	}
}
