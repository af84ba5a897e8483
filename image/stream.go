package image

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxStreamRestorer bounds how far SkipToImage reads looking for the
// image: a stream with no image in its first bytes is refused rather than
// read to its end.
const maxStreamRestorer = 1 << 30

// A StreamHead is what SkipToImage learnt of a self-restoring executable
// read as a stream (freeze -o - | thaw -): where its image starts and the
// restorer's sum, which the trailer at the end of the stream must repeat.
type StreamHead struct {
	RestorerLen uint64 // restorer bytes, padding included
	RestorerSum uint64 // sumWords over them
}

// String encodes h for ParseStreamHead (the launcher hands it to the
// restore helper in its environment).
func (h StreamHead) String() string {
	return strconv.FormatUint(h.RestorerLen, 16) + ":" + strconv.FormatUint(h.RestorerSum, 16)
}

// ParseStreamHead decodes StreamHead.String.
func ParseStreamHead(s string) (StreamHead, error) {
	a, b, ok := strings.Cut(s, ":")
	l, err1 := strconv.ParseUint(a, 16, 64)
	sum, err2 := strconv.ParseUint(b, 16, 64)
	if !ok || err1 != nil || err2 != nil || l == 0 || l%exeAlign != 0 {
		return StreamHead{}, fmt.Errorf("%q is not a stream head", s)
	}
	return StreamHead{RestorerLen: l, RestorerSum: sum}, nil
}

// SkipToImage reads a self-restoring executable from the stream r (a
// pipe: nothing can be read twice or from the end) up to its image: the
// loader page, which must look like one of cryo's, then the restorer's
// 4096-byte pages, summed, until a page starts with a valid image header
// (its magic and checksum: no restorer is laid out so by chance). It
// returns what it learnt and the bytes it read of the image: the image
// stream is those followed by the rest of r. Read with the
// StreamHead's NewReader, the stream is checked to its last byte: the
// records, the END record, then the trailer, which must describe exactly
// the stream read.
func SkipToImage(r io.Reader) (StreamHead, []byte, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	page := make([]byte, exeAlign)
	n, err := io.ReadFull(br, page)
	if !startsLikeLoader(page[:n]) {
		if n == 0 && err == io.EOF {
			return StreamHead{}, nil, errors.New("the stream is empty: no self-restoring executable")
		}
		return StreamHead{}, nil, errors.New("not a self-restoring executable of cryo's (no loader at its start)")
	}
	if err != nil {
		return StreamHead{}, nil, streamCut("in the loader", err)
	}
	h := StreamHead{RestorerSum: sumOffset}
	newer := uint32(0) // a version other than ours met at a page start
	for {
		n, err := io.ReadFull(br, page)
		if n >= headerSize && bytes.Equal(page[:len(magic)], magic[:]) {
			if le.Uint32(page[24:]) == checksum(page[:24]) {
				if h.RestorerLen == 0 {
					return StreamHead{}, nil, fmt.Errorf("%w: the stream has no restorer before its image", ErrDamaged)
				}
				buf, _ := br.Peek(br.Buffered())
				return h, append(page[:n:n], buf...), nil
			}
			if v := le.Uint32(page[8:]); v != Version {
				newer = v
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if newer > Version {
				return StreamHead{}, nil, fmt.Errorf("image format version %d is newer than this cryo understands (%d): use a newer cryo", newer, Version)
			}
			return StreamHead{}, nil, fmt.Errorf("%w: the stream ends after %d bytes, before its image", ErrTruncated, exeAlign+h.RestorerLen+uint64(n))
		}
		if err != nil {
			return StreamHead{}, nil, fmt.Errorf("reading the restorer: %w", err)
		}
		h.RestorerSum = sumWords(h.RestorerSum, page)
		h.RestorerLen += exeAlign
		if h.RestorerLen > maxStreamRestorer {
			return StreamHead{}, nil, fmt.Errorf("%w: no image in the first %d MiB of the stream", ErrDamaged, maxStreamRestorer>>20)
		}
	}
}

func streamCut(where string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: the stream ends %s", ErrTruncated, where)
	}
	return fmt.Errorf("reading the stream %s: %w", where, err)
}

// NewReader returns a Reader for the image stream r (from its header on,
// SkipToImage's bytes first) that, after the END record, reads the
// trailer and checks that it describes this stream: the restorer h
// found, an image of the length read, nothing after it. Until then Next
// has not returned io.EOF, so a restore that waits for it never acts on a
// stream cut short or damaged at its end.
func (h StreamHead) NewReader(r io.Reader) (*Reader, error) {
	c := &countReader{r: r}
	rd, err := NewReader(c)
	if err != nil {
		return nil, err
	}
	rd.trailer = func(br *bufio.Reader) error {
		imageLen := uint64(c.n) - uint64(br.Buffered())
		b := make([]byte, trailerSize)
		if _, err := io.ReadFull(br, b); err != nil {
			return streamCut("in its trailer", err)
		}
		if !bytes.Equal(b[56:], exeMagic[:]) {
			return fmt.Errorf("%w: no trailer after the END record", ErrDamaged)
		}
		size := exeAlign + h.RestorerLen + imageLen + trailerSize
		t, err := decodeTrailer(b, int64(size))
		if err != nil {
			return err
		}
		if t.restorerOff != exeAlign || t.restorerLen != h.RestorerLen || t.imageOff != exeAlign+h.RestorerLen {
			return fmt.Errorf("%w: its trailer places the restorer (%d bytes at %d) elsewhere than the stream did (%d bytes at %d)",
				ErrDamaged, t.restorerLen, t.restorerOff, h.RestorerLen, exeAlign)
		}
		if t.restorerSum != h.RestorerSum {
			return fmt.Errorf("%w (its restorer does not match its checksum)", ErrDamaged)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			if err != nil {
				return fmt.Errorf("reading after the trailer: %w", err)
			}
			return fmt.Errorf("%w: data after its trailer", ErrDamaged)
		}
		return nil
	}
	return rd, nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
