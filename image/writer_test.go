package image

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestWriterMisuse(t *testing.T) {
	for _, tc := range []struct {
		arch Arch
		ps   int
		want string
	}{
		{ArchUnknown, 4096, "unknown architecture 0"},
		{Arch(3), 4096, "unknown architecture 3"},
		{ArchAMD64, 0, "invalid page size 0"},
		{ArchAMD64, -4096, "invalid page size -4096"},
		{ArchAMD64, 6000, "invalid page size 6000"},
		{ArchAMD64, 1 << 17, "invalid page size 131072"},
	} {
		if _, err := NewWriter(io.Discard, tc.arch, tc.ps); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewWriter(%v, %d): got %v, want %q", tc.arch, tc.ps, err, tc.want)
		}
	}

	var buf bytes.Buffer
	w, err := NewWriter(&buf, ArchAMD64, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if w.Written() != headerSize {
		t.Fatalf("Written() = %d after the header", w.Written())
	}
	page := make([]byte, 4096)
	expect := func(err error, want string) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	}
	expect(w.WritePages(heapStart, page), "WriteMeta must come first")
	expect(w.WriteBlob(1, page), "WriteBlob: WriteMeta must come first")
	expect(w.Close(), "WriteMeta must come first")
	expect(w.WriteMeta(nil), "no process metadata")
	expect(w.WriteMeta(testProcess(ArchARM64, 4096)), "metadata architecture arm64 does not match the image header's amd64")
	expect(w.WriteMeta(testProcess(ArchAMD64, 16384)), "metadata page size 16384")
	p := testProcess(ArchAMD64, 4096)
	p.VMAs[2], p.VMAs[3] = p.VMAs[3], p.VMAs[2]
	expect(w.WriteMeta(p), "VMA 3 [0x600000-0x700000) \"/usr/bin/sleeper\" overlaps or precedes")
	for _, tc := range []struct {
		name   string
		change func(p *Process)
		want   string
	}{
		{"no threads", func(p *Process) { p.Threads = nil }, "the process has 0 threads: want 1 to"},
		{"tid 0", func(p *Process) { p.Threads[2].Tid = 0 }, "WriteMeta: thread 3 of 3: thread id 0 is invalid"},
		{"tid twice", func(p *Process) { p.Threads[2].Tid = p.Threads[0].Tid }, "thread 3 of 3: thread id 4242 appears twice"},
		{"no registers", func(p *Process) { p.Threads[1].Regs = nil }, "thread 2 of 3: thread 4243 has no registers"},
		{"file twice", func(p *Process) { p.Files[3].ID = 1 }, "file id 1 appears twice"},
		{"fd at no file", func(p *Process) { p.FDs[4].File = 99 }, "fd 7 points at file id 99, which the image does not hold"},
		{"fd twice", func(p *Process) { p.FDs[1].Num = 0 }, "fd 0 is invalid or appears twice"},
		{"lock at no file", func(p *Process) { p.Locks[2].File = 99 }, "a ofd lock is taken through file id 99"},
		{"big vdso", func(p *Process) { p.VDSO = make([]byte, maxVDSO+1) }, "the vdso copy is"},
		{"bad guard", func(p *Process) { p.VMAs[2].Guards = [][2]uint64{{dataStart, dataEnd + 4096}} }, "invalid guard region"},
		// Base64 makes 4 bytes of 3: a THREAD record over the limit.
		{"huge thread", func(p *Process) { p.Threads[2].Regs = make([]byte, maxMetaSize/4*3+1) }, "the THREAD record is"},
	} {
		p := testProcess(ArchAMD64, 4096)
		tc.change(p)
		n := w.Written()
		if err := w.WriteMeta(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		// An invalid process leaves nothing behind.
		if w.Written() != n {
			t.Errorf("%s: the refused WriteMeta wrote %d bytes", tc.name, w.Written()-n)
		}
	}
	p = testProcess(ArchAMD64, 4096)
	p.NumThreads = 77 // set from the threads
	p.Files = append(p.Files, File{ID: 9, Kind: FileReg, Blob: 5}, File{ID: 10, Kind: FileReg, Blob: 6})
	if err := w.WriteMeta(p); err != nil {
		t.Fatal(err)
	}
	if p.NumThreads != 3 {
		t.Errorf("NumThreads = %d after WriteMeta, want 3", p.NumThreads)
	}
	expect(w.WriteMeta(testProcess(ArchAMD64, 4096)), "metadata already written")
	expect(w.WriteBlob(0, page), "WriteBlob: blob id 0 is reserved")
	if err := w.WriteBlob(5, page[:10]); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlob(5, page[:10]); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBlob(7, nil); err != nil {
		t.Fatal(err)
	}
	expect(w.WriteBlob(5, page[:10]), "WriteBlob: blob 5 is over, blob 7 was written after it")
	// Blob 6 is missing: the pages cannot start, nor the image end.
	expect(w.WritePages(heapStart, page), "WritePages: file id 10 names blob 6, which the image does not hold")
	expect(w.Close(), "Close: file id 10 names blob 6")
	if err := w.WriteBlob(6, page); err != nil {
		t.Fatal(err)
	}
	expect(w.WritePages(heapStart+1, page), "not aligned")
	expect(w.WritePages(heapStart, page[:100]), "100 bytes is not a multiple of the 4096-byte page size")
	expect(w.WritePages(0x1000, page), "outside the process's mappings")
	expect(w.WritePages(heapEnd-4096, make([]byte, 8192)), "first unmapped address 0x20000000")
	expect(w.WritePages(math.MaxUint64-4095, make([]byte, 8192)), "wraps around")
	if err := w.WritePages(heapStart, page); err != nil {
		t.Fatal(err)
	}
	expect(w.WriteBlob(8, page), "WriteBlob: blobs must come before the pages")
	expect(w.WriteBlob(6, page), "WriteBlob: blobs must come before the pages")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expect(w.WritePages(heapStart, page), "closed")
	expect(w.WriteBlob(9, page), "closed")
	got, c, err := readAll(&buf)
	if err != nil || len(c.segs) != 1 {
		t.Fatalf("%d chunks, %v", len(c.segs), err)
	}
	if want := []blob{{5, page[:20]}, {7, []byte{}}, {6, page}}; !reflect.DeepEqual(c.blobs, want) {
		t.Errorf("blobs %v, want %v", c.blobs, want)
	}
	if !reflect.DeepEqual(got, p) {
		t.Errorf("metadata differs")
	}
}

// A refused WritePages does not end the blobs.
func TestWriterBlobsAfterRefusedPages(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, ArchAMD64, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMeta(testProcess(ArchAMD64, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePages(0x1000, make([]byte, 4096)); err == nil {
		t.Fatal("pages outside the VMAs accepted")
	}
	if err := w.WriteBlob(1, []byte("x")); err != nil {
		t.Fatalf("WriteBlob after a refused WritePages: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, c, err := readAll(&buf); err != nil || len(c.blobs) != 1 {
		t.Fatalf("%v, %v", c.blobs, err)
	}
}

// WriteBlob writes the caller's bytes without copying them.
func TestWriteBlobAllocs(t *testing.T) {
	w, err := NewWriter(io.Discard, ArchAMD64, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMeta(testProcess(ArchAMD64, 4096)); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, MaxPagesChunk+1)
	id := uint64(0)
	if n := allocated(func() {
		id++
		if err := w.WriteBlob(id, data); err != nil {
			t.Fatal(err)
		}
	}); n > 64<<10 {
		t.Errorf("allocated %d bytes to write a blob of %d", n, len(data))
	}
}

// failingWriter fails once it has taken limit bytes.
type failingWriter struct {
	limit int
	n     int
}

var errFull = errors.New("disk full")

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n+len(p) > f.limit {
		k := f.limit - f.n
		f.n = f.limit
		return k, errFull
	}
	f.n += len(p)
	return len(p), nil
}

func TestWriterFailure(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	data := randomBytes(rng, 64*4096)
	p := testProcess(ArchAMD64, 4096)
	meta := len(buildImage(t, p, nil, 4096, 1)) - recordHeaderSize - endPayloadSize
	blob := randomBytes(rng, 3000)
	for _, limit := range []int{0, 10, headerSize, headerSize + 50, meta - 10, meta, meta + 20, meta + 1000, 100 << 10, 200 << 10} {
		fw := &failingWriter{limit: limit}
		w, err := newWriter(fw, ArchAMD64, 4096, 4*4096, 3)
		if err == nil {
			w.blobChunk = 1024
			err = w.WriteMeta(p)
		}
		if err == nil {
			err = w.WriteBlob(1, blob)
		}
		for i := 0; err == nil && i < len(data); i += 8 * 4096 {
			err = w.WritePages(heapStart+uint64(i), data[i:i+8*4096])
		}
		if err == nil {
			err = w.Close()
		}
		if !errors.Is(err, errFull) {
			t.Fatalf("limit %d: got %v, want %v", limit, err, errFull)
		}
		if w != nil {
			if w.Written() != int64(fw.n) {
				t.Errorf("limit %d: Written() = %d, the writer took %d", limit, w.Written(), fw.n)
			}
			if err := w.Close(); !errors.Is(err, errFull) {
				t.Errorf("limit %d: Close after a failure: %v", limit, err)
			}
			if err := w.WritePages(heapStart, data[:4096]); !errors.Is(err, errFull) {
				t.Errorf("limit %d: WritePages after a failure: %v", limit, err)
			}
			if err := w.WriteBlob(2, blob); !errors.Is(err, errFull) {
				t.Errorf("limit %d: WriteBlob after a failure: %v", limit, err)
			}
		}
	}
}

// Incompressible chunks are stored raw, compressible ones lz4-compressed.
func TestWriterCompression(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	p := testProcess(ArchAMD64, 4096)
	img := buildImage(t, p, []segment{
		{heapStart, randomBytes(rng, 4096)},
		{dataStart, textBytes(rng, 4096)},
	}, writeChunk, 1)
	offs := recordOffsets(img)
	if len(offs) != 8 { // PROCESS, 3 THREAD, 2 PAGES, END
		t.Fatalf("%d records", len(offs)-1)
	}
	for i, want := range map[int]uint32{4: compNone, 5: compLZ4} {
		rec := img[offs[i]:offs[i+1]]
		if got := le.Uint32(rec[recordHeaderSize+16:]); got != want {
			t.Errorf("record %d: compression %d, want %d", i, got, want)
		}
		if want == compNone && len(rec) != recordHeaderSize+pagesHeaderSize+4096 {
			t.Errorf("raw record of %d bytes", len(rec))
		}
	}
}

// The Writer does not allocate per page or per chunk once warmed up.
func TestWriterAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	data := textBytes(rng, 4<<20)
	p := testProcess(ArchAMD64, 4096)
	w, err := NewWriter(io.Discard, ArchAMD64, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMeta(p); err != nil {
		t.Fatal(err)
	}
	w.WritePages(heapStart, data) // warm up the jobs
	allocs := testing.AllocsPerRun(10, func() {
		for off := 0; off < len(data); off += 4096 {
			if err := w.WritePages(heapStart+uint64(off), data[off:off+4096]); err != nil {
				t.Fatal(err)
			}
		}
	})
	// One goroutine per 1 MiB chunk, nothing per page.
	if allocs > 50 {
		t.Errorf("%v allocations to write 4 MiB in 1024 calls", allocs)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
