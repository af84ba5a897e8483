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
	readBlobs
	readPages
	readDone
)

// A Reader reads an image stream: NewReader checks the header, Meta
// returns the process metadata (the PROCESS and THREAD records), NextBlob
// returns the blobs one record at a time until io.EOF, then Next returns
// the pages one record at a time until io.EOF (skipping any blob not
// read).
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

	records, pages        uint64
	blobRecords, blobSize uint64
	blobID, blobOff       uint64          // the blob being read
	blobIDs               map[uint64]bool // every blob met so far
	tail                  *Tail
	// skim: PAGES records are checked but not decompressed (Summarize);
	// stored counts the bytes of their payloads.
	skim   bool
	stored uint64

	// held is the record that ended the blobs, read by NextBlob and left
	// for Next. Its payload is r.payload, untouched until Next reads
	// another record.
	held     bool
	heldType uint32
	heldData []byte
	heldIdx  int

	// trailer, when set, reads what follows the END record instead of
	// requiring the stream to end there (StreamHead.NewReader).
	trailer func(*bufio.Reader) error
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

// Meta reads the process metadata: the PROCESS record and the THREAD
// records it announces, into Process.Threads. It must be called before
// NextBlob and Next; later calls return the same Process. Besides
// decoding it, Meta checks that it agrees with the header, that its VMAs
// are sorted, disjoint, non-empty and page-aligned, that every fd and
// lock names a file it holds, and that the threads have distinct ids and
// registers.
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
	r.state = readBlobs
	return p, nil
}

func (r *Reader) readMeta() (*Process, error) {
	typ, payload, err := r.record()
	if err != nil {
		return nil, err
	}
	if typ != recProcess {
		return nil, fmt.Errorf("record #0 is %s, want PROCESS first", recordName(typ))
	}
	p := new(Process)
	if err := json.Unmarshal(payload, p); err != nil {
		return nil, fmt.Errorf("record #0 (PROCESS): decoding metadata: %w", err)
	}
	if err := validateProcess(p, r.h.arch, int(r.h.pageSize)); err != nil {
		return nil, fmt.Errorf("record #0 (PROCESS): %w", err)
	}
	// The threads follow; the slice grows with the records really read,
	// not with the count announced.
	seen := map[int]bool{}
	for t := 0; t < p.NumThreads; t++ {
		i := r.index
		typ, payload, err := r.record()
		if err != nil {
			return nil, err
		}
		if typ != recThread {
			return nil, fmt.Errorf("record #%d is %s, want THREAD %d of %d", i, recordName(typ), t+1, p.NumThreads)
		}
		var th Thread
		if err := json.Unmarshal(payload, &th); err != nil {
			return nil, fmt.Errorf("record #%d (THREAD): %w", i, err)
		}
		if err := validateThread(&th, seen); err != nil {
			return nil, fmt.Errorf("record #%d (THREAD): %w", i, err)
		}
		p.Threads = append(p.Threads, th)
	}
	return p, nil
}

// NextBlob returns the next chunk of a blob: the blob's id (never 0), the
// offset of the chunk in it, and its bytes (possibly none), valid until
// the next call. Chunks of one blob come in order and contiguous, and a
// blob's chunks are not interleaved with another's. After the last BLOB
// record, once every blob a File names has been met, NextBlob returns
// io.EOF, and Next the pages.
func (r *Reader) NextBlob() (id, off uint64, data []byte, err error) {
	if r.err != nil {
		return 0, 0, nil, r.err
	}
	switch r.state {
	case readMeta:
		return 0, 0, nil, errors.New("NextBlob called before Meta")
	case readPages, readDone:
		return 0, 0, nil, io.EOF
	}
	i := r.index
	typ, payload, err := r.record()
	if err != nil {
		r.err = err
		return 0, 0, nil, err
	}
	if typ != recBlob {
		// The blobs are over: every blob a file names must have come.
		if err := checkFileBlobs(r.meta.Files, func(id uint64) bool { return r.blobIDs[id] }); err != nil {
			r.err = fmt.Errorf("record #0 (PROCESS): %w", err)
			return 0, 0, nil, r.err
		}
		r.held, r.heldType, r.heldIdx, r.heldData = true, typ, i, payload
		r.state = readPages
		return 0, 0, nil, io.EOF
	}
	id, off = le.Uint64(payload[0:]), le.Uint64(payload[8:])
	// Checked on every record: 0 is also r.blobID before the first blob.
	if id == 0 {
		r.err = fmt.Errorf("record #%d (BLOB): blob id 0 is reserved", i)
		return 0, 0, nil, r.err
	}
	if id != r.blobID {
		if r.blobIDs[id] {
			r.err = fmt.Errorf("record #%d (BLOB): blob %d comes back after blob %d: a blob's records must be consecutive", i, id, r.blobID)
			return 0, 0, nil, r.err
		}
		if r.blobIDs == nil {
			r.blobIDs = map[uint64]bool{}
		}
		r.blobIDs[id] = true
		r.blobID, r.blobOff = id, 0
	}
	if off != r.blobOff {
		if r.blobOff == 0 {
			r.err = fmt.Errorf("record #%d (BLOB): blob %d starts at offset %d, want 0", i, id, off)
		} else {
			r.err = fmt.Errorf("record #%d (BLOB): blob %d continues at offset %d, want %d: its records must be contiguous", i, id, off, r.blobOff)
		}
		return 0, 0, nil, r.err
	}
	data = payload[blobHeaderSize:]
	r.blobOff += uint64(len(data))
	r.blobRecords++
	r.blobSize += uint64(len(data))
	return id, off, data, nil
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
	case readBlobs:
		for {
			if _, _, _, err := r.NextBlob(); err == io.EOF {
				break
			} else if err != nil {
				return 0, nil, err
			}
		}
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
	var typ uint32
	var payload []byte
	if r.held {
		r.held = false
		i, typ, payload = r.heldIdx, r.heldType, r.heldData
		r.heldData = nil
	} else {
		var err error
		if typ, payload, err = r.record(); err != nil {
			return 0, nil, err
		}
	}
	if r.tail != nil && typ != recEnd {
		// The TAIL is read last at freeze: only END may follow it.
		if typ == recTail {
			return 0, nil, fmt.Errorf("record #%d is a second TAIL record", i)
		}
		return 0, nil, fmt.Errorf("record #%d is %s, want END after the TAIL record", i, recordName(typ))
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
		blobRecs, blobSize := le.Uint64(payload[16:]), le.Uint64(payload[24:])
		if blobRecs != r.blobRecords || blobSize != r.blobSize {
			return 0, nil, fmt.Errorf("record #%d (END) announces %d BLOB records of %d bytes, the image holds %d of %d", i, blobRecs, blobSize, r.blobRecords, r.blobSize)
		}
		if r.trailer != nil {
			if err := r.trailer(r.r); err != nil {
				return 0, nil, err
			}
			return 0, nil, nil
		}
		if _, err := r.r.ReadByte(); err != io.EOF {
			if err != nil {
				return 0, nil, fmt.Errorf("reading after the END record: %w", err)
			}
			return 0, nil, errors.New("unexpected data after the END record")
		}
		return 0, nil, nil
	}
	switch typ {
	case recBlob:
		return 0, nil, fmt.Errorf("record #%d is a BLOB after the pages: blobs come before them", i)
	case recThread:
		return 0, nil, fmt.Errorf("record #%d is a THREAD record beyond the %d the PROCESS record announces", i, r.meta.NumThreads)
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
			return 0, nil, truncated("before the PROCESS record", err)
		}
		return 0, nil, truncated(fmt.Sprintf("after record #%d (no END record)", i-1), err)
	}
	typ, n, sum := le.Uint32(h[0:]), le.Uint32(h[4:]), le.Uint32(h[8:])
	var lo, hi uint64
	switch typ {
	case recProcess, recThread:
		lo, hi = 2, maxMetaSize // "{}"
	case recBlob:
		lo, hi = blobHeaderSize, blobHeaderSize+MaxPagesChunk
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
	r.stored += uint64(len(p))
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
		if r.skim {
			// Counted, not read: raw holds whatever it held.
			return vaddr, raw, nil
		}
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
