package image

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// Address ranges of the test process's VMAs.
const (
	textStart  = 0x400000
	textEnd    = 0x500000
	roEnd      = 0x540000 // a VMA adjacent to the text
	dataStart  = 0x600000
	dataEnd    = 0x700000
	heapStart  = 0x10000000
	heapEnd    = 0x20000000 // 256 MiB
	stackStart = 0x7ffff0000000
	stackEnd   = 0x7ffff0100000
)

func testProcess(arch Arch, pageSize int) *Process {
	p := &Process{
		Arch:        arch,
		PageSize:    pageSize,
		Kernel:      "6.8.0-test",
		Machine:     "testbox",
		Pid:         4242,
		Comm:        "sleeper",
		Exe:         "/usr/bin/sleeper",
		Cwd:         "/home/ünïcode dir",
		Uid:         1000,
		Gid:         1000,
		CPUFeatures: []string{"sse4_2", "avx2"},
		XSaveMask:   0x2e7,
		MM: MM{StartCode: textStart, EndCode: textEnd, StartData: dataStart, EndData: dataEnd,
			StartBrk: heapStart, Brk: heapEnd, StartStack: stackEnd - 0x1000,
			ArgStart: stackEnd - 0x800, ArgEnd: stackEnd - 0x700, EnvStart: stackEnd - 0x700, EnvEnd: stackEnd - 0x100},
		Auxv: []byte{6, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		VMAs: []VMA{
			{Start: textStart, End: textEnd, Prot: 5, Kind: VMAFilePrivate, Path: "/usr/bin/sleeper", Dev: "08:01", Inode: 1234},
			{Start: textEnd, End: roEnd, Prot: 1, Kind: VMAFilePrivate, Offset: 0x100000, Path: "/usr/bin/sleeper", Dev: "08:01", Inode: 1234},
			{Start: dataStart, End: dataEnd, Prot: 3, Kind: VMAFilePrivate, Offset: 0x100000, Path: "/usr/bin/sleeper", Dev: "08:01", Inode: 1234},
			{Start: heapStart, End: heapEnd, Prot: 3, Kind: VMAAnon, Flags: VMAHeap, Path: "[heap]"},
			{Start: stackStart, End: stackEnd, Prot: 3, Kind: VMAAnon, Flags: VMAStack | VMAGrowsDown, Path: "[stack]"},
		},
		Threads: []Thread{
			{Tid: 4242, Regs: bytes.Repeat([]byte{1, 2, 3}, 72), FPU: make([]byte, 512), SigMask: 1 << 13,
				ClearChildTid: 0x7ffff00fe000, Rseq: Rseq{Addr: 0x7ffff00fd000, Len: 32, Sig: 0x53053053}},
			{Tid: 4243, Regs: []byte{9, 8, 7}, TLS: 0xdead, AltStack: AltStack{SP: 0x1234, Flags: 2, Size: 8192}},
		},
		SigActions: []SigAction{{Signo: 2, Handler: textStart + 0x40, Flags: 0x04000000, Restorer: textStart + 0x80, Mask: 1}},
		FDs: []FD{
			{Num: 0, Kind: FDInherit},
			{Num: 3, Kind: FDFile, Path: "/tmp/log", Flags: 02001, Pos: 77, Size: 77, Mode: 0o100644},
			{Num: 4, Kind: FDDevice, Path: "/dev/null", Flags: 2},
		},
		Stopped: true,
	}
	return p
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		le.PutUint64(b[i:], rng.Uint64())
	}
	return b
}

var words = []string{"the", "process", "frozen", "memory", "page", "restore", "thread", "signal",
	"kernel", "mapping", "cryo", "image", "static", "int", "return", "if", "else", "for",
	"func", "struct", "0x7fff", "error", "nil", "{", "}", "(", ")", ";", "\n", "\t"}

// textBytes makes compressible, text-like data.
func textBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, words[rng.IntN(len(words))]...)
		b = append(b, ' ')
	}
	return b[:n]
}

// sparseBytes is mostly zero with a few scattered bytes set.
func sparseBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n/512; i++ {
		b[rng.IntN(n)] = byte(rng.Uint32())
	}
	return b
}

type segment struct {
	vaddr uint64
	data  []byte
}

// memory flattens segments into page address -> contents, later
// segments overriding earlier ones.
func memory(segs []segment, pageSize int) map[uint64][]byte {
	m := make(map[uint64][]byte)
	for _, s := range segs {
		for off := 0; off < len(s.data); off += pageSize {
			m[s.vaddr+uint64(off)] = s.data[off : off+pageSize]
		}
	}
	return m
}

func buildImage(t testing.TB, p *Process, segs []segment, chunk, jobs int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := newWriter(&buf, p.Arch, p.PageSize, chunk, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMeta(p); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs {
		if err := w.WritePages(s.vaddr, s.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Written() != int64(buf.Len()) {
		t.Fatalf("Written() = %d, wrote %d bytes", w.Written(), buf.Len())
	}
	return buf.Bytes()
}

// readImage reads a whole image, copying each chunk.
func readImage(r io.Reader) (*Process, []segment, error) {
	ir, err := NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	p, err := ir.Meta()
	if err != nil {
		return nil, nil, err
	}
	var segs []segment
	for {
		vaddr, data, err := ir.Next()
		if errors.Is(err, io.EOF) {
			return p, segs, nil
		}
		if err != nil {
			return p, segs, err
		}
		segs = append(segs, segment{vaddr, bytes.Clone(data)})
	}
}

// smallImage is a valid image with a few records of each kind of data.
func smallImage(t testing.TB) ([]byte, *Process, []segment) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := testProcess(ArchAMD64, 4096)
	segs := []segment{
		{textStart, textBytes(rng, 2*4096)},
		{dataStart, randomBytes(rng, 4096)},
		{heapStart + 0x5000, sparseBytes(rng, 3*4096)},
	}
	return buildImage(t, p, segs, 2*4096, 2), p, segs
}

// Hand-made images, to test what the Writer refuses to produce.

func rawHeader(version uint32, arch Arch, pageSize, flags uint32) []byte {
	h := header{version: version, arch: arch, pageSize: pageSize, flags: flags}
	return h.marshal()
}

func rawRecord(typ uint32, payload []byte) []byte {
	b := make([]byte, recordHeaderSize, recordHeaderSize+len(payload))
	putRecordHeader(b, typ, payload)
	return append(b, payload...)
}

func rawPages(vaddr uint64, count, rawLen, comp uint32, data []byte) []byte {
	b := make([]byte, pagesHeaderSize, pagesHeaderSize+len(data))
	le.PutUint64(b[0:], vaddr)
	le.PutUint32(b[8:], count)
	le.PutUint32(b[12:], rawLen)
	le.PutUint32(b[16:], comp)
	return append(b, data...)
}

func rawEnd(records, pages uint64) []byte {
	b := make([]byte, endPayloadSize)
	le.PutUint64(b[0:], records)
	le.PutUint64(b[8:], pages)
	return b
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// recordOffsets walks a well-formed image and returns the offset of each
// record, and the image's length last.
func recordOffsets(img []byte) []int {
	var offs []int
	for off := headerSize; off+recordHeaderSize <= len(img); {
		offs = append(offs, off)
		off += recordHeaderSize + int(le.Uint32(img[off+4:]))
	}
	return append(offs, len(img))
}
