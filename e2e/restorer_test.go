package e2e

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/cryo-project/cryo/image"
)

// maxRestorer bounds the restorer an image carries: a quarter of the
// 7.5 MB it had when it was the whole freeze binary (issue 10).
const maxRestorer = 1_875_000

// TestRestorerSize: the restorer in an image of the counter, frozen for
// real, is at most maxRestorer bytes (the packed restorer and its
// padding, as the trailer counts it), unpacks to an ELF, and runs: the
// image thaws as ./counter.bin and counts on.
func TestRestorerSize(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "counter.log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "counter", buildVictim(t, "counter"), nil, withStdout(f))
	f.Close()
	waitLogLines(t, logPath, 5, p)
	img := filepath.Join(dir, "counter.bin")
	freezeKill(t, p, img)

	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 64 || string(data[len(data)-8:]) != "CRYOEXE3" {
		t.Fatalf("%s: no trailer of a packed restorer", img)
	}
	tr := data[len(data)-64:]
	off, n := binary.LittleEndian.Uint64(tr), binary.LittleEndian.Uint64(tr[8:])
	if off+n > uint64(len(data)) {
		t.Fatalf("restorer of %d bytes at %d in a file of %d", n, off, len(data))
	}
	prog, err := image.UnpackRestorer(data[off : off+n])
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %d bytes: restorer %d bytes packed (%d unpacked), limit %d", len(data), n, len(prog), maxRestorer)
	if n > maxRestorer {
		t.Errorf("the restorer takes %d bytes of the image, more than %d: was freeze built without its restorer attached (make)?", n, maxRestorer)
	}
	if string(prog[:4]) != "\x7fELF" {
		t.Errorf("the restorer unpacks to %q..., no ELF", prog[:4])
	}

	atFreeze := countLines(t, logPath)
	th := thaw(t, img, false)
	waitLogLines(t, logPath, atFreeze+10, th)
	th.kill()
}
