package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pierrec/lz4/v4"
)

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		name     string
		arch     Arch
		pageSize int
		chunk    int // 0: the Writer's default
		jobs     int
	}{
		{"default", ArchAMD64, 4096, 0, 0},
		{"serial-small-chunks", ArchAMD64, 4096, 2 * 4096, 1},
		{"parallel-odd-chunks", ArchARM64, 16384, 3 * 16384, 3},
		{"64k-pages", ArchARM64, 65536, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := tc.pageSize
			p := testProcess(tc.arch, ps)
			segs := []segment{
				{textStart, textBytes(rng, 5*ps)},
				// Contiguous with the previous call: gathered into one chunk.
				{textStart + uint64(5*ps), textBytes(rng, 3*ps)},
				{dataStart, randomBytes(rng, ps)},
				{dataStart + uint64(2*ps), sparseBytes(rng, 2*ps)},
				{heapStart, randomBytes(rng, 3<<20)},       // several default chunks
				{heapStart + 4<<20, textBytes(rng, 40*ps)}, // several small chunks
				{stackEnd - uint64(2*ps), sparseBytes(rng, 2*ps)},
				{dataStart, textBytes(rng, ps)}, // rewrites a page: the later one wins
				{heapStart + 8<<20, nil},
				// Across two adjacent VMAs: split at their boundary.
				{textEnd - uint64(2*ps), textBytes(rng, 5*ps)},
			}
			if tc.chunk == 0 {
				tc.chunk = writeChunk
			}
			if tc.jobs == 0 {
				tc.jobs = 2 * min(runtime.GOMAXPROCS(0), maxWorkers)
			}
			img := buildImage(t, p, segs, tc.chunk, tc.jobs)

			r, err := NewReader(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			if r.Arch() != tc.arch || r.PageSize() != ps || r.Version() != Version {
				t.Fatalf("header: arch %v page size %d version %d", r.Arch(), r.PageSize(), r.Version())
			}
			got, gotSegs, err := readImage(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Errorf("metadata differs:\n got %+v\nwant %+v", got, p)
			}
			var raw int
			for _, s := range gotSegs {
				if len(s.data) > tc.chunk {
					t.Errorf("chunk at %#x has %d bytes, more than %d", s.vaddr, len(s.data), tc.chunk)
				}
				if i := findVMA(p.VMAs, s.vaddr); i < 0 || s.vaddr+uint64(len(s.data)) > p.VMAs[i].End {
					t.Errorf("chunk at %#x of %d bytes is not inside one VMA", s.vaddr, len(s.data))
				}
				raw += len(s.data)
			}
			wantMem, gotMem := memory(segs, ps), memory(gotSegs, ps)
			if len(gotMem) != len(wantMem) {
				t.Errorf("read %d pages, wrote %d", len(gotMem), len(wantMem))
			}
			for addr, want := range wantMem {
				if !bytes.Equal(gotMem[addr], want) {
					t.Errorf("page %#x differs", addr)
				}
			}
			if len(img) >= raw {
				t.Errorf("image is %d bytes for %d bytes of pages: nothing was compressed", len(img), raw)
			}
		})
	}
}

// A 16 MiB record, the largest allowed, goes through.
func TestMaxChunk(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	p := testProcess(ArchAMD64, 4096)
	data := concat(textBytes(rng, MaxPagesChunk/2), randomBytes(rng, MaxPagesChunk/2+4096))
	img := buildImage(t, p, []segment{{heapStart, data}}, MaxPagesChunk, 2)
	_, segs, err := readImage(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 || len(segs[0].data) != MaxPagesChunk || !bytes.Equal(concat(segs[0].data, segs[1].data), data) {
		t.Fatalf("read %d chunks, want 2 with the data written", len(segs))
	}
}

// Data that compresses as well as it can still reads back: the reader's
// bound on the lz4 ratio admits it.
func TestBestCompression(t *testing.T) {
	p := testProcess(ArchAMD64, 4096)
	zero := make([]byte, MaxPagesChunk)
	same := bytes.Repeat([]byte{0xa5}, 4096)
	img := buildImage(t, p, []segment{{heapStart, zero}, {dataStart, same}}, MaxPagesChunk, 2)
	if len(img) > 100<<10 {
		t.Fatalf("%d-byte image for 16 MiB of zeros", len(img))
	}
	_, segs, err := readImage(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 2 || !bytes.Equal(segs[0].data, zero) || !bytes.Equal(segs[1].data, same) {
		t.Fatal("pages differ")
	}
}

func TestEmptyImage(t *testing.T) {
	p := &Process{Arch: ArchARM64, PageSize: 4096}
	img := buildImage(t, p, nil, writeChunk, 2)
	got, segs, err := readImage(bytes.NewReader(img))
	if err != nil || len(segs) != 0 || !reflect.DeepEqual(got, p) {
		t.Fatalf("got %+v, %d chunks, %v", got, len(segs), err)
	}
}

func TestReaderBufferReuse(t *testing.T) {
	img, _, _ := smallImage(t)
	r, err := NewReader(iotest.OneByteReader(bytes.NewReader(img)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Meta(); err != nil {
		t.Fatal(err)
	}
	var n int
	for {
		_, _, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no pages")
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next after EOF: %v", err)
	}
	if allocs := testing.AllocsPerRun(5, func() {
		r, _ := NewReader(bytes.NewReader(img))
		r.Meta()
		for {
			if _, _, err := r.Next(); err != nil {
				break
			}
		}
	}); allocs > 200 {
		t.Errorf("%v allocations to read a small image", allocs)
	}
}

func isTruncated(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) && strings.Contains(err.Error(), "truncated")
}

func TestTruncated(t *testing.T) {
	// Every prefix of a small image.
	img, _, _ := smallImage(t)
	for n := 0; n < len(img); n++ {
		if _, _, err := readImage(bytes.NewReader(img[:n])); !isTruncated(err) {
			t.Fatalf("image cut at %d of %d: got %v, want a truncation error", n, len(img), err)
		}
	}
	// Record boundaries and offsets inside the records of a bigger one.
	rng := rand.New(rand.NewPCG(5, 6))
	img = buildImage(t, testProcess(ArchAMD64, 4096), []segment{
		{heapStart, randomBytes(rng, 2<<20)},
		{heapStart + 4<<20, textBytes(rng, 1<<20)},
	}, writeChunk, 2)
	offs := recordOffsets(img)
	if len(offs) != 6 { // META, 3 PAGES, END, and the end
		t.Fatalf("%d records", len(offs)-1)
	}
	for i, off := range offs[:len(offs)-1] {
		next := offs[i+1]
		for _, cut := range []int{off, off + 1, off + recordHeaderSize - 1, off + recordHeaderSize, off + recordHeaderSize + 5, (off + next) / 2, next - 1} {
			if _, _, err := readImage(bytes.NewReader(img[:cut])); !isTruncated(err) {
				t.Errorf("image cut at %d (record %d at %d-%d): got %v, want a truncation error", cut, i, off, next, err)
			}
		}
	}
	if _, _, err := readImage(bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptRecord(t *testing.T) {
	img, _, _ := smallImage(t)
	offs := recordOffsets(img)
	for i, off := range offs[:len(offs)-1] {
		typ := recordName(le.Uint32(img[off:]))
		size := offs[i+1] - off - recordHeaderSize
		for _, at := range []int{0, size / 2, size - 1} {
			bad := bytes.Clone(img)
			bad[off+recordHeaderSize+at] ^= 0x10
			_, _, err := readImage(bytes.NewReader(bad))
			want := fmt.Sprintf("record #%d (%s) is corrupt: checksum mismatch", i, typ)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("flipped a bit at %d of record %d: got %v, want %q", at, i, err, want)
			}
		}
		// The stored checksum itself.
		bad := bytes.Clone(img)
		bad[off+8] ^= 1
		if _, _, err := readImage(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("flipped the checksum of record %d: got %v", i, err)
		}
	}
	if typs := len(offs) - 1; typs < 4 {
		t.Fatalf("only %d records", typs)
	}
}

func TestCorruptHeader(t *testing.T) {
	img, _, _ := smallImage(t)
	for off := 0; off < headerSize; off++ {
		bad := bytes.Clone(img)
		bad[off] ^= 0x04
		_, _, err := readImage(bytes.NewReader(bad))
		var want string
		switch {
		case off < 8:
			want = "not a cryo image (bad magic)"
		case off < 12:
			want = "(or the image header is corrupt)"
		default:
			want = "image header is corrupt: checksum mismatch"
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("flipped a bit at header offset %d: got %v, want %q", off, err, want)
		}
	}
	for _, s := range []string{"", "ELF", "\x7fELF\x02\x01\x01\x00\x00\x00", "CRYOIMG\x00\x01\x00"} {
		_, err := NewReader(strings.NewReader(s))
		if err == nil {
			t.Errorf("NewReader(%q) succeeded", s)
		}
		m := string(magic[:])
		if (strings.HasPrefix(m, s) || strings.HasPrefix(s, m)) != isTruncated(err) {
			t.Errorf("NewReader(%q): %v", s, err)
		}
	}
}

// Every single-bit flip anywhere is caught, without a panic.
func TestAnyBitFlip(t *testing.T) {
	img, _, _ := smallImage(t)
	for off := range img {
		bad := bytes.Clone(img)
		bad[off] ^= 1 << (off % 8)
		if _, _, err := readImage(bytes.NewReader(bad)); err == nil {
			t.Fatalf("flipped bit %d of byte %d: no error", off%8, off)
		}
	}
}

func TestVersion(t *testing.T) {
	body := concat(rawRecord(recMeta, []byte(`{"Arch":1,"PageSize":4096}`)), rawRecord(recEnd, rawEnd(0, 0)))
	for _, tc := range []struct {
		version uint32
		want    []string
	}{
		{7, []string{"image format version 7 is newer than this cryo understands (1): use a newer cryo"}},
		{Version + 1, []string{fmt.Sprint(Version + 1), fmt.Sprint(Version), "newer"}},
		{0, []string{"version 0 is not supported", "only version 1"}},
		{Version, nil},
	} {
		_, _, err := readImage(bytes.NewReader(concat(rawHeader(tc.version, ArchAMD64, 4096, 0), body)))
		if tc.want == nil {
			if err != nil {
				t.Errorf("version %d: %v", tc.version, err)
			}
			continue
		}
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("version %d: got %v, want %q", tc.version, err, w)
			}
		}
		if err != nil && strings.Contains(err.Error(), "corrupt") {
			t.Errorf("version %d: a valid header is reported as corrupt: %v", tc.version, err)
		}
	}
}

// allocated returns how many bytes f allocates.
func allocated(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

func TestHostileLengths(t *testing.T) {
	hdr := rawHeader(Version, ArchAMD64, 4096, 0)
	meta := rawRecord(recMeta, []byte(`{"Arch":1,"PageSize":4096,"VMAs":[{"Start":4096,"End":268435456}]}`))
	// withLength replaces the payload length of a record, keeping its
	// checksum: only the length is wrong.
	withLength := func(rec []byte, n uint32) []byte {
		rec = bytes.Clone(rec)
		le.PutUint32(rec[4:], n)
		return rec
	}
	small := rawRecord(recPages, rawPages(4096, 1, 4096, compNone, make([]byte, 4096)))
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"huge META", concat(hdr, withLength(meta, math.MaxUint32)), "invalid payload length 4294967295"},
		{"META over 64 MiB", concat(hdr, withLength(meta, maxMetaSize+1)), "invalid payload length"},
		{"huge PAGES", concat(hdr, meta, withLength(small, math.MaxUint32)), "invalid payload length"},
		{"PAGES over bound", concat(hdr, meta, withLength(small, MaxPagesChunk*2)), "invalid payload length"},
		{"long END", concat(hdr, meta, withLength(rawRecord(recEnd, rawEnd(0, 0)), 1<<30)), "invalid payload length"},
		// Plausible length, missing data: only what is there is buffered.
		{"PAGES promising 16 MiB", concat(hdr, meta, withLength(small, MaxPagesChunk)), "truncated"},
		{"META promising 64 MiB", concat(hdr, withLength(meta, maxMetaSize)), "truncated"},
		// Correct checksums, impossible contents.
		{"raw length over limit", concat(hdr, meta, rawRecord(recPages, rawPages(4096, 8192, 8192*4096, compLZ4, make([]byte, 100)))), "exceeds the limit"},
		{"raw length not count pages", concat(hdr, meta, rawRecord(recPages, rawPages(4096, 1, 8192, compNone, make([]byte, 8192)))), "is not 1 pages"},
		{"count overflow", concat(hdr, meta, rawRecord(recPages, rawPages(4096, math.MaxUint32, 0, compNone, make([]byte, 1)))), "is not 4294967295 pages"},
		{"lz4 ratio", concat(hdr, meta, rawRecord(recPages, rawPages(4096, 4096, MaxPagesChunk, compLZ4, make([]byte, 10)))), "cannot hold"},
		{"address wraps", concat(hdr, meta, rawRecord(recPages, rawPages(math.MaxUint64-4095, 2, 8192, compNone, make([]byte, 8192)))), "wraps around"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, _, err = readImage(bytes.NewReader(tc.img)) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			if n > 1<<20 {
				t.Errorf("allocated %d bytes for a %d-byte image", n, len(tc.img))
			}
		})
	}
}

func TestInvalidContents(t *testing.T) {
	hdr := rawHeader(Version, ArchAMD64, 4096, 0)
	vmas := `"VMAs":[{"Start":4096,"End":1048576},{"Start":2097152,"End":4194304}]`
	meta := rawRecord(recMeta, []byte(`{"Arch":1,"PageSize":4096,`+vmas+`}`))
	page := make([]byte, 4096)
	pages := rawRecord(recPages, rawPages(8192, 1, 4096, compNone, page))
	end := rawRecord(recEnd, rawEnd(1, 1))
	compress := func(n int) []byte {
		dst := make([]byte, lz4.CompressBlockBound(n))
		m, err := lz4.CompressBlock(bytes.Repeat([]byte("cryo"), n/4), dst, nil)
		if err != nil {
			t.Fatal(err)
		}
		return dst[:m]
	}
	onePage, twoPages := compress(4096), compress(8192)
	metaWith := func(s string) []byte { return rawRecord(recMeta, []byte(s)) }
	for _, tc := range []struct {
		name string
		img  []byte
		want string // "" for a valid image
	}{
		{"valid", concat(hdr, meta, pages, end), ""},
		{"spanning adjacent VMAs", concat(hdr, metaWith(`{"Arch":1,"PageSize":4096,"VMAs":[{"Start":4096,"End":8192},{"Start":8192,"End":12288}]}`),
			rawRecord(recPages, rawPages(4096, 2, 8192, compNone, make([]byte, 8192))), rawRecord(recEnd, rawEnd(1, 2))), "pages [0x1000-0x3000) run past the end of their mapping [0x1000-0x2000)"},
		{"unknown arch", concat(rawHeader(Version, 9, 4096, 0), meta, end), "unknown architecture 9"},
		{"page size", concat(rawHeader(Version, ArchAMD64, 12288, 0), meta, end), "invalid page size 12288"},
		{"small page size", concat(rawHeader(Version, ArchAMD64, 2048, 0), meta, end), "invalid page size 2048"},
		{"flags", concat(rawHeader(Version, ArchAMD64, 4096, 0x10), meta, end), "unknown flags 0x10"},
		{"PAGES first", concat(hdr, pages, end), "record #0 is PAGES, want META first"},
		{"two META", concat(hdr, meta, meta, end), "record #1 is META, want PAGES or END"},
		{"unknown record", concat(hdr, meta, rawRecord(9, []byte("x"))), "record #1 has unknown type 9"},
		{"bad JSON", concat(hdr, metaWith(`{"Arch":1,`), end), "decoding metadata"},
		{"JSON trailing data", concat(hdr, metaWith(`{"Arch":1,"PageSize":4096} {}`), end), "decoding metadata"},
		{"JSON wrong type", concat(hdr, metaWith(`{"Arch":"amd64","PageSize":4096}`), end), "decoding metadata"},
		{"arch mismatch", concat(hdr, metaWith(`{"Arch":2,"PageSize":4096}`), end), "metadata architecture arm64 does not match the image header's amd64"},
		{"page size mismatch", concat(hdr, metaWith(`{"Arch":1,"PageSize":16384}`), end), "metadata page size 16384"},
		{"VMA inverted", concat(hdr, metaWith(`{"Arch":1,"PageSize":4096,"VMAs":[{"Start":8192,"End":4096}]}`), end), "VMA 0 [0x2000-0x1000) \"\" is empty or inverted"},
		{"VMA empty", concat(hdr, metaWith(`{"Arch":1,"PageSize":4096,"VMAs":[{"Start":8192,"End":8192}]}`), end), "is empty"},
		{"VMA unaligned", concat(hdr, metaWith(`{"Arch":1,"PageSize":4096,"VMAs":[{"Start":4096,"End":8193}]}`), end), "not aligned"},
		{"VMA overlap", concat(hdr, metaWith(`{"Arch":1,"PageSize":4096,"VMAs":[{"Start":4096,"End":16384},{"Start":8192,"End":20480}]}`), end), "VMA 1 [0x2000-0x5000) \"\" overlaps"},
		{"VMA unsorted", concat(hdr, metaWith(`{"Arch":1,"PageSize":4096,"VMAs":[{"Start":16384,"End":20480},{"Start":4096,"End":8192}]}`), end), "overlaps or precedes"},
		{"pages outside VMAs", concat(hdr, meta, rawRecord(recPages, rawPages(1<<20, 1, 4096, compNone, page)), end), "outside the process's mappings"},
		{"pages across a hole", concat(hdr, meta, rawRecord(recPages, rawPages(1<<20-4096, 2, 8192, compNone, make([]byte, 8192))), rawRecord(recEnd, rawEnd(1, 2))), "run past the end of their mapping [0x1000-0x100000)"},
		{"pages unaligned", concat(hdr, meta, rawRecord(recPages, rawPages(8193, 1, 4096, compNone, page)), end), "not aligned"},
		{"no pages", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 0, 0, compNone, page[:1])), end), "no pages"},
		{"short raw data", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 1, 4096, compNone, page[:4095])), end), "4095 bytes of uncompressed data"},
		{"unknown compression", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 1, 4096, 5, page)), end), "unknown compression 5"},
		{"bad lz4", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 1, 4096, compLZ4, bytes.Repeat([]byte{0xff}, 100))), end), "decompressing"},
		{"short lz4", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 2, 8192, compLZ4, onePage)), rawRecord(recEnd, rawEnd(1, 2))), "decompressed to 4096 bytes, want 8192"},
		{"long lz4", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 1, 4096, compLZ4, twoPages)), end), "decompressing"},
		{"END counts", concat(hdr, meta, pages, rawRecord(recEnd, rawEnd(2, 1))), "announces 2 PAGES records and 1 pages, the image holds 1 and 1"},
		{"END pages", concat(hdr, meta, pages, rawRecord(recEnd, rawEnd(1, 5))), "announces 1 PAGES records and 5 pages"},
		{"no END", concat(hdr, meta, pages), "truncated after record #1 (no END record)"},
		{"data after END", concat(hdr, meta, pages, end, []byte{0}), "unexpected data after the END record"},
		{"record after END", concat(hdr, meta, pages, end, pages), "unexpected data after the END record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readImage(bytes.NewReader(tc.img))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestReaderOrder(t *testing.T) {
	img, p, _ := smallImage(t)
	r, err := NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "before Meta") {
		t.Fatalf("Next before Meta: %v", err)
	}
	m1, err := r.Meta()
	if err != nil || !reflect.DeepEqual(m1, p) {
		t.Fatalf("Meta: %v", err)
	}
	if m2, err := r.Meta(); m2 != m1 || err != nil {
		t.Fatalf("second Meta: %p %v", m2, err)
	}
	if _, _, err := r.Next(); err != nil {
		t.Fatal(err)
	}

	// Errors are sticky.
	bad := bytes.Clone(img)
	bad[len(bad)-1] ^= 1
	r, _ = NewReader(bytes.NewReader(bad))
	r.Meta()
	var first error
	for first == nil {
		_, _, first = r.Next()
	}
	if _, _, err := r.Next(); err != first {
		t.Fatalf("after %v, Next returned %v", first, err)
	}

	r, _ = NewReader(bytes.NewReader(img[:headerSize+5]))
	if _, err := r.Meta(); !isTruncated(err) {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); !isTruncated(err) {
		t.Fatalf("Next after a failed Meta: %v", err)
	}
}

func TestReadError(t *testing.T) {
	img, _, _ := smallImage(t)
	boom := errors.New("disk on fire")
	for _, n := range []int{4, headerSize + 3, len(img) - 3, len(img)} {
		r := io.MultiReader(bytes.NewReader(img[:n]), iotest.ErrReader(boom))
		if _, _, err := readImage(r); !errors.Is(err, boom) {
			t.Errorf("read error after %d bytes: got %v", n, err)
		}
	}
}

func TestCheckArch(t *testing.T) {
	if err := CheckArch(ArchAMD64, ArchAMD64); err != nil {
		t.Error(err)
	}
	if err := CheckArch(ArchARM64, ArchARM64); err != nil {
		t.Error(err)
	}
	err := CheckArch(ArchARM64, ArchAMD64)
	if want := "image was frozen on arm64, this machine is amd64: thaw it on an arm64 machine"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	if err := CheckArch(Arch(77), ArchAMD64); err == nil || !strings.Contains(err.Error(), "unknown architecture 77") {
		t.Errorf("unknown image arch: %v", err)
	}
	if err := CheckArch(ArchAMD64, ArchUnknown); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("unknown host arch: %v", err)
	}
	want := map[string]Arch{"amd64": ArchAMD64, "arm64": ArchARM64}[runtime.GOARCH]
	if got := HostArch(); got != want || (want != ArchUnknown && got.String() != runtime.GOARCH) {
		t.Errorf("HostArch() = %v on %s", got, runtime.GOARCH)
	}
}

// The TAIL record comes back through Reader.Tail after the pages; a
// second one is refused.
func TestTailRecord(t *testing.T) {
	p := &Process{Arch: ArchAMD64, PageSize: 4096, VMAs: []VMA{{Start: 0x10000, End: 0x12000, Kind: VMAAnon, Prot: 3}}}
	tail := &Tail{Pending: []Siginfo{{Shared: true}}}
	tail.Pending[0].Raw[0] = 10
	var buf bytes.Buffer
	w, err := NewWriter(&buf, ArchAMD64, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMeta(p); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePages(0x10000, bytes.Repeat([]byte{7}, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := w.CloseWithTail(tail); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Meta(); err != nil {
		t.Fatal(err)
	}
	if r.Tail() != nil {
		t.Error("Tail before the end of the pages")
	}
	for {
		_, _, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := r.Tail(); got == nil || len(got.Pending) != 1 || got.Pending[0].Raw[0] != 10 || !got.Pending[0].Shared {
		t.Errorf("Tail() = %+v, want %+v", got, tail)
	}
}
