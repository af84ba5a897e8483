package image

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzReader")

// seedImages are small valid (and one truncated) images for the fuzzer,
// with a record of every type between them. They are kept small, as the
// time the fuzzer spends minimizing an input grows with the square of
// its size.
func seedImages(t testing.TB) map[string][]byte {
	rng := rand.New(rand.NewPCG(11, 12))
	p := &Process{
		Arch: ArchAMD64, PageSize: 4096, Pid: 7, Comm: "a",
		VMAs:    []VMA{{Start: 0x1000, End: 0x5000, Prot: 3, Kind: VMAAnon}, {Start: 0x5000, End: 0x6000, Prot: 1, Kind: VMAFilePrivate, Path: "/x"}},
		Threads: []Thread{{Tid: 7, Regs: []byte{1, 2}}, {Tid: 8, Regs: []byte{3}}},
		Files:   []File{{ID: 1, Kind: FileStd}, {ID: 2, Kind: FileReg, Path: "/y", Blob: 3}},
		FDs:     []FD{{Num: 1, File: 1}, {Num: 2, File: 1}, {Num: 3, File: 2}},
		Locks:   []Lock{{Kind: LockFlock, File: 2}},
	}
	page := func() []byte {
		b := sparseBytes(rng, 4096)
		copy(b[100:], textBytes(rng, 50))
		return b
	}
	small := writeOpts{chunk: 4096, jobs: 1, blobChunk: 16}
	blobs := []blob{{3, []byte("the contents of /y, in three records")}, {4, nil}}
	pages := writeImage(t, p, contents{blobs: blobs, segs: []segment{{0x1000, concat(page(), page())}, {0x5000, page()}}}, small)
	raw := writeImage(t, p, contents{blobs: blobs[:1], segs: []segment{{0x3000, randomBytes(rng, 4096)}}}, small)
	tail := writeImage(t, p, contents{blobs: blobs, tail: &Tail{Pending: []Siginfo{{Tid: 8, Raw: [128]byte{10}}}}}, small)
	arm := &Process{Arch: ArchARM64, PageSize: 16384, VMAs: []VMA{{Start: 0x10000, End: 0x20000}}, Threads: []Thread{{Tid: 1, Regs: []byte{0}}}}
	empty := buildImage(t, arm, nil, 16384, 1)
	return map[string][]byte{
		"pages":     pages,
		"raw":       raw,
		"tail":      tail,
		"empty":     empty,
		"truncated": pages[:len(pages)-recordHeaderSize-endPayloadSize],
	}
}

// fixChecksums recomputes the header and record checksums of what looks
// like an image, so the fuzzer gets past them to the code behind.
func fixChecksums(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) < headerSize {
		return b
	}
	le.PutUint32(b[24:], checksum(b[:24]))
	for off := headerSize; off+recordHeaderSize <= len(b); {
		n := int(le.Uint32(b[off+4:]))
		if n > len(b)-off-recordHeaderSize {
			break
		}
		payload := b[off+recordHeaderSize : off+recordHeaderSize+n]
		le.PutUint32(b[off+8:], checksum(payload))
		off += recordHeaderSize + n
	}
	return b
}

func FuzzReader(f *testing.F) {
	for _, img := range seedImages(f) {
		f.Add(img)
	}
	f.Add([]byte("CRYOIMG\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, data)
		fuzzRead(t, fixChecksums(data))
	})
}

// fuzzRead reads an arbitrary image, with NextBlob and without; when it
// is valid, writing its contents again must give an image that reads
// back the same.
func fuzzRead(t *testing.T, data []byte) {
	p, c, err := readAll(bytes.NewReader(data))
	// Skipping the blobs finds the same pages, or the same error.
	p1, segs1, err1 := readImage(bytes.NewReader(data))
	if (err == nil) != (err1 == nil) || (err != nil && err.Error() != err1.Error()) {
		t.Fatalf("reading the blobs: %v; skipping them: %v", err, err1)
	}
	if err != nil {
		if strings.Contains(err.Error(), "NextBlob broke its promises") {
			t.Fatal(err)
		}
		return
	}
	if !reflect.DeepEqual(p, p1) || !reflect.DeepEqual(c.segs, segs1) {
		t.Fatal("skipping the blobs changed what was read")
	}
	ps := p.PageSize
	for _, s := range c.segs {
		if len(s.data) == 0 || len(s.data)%ps != 0 || len(s.data) > MaxPagesChunk {
			t.Fatalf("chunk of %d bytes", len(s.data))
		}
	}
	if len(p.Threads) != p.NumThreads {
		t.Fatalf("%d threads read, %d announced", len(p.Threads), p.NumThreads)
	}
	img := writeImage(t, p, c, writeOpts{chunk: 3 * ps, jobs: 2, blobChunk: 5})
	p2, c2, err := readAll(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("rewritten image: %v", err)
	}
	if !reflect.DeepEqual(p, p2) {
		t.Fatalf("metadata changed when rewritten:\n%+v\n%+v", p, p2)
	}
	if !reflect.DeepEqual(c.blobs, c2.blobs) {
		t.Fatal("blobs changed when rewritten")
	}
	if !reflect.DeepEqual(c.tail, c2.tail) {
		t.Fatalf("tail changed when rewritten:\n%+v\n%+v", c.tail, c2.tail)
	}
	if !reflect.DeepEqual(memory(c.segs, ps), memory(c2.segs, ps)) {
		t.Fatal("pages changed when rewritten")
	}
}

// TestFuzzCorpus checks that the checked-in seed corpus is made of valid
// corpus files holding the images expected (go test runs the corpus
// through FuzzReader by itself). With -update-corpus it writes the
// corpus anew from seedImages.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	seeds := seedImages(t)
	if *updateCorpus {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, img := range seeds {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", img)
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name := range seeds {
		content, err := os.ReadFile(filepath.Join(dir, "seed-"+name))
		if err != nil {
			t.Fatalf("%v (run go test -run TestFuzzCorpus -update-corpus)", err)
		}
		lines := strings.Split(string(content), "\n")
		if len(lines) != 3 || lines[0] != "go test fuzz v1" || lines[2] != "" ||
			!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasSuffix(lines[1], ")") {
			t.Fatalf("seed-%s is not a corpus file", name)
		}
		img, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("seed-%s: %v", name, err)
		}
		_, _, err = readImage(strings.NewReader(img))
		if name == "truncated" {
			if !isTruncated(err) {
				t.Errorf("seed-%s: got %v, want a truncation error", name, err)
			}
		} else if err != nil {
			t.Errorf("seed-%s: %v", name, err)
		}
	}
}
