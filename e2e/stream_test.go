package e2e

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startFreezeStream starts freeze ARGS -o - with its stdout a pipe, whose
// read end it returns; wait waits for freeze and returns its result.
func startFreezeStream(t testing.TB, args ...string) (out *os.File, wait func() toolResult) {
	t.Helper()
	return startFreezeStreamEnv(t, nil, args...)
}

// startFreezeStreamEnv is startFreezeStream with env added to freeze's
// environment.
func startFreezeStreamEnv(t testing.TB, env []string, args ...string) (out *os.File, wait func() toolResult) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	args = append(args, "-o", "-")
	cmd := exec.CommandContext(ctx, freezeBin, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = w, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	w.Close()
	return r, func() toolResult {
		defer cancel()
		cmd.Wait()
		res := toolResult{args: append([]string{"freeze"}, args...), code: cmd.ProcessState.ExitCode(), stderr: stderr.String(), dur: time.Since(start)}
		if ctx.Err() != nil {
			t.Fatalf("timed out:\n%s", res)
		}
		return res
	}
}

// TestStreamPipe: freeze PID -o - | thaw -, with no file between them.
// The counter (its log a file) continues its count exactly; memcheck
// (commands on the fd 0 handed in with --fd 0=&3, as stdin is the image)
// has the same memory, and is the thawing process.
func TestStreamPipe(t *testing.T) {
	setup(t)
	t.Run("counter", func(t *testing.T) {
		dir := t.TempDir()
		logPath := filepath.Join(dir, "counter.log")
		f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		p := startProc(t, "counter", buildVictim(t, "counter"), nil, withStdout(f))
		f.Close()
		waitLogLines(t, logPath, 20, p)

		stream, wait := startFreezeStream(t, strconv.Itoa(p.pid()))
		th := startProc(t, "thaw -", thawBin, []string{"-"}, withStdin(stream))
		stream.Close()
		if r := wait(); r.code != 0 {
			t.Fatalf("freeze failed:\n%s", r)
		}
		p.waitExit()
		atFreeze := countLines(t, logPath)
		got := waitLogLines(t, logPath, atFreeze+40, th)
		t.Logf("%d lines at freeze, %d after thaw -", atFreeze, got)
		if fd0, err := os.Readlink("/proc/" + strconv.Itoa(th.pid()) + "/fd/0"); err != nil || fd0 != "/dev/null" {
			t.Errorf("the restored process's stdin is %q (%v), want /dev/null: the thaw's was the image", fd0, err)
		}
	})
	t.Run("memcheck", func(t *testing.T) {
		p := startProc(t, "memcheck", buildVictim(t, "memcheck"), nil)
		p.expect("ready")
		sum := p.ask("sum", "sum ")
		inc := incValue(t, p.ask("inc", "inc "))
		waitInSyscall(t, p, sysRead)

		cmdR, cmdW, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		stream, wait := startFreezeStream(t, strconv.Itoa(p.pid()))
		th := startProc(t, "thaw -", thawBin, []string{"--fd", "0=&3", "-"}, withStdin(stream), withFiles([]*os.File{cmdR}))
		stream.Close()
		cmdR.Close()
		th.stdin.Close()
		th.stdin = cmdW
		if r := wait(); r.code != 0 {
			t.Fatalf("freeze failed:\n%s", r)
		}
		p.waitExit()
		if got := th.ask("sum", "sum "); got != sum {
			t.Errorf("memory changed across freeze -o - | thaw -:\n before %s\n after  %s", sum, got)
		}
		if got := incValue(t, th.ask("inc", "inc ")); got != inc+1 {
			t.Errorf("inc after thaw = %d, want %d", got, inc+1)
		}
		if got := th.ask("pid", "pid "); got != "pid "+strconv.Itoa(th.pid()) {
			t.Errorf("restored process says %q, want it to be the thawing process %d", got, th.pid())
		}
	})
}

// TestStreamCut: a stream cut anywhere (in the restorer, the metadata,
// the pages, the trailer) is refused by thaw - with one line, and nothing
// of the process runs; freeze --leave-running, whose reader went away,
// leaves the original running as before. So does a freeze -o - that
// fails, in the pages or after them: it never wrote the trailer it holds
// back, and thaw - refuses what it wrote.
func TestStreamCut(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	// The counter writes to a pipe of ours: a thaw would share the
	// thaw's stdout, and none may write to it.
	p := startProc(t, "counter", buildVictim(t, "counter"), nil)
	last := -1
	counting := func(t *testing.T) {
		t.Helper()
		p.requireUndisturbed()
		for i := 0; i < 10; i++ {
			line, ok := p.out.nextLine(lineTimeout)
			n, err := strconv.Atoi(line)
			if !ok || err != nil || n != last+1 {
				t.Fatalf("the original counter said %q after %d: it must count on\n%s", line, last, p.diag())
			}
			last = n
		}
	}
	counting(t)
	pid := strconv.Itoa(p.pid())

	// The whole stream, for its length and layout.
	full := runTool(t, freezeBin, "--leave-running", pid, "-o", "-")
	if full.code != 0 {
		t.Fatalf("freeze -o - failed:\n%s", full)
	}
	size := int64(len(full.stdout))
	if size < 1<<20 {
		t.Fatalf("the stream has %d bytes: too short for an executable", size)
	}
	img := filepath.Join(dir, "counter.bin")
	if err := os.WriteFile(img, []byte(full.stdout), 0o700); err != nil {
		t.Fatal(err)
	}
	imageAt := size - 64 - imageLength(t, img)
	// live: cut a stream from a freeze running now, whose reader goes
	// away; else a prefix of the stream above (the image's length
	// changes from one freeze to the next: the cuts near its end are
	// made in that one).
	for _, tc := range []struct {
		name string
		n    int64
		live bool
	}{
		{"in the loader", 1000, true},
		{"in the restorer", imageAt / 2, true},
		{"in the image header", imageAt + 10, true},
		{"in the pages", imageAt + (size-64-imageAt)*3/4, false},
		{"before the trailer", size - 64, false},
		{"by one byte", size - 1, false},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			var stream io.ReadCloser = io.NopCloser(strings.NewReader(full.stdout))
			wait := func() toolResult { return toolResult{} }
			if tc.live {
				stream, wait = startFreezeStream(t, "--leave-running", pid)
			}
			thawIn, feed, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
			defer cancel()
			th := exec.CommandContext(ctx, thawBin, "-")
			var thOut, thErr strings.Builder
			th.Stdin, th.Stdout, th.Stderr = thawIn, &thOut, &thErr
			if err := th.Start(); err != nil {
				t.Fatal(err)
			}
			thawIn.Close()
			n, err := io.CopyN(feed, stream, tc.n)
			if n != tc.n {
				t.Fatalf("copied %d of %d bytes: %v", n, tc.n, err)
			}
			feed.Close()
			stream.Close() // freeze may find its reader gone
			th.Wait()
			r := toolResult{args: []string{"thaw", "-"}, code: th.ProcessState.ExitCode(), stdout: thOut.String(), stderr: thErr.String()}
			requireToolError(t, r, 1, []string{"thaw: "}, "truncated")
			if fr := wait(); fr.code != 0 {
				requireToolError(t, fr, 1, []string{"freeze: "}, "broken pipe")
			}
			counting(t)
		})
	}

	// A freeze failing while it writes the pages, after it wrote them
	// all, or at the fsync: the stream has no trailer, the original
	// runs on.
	for _, step := range []string{"dumping", "written", "fsync"} {
		t.Run("failed_freeze_"+step, func(t *testing.T) {
			stream, wait := startFreezeStreamEnv(t, []string{"CRYO_TEST_FAULT=" + step}, "--leave-running", pid)
			th := exec.Command(thawBin, "-")
			var thErr strings.Builder
			th.Stdin, th.Stderr = stream, &thErr
			if err := th.Start(); err != nil {
				t.Fatal(err)
			}
			stream.Close()
			th.Wait()
			requireToolError(t, toolResult{args: []string{"thaw", "-"}, code: th.ProcessState.ExitCode(), stderr: thErr.String()}, 1, []string{"thaw: "}, "truncated")
			requireToolError(t, wait(), 1, []string{"freeze: "}, "injected")
			counting(t)
		})
	}
}

// imageLength is the image length a self-restoring executable's trailer
// records.
func imageLength(t *testing.T, exe string) int64 {
	b, err := os.ReadFile(exe)
	if err != nil || len(b) < 64 {
		t.Fatalf("read %s: %v", exe, err)
	}
	tr := b[len(b)-64:]
	var v int64
	for i := 7; i >= 0; i-- {
		v = v<<8 | int64(tr[32+i])
	}
	return v
}

// TestStreamTerminal: freeze -o - will not write an image onto a
// terminal, nor thaw - read one from a terminal: one line each, the
// target untouched.
func TestStreamTerminal(t *testing.T) {
	setup(t)
	p := startProc(t, "sleeper", buildVictim(t, "sleeper"), nil)
	_, slave := openPTY(t)

	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	run := func(name string, args ...string) toolResult {
		cmd := exec.CommandContext(ctx, name, args...)
		var stderr strings.Builder
		cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, &stderr
		cmd.Run()
		return toolResult{args: append([]string{filepath.Base(name)}, args...), code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}
	}
	requireToolError(t, run(freezeBin, strconv.Itoa(p.pid()), "-o", "-"), 1, []string{"freeze: "}, "terminal")
	p.requireUndisturbed()
	requireToolError(t, run(thawBin, "-"), 1, []string{"thaw: "}, "terminal")
}
