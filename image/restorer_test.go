package image

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A packed restorer unpacks to the program, by either mode.
func TestPackRestorer(t *testing.T) {
	prog := testProgram(rand.New(rand.NewSource(3)), 200000, elf.EM_AARCH64)
	for _, best := range []bool{false, true} {
		packed, err := PackRestorer(prog, best)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnpackRestorer(packed)
		if err != nil || !bytes.Equal(got, prog) {
			t.Fatalf("best=%v: unpacked %d bytes (%v), want the %d of the program", best, len(got), err, len(prog))
		}
		t.Logf("best=%v: %d bytes packed to %d", best, len(prog), len(packed))
	}
	if _, err := PackRestorer(nil, false); err == nil {
		t.Error("an empty restorer was packed")
	}
}

// NewExecutable writes no image whose restorer could not run.
func TestExecutableRestorerChecked(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	pack := func(prog []byte) []byte {
		p, err := PackRestorer(prog, false)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := pack(testProgram(rng, 20000, elf.EM_X86_64))
	header := func(raw, block uint64) []byte {
		b := append([]byte(nil), good...)
		le.PutUint64(b, raw)
		le.PutUint64(b[8:], block)
		return b
	}
	notELF := testProgram(rng, 20000, elf.EM_X86_64)
	copy(notELF, "MZ")
	for name, packed := range map[string][]byte{
		"other machine":  pack(testProgram(rng, 20000, elf.EM_AARCH64)),
		"no ELF":         pack(notELF),
		"short":          good[:10],
		"size 0":         header(0, uint64(len(good)-16)),
		"size too big":   header(20001, uint64(len(good)-16)),
		"size too small": header(19999, uint64(len(good)-16)),
		"block past end": header(20000, uint64(len(good)-15)),
		"block cut":      good[:len(good)-1],
	} {
		if _, err := NewExecutable(io.Discard, loaders["amd64"], packed); err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// thaw reads the executables written before the restorer was packed
// (CRYOEXE2), whose restorer region holds anything; a packed one whose
// header does not fit its region is damaged.
func TestEmbeddedRestorerHeader(t *testing.T) {
	restorer, img := testParts()
	good := testExecutable(t, restorer, img)
	size := len(good)
	// rewrite changes the file as f says, then makes its restorer sum
	// and trailer checksum match again.
	rewrite := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		tr := b[size-trailerSize:]
		t, err := decodeTrailer(tr, int64(size))
		if err != nil {
			panic(err)
		}
		le.PutUint64(tr[16:], sumWords(sumOffset, b[t.restorerOff:t.restorerOff+t.restorerLen]))
		le.PutUint32(tr[48:], checksum(tr[:48]))
		return b
	}
	v2 := rewrite(func(b []byte) {
		copy(b[size-8:], exeMagicV2[:])
		copy(b[exeAlign:], "\x7fELF an unpacked restorer")
	})
	if sr, err := OpenEmbedded(fileOf(t, v2)); err != nil {
		t.Errorf("CRYOEXE2: %v", err)
	} else if got, _ := io.ReadAll(sr); !bytes.Equal(got, img) {
		t.Error("CRYOEXE2: the image differs")
	}
	for name, b := range map[string][]byte{
		"size 0":         rewrite(func(b []byte) { le.PutUint64(b[exeAlign:], 0) }),
		"block past end": rewrite(func(b []byte) { le.PutUint64(b[exeAlign+8:], 1<<40) }),
	} {
		_, err := OpenEmbedded(fileOf(t, b))
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "does not unpack") {
			t.Errorf("%s: %v, want damaged: does not unpack", name, err)
		}
	}
}

// A restorer attached to a program is found again; a damaged one is
// refused, and a program without one says so.
func TestAttachRestorer(t *testing.T) {
	packed, err := PackRestorer(testProgram(rand.New(rand.NewSource(5)), 30000, elf.EM_X86_64), false)
	if err != nil {
		t.Fatal(err)
	}
	prog := bytes.Repeat([]byte("a program "), 1000)
	var b bytes.Buffer
	b.Write(prog)
	if err := AttachRestorer(&b, packed); err != nil {
		t.Fatal(err)
	}
	open := func(data []byte) *os.File {
		name := filepath.Join(t.TempDir(), "freeze")
		if err := os.WriteFile(name, data, 0o700); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	got, err := AttachedRestorer(open(b.Bytes()))
	if err != nil || !bytes.Equal(got, packed) {
		t.Fatalf("attached restorer of %d bytes (%v), want %d", len(got), err, len(packed))
	}
	if _, err := AttachedRestorer(open(prog)); err != ErrNoRestorer {
		t.Errorf("a program without one: %v, want ErrNoRestorer", err)
	}
	flipped := append([]byte(nil), b.Bytes()...)
	flipped[len(prog)+100] ^= 1
	if _, err := AttachedRestorer(open(flipped)); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a flipped byte: %v, want damaged", err)
	}
	long := append([]byte(nil), b.Bytes()...)
	le.PutUint64(long[len(long)-AttachFooterSize:], uint64(len(long)))
	if _, err := AttachedRestorer(open(long)); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a length past the start: %v, want damaged", err)
	}
	if err := AttachRestorer(io.Discard, []byte("short")); err == nil {
		t.Error("a restorer without header was attached")
	}
}
