package image

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
)

// trailerSize is the size of the trailer ending a self-restoring
// executable: image offset, image length, crc32c of both, 4 bytes of
// padding, magic.
const trailerSize = 32

var exeMagic = [8]byte{'C', 'R', 'Y', 'O', 'E', 'X', 'E', 0}

// ErrNoImage is returned by OpenEmbedded for a file without an image
// trailer, such as the plain restorer binary.
var ErrNoImage = errors.New("no cryo image embedded in this file")

func trailer(offset, length uint64) []byte {
	b := make([]byte, trailerSize)
	le.PutUint64(b[0:], offset)
	le.PutUint64(b[8:], length)
	le.PutUint32(b[16:], checksum(b[:16]))
	copy(b[24:], exeMagic[:])
	return b
}

// WriteTrailer writes the trailer that ends a self-restoring executable.
// offset is where the image starts in the file and length its size; the
// trailer must directly follow the image.
func WriteTrailer(w io.Writer, offset, length int64) error {
	if offset < 0 || length < 0 {
		return fmt.Errorf("invalid image offset %d or length %d", offset, length)
	}
	if _, err := w.Write(trailer(uint64(offset), uint64(length))); err != nil {
		return fmt.Errorf("writing image trailer: %w", err)
	}
	return nil
}

// OpenEmbedded finds the image embedded in f by its trailer and returns a
// reader for exactly the image's bytes. It returns ErrNoImage if f does
// not end with a trailer.
func OpenEmbedded(f *os.File) (*io.SectionReader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("looking for an embedded image: %w", err)
	}
	size := fi.Size()
	if size < trailerSize {
		return nil, ErrNoImage
	}
	b := make([]byte, trailerSize)
	if _, err := f.ReadAt(b, size-trailerSize); err != nil {
		return nil, fmt.Errorf("reading the image trailer of %s: %w", f.Name(), err)
	}
	if !bytes.Equal(b[24:], exeMagic[:]) {
		return nil, appendedWithoutTrailer(f, size)
	}
	if got, want := le.Uint32(b[16:]), checksum(b[:16]); got != want || le.Uint32(b[20:]) != 0 {
		return nil, fmt.Errorf("the image trailer of %s is corrupt (checksum mismatch)", f.Name())
	}
	offset, length := le.Uint64(b[0:]), le.Uint64(b[8:])
	end := uint64(size - trailerSize)
	if offset > end || length > end-offset {
		return nil, fmt.Errorf("the image trailer of %s is inconsistent: image of %d bytes at offset %d does not fit in the %d bytes before the trailer (file truncated?)", f.Name(), length, offset, end)
	}
	if offset+length != end {
		return nil, fmt.Errorf("the image trailer of %s is inconsistent: image of %d bytes at offset %d ends at %d, but the trailer starts at %d", f.Name(), length, offset, offset+length, end)
	}
	return io.NewSectionReader(f, int64(offset), int64(length)), nil
}

// ErrTruncated reports an executable whose image lost its end.
var ErrTruncated = errors.New("image truncated")

// appendedWithoutTrailer tells a plain restorer (ErrNoImage) from an
// executable cut short: the ELF's own extent is computed from its headers,
// and if an image header follows it, the trailer was cut off.
func appendedWithoutTrailer(f *os.File, size int64) error {
	ef, err := elf.NewFile(f)
	if err != nil {
		return ErrNoImage
	}
	var extent uint64
	grow := func(end uint64) {
		if end > extent {
			extent = end
		}
	}
	for _, p := range ef.Progs {
		grow(p.Off + p.Filesz)
	}
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOBITS {
			grow(s.Offset + s.FileSize)
		}
	}
	if len(ef.Sections) > 0 {
		// e_shoff + e_shnum * e_shentsize: the section header table.
		var hdr [64]byte
		if _, err := f.ReadAt(hdr[:], 0); err == nil && ef.Class == elf.ELFCLASS64 {
			grow(le.Uint64(hdr[40:]) + uint64(le.Uint16(hdr[60:]))*uint64(le.Uint16(hdr[58:])))
		}
	}
	if extent >= uint64(size) {
		return ErrNoImage
	}
	var m [8]byte
	if _, err := f.ReadAt(m[:], int64(extent)); err != nil || !bytes.Equal(m[:], magic[:]) {
		return ErrNoImage
	}
	return fmt.Errorf("%w: its end is missing (%d bytes of image remain): copy the file again", ErrTruncated, size-int64(extent))
}
