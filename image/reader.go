package image

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/pierrec/lz4/v4"
)

type readerState uint8

const (
	readMeta readerState = iota
	readPages
	readDone
)

// A Reader reads an image stream: NewReader checks the header, Meta
// returns the process metadata, then Next returns the pages one record
// at a time until io.EOF.
//
// Every length is checked against the format's limits before anything is
// allocated for it, and every record's checksum before its contents are
// used, so a damaged or hostile image yields an error, never a panic or a
// huge allocation.
type Reader struct {
	r     *bufio.Reader
	h     header
	state readerState
	err   error // sticky
	meta  *Process
	index int // of the next record; META is record 0

	payload []byte // reused for every record
	raw     []byte // reused for decompressed pages

	records, pages uint64
	tail           *Tail
}

// NewReader reads and checks the image header from r.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var b [headerSize]byte
	n, err := io.ReadFull(br, b[:len(magic)])
	if !bytes.Equal(b[:n], magic[:n]) {
		return nil, errors.New("not a cryo image (bad magic)")
	}
	if err != nil {
		return nil, truncated("in the image header", err)
	}
	if _, err := io.ReadFull(br, b[8:12]); err != nil {
		return nil, truncated("in the image header", err)
	}
	h := header{version: le.Uint32(b[8:])}
	// The version comes before the checksum: a newer version may lay the
	// rest of its header out differently.
	_, rerr := io.ReadFull(br, b[12:])
	sumOK := rerr == nil && le.Uint32(b[24:]) == checksum(b[:24])
	if h.version != Version {
		hint := ""
		if !sumOK {
			hint = " (or the image header is corrupt)"
		}
		if h.version > Version {
			return nil, fmt.Errorf("image format version %d is newer than this cryo understands (%d): use a newer cryo%s", h.version, Version, hint)
		}
		return nil, fmt.Errorf("image format version %d is not supported: this cryo reads only version %d%s", h.version, Version, hint)
	}
	if rerr != nil {
		return nil, truncated("in the image header", rerr)
	}
	if !sumOK {
		return nil, fmt.Errorf("image header is corrupt: checksum mismatch (stored 0x%08x, computed 0x%08x)", le.Uint32(b[24:]), checksum(b[:24]))
	}
	h.arch = Arch(le.Uint32(b[12:]))
	h.pageSize = le.Uint32(b[16:])
	h.flags = le.Uint32(b[20:])
	if !knownArch(h.arch) {
		return nil, fmt.Errorf("image header names an %s", archName(h.arch))
	}
	if err := checkPageSize(uint64(h.pageSize)); err != nil {
		return nil, fmt.Errorf("image header: %w", err)
	}
	if h.flags != 0 {
		return nil, fmt.Errorf("image header has unknown flags %#x", h.flags)
	}
	return &Reader{r: br, h: h}, nil
}

// Arch returns the architecture the image was frozen on.
func (r *Reader) Arch() Arch { return r.h.arch }

// PageSize returns the page size of the freezing machine.
func (r *Reader) PageSize() int { return int(r.h.pageSize) }

// Version returns the image's format version.
func (r *Reader) Version() uint32 { return r.h.version }

// truncated wraps a read error met in the middle of the image.
func truncated(where string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = io.ErrUnexpectedEOF
		return fmt.Errorf("image is truncated %s: %w", where, err)
	}
	return fmt.Errorf("reading image %s: %w", where, err)
}

// Meta reads the process metadata. It must be called before Next; later
// calls return the same Process. Besides decoding it, Meta checks that it
// agrees with the header and that its VMAs are sorted, disjoint,
// non-empty and page-aligned.
func (r *Reader) Meta() (*Process, error) {
	if r.meta != nil {
		return r.meta, nil
	}
	if r.err != nil {
		return nil, r.err
	}
	p, err := r.readMeta()
	if err != nil {
		r.err = err
		return nil, err
	}
	r.meta = p
	r.state = readPages
	return p, nil
}

func (r *Reader) readMeta() (*Process, error) {
	typ, payload, err := r.record()
	if err != nil {
		return nil, err
	}
	if typ != recMeta {
		return nil, fmt.Errorf("record #0 is %s, want META first", recordName(typ))
	}
	p := new(Process)
	if err := json.Unmarshal(payload, p); err != nil {
		return nil, fmt.Errorf("record #0 (META): decoding metadata: %w", err)
	}
	if err := validateProcess(p, r.h.arch, int(r.h.pageSize)); err != nil {
		return nil, fmt.Errorf("record #0 (META): %w", err)
	}
	return p, nil
}

// Tail returns the TAIL record, once Next has returned io.EOF; nil if the
// image has none.
func (r *Reader) Tail() *Tail {
	if r.state != readDone {
		return nil
	}
	return r.tail
}

// Next returns the next chunk of pages: their address and contents,
// whose length is a multiple of the page size. data is only valid until
// the next call to Next. After the END record, once its counts have been
// checked against the records read, Next returns io.EOF.
func (r *Reader) Next() (vaddr uint64, data []byte, err error) {
	if r.err != nil {
		return 0, nil, r.err
	}
	switch r.state {
	case readMeta:
		return 0, nil, errors.New("Next called before Meta")
	case readDone:
		return 0, nil, io.EOF
	}
	vaddr, data, err = r.next()
	if err != nil {
		r.err = err
		return 0, nil, err
	}
	if data == nil {
		r.state = readDone
		return 0, nil, io.EOF
	}
	return vaddr, data, nil
}

func (r *Reader) next() (uint64, []byte, error) {
	i := r.index
	typ, payload, err := r.record()
	if err != nil {
		return 0, nil, err
	}
	switch typ {
	case recPages:
		vaddr, data, err := r.pagesRecord(payload)
		if err != nil {
			return 0, nil, fmt.Errorf("record #%d (PAGES): %w", i, err)
		}
		r.records++
		r.pages += uint64(len(data) / int(r.h.pageSize))
		return vaddr, data, nil
	case recTail:
		if r.tail != nil {
			return 0, nil, fmt.Errorf("record #%d is a second TAIL record", i)
		}
		var t Tail
		if err := json.Unmarshal(payload, &t); err != nil {
			return 0, nil, fmt.Errorf("record #%d (TAIL): %w", i, err)
		}
		r.tail = &t
		return r.next()
	case recEnd:
		records, pages := le.Uint64(payload[0:]), le.Uint64(payload[8:])
		if records != r.records || pages != r.pages {
			return 0, nil, fmt.Errorf("record #%d (END) announces %d PAGES records and %d pages, the image holds %d and %d", i, records, pages, r.records, r.pages)
		}
		if _, err := r.r.ReadByte(); err != io.EOF {
			if err != nil {
				return 0, nil, fmt.Errorf("reading after the END record: %w", err)
			}
			return 0, nil, errors.New("unexpected data after the END record")
		}
		return 0, nil, nil
	}
	return 0, nil, fmt.Errorf("record #%d is %s, want PAGES or END", i, recordName(typ))
}

// record reads the next record and checks its length against the limits
// of its type, then its checksum.
func (r *Reader) record() (uint32, []byte, error) {
	i := r.index
	var h [recordHeaderSize]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		if i == 0 {
			return 0, nil, truncated("before the META record", err)
		}
		return 0, nil, truncated(fmt.Sprintf("after record #%d (no END record)", i-1), err)
	}
	typ, n, sum := le.Uint32(h[0:]), le.Uint32(h[4:]), le.Uint32(h[8:])
	var lo, hi uint64
	switch typ {
	case recMeta:
		lo, hi = 2, maxMetaSize // "{}"
	case recPages:
		lo, hi = pagesHeaderSize+1, pagesHeaderSize+uint64(lz4.CompressBlockBound(MaxPagesChunk))
	case recEnd:
		lo, hi = endPayloadSize, endPayloadSize
	case recTail:
		lo, hi = 2, maxMetaSize
	default:
		return 0, nil, fmt.Errorf("record #%d has unknown %s (corrupt image?)", i, recordName(typ))
	}
	if uint64(n) < lo || uint64(n) > hi {
		return 0, nil, fmt.Errorf("record #%d (%s) has an invalid payload length %d: want %d to %d", i, recordName(typ), n, lo, hi)
	}
	payload, err := r.readPayload(int(n))
	if err != nil {
		return 0, nil, truncated(fmt.Sprintf("in record #%d (%s)", i, recordName(typ)), err)
	}
	if got := checksum(payload); got != sum {
		return 0, nil, fmt.Errorf("record #%d (%s) is corrupt: checksum mismatch (stored 0x%08x, computed 0x%08x)", i, recordName(typ), sum, got)
	}
	r.index++
	return typ, payload, nil
}

// readPayload reads n bytes into the reused payload buffer. When the
// buffer has to grow it grows at most twofold per read, so a length
// promising more than the stream holds costs memory in proportion to
// what is really there.
func (r *Reader) readPayload(n int) ([]byte, error) {
	if cap(r.payload) >= n {
		b := r.payload[:n]
		_, err := io.ReadFull(r.r, b)
		return b, err
	}
	b := r.payload[:0]
	for len(b) < n {
		step := min(n-len(b), max(len(b), 64<<10))
		b = slices.Grow(b, step)
		m, err := io.ReadFull(r.r, b[len(b):len(b)+step])
		b = b[:len(b)+m]
		r.payload = b[:0]
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

// pagesRecord checks and decodes a PAGES payload.
func (r *Reader) pagesRecord(p []byte) (uint64, []byte, error) {
	vaddr := le.Uint64(p[0:])
	count := uint64(le.Uint32(p[8:]))
	rawLen := uint64(le.Uint32(p[12:]))
	comp := le.Uint32(p[16:])
	data := p[pagesHeaderSize:]
	ps := uint64(r.h.pageSize)
	switch {
	case count == 0:
		return 0, nil, errors.New("no pages")
	case rawLen != count*ps:
		return 0, nil, fmt.Errorf("raw length %d is not %d pages of %d bytes", rawLen, count, ps)
	case rawLen > MaxPagesChunk:
		return 0, nil, fmt.Errorf("raw length %d exceeds the limit of %d", rawLen, MaxPagesChunk)
	}
	if err := checkRange(r.meta.VMAs, vaddr, int(rawLen), int(ps), true); err != nil {
		return 0, nil, err
	}
	switch comp {
	case compNone:
		if uint64(len(data)) != rawLen {
			return 0, nil, fmt.Errorf("holds %d bytes of uncompressed data, want %d", len(data), rawLen)
		}
		return vaddr, data, nil
	case compLZ4:
		if uint64(len(data)) > uint64(lz4.CompressBlockBound(int(rawLen))) || rawLen > maxLZ4Ratio*uint64(len(data)) {
			return 0, nil, fmt.Errorf("%d bytes of lz4 data cannot hold %d bytes", len(data), rawLen)
		}
		if uint64(cap(r.raw)) < rawLen {
			r.raw = make([]byte, rawLen)
		}
		raw := r.raw[:rawLen]
		n, err := lz4.UncompressBlock(data, raw)
		if err != nil {
			return 0, nil, fmt.Errorf("decompressing: %w", err)
		}
		if n != len(raw) {
			return 0, nil, fmt.Errorf("decompressed to %d bytes, want %d", n, len(raw))
		}
		return vaddr, raw, nil
	}
	return 0, nil, fmt.Errorf("unknown compression %d", comp)
}
