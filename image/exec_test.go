package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cryo-project/cryo/arch/amd64"
	"github.com/cryo-project/cryo/arch/arm64"
)

// loaders are the loaders of every architecture cryo writes executables
// for.
var loaders = map[string]Loader{
	"amd64": {Machine: elf.EM_X86_64, Code: amd64.LoaderCode()},
	"arm64": {Machine: elf.EM_AARCH64, Code: arm64.LoaderCode()},
}

// The loaders' ELF machines are the ones the executables are written for
// (the constants they share with this package live once, in
// arch/loaderdata).
func TestLoaderContract(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		machine, wantMachine elf.Machine
	}{
		{"amd64", amd64.ELFMachine, elf.EM_X86_64},
		{"arm64", arm64.ELFMachine, elf.EM_AARCH64},
	} {
		if tc.machine != tc.wantMachine {
			t.Errorf("%s: the loader's ELF machine is %v, want %v", tc.name, tc.machine, tc.wantMachine)
		}
	}
}

func TestSumWords(t *testing.T) {
	if got := sumWords(sumOffset, nil); got != sumOffset {
		t.Errorf("sum of nothing %#x, want the offset basis", got)
	}
	// One word by hand: (offset ^ 0x0807060504030201) * prime.
	w := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	h, prime := uint64(sumOffset), uint64(sumPrime)
	if got, want := sumWords(sumOffset, w), (h^0x0807060504030201)*prime; got != want {
		t.Errorf("one word: %#x, want %#x", got, want)
	}
	// The order of the words matters (FNV is no plain xor or add).
	a := sumWords(sumOffset, append(append([]byte(nil), w...), make([]byte, 8)...))
	b := sumWords(sumOffset, append(make([]byte, 8), w...))
	if a == b {
		t.Error("swapping two words kept the sum")
	}
	// A sumWriter fed in pieces of any size sums like sumWords.
	data := make([]byte, 8*1000)
	rand.New(rand.NewSource(1)).Read(data)
	for _, piece := range []int{1, 3, 7, 8, 13, 4096, len(data)} {
		s := &sumWriter{h: sumOffset}
		for off := 0; off < len(data); off += piece {
			s.Write(data[off:min(off+piece, len(data))])
		}
		if want := sumWords(sumOffset, data); s.h != want || s.n != 0 {
			t.Errorf("pieces of %d: %#x (%d bytes left over), want %#x", piece, s.h, s.n, want)
		}
	}
}

// The loader ELF parses, loads its whole self at loaderVaddr, starts at
// its code and has its program headers at its very end.
func TestLoaderELF(t *testing.T) {
	for name, l := range loaders {
		t.Run(name, func(t *testing.T) {
			b, err := loaderELF(l)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("loader ELF: %d bytes (%d of code)", len(b), len(l.Code))
			f, err := elf.NewFile(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("not an ELF file: %v", err)
			}
			if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB || f.Type != elf.ET_EXEC || f.Machine != l.Machine {
				t.Errorf("class %v data %v type %v machine %v", f.Class, f.Data, f.Type, f.Machine)
			}
			if f.Entry != loaderVaddr+ehdrSize {
				t.Errorf("entry %#x, want %#x", f.Entry, loaderVaddr+ehdrSize)
			}
			if !bytes.Equal(b[ehdrSize:ehdrSize+len(l.Code)], l.Code) {
				t.Error("the code is not right after the ELF header")
			}
			if len(f.Progs) != 2 {
				t.Fatalf("%d program headers, want 2", len(f.Progs))
			}
			load, stack := f.Progs[0], f.Progs[1]
			if load.Type != elf.PT_LOAD || load.Flags != elf.PF_R|elf.PF_X || load.Off != 0 ||
				load.Vaddr != loaderVaddr || load.Filesz != uint64(len(b)) || load.Memsz != load.Filesz {
				t.Errorf("PT_LOAD %+v: want the whole %d bytes, R+X, at %#x", load.ProgHeader, len(b), loaderVaddr)
			}
			if stack.Type != elf.PT_GNU_STACK || stack.Flags&elf.PF_X != 0 {
				t.Errorf("want a non-executable PT_GNU_STACK: %+v", stack.ProgHeader)
			}
			var hdr elf.Header64
			readStruct(t, b, &hdr)
			if end := hdr.Phoff + uint64(hdr.Phnum)*uint64(hdr.Phentsize); end != uint64(len(b)) {
				t.Errorf("program headers end at %d, the file at %d: a file cut inside them would still exec", end, len(b))
			}
			if len(b) > exeAlign {
				t.Errorf("%d bytes, more than the %d before the restorer", len(b), exeAlign)
			}
			// Every cut of the loader is recognized as one.
			for n := 1; n <= len(b); n++ {
				if !startsLikeLoader(b[:n]) {
					t.Fatalf("the first %d bytes are not taken for a loader", n)
				}
			}
		})
	}
	if _, err := loaderELF(Loader{Machine: elf.EM_X86_64}); err == nil {
		t.Error("a loader without code was accepted")
	}
	if _, err := loaderELF(Loader{Machine: elf.EM_X86_64, Code: make([]byte, exeAlign)}); err == nil {
		t.Error("a loader too big to fit before the restorer was accepted")
	}
	// Other executables are not.
	if exe, err := os.ReadFile("/proc/self/exe"); err == nil && startsLikeLoader(exe[:exeAlign]) {
		t.Error("this test binary is taken for a loader")
	}
}

func readStruct(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := binary.Read(bytes.NewReader(b), le, v); err != nil {
		t.Fatal(err)
	}
}

// testExecutable builds a self-restoring executable from the amd64 loader,
// restorer and an image stream (OpenEmbedded does not read the stream:
// any bytes do).
func testExecutable(t *testing.T, restorer, img []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	e, err := NewExecutable(&b, loaders["amd64"], restorer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Write(img); err != nil {
		t.Fatal(err)
	}
	if err := e.Finish(int64(len(img))); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func fileOf(t *testing.T, b []byte) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(name, b, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// testParts are a restorer that is no multiple of 4096 (nor of 8) bytes
// and an image stream.
func testParts() (restorer, img []byte) {
	rng := rand.New(rand.NewSource(2))
	prog := testProgram(rng, 40000, elf.EM_X86_64)
	restorer, err := PackRestorer(prog, false)
	if err != nil {
		panic(err)
	}
	img = make([]byte, 10000)
	rng.Read(img)
	copy(img, magic[:])
	return restorer, img
}

// testProgram is n bytes standing in for a restorer program for machine:
// an ELF header's magic and machine, then random bytes of a small
// alphabet (lz4 packs them to about half).
func testProgram(rng *rand.Rand, n int, machine elf.Machine) []byte {
	prog := make([]byte, n)
	for i := range prog {
		prog[i] = byte(rng.Intn(8))
	}
	copy(prog, "\x7fELF")
	le.PutUint16(prog[18:], uint16(machine))
	return prog
}

func TestExecutable(t *testing.T) {
	restorer, img := testParts()
	b := testExecutable(t, restorer, img)

	ld, _ := loaderELF(loaders["amd64"])
	if !bytes.Equal(b[:len(ld)], ld) || !allZero(b[len(ld):exeAlign]) {
		t.Error("the file does not start with the loader and zeros")
	}
	if len(restorer) < 2*exeAlign {
		t.Fatalf("a packed test restorer of %d bytes: too small to test its padding", len(restorer))
	}
	padded := (len(restorer) + exeAlign - 1) &^ (exeAlign - 1)
	rend := exeAlign + padded
	if !bytes.Equal(b[exeAlign:exeAlign+len(restorer)], restorer) || !allZero(b[exeAlign+len(restorer):rend]) {
		t.Error("the restorer is not at 4096, padded with zeros to a multiple of 4096")
	}
	tr, err := decodeTrailer(b[len(b)-trailerSize:], int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	want := trailer{restorerOff: exeAlign, restorerLen: uint64(padded), restorerSum: sumWords(sumOffset, b[exeAlign:rend]),
		imageOff: uint64(rend), imageLen: uint64(len(img)), fileSize: uint64(len(b))}
	if *tr != want {
		t.Errorf("trailer %+v, want %+v", *tr, want)
	}

	sr, err := OpenEmbedded(fileOf(t, b))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(sr)
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("section of %d bytes differs from the %d-byte image (%v)", len(got), len(img), err)
	}

	// The plain restorer, this test binary, has no image.
	exe, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenEmbedded(fileOf(t, exe)); err != ErrNoImage {
		t.Errorf("plain executable: got %v, want ErrNoImage", err)
	}
}

func TestExecutableWriterErrors(t *testing.T) {
	restorer, img := testParts()
	e, err := NewExecutable(io.Discard, loaders["amd64"], restorer)
	if err != nil {
		t.Fatal(err)
	}
	e.Write(img)
	if err := e.Finish(int64(len(img)) + 1); err == nil {
		t.Error("Finish accepted an image length other than what was written")
	}
	if _, err := NewExecutable(io.Discard, loaders["amd64"], nil); err == nil {
		t.Error("NewExecutable accepted an empty restorer")
	}
	if _, err := NewExecutable(io.Discard, Loader{}, restorer); err == nil {
		t.Error("NewExecutable accepted a loader without code")
	}
}

func allZero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }

// Cut anywhere, changed, grown or of the old layout, an executable is
// refused with the matching error.
func TestEmbeddedInvalid(t *testing.T) {
	restorer, img := testParts()
	good := testExecutable(t, restorer, img)
	ld, _ := loaderELF(loaders["amd64"])
	size := len(good)
	imgOff := size - trailerSize - len(img)
	flip := func(off int) []byte {
		b := append([]byte(nil), good...)
		b[off] ^= 0x40
		return b
	}
	// withTrailer rewrites a trailer field and its crc.
	withTrailer := func(field int, v uint64) []byte {
		b := append([]byte(nil), good...)
		tr := b[size-trailerSize:]
		le.PutUint64(tr[8*field:], v)
		le.PutUint32(tr[48:], checksum(tr[:48]))
		return b
	}
	old := append(append(append([]byte(nil), restorer...), img...), oldTrailer(len(restorer), len(img))...)
	exe, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}

	type tcase struct {
		name string
		file []byte
		want error  // errors.Is
		msg  string // in the message
	}
	cases := []tcase{
		{"empty", nil, ErrNoImage, ""},
		{"short", []byte("short"), ErrNoImage, ""},
		{"elf", exe, ErrNoImage, ""},
		{"old", old, ErrOldFormat, "older cryo"},
		{"old cut", append(append([]byte(nil), exe...), img[:100]...), ErrTruncated, "older cryo"},
		{"grown", append(append([]byte(nil), good...), 0), ErrTruncated, "size"},
		{"restorer flipped", flip(exeAlign + 100), ErrDamaged, "restorer"},
		{"restorer padding flipped", flip(exeAlign + len(restorer) + 1), ErrDamaged, "restorer"},
		{"trailer flipped", flip(size - trailerSize + 3), ErrDamaged, "checksum"},
		{"trailer padding", flip(size - trailerSize + 53), ErrDamaged, "checksum"},
		{"size", withTrailer(5, uint64(size)+1), ErrTruncated, "trailer says"},
		{"restorer past the image", withTrailer(1, uint64(imgOff)), ErrDamaged, "inconsistent"},
		{"restorer length not in words", withTrailer(1, 4*4096-4), ErrDamaged, "inconsistent"},
		{"no restorer", withTrailer(1, 0), ErrDamaged, "inconsistent"},
		{"huge restorer", withTrailer(1, 1<<62), ErrDamaged, "inconsistent"},
		{"restorer at 0", withTrailer(0, 0), ErrDamaged, "inconsistent"},
		{"image past the end", withTrailer(3, 1<<40), ErrDamaged, "inconsistent"},
		{"image too short", withTrailer(4, uint64(len(img))-1), ErrDamaged, "inconsistent"},
		{"huge image", withTrailer(4, 1<<63), ErrDamaged, "inconsistent"},
	}
	for _, cut := range []int{1, 4, 20, 63, 64, 65, len(ld) - 1, len(ld), exeAlign, exeAlign + 1,
		exeAlign + len(restorer)/2, imgOff, imgOff + 1, imgOff + len(img)/2, size - trailerSize,
		size - trailerSize + 7, size - 8, size - 1} {
		cases = append(cases, tcase{"cut at " + strconv.Itoa(cut), good[:cut], ErrTruncated, "copy it again"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenEmbedded(fileOf(t, tc.file))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want %v saying %q in one line", err, tc.want, tc.msg)
			}
			t.Log(err)
		})
	}
}

// oldTrailer is the trailer of the layout before the loader.
func oldTrailer(off, n int) []byte {
	b := make([]byte, oldTrailerSize)
	le.PutUint64(b[0:], uint64(off))
	le.PutUint64(b[8:], uint64(n))
	le.PutUint32(b[16:], checksum(b[:16]))
	copy(b[24:], oldExeMagic[:])
	return b
}
