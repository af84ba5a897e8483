package image

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/pierrec/lz4/v4"
)

// The packed restorer, as a self-restoring executable carries it (doc.go):
//
//	 0  restorer size        uint64  > 0: what the loader execs
//	 8  block size           uint64  at most the rest of the region
//	16  lz4 block                    the restorer, lz4-compressed
const packHeaderSize = 16

// MaxRestorer bounds the size of a restorer program, packed or not: the
// reader of an attached restorer allocates no more whatever a damaged
// file claims.
const MaxRestorer = 256 << 20

// PackRestorer packs the restorer program prog (a static ELF executable)
// as NewExecutable takes it: a header and one lz4 block. best selects
// lz4's high-compression mode (for make, once per build: ~0.2 s for the
// 3.5 MB restorer, 12% smaller), else its fast one (~20 ms).
func PackRestorer(prog []byte, best bool) ([]byte, error) {
	if len(prog) == 0 || len(prog) > MaxRestorer {
		return nil, fmt.Errorf("a restorer of %d bytes", len(prog))
	}
	out := make([]byte, packHeaderSize+lz4.CompressBlockBound(len(prog)))
	var n int
	var err error
	if best {
		n, err = lz4.CompressBlockHC(prog, out[packHeaderSize:], lz4.Level9, nil, nil)
	} else {
		n, err = lz4.CompressBlock(prog, out[packHeaderSize:], nil)
	}
	if err != nil {
		return nil, fmt.Errorf("packing the restorer: %w", err)
	}
	if n == 0 {
		// lz4 says incompressible; a restorer program never is.
		return nil, errors.New("packing the restorer: lz4 found it incompressible")
	}
	le.PutUint64(out[0:], uint64(len(prog)))
	le.PutUint64(out[8:], uint64(n))
	return out[:packHeaderSize+n], nil
}

// packedSizes reads the header of the packed restorer region b (the
// region may be padded after its block) and checks it.
func packedSizes(b []byte) (raw, block uint64, err error) {
	if len(b) < packHeaderSize {
		return 0, 0, errors.New("no header")
	}
	raw, block = le.Uint64(b), le.Uint64(b[8:])
	if raw == 0 || raw > MaxRestorer || block == 0 || block > uint64(len(b)-packHeaderSize) {
		return 0, 0, fmt.Errorf("a restorer of %d bytes in a block of %d", raw, block)
	}
	return raw, block, nil
}

// UnpackRestorer returns the restorer program that the packed restorer
// b holds, as the loader unpacks it.
func UnpackRestorer(b []byte) ([]byte, error) {
	raw, block, err := packedSizes(b)
	if err != nil {
		return nil, err
	}
	prog := make([]byte, raw)
	n, err := lz4.UncompressBlock(b[packHeaderSize:packHeaderSize+block], prog)
	if err != nil {
		return nil, err
	}
	if uint64(n) != raw {
		return nil, fmt.Errorf("%d bytes unpacked, the header says %d", n, raw)
	}
	return prog, nil
}

// checkPacked checks that packed unpacks to an ELF executable for the
// machine of loader l: an image whose restorer cannot run is never
// written.
func checkPacked(packed []byte, l Loader) error {
	prog, err := UnpackRestorer(packed)
	if err != nil {
		return fmt.Errorf("the restorer does not unpack: %w", err)
	}
	if len(prog) < ehdrSize || !bytes.Equal(prog[:4], []byte(elf.ELFMAG)) {
		return errors.New("the restorer is no ELF executable")
	}
	if m := elf.Machine(le.Uint16(prog[18:])); m != l.Machine {
		return fmt.Errorf("the restorer is for %v, the loader for %v", m, l.Machine)
	}
	return nil
}

// A restorer is attached to a program (make attaches the packed restorer
// to bin/freeze) as the packed restorer followed by a footer:
//
//	 0  packed length     uint64
//	 8  crc32c of it      uint32
//	12  zero              uint32
//	16  magic "CRYORST1"  8 bytes
//
// AttachFooterSize is the size of that footer.
const AttachFooterSize = 24

var attachMagic = [8]byte{'C', 'R', 'Y', 'O', 'R', 'S', 'T', '1'}

// AttachRestorer appends the packed restorer packed and its footer to w,
// the end of a program (ELF files run unchanged with data after them).
func AttachRestorer(w io.Writer, packed []byte) error {
	if _, _, err := packedSizes(packed); err != nil {
		return fmt.Errorf("attaching a restorer: %w", err)
	}
	foot := make([]byte, AttachFooterSize)
	le.PutUint64(foot, uint64(len(packed)))
	le.PutUint32(foot[8:], checksum(packed))
	copy(foot[16:], attachMagic[:])
	if _, err := w.Write(packed); err != nil {
		return err
	}
	_, err := w.Write(foot)
	return err
}

// ErrNoRestorer is AttachedRestorer's answer for a program with none.
var ErrNoRestorer = errors.New("no restorer attached")

// AttachedRestorer returns the packed restorer attached to the program
// f, ErrNoRestorer if it has none, or an error saying how the attached
// one is damaged.
func AttachedRestorer(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size < AttachFooterSize {
		return nil, ErrNoRestorer
	}
	foot := make([]byte, AttachFooterSize)
	if _, err := f.ReadAt(foot, size-AttachFooterSize); err != nil {
		return nil, err
	}
	if !bytes.Equal(foot[16:], attachMagic[:]) {
		return nil, ErrNoRestorer
	}
	n := le.Uint64(foot)
	if n < packHeaderSize || n > MaxRestorer || n > uint64(size-AttachFooterSize) || le.Uint32(foot[12:]) != 0 {
		return nil, fmt.Errorf("%s: its attached restorer is damaged (its footer is inconsistent)", f.Name())
	}
	packed := make([]byte, n)
	if _, err := f.ReadAt(packed, size-AttachFooterSize-int64(n)); err != nil {
		return nil, err
	}
	if checksum(packed) != le.Uint32(foot[8:]) {
		return nil, fmt.Errorf("%s: its attached restorer is damaged (it does not match its checksum)", f.Name())
	}
	return packed, nil
}
