package image

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

const benchSize = 64 << 20

// benchData is 64 MiB of process-like memory: text-like data with
// runs of random bytes, and a few mostly-zero pages (the freezer
// leaves all-zero pages out).
func benchData(kind string) []byte {
	rng := rand.New(rand.NewPCG(42, 42))
	switch kind {
	case "random":
		return randomBytes(rng, benchSize)
	case "text":
		return textBytes(rng, benchSize)
	}
	b := make([]byte, 0, benchSize)
	for len(b) < benchSize {
		switch n := 64 << 10; rng.IntN(8) {
		case 0, 1, 2:
			b = append(b, randomBytes(rng, n)...)
		case 3:
			b = append(b, sparseBytes(rng, n)...)
		default:
			b = append(b, textBytes(rng, n)...)
		}
	}
	return b[:benchSize]
}

func BenchmarkWritePages(b *testing.B) {
	for _, kind := range []string{"mixed", "random", "text"} {
		data := benchData(kind)
		p := testProcess(ArchAMD64, 4096)
		b.Run(kind, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var size int64
			for b.Loop() {
				w, err := NewWriter(io.Discard, ArchAMD64, 4096)
				if err != nil {
					b.Fatal(err)
				}
				if err := w.WriteMeta(p); err != nil {
					b.Fatal(err)
				}
				// As a freezer would: a few hundred KiB at a time.
				for off := 0; off < len(data); off += 256 << 10 {
					if err := w.WritePages(heapStart+uint64(off), data[off:off+256<<10]); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				size = w.Written()
			}
			b.ReportMetric(float64(size)/float64(len(data)), "ratio")
		})
	}
}

// BenchmarkCopy is the baseline: storing the same pages uncompressed.
func BenchmarkCopy(b *testing.B) {
	data := benchData("mixed")
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		for off := 0; off < len(data); off += len(buf) {
			copy(buf, data[off:])
			io.Discard.Write(buf)
		}
	}
}

func BenchmarkRead(b *testing.B) {
	data := benchData("mixed")
	var img bytes.Buffer
	w, _ := NewWriter(&img, ArchAMD64, 4096)
	w.WriteMeta(testProcess(ArchAMD64, 4096))
	w.WritePages(heapStart, data)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(img.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Meta(); err != nil {
			b.Fatal(err)
		}
		for {
			_, _, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkBlob writes and reads back a 64 MiB blob (an unlinked file's
// contents), which goes through in 16 MiB records without compression.
func BenchmarkBlob(b *testing.B) {
	data := benchData("mixed")
	p := testProcess(ArchAMD64, 4096)
	p.Files = append(p.Files, File{ID: 9, Kind: FileReg, Blob: 1})
	var img bytes.Buffer
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		img.Reset()
		w, err := NewWriter(&img, ArchAMD64, 4096)
		if err != nil {
			b.Fatal(err)
		}
		if err := w.WriteMeta(p); err != nil {
			b.Fatal(err)
		}
		if err := w.WriteBlob(1, data); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		r, err := NewReader(bytes.NewReader(img.Bytes()))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Meta(); err != nil {
			b.Fatal(err)
		}
		var n int
		for {
			_, _, chunk, err := r.NextBlob()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += len(chunk)
		}
		if n != len(data) {
			b.Fatalf("read %d bytes of blob, wrote %d", n, len(data))
		}
	}
}
