package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 7: an image file cut short anywhere, even inside its restorer, or
// with a byte changed, says so in one line and exits non-zero, whether run
// directly or through thaw; it never dies of a signal. (Neither the test
// names nor the file names may contain the words the messages are checked
// for: thaw names the file.)

// loaderSize is where the loader ELF of an executable ends: after its
// program headers (e_phoff + e_phnum * e_phentsize).
func loaderSize(tb testing.TB, data []byte) int {
	tb.Helper()
	le := binary.LittleEndian
	n := le.Uint64(data[32:]) + uint64(le.Uint16(data[56:]))*uint64(le.Uint16(data[54:]))
	if n < 64 || n > restorerAlign {
		tb.Fatalf("loader of %d bytes", n)
	}
	return int(n)
}

// runDirect runs path as a program with stdin from /dev/null. A file the
// kernel refuses to exec returns the exec error and no result.
func runDirect(tb testing.TB, path string) (toolResult, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	if cmd.ProcessState == nil {
		return toolResult{}, err
	}
	if ctx.Err() != nil {
		tb.Fatalf("%s: timed out", path)
	}
	r := toolResult{args: []string{filepath.Base(path)}, code: cmd.ProcessState.ExitCode(),
		stdout: stdout.String(), stderr: stderr.String(), dur: time.Since(start)}
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
		tb.Fatalf("killed by %v, want a clean failure:\n%s", ws.Signal(), r)
	}
	return r, nil
}

// requireExecRefused checks a file cut inside its loader run directly:
// either the kernel refuses to exec it (ENOEXEC, EIO) or, run anyway, it
// fails in one line, never by a signal. Through a shell, the shell's
// one line and non-zero status are all there is.
func requireExecRefused(t *testing.T, path string) {
	t.Helper()
	r, err := runDirect(t, path)
	switch {
	case err == nil:
		requireToolError(t, r, 0, []string{filepath.Base(path) + ": "}, "truncated|damaged")
	case errors.Is(err, syscall.ENOEXEC) || errors.Is(err, syscall.EIO):
		t.Logf("exec: %v", err)
	default:
		t.Fatalf("exec: %v, want ENOEXEC or EIO", err)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Logf("no shell here (%v): only the exec itself was checked", err)
		return
	}
	r = runTool(t, sh, "-c", `exec "$0"`, path)
	requireNoCrash(t, r)
	if r.code <= 0 || strings.Count(strings.TrimRight(r.stderr, "\n"), "\n") != 0 || r.stderr == "" {
		t.Errorf("through sh: want one line and a non-zero status:\n%s", r)
	}
	t.Logf("%s", r)
}

func TestCutImage(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	good, _ := frozenPipeVictim(t, dir)
	im := readImageFile(t, good)
	size := len(im.data)
	ld := loaderSize(t, im.data)
	rOff, rEnd := int(im.restorerOff), int(im.restorerOff+im.restorer)
	iOff, iEnd := int(im.off), int(im.off+im.length)
	t.Logf("%d bytes: loader %d, restorer %d+%d, image %d+%d", size, ld, rOff, rEnd-rOff, iOff, iEnd-iOff)

	type cut struct {
		name string
		at   int
	}
	cuts := []cut{
		{"loader-1", 1}, {"loader-header", 40}, {"loader-code", 200}, {"loader-last", ld - 1},
		{"after-loader", ld}, {"restorer-first", rOff + 1}, {"restorer-half", rOff + (rEnd-rOff)/2},
		{"restorer-last", rEnd - 1}, {"restorer-end", rEnd}, {"image-half", iOff + (iEnd-iOff)/2},
		{"trailer", iEnd + 20}, {"short-by-one", size - 1},
	}
	for _, c := range cuts {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("cut-%d.bin", c.at))
			if err := os.WriteFile(path, im.data[:c.at], 0o700); err != nil {
				t.Fatal(err)
			}
			t.Run("direct", func(t *testing.T) {
				if c.at < ld {
					requireExecRefused(t, path)
					return
				}
				r, err := runDirect(t, path)
				if err != nil {
					t.Fatalf("exec: %v", err)
				}
				requireToolError(t, r, 1, []string{filepath.Base(path) + ": "}, "truncated|damaged")
				t.Logf("%s", r)
			})
			t.Run("thaw", func(t *testing.T) {
				r := runTool(t, thawBin, path)
				requireToolError(t, r, 1, []string{"thaw: "}, "truncated|damaged")
				t.Logf("%s", r)
			})
			checkNoStrays(t)
		})
	}

	flip := func(off int) []byte {
		b := append([]byte(nil), im.data...)
		b[off] ^= 0x40
		return b
	}
	for i, tc := range []struct {
		name     string
		data     []byte
		keywords []string
	}{
		{"restorer-byte", flip(rOff + (rEnd-rOff)/3), []string{"damaged", "restorer"}},
		{"restorer-padding", flip(rEnd - 1), []string{"damaged", "restorer"}},
		// The image's own checksums find it (the reader says "corrupt").
		{"image-byte", flip(iOff + (iEnd-iOff)/2), []string{"damaged|corrupt"}},
		{"trailer-crc", flip(size - trailerSize + trailerCRCOff), []string{"damaged"}},
		{"grown", append(append([]byte(nil), im.data...), '\n'), []string{"truncated|damaged"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("changed-%d.bin", i))
			if err := os.WriteFile(path, tc.data, 0o700); err != nil {
				t.Fatal(err)
			}
			t.Run("direct", func(t *testing.T) {
				r, err := runDirect(t, path)
				if err != nil {
					t.Fatalf("exec: %v", err)
				}
				// The loader speaks for itself; the restorer names the
				// file; the restore helper says "thaw: ".
				requireToolError(t, r, 0, []string{filepath.Base(path) + ": ", "thaw: "}, tc.keywords...)
				t.Logf("%s", r)
			})
			t.Run("thaw", func(t *testing.T) {
				r := runTool(t, thawBin, path)
				requireToolError(t, r, 0, []string{"thaw: "}, tc.keywords...)
				t.Logf("%s", r)
			})
			checkNoStrays(t)
		})
	}

	// The untouched file still thaws, both ways.
	for _, viaThaw := range []bool{false, true} {
		th := thaw(t, good, viaThaw)
		th.ask("intact", "got intact")
		th.kill()
	}
}

// TestOldImage: a file of the layout before the loader (the restorer
// first, a 32-byte trailer "CRYOEXE\x00") is refused in one line that
// says so.
func TestOldImage(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	good, _ := frozenPipeVictim(t, dir)
	im := readImageFile(t, good)
	bin, err := os.ReadFile(freezeBin)
	if err != nil {
		t.Fatal(err)
	}
	old := append(append([]byte(nil), bin...), im.image()...)
	tr := make([]byte, 32)
	binary.LittleEndian.PutUint64(tr[0:], uint64(len(bin)))
	binary.LittleEndian.PutUint64(tr[8:], im.length)
	binary.LittleEndian.PutUint32(tr[16:], crc32.Checksum(tr[:16], castagnoli))
	copy(tr[24:], "CRYOEXE\x00")
	path := filepath.Join(dir, "old.bin")
	if err := os.WriteFile(path, append(old, tr...), 0o700); err != nil {
		t.Fatal(err)
	}
	r := runTool(t, thawBin, path)
	requireToolError(t, r, 1, []string{"thaw: "}, "older cryo")
	t.Logf("%s", r)
}
