package freeze

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/progress"
	"github.com/cryo-project/cryo/ptrace"
)

// dumper copies the wanted pages of each VMA into the image (policy and
// wantPage say which): the runs of present or swapped pages that a
// pagemap scan finds, or every page of a readable private file mapping.
// Runs are read with process_vm_readv in chunks of len(buf); pages that
// read as zero are dropped (the restored mapping is zero already) unless
// keepZero, and runs of the rest go to the writer. Its memory is
// len(buf) plus the scanner's bounded buffers, whatever the size of the
// address space.
type dumper struct {
	ctx  context.Context
	pid  int
	w    *image.Writer
	scan *proc.Scanner
	mem  *os.File
	ps   uint64
	buf  []byte
	// smaps holds the smaps entries by start address, for their Rss
	// and Swap (needScan).
	smaps map[uint64]*proc.Mapping
	pages int64
	zero  int64
	runs  int
	// probeHuge: the process has more resident memory (status VmRSS)
	// than smaps shows, by at least half a huge page (hiddenHuge).
	probeHuge bool
	// bar counts the bytes of memory read (nil: no progress shown).
	bar *progress.Bar
}

func (d *dumper) vma(v *image.VMA) error {
	switch policy(v) {
	case pagesNone:
		return nil
	case pagesAll:
		start := v.Start
		for _, g := range v.Guards {
			if err := d.span(v, start, max(start, g[0])); err != nil {
				return err
			}
			start = max(start, g[1])
		}
		return d.span(v, start, v.End)
	}
	if policy(v) != pagesPresent {
		return nil
	}
	if needScan(v, d.smaps[v.Start]) || d.scan.UsesIoctl() {
		// PAGEMAP_SCAN skips empty page tables: scanning a mapping smaps
		// says is empty costs next to nothing, and smaps may be wrong
		// (hiddenHuge).
		return d.scanRange(v, v.Start, v.End)
	}
	return d.hiddenHuge(v)
}

// hiddenHuge scans, in a mapping smaps reports empty (Rss and Swap 0),
// the huge-page-sized pieces that hold a page after all. Linux 6.1's
// smaps does not count a transparent huge page whose mapping was made
// PROT_NONE (its pmd reads as "protnone"), so data written and then
// protected looks absent; only a PMD-aligned, PMD-sized piece can hold
// such a page, so one pagemap entry per piece tells. Where PAGEMAP_SCAN
// exists the whole mapping is scanned instead (vma). The probe is made
// only when status VmRSS says smaps misses resident memory: a 1 TiB
// reservation has half a million such pieces.
func (d *dumper) hiddenHuge(v *image.VMA) error {
	if !d.probeHuge {
		return nil
	}
	huge := d.ps * d.ps / 8 // what one page-table page of entries maps: a PMD
	for a := (v.Start + huge - 1) &^ (huge - 1); a+huge <= v.End; a += huge {
		found := false
		err := d.scan.Scan(a, a+d.ps, proc.CatPresent|proc.CatSwapped, func(proc.Region) error {
			found = true
			return nil
		})
		if err != nil {
			return err
		}
		if found {
			if err := d.scanRange(v, a, a+huge); err != nil {
				return err
			}
		}
	}
	return nil
}

// scanRange writes the present and swapped pages of v in [start, end).
func (d *dumper) scanRange(v *image.VMA, start, end uint64) error {
	return d.scan.Scan(start, end, proc.CatPresent|proc.CatSwapped, func(r proc.Region) error {
		if !wantPage(v, r.Cat) {
			return nil
		}
		return d.span(v, r.Start, r.End)
	})
}

// span dumps the pages of [start, end), len(buf) at a time.
func (d *dumper) span(v *image.VMA, start, end uint64) error {
	for addr := start; addr < end; {
		n := min(end-addr, uint64(len(d.buf)))
		if d.runs == 1 { // some pages are in the output already
			if err := fault(d.ctx, "dumping"); err != nil {
				return err
			}
		} else if err := d.ctx.Err(); err != nil {
			return fmt.Errorf("interrupted while writing pages: the target was left as it was")
		}
		if err := d.run(v, addr, int(n/d.ps)); err != nil {
			return err
		}
		d.runs++
		addr += n
	}
	return nil
}

var zeroPage = make([]byte, 65536)

// run reads npages at addr and writes the wanted ones.
func (d *dumper) run(v *image.VMA, addr uint64, npages int) error {
	b := d.buf[:uint64(npages)*d.ps]
	got, err := ptrace.ReadMem(d.pid, addr, b)
	var unreadable map[int]bool
	if err != nil || got < len(b) {
		// Unreadable for process_vm_readv (PROT_NONE pages with
		// data, or a partial read): /proc/PID/mem reads with
		// FOLL_FORCE. Pages neither can read (a file mapping past
		// its file's end) are left out: they read as zero at thaw.
		if got < 0 {
			got = 0
		}
		for i := got / int(d.ps); i < npages; i++ {
			pg := b[uint64(i)*d.ps : uint64(i+1)*d.ps]
			if _, rerr := d.mem.ReadAt(pg, int64(addr+uint64(i)*d.ps)); rerr != nil {
				if unreadable == nil {
					unreadable = map[int]bool{}
				}
				unreadable[i] = true
			}
		}
	}
	zero, keep := zeroPage[:d.ps], keepZero(v)
	start := -1
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		s, e := uint64(start)*d.ps, uint64(end)*d.ps
		if err := d.w.WritePages(addr+s, b[s:e]); err != nil {
			return fmt.Errorf("write image: %w", err)
		}
		d.pages += int64(end - start)
		start = -1
		return nil
	}
	d.bar.Add(int64(len(b)))
	for i := 0; i < npages; i++ {
		pg := b[uint64(i)*d.ps : uint64(i+1)*d.ps]
		skip := unreadable[i]
		if !skip && !keep && bytes.Equal(pg, zero) {
			d.zero++
			skip = true
		}
		if skip {
			if err := flush(i); err != nil {
				return err
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return flush(npages)
}
