package image

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"runtime"
)

// Version is the image format version this package writes, and the only
// one it reads.
const Version = 2

// MaxPagesChunk is the largest uncompressed size of one PAGES record.
const MaxPagesChunk = 16 << 20

// Layout of the stream. See doc.go for the diagrams.
const (
	headerSize       = 28 // magic, version, arch, page size, flags, crc
	recordHeaderSize = 12 // type, payload length, payload crc
	pagesHeaderSize  = 20 // vaddr, page count, raw length, compression
	endPayloadSize   = 32 // PAGES records, pages, BLOB records, blob bytes
	blobHeaderSize   = 16 // blob id, offset of the chunk in the blob

	maxMetaSize = 64 << 20

	// maxThreads bounds the THREAD records a PROCESS may announce
	// (the kernel's default threads-max is far lower on most machines).
	maxThreads = 1 << 22
	// maxVDSO bounds the vdso copy in the metadata.
	maxVDSO = 1 << 20

	minPageSize = 4096
	maxPageSize = 65536

	// maxLZ4Ratio bounds how much an lz4 block can expand: every
	// sequence costs at least one token byte, two offset bytes and one
	// length byte per 255 bytes of match, so no valid block decodes to
	// more than 255 times its size. The reader uses it to refuse a
	// tiny block that claims a big output before allocating for it.
	maxLZ4Ratio = 255
)

var magic = [8]byte{'C', 'R', 'Y', 'O', 'I', 'M', 'G', 0}

// Record types.
const (
	recProcess uint32 = 1
	recPages   uint32 = 2
	recEnd     uint32 = 3
	recTail    uint32 = 4
	recThread  uint32 = 5
	recBlob    uint32 = 6
)

// Compression of a PAGES record's data.
const (
	compNone uint32 = 0
	compLZ4  uint32 = 1
)

var le = binary.LittleEndian

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func recordName(t uint32) string {
	switch t {
	case recProcess:
		return "PROCESS"
	case recThread:
		return "THREAD"
	case recBlob:
		return "BLOB"
	case recPages:
		return "PAGES"
	case recEnd:
		return "END"
	case recTail:
		return "TAIL"
	}
	return fmt.Sprintf("type %d", t)
}

// header is the fixed-size start of an image stream.
type header struct {
	version  uint32
	arch     Arch
	pageSize uint32
	flags    uint32
}

func (h *header) marshal() []byte {
	b := make([]byte, headerSize)
	copy(b, magic[:])
	le.PutUint32(b[8:], h.version)
	le.PutUint32(b[12:], uint32(h.arch))
	le.PutUint32(b[16:], h.pageSize)
	le.PutUint32(b[20:], h.flags)
	le.PutUint32(b[24:], checksum(b[:24]))
	return b
}

// putRecordHeader fills the first recordHeaderSize bytes of b.
func putRecordHeader(b []byte, typ uint32, payload []byte) {
	le.PutUint32(b[0:], typ)
	le.PutUint32(b[4:], uint32(len(payload)))
	le.PutUint32(b[8:], checksum(payload))
}

func checkPageSize(n uint64) error {
	if n < minPageSize || n > maxPageSize || n&(n-1) != 0 {
		return fmt.Errorf("invalid page size %d: want a power of two between %d and %d", n, minPageSize, maxPageSize)
	}
	return nil
}

func knownArch(a Arch) bool { return a == ArchAMD64 || a == ArchARM64 }

func archName(a Arch) string {
	if knownArch(a) {
		return a.String()
	}
	return fmt.Sprintf("unknown architecture %d", uint32(a))
}

// HostArch returns the architecture this program runs on, or ArchUnknown
// on one cryo does not support.
func HostArch() Arch {
	switch runtime.GOARCH {
	case "amd64":
		return ArchAMD64
	case "arm64":
		return ArchARM64
	}
	return ArchUnknown
}

// CheckArch reports whether an image frozen on img can be thawed on host.
func CheckArch(img, host Arch) error {
	switch {
	case !knownArch(host):
		return fmt.Errorf("this machine's architecture (%s) is not supported by cryo", runtime.GOARCH)
	case !knownArch(img):
		return fmt.Errorf("image was frozen on an %s, this machine is %s", archName(img), host)
	case img != host:
		return fmt.Errorf("image was frozen on %s, this machine is %s: thaw it on an %s machine", img, host, img)
	}
	return nil
}

// validateProcess checks what the rest of the format relies on: the
// metadata agrees with the header and the VMAs are sorted, disjoint,
// non-empty, page-aligned ranges.
func validateProcess(p *Process, arch Arch, pageSize int) error {
	if p == nil {
		return errors.New("no process metadata")
	}
	if p.Arch != arch {
		return fmt.Errorf("metadata architecture %s does not match the image header's %s", archName(p.Arch), archName(arch))
	}
	if p.PageSize != pageSize {
		return fmt.Errorf("metadata page size %d does not match the image header's %d", p.PageSize, pageSize)
	}
	if p.NumThreads < 1 || p.NumThreads > maxThreads {
		return fmt.Errorf("the process has %d threads: want 1 to %d", p.NumThreads, maxThreads)
	}
	if len(p.VDSO) > maxVDSO {
		return fmt.Errorf("the vdso copy is %d bytes, more than %d", len(p.VDSO), maxVDSO)
	}
	files := map[int]bool{}
	for _, f := range p.Files {
		if files[f.ID] {
			return fmt.Errorf("file id %d appears twice", f.ID)
		}
		files[f.ID] = true
	}
	fds := map[int]bool{}
	for _, fd := range p.FDs {
		if fd.Num < 0 || fds[fd.Num] {
			return fmt.Errorf("fd %d is invalid or appears twice", fd.Num)
		}
		fds[fd.Num] = true
		if !files[fd.File] {
			return fmt.Errorf("fd %d points at file id %d, which the image does not hold", fd.Num, fd.File)
		}
	}
	for _, l := range p.Locks {
		if !files[l.File] {
			return fmt.Errorf("a %s lock is taken through file id %d, which the image does not hold", l.Kind, l.File)
		}
	}
	mask := uint64(pageSize) - 1
	var prevEnd uint64
	for i := range p.VMAs {
		v := &p.VMAs[i]
		if v.Start >= v.End {
			return fmt.Errorf("VMA %d [%#x-%#x) %q is empty or inverted", i, v.Start, v.End, v.Path)
		}
		if v.Start&mask != 0 || v.End&mask != 0 {
			return fmt.Errorf("VMA %d [%#x-%#x) %q is not aligned to the %d-byte page size", i, v.Start, v.End, v.Path, pageSize)
		}
		if i > 0 && v.Start < prevEnd {
			return fmt.Errorf("VMA %d [%#x-%#x) %q overlaps or precedes the previous one ending at %#x", i, v.Start, v.End, v.Path, prevEnd)
		}
		prevEnd = v.End
		for _, g := range v.Guards {
			if g[0] >= g[1] || g[0] < v.Start || g[1] > v.End || g[0]&mask != 0 || g[1]&mask != 0 {
				return fmt.Errorf("VMA %d [%#x-%#x) has an invalid guard region [%#x-%#x)", i, v.Start, v.End, g[0], g[1])
			}
		}
	}
	return nil
}

// validateThread checks a THREAD record; seen holds the thread ids of
// the records before it, and gets this one's.
func validateThread(t *Thread, seen map[int]bool) error {
	if t.Tid <= 0 {
		return fmt.Errorf("thread id %d is invalid", t.Tid)
	}
	if seen[t.Tid] {
		return fmt.Errorf("thread id %d appears twice", t.Tid)
	}
	seen[t.Tid] = true
	if len(t.Regs) == 0 {
		return fmt.Errorf("thread %d has no registers", t.Tid)
	}
	return nil
}

// checkFileBlobs reports a File whose Blob names a blob that is not in
// the image (have says which are), once all the BLOB records are known.
func checkFileBlobs(files []File, have func(id uint64) bool) error {
	for _, f := range files {
		if f.Blob != 0 && !have(f.Blob) {
			return fmt.Errorf("file id %d names blob %d, which the image does not hold", f.ID, f.Blob)
		}
	}
	return nil
}

// findVMA returns the index of the VMA holding addr, or -1.
func findVMA(vmas []VMA, addr uint64) int {
	lo, hi := 0, len(vmas)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if vmas[m].End <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(vmas) && vmas[lo].Start <= addr {
		return lo
	}
	return -1
}

// checkRange validates the address range of pages: page-aligned, not
// wrapping around, and inside the process's VMAs: inside one VMA if
// single, or else possibly across adjacent ones.
func checkRange(vmas []VMA, vaddr uint64, n int, pageSize int, single bool) error {
	if vaddr&(uint64(pageSize)-1) != 0 {
		return fmt.Errorf("address %#x is not aligned to the %d-byte page size", vaddr, pageSize)
	}
	if uint64(n) > math.MaxUint64-vaddr {
		return fmt.Errorf("range at %#x of %d bytes wraps around the address space", vaddr, n)
	}
	end := vaddr + uint64(n)
	i := findVMA(vmas, vaddr)
	if i < 0 {
		return fmt.Errorf("pages [%#x-%#x) lie outside the process's mappings", vaddr, end)
	}
	if single {
		if end > vmas[i].End {
			return fmt.Errorf("pages [%#x-%#x) run past the end of their mapping [%#x-%#x)", vaddr, end, vmas[i].Start, vmas[i].End)
		}
		return nil
	}
	at := vmas[i].End
	for i++; i < len(vmas) && at < end && vmas[i].Start == at; i++ {
		at = vmas[i].End
	}
	if at < end {
		return fmt.Errorf("pages [%#x-%#x) lie outside the process's mappings (first unmapped address %#x)", vaddr, end, at)
	}
	return nil
}
