package image

import (
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
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
	expect(w.Close(), "WriteMeta must come first")
	expect(w.WriteMeta(nil), "no process metadata")
	expect(w.WriteMeta(testProcess(ArchARM64, 4096)), "metadata architecture arm64 does not match the image header's amd64")
	expect(w.WriteMeta(testProcess(ArchAMD64, 16384)), "metadata page size 16384")
	p := testProcess(ArchAMD64, 4096)
	p.VMAs[2], p.VMAs[3] = p.VMAs[3], p.VMAs[2]
	expect(w.WriteMeta(p), "VMA 3 [0x600000-0x700000) \"/usr/bin/sleeper\" overlaps or precedes")
	if err := w.WriteMeta(testProcess(ArchAMD64, 4096)); err != nil {
		t.Fatal(err)
	}
	expect(w.WriteMeta(testProcess(ArchAMD64, 4096)), "metadata already written")
	expect(w.WritePages(heapStart+1, page), "not aligned")
	expect(w.WritePages(heapStart, page[:100]), "100 bytes is not a multiple of the 4096-byte page size")
	expect(w.WritePages(0x1000, page), "outside the process's mappings")
	expect(w.WritePages(heapEnd-4096, make([]byte, 8192)), "first unmapped address 0x20000000")
	expect(w.WritePages(math.MaxUint64-4095, make([]byte, 8192)), "wraps around")
	if err := w.WritePages(heapStart, page); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expect(w.WritePages(heapStart, page), "closed")
	if _, segs, err := readImage(&buf); err != nil || len(segs) != 1 {
		t.Fatalf("%d chunks, %v", len(segs), err)
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
	for _, limit := range []int{0, 10, headerSize, headerSize + 50, 100 << 10, 200 << 10} {
		fw := &failingWriter{limit: limit}
		w, err := newWriter(fw, ArchAMD64, 4096, 4*4096, 3)
		if err == nil {
			err = w.WriteMeta(p)
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
	if len(offs) != 5 {
		t.Fatalf("%d records", len(offs)-1)
	}
	for i, want := range map[int]uint32{1: compNone, 2: compLZ4} {
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
