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

	"github.com/cryo-project/cryo/image"
)

// The image format, as far as the tests rely on it:
//
// The executable starts with a small loader ELF whose program headers end
// it, then zeros up to 4096, where the restorer (packed: its size and
// its lz4 block's, uint64 LE each, then the block, padded with zeros to
// a multiple of 4096) starts; the image stream follows it,
// and the file ends with a 64-byte trailer:
//
//	restorer offset | restorer length | restorer sum | image offset |
//	image length | file size (uint64 LE each) | crc32c of the 48 bytes
//	before it, uint32 | 4 zero bytes | "CRYOEXE3"
//
// The image starts with a header:
//
//	"CRYOIMG\x00" | version uint32 | arch uint32 (1 amd64, 2 arm64) |
//	page size uint32 | flags uint32 | crc32c of the 24 bytes before it, uint32
const (
	trailerSize     = 64
	trailerMagic    = "CRYOEXE3"
	imageMagic      = "CRYOIMG\x00"
	hdrArchOff      = 12
	hdrPageSizeOff  = 16
	hdrCRCOff       = 24
	archAMD64       = 1
	archARM64       = 2
	trailerCRCOff   = 48
	trailerMagicOff = 56
	restorerAlign   = 4096
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type imageFile struct {
	data                  []byte
	restorerOff, restorer uint64 // offset and length of the restorer
	off, length           uint64 // of the image part
	size                  uint64 // the file size the trailer records
	crc                   uint32 // the trailer's
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
	le := binary.LittleEndian
	im := &imageFile{
		data:        data,
		restorerOff: le.Uint64(t[0:]),
		restorer:    le.Uint64(t[8:]),
		off:         le.Uint64(t[24:]),
		length:      le.Uint64(t[32:]),
		size:        le.Uint64(t[40:]),
		crc:         le.Uint32(t[trailerCRCOff:]),
	}
	end := uint64(len(data) - trailerSize)
	if im.off > end || im.length > end-im.off || im.length < hdrCRCOff+4 {
		tb.Fatalf("%s: image at %d+%d does not fit in %d bytes before the trailer", path, im.off, im.length, end)
	}
	if im.restorerOff > im.off || im.restorer > im.off-im.restorerOff {
		tb.Fatalf("%s: restorer at %d+%d does not fit before the image at %d", path, im.restorerOff, im.restorer, im.off)
	}
	return im
}

func (im *imageFile) image() []byte { return im.data[im.off : im.off+im.length] }
func (im *imageFile) header() []byte {
	return im.data[im.off : im.off+hdrCRCOff+4]
}

// setArch rewrites the header's arch field and recomputes the header crc
// (the trailer's crc covers only the trailer): the result is a
// well-formed image for another architecture.
func (im *imageFile) setArch(arch uint32) {
	h := im.header()
	binary.LittleEndian.PutUint32(h[hdrArchOff:], arch)
	binary.LittleEndian.PutUint32(h[hdrCRCOff:], crc32.Checksum(h[:hdrCRCOff], castagnoli))
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

	end := uint64(len(im.data) - trailerSize)
	if im.off+im.length != end {
		t.Errorf("%d bytes between the image's end and the trailer", end-im.off-im.length)
	}
	if im.size != uint64(len(im.data)) {
		t.Errorf("the trailer records a file of %d bytes, it has %d", im.size, len(im.data))
	}
	if got, want := im.crc, crc32.Checksum(im.data[end:end+trailerCRCOff], castagnoli); got != want {
		t.Errorf("trailer crc32c %#08x, want %#08x", got, want)
	}
	if im.restorerOff != restorerAlign || im.restorer%restorerAlign != 0 || im.restorerOff+im.restorer != im.off {
		t.Errorf("restorer at %d+%d, image at %d: want the restorer at %d, a multiple of %d bytes, right before the image",
			im.restorerOff, im.restorer, im.off, restorerAlign, restorerAlign)
	}
	// The restorer is the one attached to freeze, padded; it unpacks to
	// an ELF.
	r := im.data[im.restorerOff : im.restorerOff+im.restorer]
	if packed := freezeRestorer(t); len(packed) > len(r) || !bytes.Equal(r[:len(packed)], packed) ||
		len(bytes.Trim(r[len(packed):], "\x00")) != 0 {
		t.Errorf("the restorer (%d bytes) is not freeze's (%d bytes) padded with zeros", len(r), len(packed))
	}
	if prog, err := image.UnpackRestorer(r); err != nil {
		t.Errorf("the restorer does not unpack: %v", err)
	} else if string(prog[:4]) != "\x7fELF" {
		t.Errorf("the restorer unpacks to %q..., not an ELF header", prog[:4])
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

	f, err := elf.Open(img)
	if err != nil {
		t.Fatalf("image is not an ELF file: %v", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elfMachine || (f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN) {
		t.Errorf("ELF %v %v %v, want a 64-bit %v executable", f.Class, f.Machine, f.Type, elfMachine)
	}
	// The loader's program headers end it: a file cut inside it does not
	// exec.
	if len(f.Progs) == 0 || f.Progs[0].Type != elf.PT_LOAD || f.Progs[0].Off != 0 {
		t.Fatalf("program headers %v: want a PT_LOAD of the loader first", f.Progs)
	}
	var hdr elf.Header64
	if err := binary.Read(bytes.NewReader(im.data), binary.LittleEndian, &hdr); err != nil {
		t.Fatal(err)
	}
	if end := hdr.Phoff + uint64(hdr.Phnum)*uint64(hdr.Phentsize); end != f.Progs[0].Filesz || end > im.restorerOff {
		t.Errorf("program headers end at %d, the loader at %d (restorer at %d)", end, f.Progs[0].Filesz, im.restorerOff)
	}
	t.Logf("loader: %d bytes", f.Progs[0].Filesz)
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
