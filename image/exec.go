package image

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cryo-project/cryo/arch/loaderdata"
)

// Layout of the self-restoring executable; doc.go draws it.
const (
	// trailerSize is the size of the trailer that ends the file.
	trailerSize = 64
	// exeAlign aligns the restorer and the image: the loader is padded
	// to it, the restorer too.
	exeAlign = 4096
	// loaderVaddr is where the loader ELF asks to be loaded.
	loaderVaddr = 0x400000
	// Sizes of the loader's ELF header and of its two program headers.
	ehdrSize    = 64
	phdrSize    = 56
	loaderPhnum = 2

	// oldTrailerSize and oldExeMagic end the files of cryo before the
	// loader: the restorer at offset 0, the image, a 32-byte trailer.
	oldTrailerSize = 32
)

var (
	exeMagic = [8]byte([]byte(loaderdata.Magic))
	// exeMagicV2 ends the executables written before the restorer was
	// packed: the same layout, the restorer stored as it is. thaw still
	// reads them (their own loaders run them).
	exeMagicV2  = [8]byte{'C', 'R', 'Y', 'O', 'E', 'X', 'E', '2'}
	oldExeMagic = [8]byte{'C', 'R', 'Y', 'O', 'E', 'X', 'E', 0}
)

// EnvImageFD is the environment variable through which the loader hands
// the restorer a read-only fd of the executable it was run from (the
// restorer then runs from a memfd, and /proc/self/exe is that memfd).
const EnvImageFD = loaderdata.Env

// The restorer's sum is FNV-1a-64 over its little-endian 8-byte words:
// h = sumOffset; for each word w: h = (h ^ w) * sumPrime.
const (
	sumOffset = loaderdata.SumOffset
	sumPrime  = loaderdata.SumPrime
)

// sumWords adds the 8-byte words of b (whose length is a multiple of 8)
// to the restorer sum h. The loaders compute the same.
func sumWords(h uint64, b []byte) uint64 {
	for ; len(b) >= 8; b = b[8:] {
		h = (h ^ le.Uint64(b)) * sumPrime
	}
	return h
}

// ErrNoImage is returned by OpenEmbedded for a file that is no
// self-restoring executable, such as the plain restorer binary.
var ErrNoImage = errors.New("no cryo image embedded in this file")

// ErrTruncated and ErrDamaged report a self-restoring executable that was
// cut short or changed since it was written; ErrOldFormat one written by
// a cryo from before the loader, which this one cannot read.
var (
	ErrTruncated = errors.New("this image file is truncated")
	ErrDamaged   = errors.New("this image file is damaged")
	ErrOldFormat = errors.New("this image file was written by an older cryo (its trailer has no loader): thaw it with the cryo that froze it")
)

// Loader is the first stage of a self-restoring executable for one
// architecture: position-independent machine code run from its first
// byte (arch/amd64 and arch/arm64 LoaderCode).
type Loader struct {
	Machine elf.Machine
	Code    []byte
}

// loaderELF wraps the loader's code in a static ELF executable of one
// R+X segment, with its program headers at the very end: a file cut
// anywhere inside it makes execve fail (the kernel's read of the program
// headers comes up short, EIO; or the header is incomplete, ENOEXEC)
// rather than run code whose page lies past the end of the file.
//
//	 0          ELF header      64 bytes
//	64          code            padded with zeros to 8 bytes
//	phoff       PT_LOAD         the whole file, R+X, at loaderVaddr
//	phoff+56    PT_GNU_STACK    RW: no executable stack
func loaderELF(l Loader) ([]byte, error) {
	if len(l.Code) == 0 {
		return nil, errors.New("no loader code for this architecture")
	}
	codeLen := (uint64(len(l.Code)) + 7) &^ 7
	phoff := ehdrSize + codeLen
	size := phoff + loaderPhnum*phdrSize
	if size > exeAlign {
		return nil, fmt.Errorf("loader of %d bytes does not fit in %d", size, exeAlign)
	}
	var b bytes.Buffer
	hdr := loaderHeader(l.Machine, phoff)
	binary.Write(&b, le, &hdr) // a bytes.Buffer takes any write
	b.Write(l.Code)
	b.Write(make([]byte, codeLen-uint64(len(l.Code))))
	binary.Write(&b, le, &elf.Prog64{
		Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Off: 0, Vaddr: loaderVaddr, Paddr: loaderVaddr,
		Filesz: size, Memsz: size, Align: 0x10000,
	})
	binary.Write(&b, le, &elf.Prog64{
		Type: uint32(elf.PT_GNU_STACK), Flags: uint32(elf.PF_R | elf.PF_W), Align: 16,
	})
	return b.Bytes(), nil
}

// loaderHeader is the ELF header of the loader for machine, with its
// program headers at phoff.
func loaderHeader(machine elf.Machine, phoff uint64) elf.Header64 {
	return elf.Header64{
		Ident: [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB),
			byte(elf.EV_CURRENT), byte(elf.ELFOSABI_NONE)},
		Type: uint16(elf.ET_EXEC), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT),
		Entry: loaderVaddr + ehdrSize, Phoff: phoff,
		Ehsize: ehdrSize, Phentsize: phdrSize, Phnum: loaderPhnum,
	}
}

// startsLikeLoader tells whether head, the first bytes of a file (all of
// it if shorter), is or begins a loader ELF as loaderELF writes them,
// for any machine and code length.
func startsLikeLoader(head []byte) bool {
	if len(head) == 0 {
		return false
	}
	var want bytes.Buffer
	hdr := loaderHeader(0, 0)
	binary.Write(&want, le, &hdr)
	w := want.Bytes()
	for i := 0; i < len(w) && i < len(head); i++ {
		if (i >= 18 && i < 20) || (i >= 32 && i < 40) {
			continue // e_machine and e_phoff: any
		}
		if head[i] != w[i] {
			return false
		}
	}
	if len(head) >= 40 {
		phoff := le.Uint64(head[32:])
		return phoff > ehdrSize && phoff%8 == 0 && phoff+loaderPhnum*phdrSize <= exeAlign
	}
	return true
}

// trailer is the end of a self-restoring executable:
//
//	 0  restorer offset   uint64
//	 8  restorer length   uint64  a multiple of 8 (the restorer is padded)
//	16  restorer sum      uint64  sumWords over the restorer
//	24  image offset      uint64
//	32  image length      uint64
//	40  file size         uint64  the whole file, trailer included
//	48  crc32c of 0-47    uint32
//	52  zero              uint32
//	56  magic "CRYOEXE3" (or "CRYOEXE2": an unpacked restorer)
type trailer struct {
	restorerOff, restorerLen, restorerSum uint64
	imageOff, imageLen, fileSize          uint64
	// unpacked: a CRYOEXE2 file, whose restorer is the program itself.
	unpacked bool
}

func (t *trailer) encode() []byte {
	b := make([]byte, trailerSize)
	for i, v := range []uint64{t.restorerOff, t.restorerLen, t.restorerSum, t.imageOff, t.imageLen, t.fileSize} {
		le.PutUint64(b[8*i:], v)
	}
	le.PutUint32(b[48:], checksum(b[:48]))
	copy(b[56:], exeMagic[:])
	return b
}

// decodeTrailer checks the trailer b of a file of size bytes and that the
// parts it describes lie in order in the file: a loader, the restorer,
// the image, the trailer.
func decodeTrailer(b []byte, size int64) (*trailer, error) {
	if got, want := le.Uint32(b[48:]), checksum(b[:48]); got != want || le.Uint32(b[52:]) != 0 {
		return nil, fmt.Errorf("%w (its trailer does not match its checksum): copy it again", ErrDamaged)
	}
	v := func(i int) uint64 { return le.Uint64(b[8*i:]) }
	t := &trailer{restorerOff: v(0), restorerLen: v(1), restorerSum: v(2), imageOff: v(3), imageLen: v(4), fileSize: v(5)}
	if t.fileSize != uint64(size) {
		return nil, fmt.Errorf("%w or damaged (it has %d bytes, its trailer says %d): copy it again", ErrTruncated, size, t.fileSize)
	}
	end := uint64(size) - trailerSize
	switch {
	case t.restorerOff < ehdrSize || t.restorerOff > end,
		t.restorerLen == 0 || t.restorerLen%8 != 0 || t.restorerLen > end-t.restorerOff,
		t.imageOff < t.restorerOff+t.restorerLen || t.imageOff > end,
		t.imageLen != end-t.imageOff:
		return nil, fmt.Errorf("%w (its trailer is inconsistent: restorer of %d bytes at %d, image of %d bytes at %d, trailer at %d): copy it again",
			ErrDamaged, t.restorerLen, t.restorerOff, t.imageLen, t.imageOff, end)
	}
	return t, nil
}

// An ExecutableWriter writes a self-restoring executable: NewExecutable
// writes the loader and the restorer, the caller writes the image stream
// through it, and Finish writes the trailer.
type ExecutableWriter struct {
	w   io.Writer
	t   trailer
	n   int64 // image bytes written
	err error
}

// NewExecutable writes to w the start of a self-restoring executable: the
// loader l as a tiny ELF, zeros up to the next 4096-byte boundary, and
// the packed restorer (PackRestorer), padded with zeros to a multiple of
// 4096 bytes. It is checked first: it must unpack to an ELF executable
// for l's machine. The image stream is to be written through the
// returned writer.
func NewExecutable(w io.Writer, l Loader, packed []byte) (*ExecutableWriter, error) {
	ld, err := loaderELF(l)
	if err != nil {
		return nil, err
	}
	if err := checkPacked(packed, l); err != nil {
		return nil, err
	}
	e := &ExecutableWriter{w: w}
	e.t.restorerOff = exeAlign
	if _, err := w.Write(append(ld, make([]byte, exeAlign-len(ld))...)); err != nil {
		return nil, fmt.Errorf("writing the loader: %w", err)
	}
	s := &sumWriter{h: sumOffset}
	if _, err := io.MultiWriter(w, s).Write(packed); err != nil {
		return nil, fmt.Errorf("writing the restorer: %w", err)
	}
	n := int64(len(packed))
	pad := make([]byte, (exeAlign-n%exeAlign)%exeAlign)
	if _, err := w.Write(pad); err != nil {
		return nil, fmt.Errorf("writing the restorer: %w", err)
	}
	s.Write(pad)
	e.t.restorerLen = uint64(n) + uint64(len(pad))
	e.t.restorerSum = s.h
	e.t.imageOff = e.t.restorerOff + e.t.restorerLen
	return e, nil
}

// Write writes image bytes.
func (e *ExecutableWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.n += int64(n)
	e.err = err
	return n, err
}

// Finish writes the trailer. imageLen is the length of the image stream
// (Writer.Written), which must all have been written through e.
func (e *ExecutableWriter) Finish(imageLen int64) error {
	if e.err != nil {
		return e.err
	}
	if imageLen != e.n {
		return fmt.Errorf("image of %d bytes, but %d were written", imageLen, e.n)
	}
	e.t.imageLen = uint64(imageLen)
	e.t.fileSize = e.t.imageOff + e.t.imageLen + trailerSize
	if _, err := e.w.Write(e.t.encode()); err != nil {
		return fmt.Errorf("writing the image trailer: %w", err)
	}
	return nil
}

// sumWriter computes the restorer sum of what is written to it, in any
// pieces.
type sumWriter struct {
	h    uint64
	part [8]byte
	n    int // bytes in part
}

func (s *sumWriter) Write(p []byte) (int, error) {
	total := len(p)
	if s.n > 0 {
		k := copy(s.part[s.n:], p)
		s.n += k
		p = p[k:]
		if s.n < len(s.part) {
			return total, nil
		}
		s.h = sumWords(s.h, s.part[:])
		s.n = 0
	}
	full := len(p) &^ 7
	s.h = sumWords(s.h, p[:full])
	s.n = copy(s.part[:], p[full:])
	return total, nil
}

// OpenEmbedded checks the self-restoring executable f as the loader does
// and more (the trailer's checksum, the layout, the restorer's sum) and
// returns a reader for exactly the image's bytes. It returns ErrNoImage
// for a file that is none, such as the plain restorer, and errors
// wrapping ErrTruncated, ErrDamaged or ErrOldFormat for a file that is
// one but cannot be thawed.
func OpenEmbedded(f *os.File) (*io.SectionReader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("looking for an embedded image: %w", err)
	}
	size := fi.Size()
	tail := make([]byte, min(size, trailerSize))
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
		return nil, fmt.Errorf("reading the image trailer of %s: %w", f.Name(), err)
	}
	if len(tail) == trailerSize && (bytes.Equal(tail[56:], exeMagic[:]) || bytes.Equal(tail[56:], exeMagicV2[:])) {
		t, err := decodeTrailer(tail, size)
		if err != nil {
			return nil, err
		}
		t.unpacked = bytes.Equal(tail[56:], exeMagicV2[:])
		if err := checkRestorer(f, t); err != nil {
			return nil, err
		}
		return io.NewSectionReader(f, int64(t.imageOff), int64(t.imageLen)), nil
	}
	head := make([]byte, min(size, exeAlign))
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if startsLikeLoader(head) {
		// The loader's message for the same file.
		return nil, fmt.Errorf("%w or damaged (its end is missing or its size is wrong): copy it again", ErrTruncated)
	}
	if len(tail) >= oldTrailerSize && bytes.Equal(tail[len(tail)-8:], oldExeMagic[:]) {
		return nil, ErrOldFormat
	}
	return nil, oldTruncated(f, size)
}

// checkRestorer compares the restorer's sum with the trailer's, and checks
// the header of a packed one.
func checkRestorer(f *os.File, t *trailer) error {
	buf := make([]byte, 1<<20)
	h := uint64(sumOffset)
	for off, left := t.restorerOff, t.restorerLen; left > 0; {
		b := buf[:min(left, uint64(len(buf)))]
		if _, err := f.ReadAt(b, int64(off)); err != nil {
			return fmt.Errorf("reading the restorer of %s: %w", f.Name(), err)
		}
		h = sumWords(h, b)
		off += uint64(len(b))
		left -= uint64(len(b))
	}
	if h != t.restorerSum {
		return fmt.Errorf("%w (its restorer does not match its checksum): copy it again", ErrDamaged)
	}
	if t.unpacked {
		return nil
	}
	// What the loader checks once the sum matched: only a cryo that
	// wrote the file wrong gets here.
	if t.restorerLen < packHeaderSize {
		return fmt.Errorf("%w (its restorer does not unpack): copy it again", ErrDamaged)
	}
	head := make([]byte, packHeaderSize)
	if _, err := f.ReadAt(head, int64(t.restorerOff)); err != nil {
		return fmt.Errorf("reading the restorer of %s: %w", f.Name(), err)
	}
	if raw, block := le.Uint64(head), le.Uint64(head[8:]); raw == 0 || block > t.restorerLen-packHeaderSize {
		return fmt.Errorf("%w (its restorer does not unpack): copy it again", ErrDamaged)
	}
	return nil
}

// oldTruncated tells a plain restorer (ErrNoImage) from an executable of
// the old layout (the restorer ELF first) that was cut short: the ELF's
// own extent is computed from its headers (its program headers' file
// ranges, its sections' and the section header table), and if an image
// header follows it, the trailer was cut off. The headers are read with
// encoding/binary, not debug/elf's NewFile: that would link DWARF, zlib
// and zstd readers into the restorer for this one check.
func oldTruncated(f *os.File, size int64) error {
	var hdr elf.Header64
	if size < ehdrSize || binary.Read(io.NewSectionReader(f, 0, ehdrSize), le, &hdr) != nil ||
		!bytes.Equal(hdr.Ident[:4], []byte(elf.ELFMAG)) || hdr.Ident[elf.EI_CLASS] != byte(elf.ELFCLASS64) ||
		hdr.Ident[elf.EI_DATA] != byte(elf.ELFDATA2LSB) {
		return ErrNoImage
	}
	var extent uint64
	grow := func(off, n uint64) bool {
		if off > uint64(size) || n > uint64(size)-off {
			return false // past the end: no ELF of the old layout
		}
		extent = max(extent, off+n)
		return true
	}
	const shdrSize = 64
	if hdr.Phentsize != phdrSize || hdr.Shnum > 0 && hdr.Shentsize != shdrSize ||
		!grow(hdr.Phoff, uint64(hdr.Phnum)*phdrSize) || !grow(hdr.Shoff, uint64(hdr.Shnum)*shdrSize) {
		return ErrNoImage
	}
	for i := range uint64(hdr.Phnum) {
		var p elf.Prog64
		if binary.Read(io.NewSectionReader(f, int64(hdr.Phoff+i*phdrSize), phdrSize), le, &p) != nil || !grow(p.Off, p.Filesz) {
			return ErrNoImage
		}
	}
	for i := range uint64(hdr.Shnum) {
		var s elf.Section64
		if binary.Read(io.NewSectionReader(f, int64(hdr.Shoff+i*shdrSize), shdrSize), le, &s) != nil {
			return ErrNoImage
		}
		if elf.SectionType(s.Type) != elf.SHT_NOBITS && !grow(s.Off, s.Size) {
			return ErrNoImage
		}
	}
	if extent >= uint64(size) {
		return ErrNoImage
	}
	var m [8]byte
	if _, err := f.ReadAt(m[:], int64(extent)); err != nil || !bytes.Equal(m[:], magic[:]) {
		return ErrNoImage
	}
	return fmt.Errorf("%w (its end is missing): it was also written by an older cryo, which alone can thaw it", ErrTruncated)
}
