package image

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pierrec/lz4/v4"
)

// blobRecords is how many BLOB records the Writer makes for calls, with
// chunks of chunk bytes: an empty record starts an empty blob.
func blobRecords(calls []blob, chunk int) int {
	n := 0
	for i, b := range calls {
		starts := i == 0 || calls[i-1].id != b.id
		switch {
		case len(b.data) > 0:
			n += (len(b.data) + chunk - 1) / chunk
		case starts:
			n++
		}
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		name      string
		arch      Arch
		pageSize  int
		chunk     int // 0: the Writer's default
		jobs      int
		blobChunk int // 0: MaxPagesChunk
		bigBlob   int // size of blob 1
	}{
		{"default", ArchAMD64, 4096, 0, 0, 0, 100 << 10},
		{"serial-small-chunks", ArchAMD64, 4096, 2 * 4096, 1, 1000, 4500},
		{"parallel-odd-chunks", ArchARM64, 16384, 3 * 16384, 3, 4096, 3*4096 + 1},
		{"64k-pages", ArchARM64, 65536, 0, 4, 7, 50},
		// A blob bigger than the largest record, split at MaxPagesChunk.
		{"17MiB-blob", ArchAMD64, 4096, 0, 0, 0, 17 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := tc.pageSize
			p := testProcess(tc.arch, ps)
			// Two files with their contents in blobs, one of them shared
			// by two fds.
			p.Files = append(p.Files,
				File{ID: 10, Kind: FileReg, Path: "/tmp/gone (deleted)", Flags: 2, Pos: 5, Blob: 1},
				File{ID: 11, Kind: FileReg, Path: "/tmp/memfd:x (deleted)", Blob: 3})
			p.FDs = append(p.FDs, FD{Num: 10, File: 10}, FD{Num: 11, File: 11}, FD{Num: 12, File: 10, Cloexec: true})
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
			blobs := []blob{
				{1, randomBytes(rng, tc.bigBlob)},
				{2, nil}, // empty, but there
				// Blob 3 in several calls, one of them empty.
				{3, textBytes(rng, 700)},
				{3, textBytes(rng, 2000)},
				{3, nil},
				{3, randomBytes(rng, 50)},
				{4, []byte{0}},
			}
			if tc.chunk == 0 {
				tc.chunk = writeChunk
			}
			if tc.jobs == 0 {
				tc.jobs = 2 * min(runtime.GOMAXPROCS(0), maxWorkers)
			}
			if tc.blobChunk == 0 {
				tc.blobChunk = MaxPagesChunk
			}
			want := contents{blobs: blobs, segs: segs, tail: testTail()}
			img := writeImage(t, p, want, writeOpts{tc.chunk, tc.jobs, tc.blobChunk})

			r, err := NewReader(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			if r.Arch() != tc.arch || r.PageSize() != ps || r.Version() != Version {
				t.Fatalf("header: arch %v page size %d version %d", r.Arch(), r.PageSize(), r.Version())
			}
			got, gotC, err := readAll(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, p) {
				t.Errorf("metadata differs:\n got %+v\nwant %+v", got, p)
			}
			if len(got.Threads) != 3 || got.NumThreads != 3 {
				t.Errorf("%d threads (NumThreads %d), want 3", len(got.Threads), got.NumThreads)
			}
			if !reflect.DeepEqual(gotC.blobs, mergeBlobs(blobs)) {
				t.Errorf("blobs differ: read %d, wrote %d", len(gotC.blobs), len(mergeBlobs(blobs)))
			}
			if !reflect.DeepEqual(gotC.tail, want.tail) {
				t.Errorf("tail: got %+v, want %+v", gotC.tail, want.tail)
			}

			// The records come in the order of the format, the blobs in
			// chunks of at most blobChunk bytes.
			typs := recordTypes(img)
			nblob := blobRecords(blobs, tc.blobChunk)
			wantTyps := []string{"PROCESS", "THREAD", "THREAD", "THREAD"}
			for range nblob {
				wantTyps = append(wantTyps, "BLOB")
			}
			for range len(gotC.segs) {
				wantTyps = append(wantTyps, "PAGES")
			}
			wantTyps = append(wantTyps, "TAIL", "END")
			if !reflect.DeepEqual(typs, wantTyps) {
				t.Errorf("records %v,\nwant %v", typs, wantTyps)
			}
			offs := recordOffsets(img)
			for i, typ := range typs {
				if n := offs[i+1] - offs[i] - recordHeaderSize - blobHeaderSize; typ == "BLOB" && n > tc.blobChunk {
					t.Errorf("record %d: a blob chunk of %d bytes, more than %d", i, n, tc.blobChunk)
				}
			}

			var raw int
			for _, s := range gotC.segs {
				if len(s.data) > tc.chunk {
					t.Errorf("chunk at %#x has %d bytes, more than %d", s.vaddr, len(s.data), tc.chunk)
				}
				if i := findVMA(p.VMAs, s.vaddr); i < 0 || s.vaddr+uint64(len(s.data)) > p.VMAs[i].End {
					t.Errorf("chunk at %#x of %d bytes is not inside one VMA", s.vaddr, len(s.data))
				}
				raw += len(s.data)
			}
			wantMem, gotMem := memory(segs, ps), memory(gotC.segs, ps)
			if len(gotMem) != len(wantMem) {
				t.Errorf("read %d pages, wrote %d", len(gotMem), len(wantMem))
			}
			for addr, want := range wantMem {
				if !bytes.Equal(gotMem[addr], want) {
					t.Errorf("page %#x differs", addr)
				}
			}
			if len(img)-tc.bigBlob >= raw {
				t.Errorf("image is %d bytes for %d bytes of pages: nothing was compressed", len(img), raw)
			}

			// Next alone skips the blobs and gives the same pages.
			got2, segs2, err := readImage(bytes.NewReader(img))
			if err != nil || !reflect.DeepEqual(got2, p) || !reflect.DeepEqual(segs2, gotC.segs) {
				t.Errorf("skipping the blobs: %v", err)
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

// The least an image can be: one thread, nothing else.
func TestEmptyImage(t *testing.T) {
	p := &Process{Arch: ArchARM64, PageSize: 4096, Threads: []Thread{{Tid: 1, Regs: []byte{0}}}}
	img := buildImage(t, p, nil, writeChunk, 2)
	if typs := recordTypes(img); !reflect.DeepEqual(typs, []string{"PROCESS", "THREAD", "END"}) {
		t.Errorf("records %v", typs)
	}
	got, c, err := readAll(bytes.NewReader(img))
	if err != nil || len(c.segs) != 0 || len(c.blobs) != 0 || c.tail != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("got %+v, %+v, %v", got, c, err)
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
	// Most of these are the JSON decoder's: a few per field of the
	// metadata, nothing per page.
	if allocs := testing.AllocsPerRun(5, func() {
		r, _ := NewReader(bytes.NewReader(img))
		r.Meta()
		for {
			if _, _, _, err := r.NextBlob(); err != nil {
				break
			}
		}
		for {
			if _, _, err := r.Next(); err != nil {
				break
			}
		}
	}); allocs > 250 {
		t.Errorf("%v allocations to read a small image", allocs)
	}
}

func isTruncated(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) && strings.Contains(err.Error(), "truncated")
}

// truncationCuts is where TestTruncated cuts img: every byte up to the
// end of the first record (the header, the PROCESS record's header and
// its JSON), then in each later record every byte of its header and the
// first bytes of its payload, 16 places spread over the rest, and its
// last byte. Cutting at every byte of a whole image decodes the metadata
// once per cut, which takes minutes under emulation (make test-arm64).
func truncationCuts(img []byte) []int {
	offs := recordOffsets(img) // ends with len(img)
	var cuts []int
	for n := 0; n < offs[1]; n++ {
		cuts = append(cuts, n)
	}
	for i := 1; i+1 < len(offs); i++ {
		off, next := offs[i], offs[i+1]
		for n := off; n < next && n < off+recordHeaderSize+24; n++ {
			cuts = append(cuts, n)
		}
		for k := 1; k <= 16; k++ {
			if n := off + (next-off)*k/17; n > off+recordHeaderSize+24 {
				cuts = append(cuts, n)
			}
		}
		cuts = append(cuts, next-1)
	}
	slices.Sort(cuts)
	return slices.Compact(cuts)
}

func TestTruncated(t *testing.T) {
	// Every prefix of a small image, read with the blobs and, from the
	// first blob on, where Next's way differs, without.
	img, _, _ := smallImage(t)
	firstBlob := recordOffsets(img)[slices.Index(recordTypes(img), "BLOB")]
	for _, n := range truncationCuts(img) {
		if _, _, err := readAll(bytes.NewReader(img[:n])); !isTruncated(err) {
			t.Fatalf("image cut at %d of %d: got %v, want a truncation error", n, len(img), err)
		}
		if n < firstBlob {
			continue
		}
		if _, _, err := readImage(bytes.NewReader(img[:n])); !isTruncated(err) {
			t.Fatalf("image cut at %d of %d, blobs skipped: got %v, want a truncation error", n, len(img), err)
		}
	}
	if _, _, err := readAll(bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	// Record boundaries and offsets inside the records of a bigger one.
	rng := rand.New(rand.NewPCG(5, 6))
	p := testProcess(ArchAMD64, 4096)
	p.Files = append(p.Files, File{ID: 9, Kind: FileReg, Blob: 1})
	img = writeImage(t, p, contents{
		blobs: []blob{{1, randomBytes(rng, 5000)}},
		segs:  []segment{{heapStart, randomBytes(rng, 2<<20)}, {heapStart + 4<<20, textBytes(rng, 1<<20)}},
	}, writeOpts{blobChunk: 2048})
	offs := recordOffsets(img)
	if want := []string{"PROCESS", "THREAD", "THREAD", "THREAD", "BLOB", "BLOB", "BLOB", "PAGES", "PAGES", "PAGES", "END"}; !reflect.DeepEqual(recordTypes(img), want) {
		t.Fatalf("records %v, want %v", recordTypes(img), want)
	}
	for i, off := range offs[:len(offs)-1] {
		next := offs[i+1]
		for _, cut := range []int{off, off + 1, off + recordHeaderSize - 1, off + recordHeaderSize, off + recordHeaderSize + 5, (off + next) / 2, next - 1} {
			if _, _, err := readAll(bytes.NewReader(img[:cut])); !isTruncated(err) {
				t.Errorf("image cut at %d (record %d at %d-%d): got %v, want a truncation error", cut, i, off, next, err)
			}
		}
	}
	if _, _, err := readAll(bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptRecord(t *testing.T) {
	img, _, _ := smallImage(t)
	offs := recordOffsets(img)
	kinds := map[string]bool{}
	for i, off := range offs[:len(offs)-1] {
		typ := recordName(le.Uint32(img[off:]))
		kinds[typ] = true
		size := offs[i+1] - off - recordHeaderSize
		for _, at := range []int{0, size / 2, size - 1} {
			bad := bytes.Clone(img)
			bad[off+recordHeaderSize+at] ^= 0x10
			_, _, err := readAll(bytes.NewReader(bad))
			want := fmt.Sprintf("record #%d (%s) is corrupt: checksum mismatch", i, typ)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("flipped a bit at %d of record %d: got %v, want %q", at, i, err, want)
			}
		}
		// The stored checksum itself.
		bad := bytes.Clone(img)
		bad[off+8] ^= 1
		if _, _, err := readAll(bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
			t.Errorf("flipped the checksum of record %d: got %v", i, err)
		}
	}
	for _, typ := range []string{"PROCESS", "THREAD", "BLOB", "PAGES", "TAIL", "END"} {
		if !kinds[typ] {
			t.Errorf("the small image has no %s record", typ)
		}
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
	// Every byte of the headers and the metadata, and a spread of places
	// in each payload (its checksum covers all of it alike).
	img, _, _ := smallImage(t)
	for _, off := range truncationCuts(img) {
		bad := bytes.Clone(img)
		bad[off] ^= 1 << (off % 8)
		if _, _, err := readAll(bytes.NewReader(bad)); err == nil {
			t.Fatalf("flipped bit %d of byte %d: no error", off%8, off)
		}
	}
}

func TestVersion(t *testing.T) {
	body := concat(rawRecord(recProcess, []byte(`{"arch":1,"page_size":4096,"threads":1}`)),
		rawRecord(recThread, []byte(`{"tid":1,"regs":"AQ=="}`)), rawRecord(recEnd, rawEnd(0, 0)))
	// What cryo 1 wrote: a META record with Go's field names.
	v1 := concat(rawRecord(1, []byte(`{"Arch":1,"PageSize":4096,"Threads":[{"Tid":1,"Regs":"AQ=="}]}`)),
		rawRecord(recEnd, make([]byte, 16)))
	for _, tc := range []struct {
		name    string
		version uint32
		body    []byte
		want    []string // all in the error; nil: no error
	}{
		{"v1", 1, v1, []string{"image format version 1 is not supported: this cryo reads only version 2"}},
		{"v1-header-only", 1, nil, []string{"version 1", "version 2"}},
		{"v3", 3, body, []string{"image format version 3 is newer than this cryo understands (2): use a newer cryo"}},
		{"v7", 7, v1, []string{"version 7", "(2)", "newer"}},
		{"next", Version + 1, body, []string{fmt.Sprint(Version + 1), fmt.Sprint(Version), "newer"}},
		{"v0", 0, body, []string{"version 0 is not supported", "only version 2"}},
		{"current", Version, body, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(bytes.NewReader(concat(rawHeader(tc.version, ArchAMD64, 4096, 0), tc.body)))
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want %q in it", err, w)
				}
			}
			if strings.Contains(err.Error(), "corrupt") {
				t.Errorf("a valid header is reported as corrupt: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is not one line: %q", err)
			}
		})
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
	proc := rawRecord(recProcess, []byte(`{"arch":1,"page_size":4096,"threads":1,"vmas":[{"start":4096,"end":268435456}]}`))
	thread := rawRecord(recThread, []byte(`{"tid":1,"regs":"AQ=="}`))
	meta := concat(proc, thread)
	// withLength replaces the payload length of a record, keeping its
	// checksum: only the length is wrong.
	withLength := func(rec []byte, n uint32) []byte {
		rec = bytes.Clone(rec)
		le.PutUint32(rec[4:], n)
		return rec
	}
	small := rawRecord(recPages, rawPages(4096, 1, 4096, compNone, make([]byte, 4096)))
	blob := rawBlob(1, 0, []byte("abc"))
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"huge PROCESS", concat(hdr, withLength(proc, math.MaxUint32)), "invalid payload length 4294967295"},
		{"PROCESS over 64 MiB", concat(hdr, withLength(proc, maxMetaSize+1)), "invalid payload length"},
		{"huge THREAD", concat(hdr, proc, withLength(thread, math.MaxUint32)), "record #1 (THREAD) has an invalid payload length"},
		{"huge BLOB", concat(hdr, meta, withLength(blob, math.MaxUint32)), "record #2 (BLOB) has an invalid payload length"},
		{"BLOB over 16 MiB", concat(hdr, meta, withLength(blob, blobHeaderSize+MaxPagesChunk+1)), "invalid payload length"},
		{"short BLOB", concat(hdr, meta, withLength(blob, blobHeaderSize-1)), "invalid payload length 15: want 16 to"},
		{"huge PAGES", concat(hdr, meta, withLength(small, math.MaxUint32)), "invalid payload length"},
		{"PAGES over bound", concat(hdr, meta, withLength(small, MaxPagesChunk*2)), "invalid payload length"},
		{"long END", concat(hdr, meta, withLength(rawRecord(recEnd, rawEnd(0, 0)), 1<<30)), "invalid payload length"},
		{"v1 END", concat(hdr, meta, rawRecord(recEnd, make([]byte, 16))), "record #2 (END) has an invalid payload length 16: want 32 to 32"},
		// Plausible length, missing data: only what is there is buffered.
		{"PAGES promising 16 MiB", concat(hdr, meta, withLength(small, MaxPagesChunk)), "truncated"},
		{"BLOB promising 16 MiB", concat(hdr, meta, withLength(blob, blobHeaderSize+MaxPagesChunk)), "truncated"},
		{"PROCESS promising 64 MiB", concat(hdr, withLength(proc, maxMetaSize)), "truncated"},
		{"THREAD promising 64 MiB", concat(hdr, proc, withLength(thread, maxMetaSize)), "truncated"},
		// Four million threads announced, one there: nothing is made
		// for the others.
		{"threads announced", concat(hdr, rawRecord(recProcess, []byte(fmt.Sprintf(`{"arch":1,"page_size":4096,"threads":%d}`, maxThreads))), thread),
			"truncated after record #1"},
		// Correct checksums, impossible contents.
		{"raw length over limit", concat(hdr, meta, rawRecord(recPages, rawPages(4096, 8192, 8192*4096, compLZ4, make([]byte, 100)))), "exceeds the limit"},
		{"raw length not count pages", concat(hdr, meta, rawRecord(recPages, rawPages(4096, 1, 8192, compNone, make([]byte, 8192)))), "is not 1 pages"},
		{"count overflow", concat(hdr, meta, rawRecord(recPages, rawPages(4096, math.MaxUint32, 0, compNone, make([]byte, 1)))), "is not 4294967295 pages"},
		{"lz4 ratio", concat(hdr, meta, rawRecord(recPages, rawPages(4096, 4096, MaxPagesChunk, compLZ4, make([]byte, 10)))), "cannot hold"},
		{"address wraps", concat(hdr, meta, rawRecord(recPages, rawPages(math.MaxUint64-4095, 2, 8192, compNone, make([]byte, 8192)))), "wraps around"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, _, err = readAll(bytes.NewReader(tc.img)) })
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
	vmas := `"vmas":[{"start":4096,"end":1048576},{"start":2097152,"end":4194304}]`
	files := `"files":[{"id":1,"kind":"reg","blob":7},{"id":2,"kind":"std"}],"fds":[{"fd":0,"file":2},{"fd":3,"file":1},{"fd":4,"file":1}]`
	// procWith is a PROCESS record with the VMAs above and more fields.
	procWith := func(fields string) []byte {
		return rawRecord(recProcess, []byte(`{"arch":1,"page_size":4096,`+vmas+`,`+fields+`}`))
	}
	threadWith := func(s string) []byte { return rawRecord(recThread, []byte(s)) }
	proc := procWith(`"threads":1`)
	thread := threadWith(`{"tid":1,"regs":"AQ=="}`)
	thread2 := threadWith(`{"tid":2,"regs":"AQ=="}`)
	meta := concat(proc, thread)
	// A process with two threads and a file whose contents are blob 7.
	meta2 := concat(procWith(`"threads":2,`+files), thread, thread2)
	page := make([]byte, 4096)
	pages := rawRecord(recPages, rawPages(8192, 1, 4096, compNone, page))
	end := rawRecord(recEnd, rawEnd(1, 1))
	blob7 := rawBlob(7, 0, []byte("hello"))
	end7 := rawRecord(recEnd, rawEnd(1, 1, 1, 5))
	tail := rawRecord(recTail, []byte(`{"pending":[]}`))
	compress := func(n int) []byte {
		dst := make([]byte, lz4.CompressBlockBound(n))
		m, err := lz4.CompressBlock(bytes.Repeat([]byte("cryo"), n/4), dst, nil)
		if err != nil {
			t.Fatal(err)
		}
		return dst[:m]
	}
	onePage, twoPages := compress(4096), compress(8192)
	metaWith := func(s string) []byte { return concat(rawRecord(recProcess, []byte(s)), thread) }
	bigVDSO := base64.StdEncoding.EncodeToString(make([]byte, maxVDSO+1))
	for _, tc := range []struct {
		name string
		img  []byte
		want string // "" for a valid image
	}{
		{"valid", concat(hdr, meta, pages, end), ""},
		{"valid with blob and tail", concat(hdr, meta2, blob7, pages, tail, end7), ""},
		{"valid blob in three records", concat(hdr, meta2, rawBlob(7, 0, []byte("he")), rawBlob(7, 2, nil), rawBlob(7, 2, []byte("llo")), pages, rawRecord(recEnd, rawEnd(1, 1, 3, 5))), ""},
		{"valid blob without pages", concat(hdr, meta2, blob7, rawRecord(recEnd, rawEnd(0, 0, 1, 5))), ""},
		{"spanning adjacent VMAs", concat(hdr, metaWith(`{"arch":1,"page_size":4096,"threads":1,"vmas":[{"start":4096,"end":8192},{"start":8192,"end":12288}]}`),
			rawRecord(recPages, rawPages(4096, 2, 8192, compNone, make([]byte, 8192))), rawRecord(recEnd, rawEnd(1, 2))), "pages [0x1000-0x3000) run past the end of their mapping [0x1000-0x2000)"},
		{"unknown arch", concat(rawHeader(Version, 9, 4096, 0), meta, end), "unknown architecture 9"},
		{"page size", concat(rawHeader(Version, ArchAMD64, 12288, 0), meta, end), "invalid page size 12288"},
		{"small page size", concat(rawHeader(Version, ArchAMD64, 2048, 0), meta, end), "invalid page size 2048"},
		{"flags", concat(rawHeader(Version, ArchAMD64, 4096, 0x10), meta, end), "unknown flags 0x10"},

		// Order.
		{"PAGES first", concat(hdr, pages, end), "record #0 is PAGES, want PROCESS first"},
		{"THREAD first", concat(hdr, thread, proc, end), "record #0 is THREAD, want PROCESS first"},
		{"two PROCESS", concat(hdr, meta, proc, end), "record #2 is PROCESS, want PAGES or END"},
		{"THREAD count short", concat(hdr, procWith(`"threads":2`), thread, pages, end), "record #2 is PAGES, want THREAD 2 of 2"},
		{"THREAD count short at END", concat(hdr, procWith(`"threads":2`), thread, end), "record #2 is END, want THREAD 2 of 2"},
		{"THREAD count long", concat(hdr, meta, thread2, pages, end), "record #2 is a THREAD record beyond the 1 the PROCESS record announces"},
		{"THREAD after the blobs", concat(hdr, meta2, blob7, thread, end7), "record #4 is a THREAD record beyond the 2"},
		{"BLOB after PAGES", concat(hdr, meta, pages, rawBlob(1, 0, []byte("x")), rawRecord(recEnd, rawEnd(1, 1, 1, 1))), "record #3 is a BLOB after the pages: blobs come before them"},
		{"BLOB after PAGES, named by a file", concat(hdr, meta2, pages, blob7, end7), "file id 1 names blob 7, which the image does not hold"},
		{"BLOB after TAIL", concat(hdr, meta, tail, rawBlob(1, 0, nil), end), "record #3 is BLOB, want END after the TAIL record"},
		{"BLOB before THREAD", concat(hdr, procWith(`"threads":1`), blob7, thread, end), "record #1 is BLOB, want THREAD 1 of 1"},
		{"PAGES after TAIL", concat(hdr, meta, tail, pages, end), "record #3 is PAGES, want END after the TAIL record"},
		{"TAIL without pages", concat(hdr, meta, tail, rawRecord(recEnd, rawEnd(0, 0))), ""},
		{"two TAIL", concat(hdr, meta, tail, tail, end), "record #3 is a second TAIL record"},
		{"blob id back", concat(hdr, meta, rawBlob(1, 0, []byte("ab")), rawBlob(2, 0, []byte("x")), rawBlob(1, 2, []byte("cd"))),
			"record #4 (BLOB): blob 1 comes back after blob 2: a blob's records must be consecutive"},
		{"blob id back at 0", concat(hdr, meta, rawBlob(1, 0, nil), rawBlob(2, 0, nil), rawBlob(1, 0, nil)), "blob 1 comes back after blob 2"},
		{"blob id 0", concat(hdr, meta, rawBlob(0, 0, []byte("ab"))), "record #2 (BLOB): blob id 0 is reserved"},
		{"blob id 0 after another", concat(hdr, meta, rawBlob(1, 0, []byte("ab")), rawBlob(0, 0, nil)), "record #3 (BLOB): blob id 0 is reserved"},

		// Damage.
		{"blob gap", concat(hdr, meta2, rawBlob(7, 0, []byte("he")), rawBlob(7, 3, []byte("lo"))), "record #4 (BLOB): blob 7 continues at offset 3, want 2: its records must be contiguous"},
		{"blob overlap", concat(hdr, meta2, rawBlob(7, 0, []byte("he")), rawBlob(7, 1, []byte("ello"))), "blob 7 continues at offset 1, want 2"},
		{"blob repeated", concat(hdr, meta2, blob7, blob7), "blob 7 continues at offset 0, want 5"},
		{"blob not from 0", concat(hdr, meta2, rawBlob(7, 5, []byte("hello"))), "record #3 (BLOB): blob 7 starts at offset 5, want 0"},
		{"blob missing", concat(hdr, meta2, pages, end), "record #0 (PROCESS): file id 1 names blob 7, which the image does not hold"},
		{"blob missing, other there", concat(hdr, meta2, rawBlob(8, 0, nil), end), "file id 1 names blob 7"},
		{"END blob records", concat(hdr, meta2, blob7, pages, rawRecord(recEnd, rawEnd(1, 1, 2, 5))), "record #5 (END) announces 2 BLOB records of 5 bytes, the image holds 1 of 5"},
		{"END blob bytes", concat(hdr, meta2, blob7, pages, rawRecord(recEnd, rawEnd(1, 1, 1, 6))), "announces 1 BLOB records of 6 bytes, the image holds 1 of 5"},
		{"END without blob counts", concat(hdr, meta2, blob7, pages, end), "announces 0 BLOB records of 0 bytes, the image holds 1 of 5"},
		{"END counts blobs not there", concat(hdr, meta, pages, end7), "announces 1 BLOB records of 5 bytes, the image holds 0 of 0"},

		// The PROCESS and THREAD records.
		{"bad JSON", concat(hdr, metaWith(`{"arch":1,`), end), "decoding metadata"},
		{"JSON trailing data", concat(hdr, metaWith(`{"arch":1,"page_size":4096,"threads":1} {}`), end), "decoding metadata"},
		{"JSON wrong type", concat(hdr, metaWith(`{"arch":"amd64","page_size":4096,"threads":1}`), end), "decoding metadata"},
		{"v1 names", concat(hdr, metaWith(`{"Arch":1,"PageSize":4096,"Threads":1}`), end), "metadata page size 0 does not match the image header's 4096"},
		{"arch mismatch", concat(hdr, metaWith(`{"arch":2,"page_size":4096,"threads":1}`), end), "metadata architecture arm64 does not match the image header's amd64"},
		{"page size mismatch", concat(hdr, metaWith(`{"arch":1,"page_size":16384,"threads":1}`), end), "metadata page size 16384"},
		{"no threads field", concat(hdr, metaWith(`{"arch":1,"page_size":4096}`), end), "record #0 (PROCESS): the process has 0 threads: want 1 to 4194304"},
		{"threads 0", concat(hdr, procWith(`"threads":0`), end), "the process has 0 threads"},
		{"threads negative", concat(hdr, procWith(`"threads":-1`), thread, end), "the process has -1 threads"},
		{"threads huge", concat(hdr, procWith(fmt.Sprintf(`"threads":%d`, maxThreads+1)), thread, end), fmt.Sprintf("the process has %d threads: want 1 to %d", maxThreads+1, maxThreads)},
		{"threads enormous", concat(hdr, procWith(`"threads":1099511627776`), thread, end), "the process has 1099511627776 threads"},
		{"threads not a number", concat(hdr, procWith(`"threads":"2"`), thread, end), "decoding metadata"},
		{"fd at missing file", concat(hdr, procWith(`"threads":1,"files":[{"id":1}],"fds":[{"fd":0,"file":1},{"fd":1,"file":2}]`), thread, end),
			"record #0 (PROCESS): fd 1 points at file id 2, which the image does not hold"},
		{"fd without files", concat(hdr, procWith(`"threads":1,"fds":[{"fd":0,"file":0}]`), thread, end), "fd 0 points at file id 0"},
		{"duplicate file id", concat(hdr, procWith(`"threads":1,"files":[{"id":1},{"id":3},{"id":1}]`), thread, end), "record #0 (PROCESS): file id 1 appears twice"},
		{"duplicate fd", concat(hdr, procWith(`"threads":1,"files":[{"id":1}],"fds":[{"fd":3,"file":1},{"fd":3,"file":1}]`), thread, end), "fd 3 is invalid or appears twice"},
		{"negative fd", concat(hdr, procWith(`"threads":1,"files":[{"id":1}],"fds":[{"fd":-1,"file":1}]`), thread, end), "fd -1 is invalid"},
		{"lock through missing file", concat(hdr, procWith(`"threads":1,"files":[{"id":1}],"locks":[{"kind":"flock","file":4}]`), thread, end),
			"a flock lock is taken through file id 4, which the image does not hold"},
		{"vdso too big", concat(hdr, procWith(`"threads":1,"vdso":"`+bigVDSO+`"`), thread, end), fmt.Sprintf("the vdso copy is %d bytes, more than %d", maxVDSO+1, maxVDSO)},
		{"guard outside VMA", concat(hdr, procWith(`"threads":1,"vmas":[{"start":4096,"end":8192,"guards":[[4096,12288]]}]`), thread, end), "has an invalid guard region [0x1000-0x3000)"},
		{"guard unaligned", concat(hdr, procWith(`"threads":1,"vmas":[{"start":4096,"end":16384,"guards":[[4096,4097]]}]`), thread, end), "invalid guard region"},
		{"thread bad JSON", concat(hdr, proc, threadWith(`{"tid":`), end), "record #1 (THREAD)"},
		{"thread tid 0", concat(hdr, proc, threadWith(`{"regs":"AQ=="}`), end), "record #1 (THREAD): thread id 0 is invalid"},
		{"thread no regs", concat(hdr, proc, threadWith(`{"tid":5}`), end), "record #1 (THREAD): thread 5 has no registers"},
		{"thread twice", concat(hdr, procWith(`"threads":2`), thread, thread, end), "record #2 (THREAD): thread id 1 appears twice"},
		{"VMA inverted", concat(hdr, metaWith(`{"arch":1,"page_size":4096,"threads":1,"vmas":[{"start":8192,"end":4096}]}`), end), "VMA 0 [0x2000-0x1000) \"\" is empty or inverted"},
		{"VMA empty", concat(hdr, metaWith(`{"arch":1,"page_size":4096,"threads":1,"vmas":[{"start":8192,"end":8192}]}`), end), "is empty"},
		{"VMA unaligned", concat(hdr, metaWith(`{"arch":1,"page_size":4096,"threads":1,"vmas":[{"start":4096,"end":8193}]}`), end), "not aligned"},
		{"VMA overlap", concat(hdr, metaWith(`{"arch":1,"page_size":4096,"threads":1,"vmas":[{"start":4096,"end":16384},{"start":8192,"end":20480}]}`), end), "VMA 1 [0x2000-0x5000) \"\" overlaps"},
		{"VMA unsorted", concat(hdr, metaWith(`{"arch":1,"page_size":4096,"threads":1,"vmas":[{"start":16384,"end":20480},{"start":4096,"end":8192}]}`), end), "overlaps or precedes"},
		{"bad TAIL", concat(hdr, meta, rawRecord(recTail, []byte(`{"pending":7}`)), end), "record #2 (TAIL)"},

		// The pages.
		{"pages outside VMAs", concat(hdr, meta, rawRecord(recPages, rawPages(1<<20, 1, 4096, compNone, page)), end), "outside the process's mappings"},
		{"pages across a hole", concat(hdr, meta, rawRecord(recPages, rawPages(1<<20-4096, 2, 8192, compNone, make([]byte, 8192))), rawRecord(recEnd, rawEnd(1, 2))), "run past the end of their mapping [0x1000-0x100000)"},
		{"pages unaligned", concat(hdr, meta, rawRecord(recPages, rawPages(8193, 1, 4096, compNone, page)), end), "not aligned"},
		{"no pages", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 0, 0, compNone, page[:1])), end), "no pages"},
		{"short raw data", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 1, 4096, compNone, page[:4095])), end), "4095 bytes of uncompressed data"},
		{"unknown compression", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 1, 4096, 5, page)), end), "unknown compression 5"},
		{"bad lz4", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 1, 4096, compLZ4, bytes.Repeat([]byte{0xff}, 100))), end), "decompressing"},
		{"short lz4", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 2, 8192, compLZ4, onePage)), rawRecord(recEnd, rawEnd(1, 2))), "decompressed to 4096 bytes, want 8192"},
		{"long lz4", concat(hdr, meta, rawRecord(recPages, rawPages(8192, 1, 4096, compLZ4, twoPages)), end), "decompressing"},
		{"unknown record", concat(hdr, meta, rawRecord(9, []byte("x"))), "record #2 has unknown type 9"},

		// The end.
		{"END counts", concat(hdr, meta, pages, rawRecord(recEnd, rawEnd(2, 1))), "announces 2 PAGES records and 1 pages, the image holds 1 and 1"},
		{"END pages", concat(hdr, meta, pages, rawRecord(recEnd, rawEnd(1, 5))), "announces 1 PAGES records and 5 pages"},
		{"no END", concat(hdr, meta, pages), "truncated after record #2 (no END record)"},
		{"no END after blobs", concat(hdr, meta2, blob7), "truncated after record #3 (no END record)"},
		{"data after END", concat(hdr, meta, pages, end, []byte{0}), "unexpected data after the END record"},
		{"record after END", concat(hdr, meta, pages, end, pages), "unexpected data after the END record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readAll(bytes.NewReader(tc.img))
			// Skipping the blobs finds the same.
			_, _, err2 := readImage(bytes.NewReader(tc.img))
			if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
				t.Errorf("reading the blobs: %v; skipping them: %v", err, err2)
			}
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
	img, p, c := smallImageContents(t)
	r, err := NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "before Meta") {
		t.Fatalf("Next before Meta: %v", err)
	}
	if _, _, _, err := r.NextBlob(); err == nil || !strings.Contains(err.Error(), "NextBlob called before Meta") {
		t.Fatalf("NextBlob before Meta: %v", err)
	}
	m1, err := r.Meta()
	if err != nil || !reflect.DeepEqual(m1, p) {
		t.Fatalf("Meta: %v", err)
	}
	if m2, err := r.Meta(); m2 != m1 || err != nil {
		t.Fatalf("second Meta: %p %v", m2, err)
	}
	// The first chunk of blob 1, then Next skips the rest.
	if id, off, data, err := r.NextBlob(); err != nil || id != 1 || off != 0 || !bytes.Equal(data, c.blobs[0].data[:200]) {
		t.Fatalf("NextBlob: %d %d %d bytes %v", id, off, len(data), err)
	}
	if vaddr, _, err := r.Next(); err != nil || vaddr != c.segs[0].vaddr {
		t.Fatalf("Next: %#x %v", vaddr, err)
	}
	if _, _, _, err := r.NextBlob(); err != io.EOF {
		t.Fatalf("NextBlob after Next: %v", err)
	}
	for {
		if _, _, err := r.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if r.Tail() == nil {
		t.Error("no Tail")
	}
	if _, _, _, err := r.NextBlob(); err != io.EOF {
		t.Fatalf("NextBlob after the end: %v", err)
	}

	// All the blobs, then EOF until Next.
	r, _ = NewReader(bytes.NewReader(img))
	r.Meta()
	for range 2 {
		if _, _, _, err := r.NextBlob(); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, _, _, err := r.NextBlob(); err != io.EOF {
			t.Fatalf("NextBlob after the blobs: %v", err)
		}
	}
	if vaddr, _, err := r.Next(); err != nil || vaddr != c.segs[0].vaddr {
		t.Fatalf("Next after the blobs: %#x %v", vaddr, err)
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
	if _, _, _, err := r.NextBlob(); err != first {
		t.Fatalf("after %v, NextBlob returned %v", first, err)
	}
	offs := recordOffsets(img)
	bad = bytes.Clone(img)
	bad[offs[4]+recordHeaderSize] ^= 1 // the first BLOB record
	r, _ = NewReader(bytes.NewReader(bad))
	r.Meta()
	_, _, _, first = r.NextBlob()
	if first == nil || !strings.Contains(first.Error(), "record #4 (BLOB) is corrupt") {
		t.Fatalf("corrupt BLOB: %v", first)
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
	if _, _, _, err := r.NextBlob(); !isTruncated(err) {
		t.Fatalf("NextBlob after a failed Meta: %v", err)
	}
}

func TestReadError(t *testing.T) {
	img, _, _ := smallImage(t)
	boom := errors.New("disk on fire")
	offs := recordOffsets(img)
	for _, n := range []int{4, headerSize + 3, offs[1] + 3, offs[4] + 20, len(img) - 3, len(img)} {
		r := io.MultiReader(bytes.NewReader(img[:n]), iotest.ErrReader(boom))
		if _, _, err := readAll(r); !errors.Is(err, boom) {
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

// The TAIL record comes back through Reader.Tail after the pages, and
// only then.
func TestTailRecord(t *testing.T) {
	p := &Process{Arch: ArchAMD64, PageSize: 4096, VMAs: []VMA{{Start: 0x10000, End: 0x12000, Kind: VMAAnon, Prot: 3}},
		Threads: []Thread{{Tid: 1, Regs: []byte{1}}}}
	tail := testTail()
	img := writeImage(t, p, contents{segs: []segment{{0x10000, bytes.Repeat([]byte{7}, 4096)}}, tail: tail}, writeOpts{})
	r, err := NewReader(bytes.NewReader(img))
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
		if r.Tail() != nil {
			t.Error("Tail before the end of the pages")
		}
	}
	if got := r.Tail(); !reflect.DeepEqual(got, tail) {
		t.Errorf("Tail() = %+v, want %+v", got, tail)
	}
}
