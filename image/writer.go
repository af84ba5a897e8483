package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/pierrec/lz4/v4"
)

// writeChunk is the size of the PAGES records the Writer produces. lz4
// only looks 64 KiB back, so bigger records would not compress better;
// smaller ones spread the compression of one WritePages call over more
// goroutines and keep the Writer's memory small.
const writeChunk = 1 << 20

// maxWorkers bounds how many chunks a Writer compresses at once.
const maxWorkers = 8

type writerState uint8

const (
	wantMeta writerState = iota
	wantBlobs
	wantPages
	closed
)

// A Writer produces an image stream: NewWriter writes the header, then
// WriteMeta, any number of WriteBlob, any number of WritePages, and
// Close, in that order.
//
// Pages are copied into chunks of at most 1 MiB that are compressed
// concurrently, on up to GOMAXPROCS goroutines, and written in order;
// pages given in consecutive WritePages calls with contiguous addresses
// are gathered into the same chunk. The caller may reuse the data as
// soon as WritePages returns. A Writer is not safe for concurrent use.
type Writer struct {
	w        io.Writer
	arch     Arch
	pageSize int
	chunk    int // raw bytes per PAGES record, a multiple of pageSize
	maxJobs  int
	n        int64
	err      error // sticky: the first failure to write
	state    writerState
	vmas     []VMA // copy of the metadata's, to check the pages against

	cur   *job   // being filled, not yet compressing
	queue []*job // compressing or compressed, in record order
	free  []*job
	jobs  int // allocated

	records, pages        uint64
	blobRecords, blobSize uint64
	blobID, blobOff       uint64          // the blob being written
	blobIDs               map[uint64]bool // every blob written
	blobChunk             int             // bytes per BLOB record; tests make it small
	files                 []File          // the metadata's, to check their blobs
}

// job is one PAGES record on its way out, with the buffers and
// compressor to build it; jobs are recycled.
type job struct {
	vaddr  uint64
	vmaEnd uint64 // end of the VMA holding the pages: records stay in one
	src    []byte // the pages, up to Writer.chunk bytes
	rec    []byte // the encoded record: header, pages header, data
	done   chan struct{}
}

// compressors holds idle lz4 compressors (136 KiB each), shared by all
// Writers.
var compressors = sync.Pool{New: func() any { return new(lz4.Compressor) }}

// NewWriter writes an image header for arch and pageSize to w and
// returns a Writer for the rest of the image.
func NewWriter(w io.Writer, arch Arch, pageSize int) (*Writer, error) {
	workers := min(runtime.GOMAXPROCS(0), maxWorkers)
	return newWriter(w, arch, pageSize, writeChunk, 2*workers)
}

func newWriter(w io.Writer, arch Arch, pageSize, chunk, maxJobs int) (*Writer, error) {
	if !knownArch(arch) {
		return nil, fmt.Errorf("cannot write an image for %s", archName(arch))
	}
	if pageSize < 0 {
		return nil, fmt.Errorf("invalid page size %d", pageSize)
	}
	if err := checkPageSize(uint64(pageSize)); err != nil {
		return nil, err
	}
	chunk -= chunk % pageSize
	if chunk < pageSize {
		chunk = pageSize
	}
	iw := &Writer{w: w, arch: arch, pageSize: pageSize, chunk: min(chunk, MaxPagesChunk), maxJobs: max(maxJobs, 1), blobChunk: MaxPagesChunk}
	h := header{version: Version, arch: arch, pageSize: uint32(pageSize)}
	if err := iw.write(h.marshal()); err != nil {
		return nil, fmt.Errorf("writing image header: %w", err)
	}
	return iw, nil
}

// Written returns the number of bytes written to the underlying writer so
// far. Compressed pages may wait inside the Writer until Close; after
// Close, Written is the size of the whole image.
func (w *Writer) Written() int64 { return w.n }

func (w *Writer) write(b []byte) error {
	n, err := w.w.Write(b)
	w.n += int64(n)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = err
	}
	return err
}

func (w *Writer) usable(want writerState, op string) error {
	if w.err != nil {
		return fmt.Errorf("%s: image writer failed earlier: %w", op, w.err)
	}
	if w.state == wantBlobs && want == wantPages {
		return nil // the first pages end the blobs (endBlobs)
	}
	if w.state != want {
		switch w.state {
		case wantMeta:
			return fmt.Errorf("%s: WriteMeta must come first", op)
		case wantBlobs:
			return fmt.Errorf("%s: metadata already written", op)
		case wantPages:
			if want == wantBlobs {
				return fmt.Errorf("%s: blobs must come before the pages", op)
			}
			return fmt.Errorf("%s: metadata already written", op)
		default:
			return fmt.Errorf("%s: image writer is closed", op)
		}
	}
	return nil
}

// WriteMeta writes the process metadata: the PROCESS record, then one
// THREAD record for each of p.Threads. It must be called once, before
// anything else. p must agree with the Writer's architecture and page
// size and have sorted, disjoint, page-aligned VMAs; p.NumThreads is set
// from p.Threads. Nothing is written unless all of p is valid.
func (w *Writer) WriteMeta(p *Process) error {
	if err := w.usable(wantMeta, "WriteMeta"); err != nil {
		return err
	}
	if p == nil {
		return errors.New("WriteMeta: no process metadata")
	}
	p.NumThreads = len(p.Threads)
	if err := validateProcess(p, w.arch, w.pageSize); err != nil {
		return fmt.Errorf("WriteMeta: %w", err)
	}
	// Encode every record before writing any, so that an invalid thread
	// leaves no PROCESS record behind it.
	recs := make([][]byte, 0, 1+len(p.Threads))
	rec, err := jsonRecord(recProcess, p)
	if err != nil {
		return fmt.Errorf("WriteMeta: %w", err)
	}
	recs = append(recs, rec)
	seen := map[int]bool{}
	for i := range p.Threads {
		if err := validateThread(&p.Threads[i], seen); err != nil {
			return fmt.Errorf("WriteMeta: thread %d of %d: %w", i+1, len(p.Threads), err)
		}
		rec, err := jsonRecord(recThread, &p.Threads[i])
		if err != nil {
			return fmt.Errorf("WriteMeta: %w", err)
		}
		recs = append(recs, rec)
	}
	for _, rec := range recs {
		if err := w.write(rec); err != nil {
			return fmt.Errorf("WriteMeta: writing the %s record: %w", recordName(le.Uint32(rec)), err)
		}
	}
	w.vmas = append([]VMA(nil), p.VMAs...)
	w.files = append([]File(nil), p.Files...)
	w.state = wantBlobs
	return nil
}

// WriteBlob adds data to blob id (> 0): bulk bytes that are not pages,
// such as an unlinked file's contents. Blobs come after WriteMeta and
// before the first WritePages; a blob may be written in several calls,
// each appending to it, but once another blob is written it is over.
// Every blob a File names must be written. data is not retained.
func (w *Writer) WriteBlob(id uint64, data []byte) error {
	if err := w.usable(wantBlobs, "WriteBlob"); err != nil {
		return err
	}
	if id == 0 {
		return errors.New("WriteBlob: blob id 0 is reserved")
	}
	start := w.blobID != id
	if start {
		if w.blobIDs[id] {
			return fmt.Errorf("WriteBlob: blob %d is over, blob %d was written after it: a blob's records must be consecutive", id, w.blobID)
		}
		if w.blobIDs == nil {
			w.blobIDs = map[uint64]bool{}
		}
		w.blobIDs[id] = true
		w.blobID, w.blobOff = id, 0
	}
	// An empty blob still gets its (empty) record, so that it exists.
	for ; len(data) > 0 || start; start = false {
		n := min(len(data), w.blobChunk)
		// The headers, then the data straight from the caller's slice:
		// a 16 MiB chunk is not copied.
		var hdr [recordHeaderSize + blobHeaderSize]byte
		le.PutUint64(hdr[recordHeaderSize:], id)
		le.PutUint64(hdr[recordHeaderSize+8:], w.blobOff)
		le.PutUint32(hdr[0:], recBlob)
		le.PutUint32(hdr[4:], uint32(blobHeaderSize+n))
		le.PutUint32(hdr[8:], crc32.Update(checksum(hdr[recordHeaderSize:]), castagnoli, data[:n]))
		if err := w.write(hdr[:]); err != nil {
			return fmt.Errorf("writing BLOB record: %w", err)
		}
		if n > 0 {
			if err := w.write(data[:n]); err != nil {
				return fmt.Errorf("writing BLOB record: %w", err)
			}
		}
		w.blobRecords++
		w.blobSize += uint64(n)
		w.blobOff += uint64(n)
		data = data[n:]
	}
	return nil
}

// endBlobs moves from the blobs to the pages, once every blob a File
// names has been written.
func (w *Writer) endBlobs(op string) error {
	if w.state != wantBlobs {
		return nil
	}
	if err := checkFileBlobs(w.files, func(id uint64) bool { return w.blobIDs[id] }); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	w.state = wantPages
	return nil
}

// jsonRecord encodes v as a record of type typ (PROCESS, THREAD, TAIL).
func jsonRecord(typ uint32, v any) ([]byte, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding the %s record: %w", recordName(typ), err)
	}
	if len(js) > maxMetaSize {
		return nil, fmt.Errorf("the %s record is %d bytes, more than the limit of %d", recordName(typ), len(js), maxMetaSize)
	}
	rec := make([]byte, recordHeaderSize+len(js))
	copy(rec[recordHeaderSize:], js)
	putRecordHeader(rec, typ, js)
	return rec, nil
}

// WritePages adds the contents of the pages starting at vaddr. len(data)
// must be a multiple of the page size and the pages must lie inside the
// VMAs given to WriteMeta (they may span adjacent VMAs). data is copied
// before WritePages returns.
//
// Records hold pages of a single VMA: pages spanning several VMAs are
// split, and pages from consecutive calls are gathered into one record
// when their addresses are contiguous within a VMA.
func (w *Writer) WritePages(vaddr uint64, data []byte) error {
	if err := w.usable(wantPages, "WritePages"); err != nil {
		return err
	}
	if len(data)%w.pageSize != 0 {
		return fmt.Errorf("WritePages at %#x: %d bytes is not a multiple of the %d-byte page size", vaddr, len(data), w.pageSize)
	}
	if err := checkRange(w.vmas, vaddr, len(data), w.pageSize, false); err != nil {
		return fmt.Errorf("WritePages: %w", err)
	}
	if err := w.endBlobs("WritePages"); err != nil {
		return err
	}
	for len(data) > 0 {
		if c := w.cur; c != nil && (c.vaddr+uint64(len(c.src)) != vaddr || vaddr == c.vmaEnd || len(c.src) == w.chunk) {
			w.dispatch()
		}
		if w.cur == nil {
			j, err := w.job()
			if err != nil {
				return err
			}
			j.vaddr, j.vmaEnd, j.src = vaddr, w.vmas[findVMA(w.vmas, vaddr)].End, j.src[:0]
			w.cur = j
		}
		n := min(uint64(len(data)), uint64(w.chunk-len(w.cur.src)), w.cur.vmaEnd-vaddr)
		w.cur.src = append(w.cur.src, data[:n]...)
		data = data[n:]
		vaddr += n
	}
	// A full chunk or one reaching the end of its VMA can go now.
	if c := w.cur; c != nil && (len(c.src) == w.chunk || c.vaddr+uint64(len(c.src)) == c.vmaEnd) {
		w.dispatch()
	}
	// Write out whatever is ready, without waiting.
	for len(w.queue) > 0 {
		if ok, err := w.flush(false); !ok || err != nil {
			return err
		}
	}
	return nil
}

// Close compresses and writes the remaining pages and the END record. It
// does not close the underlying writer. Calling Close again does nothing.
func (w *Writer) Close() error { return w.CloseWithTail(nil) }

// CloseWithTail is Close with a TAIL record (if t is not nil) between the
// last pages and END.
func (w *Writer) CloseWithTail(t *Tail) error {
	if w.state == closed && w.err == nil {
		return nil
	}
	if err := w.usable(wantPages, "Close"); err != nil {
		return err
	}
	if err := w.endBlobs("Close"); err != nil {
		return err
	}
	if w.cur != nil {
		w.dispatch()
	}
	for len(w.queue) > 0 {
		if _, err := w.flush(true); err != nil {
			return err
		}
	}
	if t != nil {
		rec, err := jsonRecord(recTail, t)
		if err != nil {
			return fmt.Errorf("Close: %w", err)
		}
		if err := w.write(rec); err != nil {
			return fmt.Errorf("writing the TAIL record: %w", err)
		}
	}
	rec := make([]byte, recordHeaderSize+endPayloadSize)
	payload := rec[recordHeaderSize:]
	le.PutUint64(payload[0:], w.records)
	le.PutUint64(payload[8:], w.pages)
	le.PutUint64(payload[16:], w.blobRecords)
	le.PutUint64(payload[24:], w.blobSize)
	putRecordHeader(rec, recEnd, payload)
	if err := w.write(rec); err != nil {
		return fmt.Errorf("writing END record: %w", err)
	}
	w.state = closed
	w.free, w.cur = nil, nil
	return nil
}

// job returns an idle job, waiting for the oldest one in flight if all
// are busy.
func (w *Writer) job() (*job, error) {
	if len(w.free) == 0 && w.jobs < w.maxJobs {
		w.jobs++
		return &job{src: make([]byte, 0, w.chunk), done: make(chan struct{}, 1)}, nil
	}
	for len(w.free) == 0 {
		if len(w.queue) == 0 {
			return nil, errors.New("image writer: no job available") // unreachable
		}
		if _, err := w.flush(true); err != nil {
			return nil, err
		}
	}
	j := w.free[len(w.free)-1]
	w.free = w.free[:len(w.free)-1]
	return j, nil
}

// dispatch starts compressing the job being filled.
func (w *Writer) dispatch() {
	j := w.cur
	w.cur = nil
	w.records++
	w.pages += uint64(len(j.src) / w.pageSize)
	w.queue = append(w.queue, j)
	go func(ps int) {
		j.encode(ps)
		j.done <- struct{}{}
	}(w.pageSize)
}

// flush writes the oldest job in flight once it is compressed; with wait
// false it returns false if that job is not done yet.
func (w *Writer) flush(wait bool) (bool, error) {
	j := w.queue[0]
	if wait {
		<-j.done
	} else {
		select {
		case <-j.done:
		default:
			return false, nil
		}
	}
	if err := w.write(j.rec); err != nil {
		return false, fmt.Errorf("writing PAGES record at %#x: %w", j.vaddr, err)
	}
	copy(w.queue, w.queue[1:])
	w.queue[len(w.queue)-1] = nil
	w.queue = w.queue[:len(w.queue)-1]
	w.free = append(w.free, j)
	return true, nil
}

// encode builds the PAGES record for j.src in j.rec, lz4-compressed if
// that makes it smaller.
func (j *job) encode(pageSize int) {
	n := len(j.src)
	need := recordHeaderSize + pagesHeaderSize + n
	if cap(j.rec) < need {
		j.rec = make([]byte, need)
	}
	rec := j.rec[:need]
	data := rec[recordHeaderSize+pagesHeaderSize:]
	comp := compNone
	// A destination one byte shorter than the input makes the compressor
	// give up on data it cannot shrink.
	lz := compressors.Get().(*lz4.Compressor)
	m, err := lz.CompressBlock(j.src, data[:n-1])
	compressors.Put(lz)
	if err == nil && m > 0 && m < n {
		data = data[:m]
		comp = compLZ4
	} else {
		copy(data, j.src)
	}
	payload := rec[recordHeaderSize : recordHeaderSize+pagesHeaderSize+len(data)]
	le.PutUint64(payload[0:], j.vaddr)
	le.PutUint32(payload[8:], uint32(n/pageSize))
	le.PutUint32(payload[12:], uint32(n))
	le.PutUint32(payload[16:], comp)
	putRecordHeader(rec, recPages, payload)
	j.rec = rec[:recordHeaderSize+len(payload)]
}
