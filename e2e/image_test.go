package e2e

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// The image format, as far as the tests rely on it:
//
// The executable ends with a 32-byte trailer:
//
//	image offset uint64 LE | image length uint64 LE | crc32c uint32 | 4 pad | "CRYOEXE\x00"
//
// The image starts with a header:
//
//	"CRYOIMG\x00" | version uint32 | arch uint32 (1 amd64, 2 arm64) |
//	page size uint32 | flags uint32 | crc32c of the 24 bytes before it, uint32
const (
	trailerSize     = 32
	trailerMagic    = "CRYOEXE\x00"
	imageMagic      = "CRYOIMG\x00"
	hdrArchOff      = 12
	hdrPageSizeOff  = 16
	hdrCRCOff       = 24
	archAMD64       = 1
	archARM64       = 2
	trailerCRCOff   = 16
	trailerMagicOff = 24
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type imageFile struct {
	data        []byte
	off, length uint64 // of the image part
	crc         uint32 // the trailer's
}

// readImageFile reads a frozen executable and decodes its trailer.
func readImageFile(tb testing.TB, path string) *imageFile {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(data) < trailerSize {
		tb.Fatalf("%s: %d bytes, shorter than a trailer", path, len(data))
	}
	t := data[len(data)-trailerSize:]
	if string(t[trailerMagicOff:]) != trailerMagic {
		tb.Fatalf("%s: trailer magic %q, want %q", path, t[trailerMagicOff:], trailerMagic)
	}
	im := &imageFile{
		data:   data,
		off:    binary.LittleEndian.Uint64(t[0:]),
		length: binary.LittleEndian.Uint64(t[8:]),
		crc:    binary.LittleEndian.Uint32(t[trailerCRCOff:]),
	}
	end := uint64(len(data) - trailerSize)
	if im.off > end || im.length > end-im.off || im.length < hdrCRCOff+4 {
		tb.Fatalf("%s: image at %d+%d does not fit in %d bytes before the trailer", path, im.off, im.length, end)
	}
	return im
}

func (im *imageFile) image() []byte { return im.data[im.off : im.off+im.length] }
func (im *imageFile) header() []byte {
	return im.data[im.off : im.off+hdrCRCOff+4]
}

// trailerCRCRegions are the byte ranges the trailer's crc32c might cover;
// the contract only says the trailer carries one.
func (im *imageFile) trailerCRCRegions() map[string][]byte {
	end := uint64(len(im.data) - trailerSize)
	return map[string][]byte{
		"image":                 im.image(),
		"file before trailer":   im.data[:end],
		"file through image":    im.data[:im.off+im.length],
		"image through trailer": im.data[im.off : end+trailerCRCOff],
		"trailer offset+length": im.data[end : end+trailerCRCOff],
	}
}

// trailerCRCCovers names the region the trailer crc matches, or "".
func (im *imageFile) trailerCRCCovers() string {
	for name, b := range im.trailerCRCRegions() {
		if crc32.Checksum(b, castagnoli) == im.crc {
			return name
		}
	}
	return ""
}

// setArch rewrites the header's arch field, recomputes the header crc and
// the trailer crc (whatever it covers, which may or may not include the
// header): the result is a well-formed image for another architecture.
func (im *imageFile) setArch(arch uint32) {
	covers := im.trailerCRCCovers()
	h := im.header()
	binary.LittleEndian.PutUint32(h[hdrArchOff:], arch)
	binary.LittleEndian.PutUint32(h[hdrCRCOff:], crc32.Checksum(h[:hdrCRCOff], castagnoli))
	if covers != "" {
		im.crc = crc32.Checksum(im.trailerCRCRegions()[covers], castagnoli)
		binary.LittleEndian.PutUint32(im.data[len(im.data)-trailerSize+trailerCRCOff:], im.crc)
	}
}

// frozenPipeVictim freezes a pipe victim with --leave-running and returns
// the image path; the victim keeps running until the test ends.
func frozenPipeVictim(t *testing.T, dir string) (string, *proc) {
	t.Helper()
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(dir, "pipe.bin")
	freeze(t, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
	return img, p
}

func TestImageFormat(t *testing.T) {
	setup(t)
	img, _ := frozenPipeVictim(t, t.TempDir())
	im := readImageFile(t, img)
	t.Logf("%s: %d bytes, image at %d, %d bytes", img, len(im.data), im.off, im.length)

	if end := uint64(len(im.data) - trailerSize); im.off+im.length != end {
		t.Logf("note: %d bytes between the image's end and the trailer", end-im.off-im.length)
	}
	h := im.header()
	if string(h[:8]) != imageMagic {
		t.Fatalf("image magic %q, want %q", h[:8], imageMagic)
	}
	le := binary.LittleEndian
	t.Logf("header: version %d, arch %d, page size %d, flags %#x",
		le.Uint32(h[8:]), le.Uint32(h[hdrArchOff:]), le.Uint32(h[hdrPageSizeOff:]), le.Uint32(h[20:]))
	if got := le.Uint32(h[hdrArchOff:]); got != archNative {
		t.Errorf("arch %d, want %d (%s)", got, archNative, archNativeName)
	}
	if got := le.Uint32(h[hdrPageSizeOff:]); got != uint32(os.Getpagesize()) {
		t.Errorf("page size %d, want %d", got, os.Getpagesize())
	}
	if got, want := le.Uint32(h[hdrCRCOff:]), crc32.Checksum(h[:hdrCRCOff], castagnoli); got != want {
		t.Errorf("header crc32c %#08x, want %#08x", got, want)
	}
	if c := im.trailerCRCCovers(); c != "" {
		t.Logf("the trailer crc32c %#08x covers the %s", im.crc, c)
	} else {
		t.Logf("warning: the trailer crc32c %#08x matches none of the candidate ranges", im.crc)
	}

	f, err := elf.Open(img)
	if err != nil {
		t.Fatalf("image is not an ELF file: %v", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elfMachine || (f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN) {
		t.Errorf("ELF %v %v %v, want a 64-bit %v executable", f.Class, f.Machine, f.Type, elfMachine)
	}
}

func TestImageReadelf(t *testing.T) {
	setup(t)
	readelf, err := exec.LookPath("readelf")
	if err != nil {
		skipOrFail(t, "readelf not found: %v", err)
	}
	img, _ := frozenPipeVictim(t, t.TempDir())
	out, err := exec.Command(readelf, "-h", img).CombinedOutput()
	if err != nil {
		t.Fatalf("readelf -h %s: %v\n%s", img, err, out)
	}
	if !bytes.Contains(out, []byte("ELF64")) {
		t.Errorf("readelf -h %s does not say ELF64:\n%s", img, out)
	}
}

// TestImageMode: the image is mode 0700 whatever the umask.
func TestImageMode(t *testing.T) {
	setup(t)
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
	p.expect("ready")
	for _, umask := range []string{"000", "022", "077"} {
		t.Run("umask"+umask, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img.bin")
			r := runTool(t, "/bin/sh", "-c", `umask `+umask+`; exec "$0" "$@"`,
				freezeBin, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
			requireNoCrash(t, r)
			if r.code != 0 {
				t.Fatalf("freeze failed:\n%s", r)
			}
			fi, err := os.Stat(img)
			if err != nil {
				t.Fatal(err)
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o700 {
				t.Errorf("umask %s: image mode %v, want -rwx------", umask, fi.Mode())
			}
		})
	}
	p.ask("still", "got still")
}
