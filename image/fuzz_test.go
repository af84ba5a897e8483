package image

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzReader")

// seedImages are small valid (and one truncated) images for the fuzzer.
// They are kept small, as the time the fuzzer spends minimizing an input
// grows with the square of its size.
func seedImages(t testing.TB) map[string][]byte {
	rng := rand.New(rand.NewPCG(11, 12))
	p := &Process{
		Arch: ArchAMD64, PageSize: 4096, Pid: 7, Comm: "a",
		VMAs:    []VMA{{Start: 0x1000, End: 0x5000, Prot: 3, Kind: VMAAnon}, {Start: 0x5000, End: 0x6000, Prot: 1, Kind: VMAFilePrivate, Path: "/x"}},
		Threads: []Thread{{Tid: 7, Regs: []byte{1, 2}}},
		FDs:     []FD{{Num: 1, Kind: FDInherit}},
	}
	page := func() []byte {
		b := sparseBytes(rng, 4096)
		copy(b[100:], textBytes(rng, 50))
		return b
	}
	pages := buildImage(t, p, []segment{{0x1000, concat(page(), page())}, {0x5000, page()}}, 4096, 1)
	raw := buildImage(t, p, []segment{{0x3000, randomBytes(rng, 4096)}}, 4096, 1)
	arm := &Process{Arch: ArchARM64, PageSize: 16384, VMAs: []VMA{{Start: 0x10000, End: 0x20000}}}
	empty := buildImage(t, arm, nil, 16384, 1)
	return map[string][]byte{
		"pages":     pages,
		"raw":       raw,
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

// fuzzRead reads an arbitrary image; when it is valid, writing its
// contents again must give an image that reads back the same.
func fuzzRead(t *testing.T, data []byte) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return
	}
	p, err := r.Meta()
	if err != nil {
		return
	}
	var segs []segment
	for {
		vaddr, chunk, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
		if len(chunk) == 0 || len(chunk)%r.PageSize() != 0 || len(chunk) > MaxPagesChunk {
			t.Fatalf("chunk of %d bytes", len(chunk))
		}
		segs = append(segs, segment{vaddr, bytes.Clone(chunk)})
	}
	img := buildImage(t, p, segs, 3*r.PageSize(), 2)
	p2, segs2, err := readImage(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("rewritten image: %v", err)
	}
	if !reflect.DeepEqual(p, p2) {
		t.Fatalf("metadata changed when rewritten:\n%+v\n%+v", p, p2)
	}
	if !reflect.DeepEqual(memory(segs, r.PageSize()), memory(segs2, r.PageSize())) {
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
