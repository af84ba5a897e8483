package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// holdFile starts the pipe victim holding path, opened with flags, on
// its fd 3, idle in read.
func holdFile(t *testing.T, path string, flags int) *proc {
	t.Helper()
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil, withFiles([]*os.File{f}))
	f.Close()
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	return p
}

// thawRefused runs the image both ways (./OUT, thaw OUT): each must fail
// with one "thaw: " line holding the keywords.
func thawRefused(t *testing.T, img string, keywords ...string) {
	t.Helper()
	for _, r := range []toolResult{runTool(t, img), runTool(t, thawBin, img)} {
		requireToolError(t, r, 1, []string{"thaw: "}, keywords...)
		t.Logf("%s", r)
	}
}

// requireWarning reads the thawed process's first stderr line: a thaw
// warning holding the keywords.
func requireWarning(t *testing.T, p *proc, keywords ...string) {
	t.Helper()
	line, ok := p.errs.nextLine(lineTimeout)
	if !ok || !strings.HasPrefix(line, "thaw: warning: ") {
		t.Fatalf("%s: stderr %q, want a thaw warning", p.name, line)
	}
	for _, kw := range keywords {
		if !strings.Contains(line, kw) {
			t.Errorf("warning %q should say %q", line, kw)
		}
	}
	t.Logf("%s", line)
}

// TestThawChangedFile: a file the process had open that changed or
// vanished since the freeze refuses the thaw with one line naming it and
// what changed; thaw --allow-changed (or CRYO_ALLOW_CHANGED=1) thaws with
// a warning line. A file opened O_APPEND that only grew thaws with a
// warning (the copy appends after).
func TestThawChangedFile(t *testing.T) {
	setup(t)
	const before = "0123456789"
	start := func(t *testing.T, flags int, leave bool) (path, img string, p *proc) {
		dir := t.TempDir()
		path = filepath.Join(dir, "data")
		if err := os.WriteFile(path, []byte(before), 0o644); err != nil {
			t.Fatal(err)
		}
		p = holdFile(t, path, flags)
		img = filepath.Join(dir, "img.bin")
		if leave {
			freeze(t, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
		} else {
			freezeKill(t, p, img)
		}
		return path, img, p
	}
	appendTo := func(t *testing.T, path string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("more"); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("vanished", func(t *testing.T) {
		path, img, _ := start(t, os.O_RDONLY, false)
		os.Remove(path)
		thawRefused(t, img, "fd 3", path, "no such file", "gone since the freeze", "--carry-files")
	})
	t.Run("grown", func(t *testing.T) {
		path, img, _ := start(t, os.O_RDONLY, false)
		appendTo(t, path)
		thawRefused(t, img, "fd 3", path, "changed since the freeze", "size 14, it was 10", "modified", "--allow-changed", "CRYO_ALLOW_CHANGED=1")
	})
	t.Run("replaced", func(t *testing.T) {
		path, img, _ := start(t, os.O_RDONLY, false)
		other := path + ".new"
		if err := os.WriteFile(other, []byte(before), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, path); err != nil {
			t.Fatal(err)
		}
		thawRefused(t, img, "fd 3", path, "inode", "replaced")
	})
	t.Run("allowed", func(t *testing.T) {
		path, img, _ := start(t, os.O_RDONLY, false)
		appendTo(t, path)
		th := startProc(t, "thaw --allow-changed", thawBin, []string{"--allow-changed", img})
		requireWarning(t, th, "fd 3: "+path+" changed since the freeze", "size 14, it was 10", "thawed anyway")
		th.ask("hello", "got hello")
		th2 := thaw(t, img, false, withEnv("CRYO_ALLOW_CHANGED=1"))
		requireWarning(t, th2, path, "thawed anyway")
		th2.ask("hello", "got hello")
	})
	t.Run("written-by-the-original", func(t *testing.T) {
		// Left running, the original writes on; then it is gone.
		path, img, p := start(t, os.O_WRONLY, true)
		if err := os.WriteFile(fmtProcFD(p.pid(), 3), []byte("written after"), 0); err != nil {
			t.Fatal(err)
		}
		p.kill()
		thawRefused(t, img, path, "changed since the freeze", "open for writing", "--leave-running")
	})
	t.Run("appended", func(t *testing.T) {
		path, img, p := start(t, os.O_WRONLY|os.O_APPEND, true)
		appendTo(t, path)
		p.kill()
		th := thaw(t, img, true)
		requireWarning(t, th, "fd 3: "+path+" grew from 10 to 14 bytes", "appends after")
		th.ask("hello", "got hello")
	})
}

func fmtProcFD(pid, fd int) string { return "/proc/" + strconv.Itoa(pid) + "/fd/" + strconv.Itoa(fd) }

// TestCarryFiles: freeze --carry-files puts the open files' contents in
// the image: a file gone at thaw is made again, with its mode; one with
// other contents is refused, or left as it is with --allow-changed; a
// file over --max-file-size fails the freeze by name.
func TestCarryFiles(t *testing.T) {
	setup(t)
	const contents = "carried contents\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "data")
	if err := os.WriteFile(path, []byte(contents), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o640)
	p := holdFile(t, path, os.O_RDWR)

	t.Run("over-the-limit", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "img.bin")
		freezeFails(t, filepath.Dir(out), []string{"--carry-files", "--max-file-size", "4", "-o", out, strconv.Itoa(p.pid())},
			"fd 3", path, "17 bytes", "4 bytes", "--max-file-size")
		freezeFails(t, filepath.Dir(out), []string{"--carry-files", "--max-file-size", "lots", "-o", out, strconv.Itoa(p.pid())},
			"--max-file-size", "lots")
		p.ask("still", "got still")
		waitInSyscall(t, p, sysRead)
	})

	img := filepath.Join(dir, "img.bin")
	freeze(t, "--carry-files", "--max-file-size", "1K", "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()

	t.Run("gone", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		th := thaw(t, img, false)
		requireWarning(t, th, "fd 3: "+path+" was gone: made again", "17 bytes, mode 0640")
		th.ask("hello", "got hello")
		b, err := os.ReadFile(path)
		fi, _ := os.Stat(path)
		if err != nil || string(b) != contents || fi.Mode().Perm() != 0o640 {
			t.Errorf("made again: %q, %v, mode %v; want %q, mode 0640", b, err, fi.Mode(), contents)
		}
		// The copy's fd 3 is that file.
		var a, c syscall.Stat_t
		if err := syscall.Stat(fmtProcFD(th.pid(), 3), &a); err != nil || syscall.Stat(path, &c) != nil || a.Ino != c.Ino {
			t.Errorf("the copy's fd 3 is not %s (%v)", path, err)
		}
		th.kill()
	})
	t.Run("other-contents", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("other contents!!\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		thawRefused(t, img, "fd 3", path, "contents differ", "--allow-changed")
		th := thaw(t, img, false, withEnv("CRYO_ALLOW_CHANGED=1"))
		requireWarning(t, th, path, "contents differ", "left as it is now")
		th.ask("hello", "got hello")
		if b, _ := os.ReadFile(path); string(b) != "other contents!!\n" {
			t.Errorf("--allow-changed wrote over %s: %q", path, b)
		}
	})
}

// TestThawDeletedNodeUnprivileged: a deleted device node is made again
// with mknod, which needs CAP_MKNOD: a thaw by nobody refuses, naming it,
// and leaves nothing behind.
func TestThawDeletedNodeUnprivileged(t *testing.T) {
	dir, bin := privDir(t, "paths")
	home := userDir(t, dir)
	p := startProc(t, "paths node", bin["paths"], []string{"node"}, inDir(home))
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(home, "node.bin")
	freeze(t, "-o", img, strconv.Itoa(p.pid()))
	p.waitExit()
	if err := os.Chown(img, int(nobody.Uid), int(nobody.Gid)); err != nil {
		t.Fatal(err)
	}
	r := runToolWith(t, toolEnv{cred: nobody}, img)
	requireToolError(t, r, 1, []string{"thaw: "}, "fd 33", "deleted device node", filepath.Join(home, "null"), "1:3", "CAP_MKNOD")
	t.Logf("%s", r)
	requireDirEntries(t, home, "node.bin")
}

// TestThawOtherNamespace: a namespace fd is reopened only in the
// namespace it names: a thaw in another UTS namespace refuses, naming
// both.
func TestThawOtherNamespace(t *testing.T) {
	setup(t)
	if os.Geteuid() != 0 {
		skipOrFail(t, "a thaw in a namespace of its own needs root")
	}
	dir := t.TempDir()
	p := startProc(t, "paths", buildVictim(t, "paths"), nil, inDir(dir))
	t.Logf("paths: %s", p.expect("ready"))
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(dir, "paths.bin")
	freezeKill(t, p, img)
	r := runToolWith(t, toolEnv{clone: syscall.CLONE_NEWUTS}, thawBin, img)
	requireToolError(t, r, 1, []string{"thaw: "}, "fd 13", "uts namespace", "this thaw runs in uts:[", "where the freeze ran")
	t.Logf("%s", r)
	// Nothing left of the deleted directory and node made again.
	requireDirEntries(t, filepath.Join(dir, "p"), "append.log", "direct", "file", "link", "many", "sub")
}
