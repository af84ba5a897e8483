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

// testProcess is a process with some of everything: three threads, open
// files shared by several fds, locks, timers, limits. None of its files
// names a blob, so that an image of it needs none.
func testProcess(arch Arch, pageSize int) *Process {
	ps := uint64(pageSize)
	p := &Process{
		Arch:     arch,
		PageSize: pageSize,
		Kernel:   "6.8.0-test",
		Machine:  "testbox",
		FrozenAt: 1764435600123456789,
		Pid:      4242,
		Comm:     "sleeper",
		Exe:      "/usr/bin/sleeper",
		Cwd:      "/home/ünïcode dir",
		Creds: Creds{Uid: [4]uint32{1000, 1000, 1000, 1000}, Gid: [4]uint32{100, 100, 100, 100},
			Groups: []uint32{100, 27}, CapBnd: 1<<41 - 1, Securebits: 0x2f, KeepCaps: true},
		CPUFeatures: []string{"sse4_2", "avx2"},
		XSaveMask:   0x2e7,
		MM: MM{StartCode: textStart, EndCode: textEnd, StartData: dataStart, EndData: dataEnd,
			StartBrk: heapStart, Brk: heapEnd, StartStack: stackEnd - 0x1000,
			ArgStart: stackEnd - 0x800, ArgEnd: stackEnd - 0x700, EnvStart: stackEnd - 0x700, EnvEnd: stackEnd - 0x100},
		Auxv: []byte{6, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		VDSO: append([]byte("\x7fELF"), make([]byte, 8188)...),
		VMAs: []VMA{
			{Start: textStart, End: textEnd, Prot: 5, Kind: VMAFilePrivate, Path: "/usr/bin/sleeper", Dev: "08:01", Inode: 1234},
			{Start: textEnd, End: roEnd, Prot: 1, Kind: VMAFilePrivate, Offset: 0x100000, Path: "/usr/bin/sleeper", Dev: "08:01", Inode: 1234},
			{Start: dataStart, End: dataEnd, Prot: 3, Kind: VMAFilePrivate, Offset: 0x100000, Path: "/usr/bin/sleeper", Dev: "08:01", Inode: 1234,
				Flags: VMAMergeable, Guards: [][2]uint64{{dataEnd - 2*ps, dataEnd - ps}}},
			{Start: heapStart, End: heapEnd, Prot: 3, Kind: VMAAnon, Flags: VMAHeap | VMAHugePage, Path: "[heap]"},
			{Start: stackStart, End: stackEnd, Prot: 3, Kind: VMAAnon, Flags: VMAStack | VMAGrowsDown, Path: "[stack]"},
		},
		Threads: []Thread{
			{Tid: 4242, Regs: bytes.Repeat([]byte{1, 2, 3}, 72), FPU: make([]byte, 512), SigMask: 1 << 13,
				ClearChildTid: 0x7ffff00fe000, Rseq: Rseq{Addr: 0x7ffff00fd000, Len: 32, Sig: 0x53053053},
				Comm: "sleeper", Affinity: []uint64{0xff}, TimerSlackNs: 50000, Spec: [3]uint64{1, 2, 0}},
			{Tid: 4243, Regs: []byte{9, 8, 7}, TLS: 0xdead, AltStack: AltStack{SP: 0x1234, Flags: 2, Size: 8192},
				Comm: "worker-1", Nice: 5, Sched: Sched{Policy: 3}, IOPrio: 4<<13 | 7, NoNewPrivs: true},
			{Tid: 4250, Regs: []byte{5}, Comm: "wörker-2", Sched: Sched{Policy: 1, Priority: 10, UtilMax: 1024},
				PDeathSig: 9, IOFlusher: true, RobustList: 0x7ffff00fc000, RobustLen: 24},
		},
		SigActions: []SigAction{{Signo: 2, Handler: textStart + 0x40, Flags: 0x04000000, Restorer: textStart + 0x80, Mask: 1}},
		Files: []File{
			{ID: 1, Kind: FileStd, Flags: 2, Std: 0, Termios: []byte{0x00, 0x05, 0x00, 0x00}},
			{ID: 2, Kind: FileReg, Path: "/tmp/log", Flags: 02001, Pos: 77, Mode: 0o100644, Size: 77, Dev: 2049, Ino: 99, MtimeNs: 1764435600000000000},
			{ID: 3, Kind: FileDevice, Path: "/dev/null", Flags: 2, Mode: 0o20666, Rdev: 0x103},
			{ID: 4, Kind: FileDir, Path: "/home/ünïcode dir", Mode: 0o40755},
		},
		// fds 1 and 2 share file 2 (>log 2>&1), 0 and 255 file 1.
		FDs: []FD{
			{Num: 0, File: 1},
			{Num: 1, File: 2},
			{Num: 2, File: 2},
			{Num: 3, File: 3, Cloexec: true},
			{Num: 7, File: 4, Cloexec: true},
			{Num: 255, File: 1, Cloexec: true},
		},
		Umask:   0o022,
		Rlimits: []Rlimit{{Resource: 7, Cur: 1024, Max: 4096}, {Resource: 3, Cur: 8 << 20, Max: 1<<64 - 1}},
		ITimers: []ITimer{{Which: 0, IntervalUs: 500000, ValueUs: 123456}},
		Timers: []PosixTimer{
			{ID: 0, Clock: 1, Notify: 0, Signo: 14, Sigval: 77, IntervalNs: 1e9, ValueNs: 5e8},
			{ID: 1, Clock: 0, Notify: 4, Signo: 34, Tid: 4243, ValueNs: 0},
		},
		Locks: []Lock{
			{Kind: LockPOSIX, File: 2, Write: true, Start: 0, Len: 0},
			{Kind: LockFlock, File: 2},
			{Kind: LockOFD, File: 3, Start: 100, Len: 10},
		},
		Attrs:   Attrs{Personality: 0x0040000, ChildSubreaper: true, Dumpable: 1, OOMScoreAdj: -100, CoredumpFilter: 0x33, LoginUID: 1000},
		Zombies: []Zombie{{Pid: 4300, Status: 256}},
		Stopped: true,
	}
	p.NumThreads = len(p.Threads)
	return p
}

// testTail is a TAIL with a shared and a per-thread signal.
func testTail() *Tail {
	t := &Tail{Pending: []Siginfo{{Shared: true}, {Tid: 4243}}}
	t.Pending[0].Raw[0] = 10
	t.Pending[1].Raw[0], t.Pending[1].Raw[127] = 12, 0xff
	return t
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		le.PutUint64(b[i:], rng.Uint64())
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
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

// blob is what one WriteBlob call writes, or, read back, all of one blob.
type blob struct {
	id   uint64
	data []byte
}

// mergeBlobs joins the consecutive pieces of each blob, as the reader
// sees them.
func mergeBlobs(bs []blob) []blob {
	var out []blob
	for _, b := range bs {
		if n := len(out); n > 0 && out[n-1].id == b.id {
			out[n-1].data = append(out[n-1].data, b.data...)
			continue
		}
		out = append(out, blob{b.id, append([]byte{}, b.data...)})
	}
	return out
}

// contents is what an image holds besides its metadata.
type contents struct {
	blobs []blob // in WriteBlob calls; merged when read
	segs  []segment
	tail  *Tail
}

// writeOpts are the Writer's internal sizes; 0 for the defaults.
type writeOpts struct {
	chunk, jobs int
	blobChunk   int
}

func writeImage(t testing.TB, p *Process, c contents, o writeOpts) []byte {
	t.Helper()
	if o.chunk == 0 {
		o.chunk = writeChunk
	}
	if o.jobs == 0 {
		o.jobs = 2
	}
	var buf bytes.Buffer
	w, err := newWriter(&buf, p.Arch, p.PageSize, o.chunk, o.jobs)
	if err != nil {
		t.Fatal(err)
	}
	if o.blobChunk != 0 {
		w.blobChunk = o.blobChunk
	}
	if err := w.WriteMeta(p); err != nil {
		t.Fatal(err)
	}
	for _, b := range c.blobs {
		if err := w.WriteBlob(b.id, b.data); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range c.segs {
		if err := w.WritePages(s.vaddr, s.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CloseWithTail(c.tail); err != nil {
		t.Fatal(err)
	}
	if w.Written() != int64(buf.Len()) {
		t.Fatalf("Written() = %d, wrote %d bytes", w.Written(), buf.Len())
	}
	return buf.Bytes()
}

func buildImage(t testing.TB, p *Process, segs []segment, chunk, jobs int) []byte {
	t.Helper()
	return writeImage(t, p, contents{segs: segs}, writeOpts{chunk: chunk, jobs: jobs})
}

// readImage reads the metadata and pages of an image, copying each
// chunk, and lets Next skip the blobs.
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

// readAll reads all of an image: metadata, blobs (merged), pages and
// tail. It checks what the Reader promises of each blob chunk.
func readAll(r io.Reader) (*Process, contents, error) {
	var c contents
	ir, err := NewReader(r)
	if err != nil {
		return nil, c, err
	}
	p, err := ir.Meta()
	if err != nil {
		return nil, c, err
	}
	var pieces []blob
	var at uint64
	for {
		id, off, data, err := ir.NextBlob()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p, c, err
		}
		if len(pieces) == 0 || pieces[len(pieces)-1].id != id {
			at = 0
		}
		if id == 0 || off != at || len(data) > MaxPagesChunk {
			return p, c, errors.New("NextBlob broke its promises")
		}
		at += uint64(len(data))
		pieces = append(pieces, blob{id, bytes.Clone(data)})
	}
	c.blobs = mergeBlobs(pieces)
	for {
		vaddr, data, err := ir.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p, c, err
		}
		c.segs = append(c.segs, segment{vaddr, bytes.Clone(data)})
	}
	c.tail = ir.Tail()
	return p, c, nil
}

// smallImage is a valid image with a few records of each kind: three
// threads, a blob in two records, pages in several, a tail.
func smallImage(t testing.TB) ([]byte, *Process, []segment) {
	img, p, c := smallImageContents(t)
	return img, p, c.segs
}

func smallImageContents(t testing.TB) ([]byte, *Process, contents) {
	rng := rand.New(rand.NewPCG(1, 2))
	p := testProcess(ArchAMD64, 4096)
	// Small, as tests read it once per byte.
	p.VDSO = p.VDSO[:64]
	p.Threads[0].FPU = p.Threads[0].FPU[:64]
	p.Files = append(p.Files, File{ID: 5, Kind: FileReg, Path: "/tmp/gone (deleted)", Blob: 1})
	p.FDs = append(p.FDs, FD{Num: 9, File: 5})
	c := contents{
		blobs: []blob{{1, textBytes(rng, 300)}},
		segs: []segment{
			{textStart, textBytes(rng, 2*4096)},
			{dataStart, randomBytes(rng, 4096)},
			{heapStart + 0x5000, sparseBytes(rng, 3*4096)},
		},
		tail: testTail(),
	}
	return writeImage(t, p, c, writeOpts{chunk: 2 * 4096, jobs: 2, blobChunk: 200}), p, c
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

// rawBlob is a whole BLOB record.
func rawBlob(id, off uint64, data []byte) []byte {
	b := make([]byte, blobHeaderSize, blobHeaderSize+len(data))
	le.PutUint64(b[0:], id)
	le.PutUint64(b[8:], off)
	return rawRecord(recBlob, append(b, data...))
}

// rawEnd is an END payload: PAGES records, pages, then optionally BLOB
// records and blob bytes.
func rawEnd(records, pages uint64, blobs ...uint64) []byte {
	b := make([]byte, endPayloadSize)
	le.PutUint64(b[0:], records)
	le.PutUint64(b[8:], pages)
	for i, n := range blobs {
		le.PutUint64(b[16+8*i:], n)
	}
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

// recordTypes names the records of a well-formed image, in order.
func recordTypes(img []byte) []string {
	offs := recordOffsets(img)
	var typs []string
	for _, off := range offs[:len(offs)-1] {
		typs = append(typs, recordName(le.Uint32(img[off:])))
	}
	return typs
}
