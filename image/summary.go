package image

import (
	"errors"
	"io"
)

// Summary counts what an image holds after its metadata.
type Summary struct {
	// PagesRecords and Pages count the PAGES records and the pages they
	// hold; PageBytes is those pages' size, StoredBytes what their
	// records take in the image (compressed where that saved room).
	PagesRecords, Pages, PageBytes, StoredBytes uint64
	// Blobs counts the distinct blobs, BlobBytes their bytes.
	Blobs, BlobBytes uint64
	// Tail is the TAIL record, nil if the image has none.
	Tail *Tail
}

// Summarize reads the rest of the image, checking every record as Next
// does but decompressing no page, and counts what it holds. Call it after
// Meta and instead of NextBlob and Next.
func (r *Reader) Summarize() (*Summary, error) {
	if r.state == readMeta {
		return nil, errors.New("Summarize called before Meta")
	}
	s := &Summary{}
	ids := map[uint64]bool{}
	for {
		id, _, data, err := r.NextBlob()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		ids[id] = true
		s.BlobBytes += uint64(len(data))
	}
	s.Blobs = uint64(len(ids))
	r.skim = true
	defer func() { r.skim = false }()
	for {
		_, data, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		s.PagesRecords++
		s.PageBytes += uint64(len(data))
	}
	s.Pages = s.PageBytes / uint64(r.h.pageSize)
	s.StoredBytes = r.stored
	s.Tail = r.Tail()
	return s, nil
}
