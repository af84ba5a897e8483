package image

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeFile(t *testing.T, parts ...[]byte) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "exe")
	if err := os.WriteFile(name, concat(parts...), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func trailerBytes(t *testing.T, offset, length int64) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteTrailer(&b, offset, length); err != nil {
		t.Fatal(err)
	}
	if b.Len() != trailerSize {
		t.Fatalf("trailer of %d bytes", b.Len())
	}
	return b.Bytes()
}

func TestEmbedded(t *testing.T) {
	// The restorer stands in as this test binary, a real ELF executable.
	exe, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Skip(err)
	}
	img, p, segs := smallImage(t)
	f := writeFile(t, exe, img, trailerBytes(t, int64(len(exe)), int64(len(img))))

	sr, err := OpenEmbedded(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(sr)
	if err != nil || !bytes.Equal(got, img) {
		t.Fatalf("section of %d bytes differs from the %d-byte image (%v)", len(got), len(img), err)
	}
	sr.Seek(0, io.SeekStart)
	gotP, gotSegs, err := readImage(sr)
	if err != nil || !reflect.DeepEqual(gotP, p) || !reflect.DeepEqual(memory(gotSegs, 4096), memory(segs, 4096)) {
		t.Fatalf("reading the embedded image: %v", err)
	}

	// The ELF headers are untouched.
	ef, err := elf.Open(f.Name())
	if err != nil {
		t.Fatalf("the executable is no longer ELF: %v", err)
	}
	ef.Close()

	// The plain restorer has no image.
	if _, err := OpenEmbedded(writeFile(t, exe)); err != ErrNoImage {
		t.Errorf("plain executable: got %v, want ErrNoImage", err)
	}
}

func TestEmbeddedInvalid(t *testing.T) {
	elfish := bytes.Repeat([]byte("\x7fELF"), 100)
	img, _, _ := smallImage(t)
	tr := func(off, n int64) []byte { return trailerBytes(t, off, n) }
	n := int64(len(img))
	for _, tc := range []struct {
		name    string
		parts   [][]byte
		want    error  // or
		msg     string // in the error, or
		section []byte // found
	}{
		{"empty", nil, ErrNoImage, "", nil},
		{"short", [][]byte{[]byte("short")}, ErrNoImage, "", nil},
		{"no trailer", [][]byte{elfish}, ErrNoImage, "", nil},
		{"image without trailer", [][]byte{elfish, img}, ErrNoImage, "", nil},
		{"image only", [][]byte{img, tr(0, n)}, nil, "", img},
		{"empty image", [][]byte{elfish, tr(400, 0)}, nil, "", []byte{}},
		{"truncated image", [][]byte{elfish, img[:100], tr(400, n)}, nil, "does not fit", nil},
		{"offset past end", [][]byte{elfish, img, tr(1<<40, n)}, nil, "does not fit", nil},
		{"huge length", [][]byte{elfish, img, tr(400, 1<<62)}, nil, "does not fit", nil},
		{"gap before trailer", [][]byte{elfish, img, []byte("xx"), tr(400, n)}, nil, "but the trailer starts at", nil},
		{"corrupt trailer", [][]byte{elfish, img, func() []byte { b := tr(400, n); b[3] ^= 1; return b }()}, nil, "trailer of", nil},
		{"bad padding", [][]byte{elfish, img, func() []byte { b := tr(400, n); b[21] = 1; return b }()}, nil, "corrupt", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sr, err := OpenEmbedded(writeFile(t, tc.parts...))
			switch {
			case tc.want != nil:
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			case tc.msg != "":
				if err == nil || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("got %v, want %q", err, tc.msg)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
				got, _ := io.ReadAll(sr)
				if !bytes.Equal(got, tc.section) {
					t.Fatalf("section of %d bytes, want %d", len(got), len(tc.section))
				}
			}
		})
	}
	if err := WriteTrailer(io.Discard, -1, 0); err == nil {
		t.Error("WriteTrailer accepted a negative offset")
	}
}
