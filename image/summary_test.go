package image

import (
	"bytes"
	"reflect"
	"testing"
)

func TestSummarize(t *testing.T) {
	img, _, c := smallImageContents(t)
	r, err := NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Meta(); err != nil {
		t.Fatal(err)
	}
	s, err := r.Summarize()
	if err != nil {
		t.Fatal(err)
	}
	// What the image was written from, and its records walked by hand.
	var pageBytes, blobBytes uint64
	for _, seg := range c.segs {
		pageBytes += uint64(len(seg.data))
	}
	for _, b := range mergeBlobs(c.blobs) {
		blobBytes += uint64(len(b.data))
	}
	var records, stored uint64
	offs := recordOffsets(img)
	for _, off := range offs[:len(offs)-1] {
		if le.Uint32(img[off:]) == recPages {
			records++
			stored += uint64(le.Uint32(img[off+4:]))
		}
	}
	want := Summary{PagesRecords: records, Pages: pageBytes / 4096, PageBytes: pageBytes,
		StoredBytes: stored, Blobs: 1, BlobBytes: blobBytes, Tail: c.tail}
	if !reflect.DeepEqual(*s, want) {
		t.Errorf("Summarize = %+v, want %+v", *s, want)
	}
	if records < 2 || stored >= pageBytes {
		t.Errorf("the test image should have several PAGES records that compress: %d records, %d of %d bytes", records, stored, pageBytes)
	}
}

// Summarize checks every record as Next does: a bit flipped in a page
// record's data (which it does not decompress) is still found.
func TestSummarizeDamaged(t *testing.T) {
	img, _, _ := smallImageContents(t)
	offs := recordOffsets(img)
	for _, off := range offs[:len(offs)-1] {
		if le.Uint32(img[off:]) != recPages {
			continue
		}
		bad := bytes.Clone(img)
		bad[off+recordHeaderSize+pagesHeaderSize] ^= 1
		r, err := NewReader(bytes.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Meta(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Summarize(); err == nil {
			t.Errorf("a flipped bit at %d went unnoticed", off+recordHeaderSize+pagesHeaderSize)
		}
	}
	for _, cut := range []int{offs[len(offs)-2], len(img) - 1} {
		r, _ := NewReader(bytes.NewReader(img[:cut]))
		if _, err := r.Meta(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Summarize(); !isTruncated(err) {
			t.Errorf("cut at %d of %d: %v, want truncated", cut, len(img), err)
		}
	}
}
