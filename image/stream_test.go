package image

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readStream reads the executable b as thaw - does, through a reader
// that returns little at a time (as a pipe may): skip to the image, then
// every record to io.EOF, which checks the trailer.
func readStream(b []byte) (*Process, contents, error) {
	var c contents
	r := iotest.HalfReader(bytes.NewReader(b))
	head, got, err := SkipToImage(r)
	if err != nil {
		return nil, c, err
	}
	ir, err := head.NewReader(io.MultiReader(bytes.NewReader(got), r))
	if err != nil {
		return nil, c, err
	}
	p, err := ir.Meta()
	if err != nil {
		return nil, c, err
	}
	for {
		vaddr, data, err := ir.Next()
		if err == io.EOF {
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

func TestStream(t *testing.T) {
	img, p, segs := smallImage(t)
	restorer, _ := testParts()
	exe := testExecutable(t, restorer, img)
	got, c, err := readStream(exe)
	if err != nil {
		t.Fatal(err)
	}
	if got.Pid != p.Pid || len(got.Threads) != len(p.Threads) {
		t.Errorf("metadata read back as pid %d with %d threads, want %d with %d", got.Pid, len(got.Threads), p.Pid, len(p.Threads))
	}
	if !bytes.Equal(flatten(c.segs), flatten(segs)) || c.tail == nil {
		t.Error("the pages or tail read from the stream differ from those written")
	}

	// SkipToImage found the restorer the trailer records.
	head, _, err := SkipToImage(bytes.NewReader(exe))
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := decodeTrailer(exe[len(exe)-trailerSize:], int64(len(exe)))
	if head.RestorerLen != tr.restorerLen || head.RestorerSum != tr.restorerSum {
		t.Errorf("stream head %+v, trailer %+v", head, tr)
	}
	if h2, err := ParseStreamHead(head.String()); err != nil || h2 != head {
		t.Errorf("ParseStreamHead(%q) = %+v, %v", head.String(), h2, err)
	}
	for _, s := range []string{"", "1000", "x:1", "1001:5", "0:0"} {
		if _, err := ParseStreamHead(s); err == nil {
			t.Errorf("ParseStreamHead(%q) accepted", s)
		}
	}
}

func flatten(segs []segment) []byte {
	var b []byte
	for _, s := range segs {
		b = append(b, s.data...)
	}
	return b
}

// Every stream cut short is refused, wherever the cut: in the loader, in
// the restorer, in the image, in the trailer.
func TestStreamCut(t *testing.T) {
	img, _, _ := smallImage(t)
	restorer, _ := testParts()
	exe := testExecutable(t, restorer, img)
	for n := 0; n < len(exe); n++ {
		// Every cut in the END record and trailer, a sample before.
		if n < len(exe)-trailerSize-100 && n%97 != 3 {
			continue
		}
		_, _, err := readStream(exe[:n])
		if err == nil {
			t.Fatalf("a stream cut to %d of %d bytes was accepted", n, len(exe))
		}
		if strings.Contains(err.Error(), "\n") {
			t.Fatalf("cut to %d: error of more than one line: %q", n, err)
		}
	}
	// The trailer's last byte, exactly.
	if _, _, err := readStream(exe[:len(exe)-1]); !errors.Is(err, ErrTruncated) {
		t.Errorf("cut by one byte: %v, want ErrTruncated", err)
	}
}

func TestStreamDamaged(t *testing.T) {
	img, _, _ := smallImage(t)
	restorer, _ := testParts()
	exe := testExecutable(t, restorer, img)
	tr, err := decodeTrailer(exe[len(exe)-trailerSize:], int64(len(exe)))
	if err != nil {
		t.Fatal(err)
	}
	rend := int(tr.imageOff)
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"not an executable", bytes.Repeat([]byte("x"), 9000), "no loader"},
		{"data after the trailer", append(bytes.Clone(exe), 0), "data after its trailer"},
		{"a trailer of its own", append(bytes.Clone(exe), exe[len(exe)-trailerSize:]...), "trailer"},
		{"restorer flipped", flip(exe, exeAlign+100), "restorer does not match"},
		{"trailer flipped", flip(exe, len(exe)-30), "checksum"},
		{"page record flipped", flip(exe, rend+len(img)-200), "corrupt"},
		{"no trailer", exe[:len(exe)-trailerSize], "truncated"},
		{"no restorer", append(bytes.Clone(exe[:exeAlign]), exe[rend:]...), "no restorer"},
	} {
		_, _, err := readStream(tc.b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}

	// A restorer page that starts with the image magic but no valid
	// header is restorer, not image.
	r2 := bytes.Clone(restorer)
	copy(r2[4096:], magic[:])
	if _, _, err := readStream(testExecutable(t, r2, img)); err != nil {
		t.Errorf("a restorer page starting with the image magic: %v", err)
	}
	// An image of a newer format is named so.
	newer := bytes.Clone(img)
	le.PutUint32(newer[8:], Version+1)
	if _, _, err := readStream(testExecutable(t, restorer, newer)); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer image: %v", err)
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x40
	return b
}
