package proc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Reading /proc/PID/pagemap in memory that does not grow with the size of
// the address space: a 64 GiB PROT_NONE reservation has 16 Mi pagemap
// entries (128 MiB), a 1 TiB one 2 GiB worth, nearly all of them zero.
//
// On Linux 6.7+ the PAGEMAP_SCAN ioctl (fs/proc/task_mmu.c,
// do_pagemap_scan) walks the page tables and returns only the runs of
// pages in the categories asked for, as page_region vectors: the cost
// follows the page tables that exist, not the virtual size (a 1 TiB
// reservation with 100 runs scans in 0.06 ms). Older kernels (Debian's
// 6.1, where the arm64 tests run) lack it (ENOTTY): there the entries are
// read pagemapChunk at a time and turned into the same runs.

// Pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst) beyond
// PagePresent and PageSwapped.
const (
	// PageGuard is PM_GUARD_REGION (Linux 6.14+): a MADV_GUARD_INSTALL
	// guard page. The kernel reports guard pages as swapped too.
	PageGuard = 1 << 58
)

// PageCat is a set of page categories: PAGEMAP_SCAN's PAGE_IS_* bits
// (include/uapi/linux/fs.h), also derived from pagemap entries when the
// ioctl is missing.
type PageCat uint64

const (
	CatPresent PageCat = 1 << 3 // PAGE_IS_PRESENT
	CatSwapped PageCat = 1 << 4 // PAGE_IS_SWAPPED
	// CatZeroPFN is PAGE_IS_PFNZERO: the page is the shared zero page
	// (read, never written); it reads as zero and need not be read.
	// Only PAGEMAP_SCAN reports it.
	CatZeroPFN PageCat = 1 << 5
	// CatGuard is PAGE_IS_GUARD (Linux 6.14+): a guard region.
	CatGuard PageCat = 1 << 8
)

// Region is a run of pages [Start, End) with the same categories.
type Region struct {
	Start, End uint64
	Cat        PageCat
}

// pagemapChunk is how many pagemap entries the fallback reads at a time
// (512 KiB).
const pagemapChunk = 64 << 10

// scanVec is how many page_region entries one PAGEMAP_SCAN call fills
// (24 KiB).
const scanVec = 1024

type scanMode int

const (
	modeUnknown     scanMode = iota
	modeScan                 // PAGEMAP_SCAN with PAGE_IS_GUARD
	modeScanNoGuard          // PAGEMAP_SCAN without PAGE_IS_GUARD (6.7-6.13)
	modeRead                 // no PAGEMAP_SCAN: read the entries
)

// Scanner finds runs of present, swapped and guard pages in a process's
// /proc/PID/pagemap, in bounded memory. It is not safe for concurrent use.
type Scanner struct {
	f    *os.File
	ps   uint64
	mode scanMode
	vec  []pageRegion // PAGEMAP_SCAN's output
	raw  []byte       // the fallback's entries
}

// NewScanner scans the pagemap file f (opened by the caller, who closes
// it) of a process with the given page size.
func NewScanner(f *os.File, pageSize int) *Scanner {
	return &Scanner{f: f, ps: uint64(pageSize)}
}

// UsesIoctl says whether the kernel has PAGEMAP_SCAN.
func (s *Scanner) UsesIoctl() bool {
	s.probe()
	return s.mode == modeScan || s.mode == modeScanNoGuard
}

// ReportsGuards says whether guard regions can be seen (PAGE_IS_GUARD,
// Linux 6.14+; MADV_GUARD_INSTALL itself came in 6.13). Where the ioctl
// is missing the kernel predates guard regions.
func (s *Scanner) ReportsGuards() bool {
	s.probe()
	return s.mode == modeScan
}

// probe finds out which of the three ways works, with a scan of the
// first page (never mapped: mmap_min_addr).
func (s *Scanner) probe() {
	if s.mode != modeUnknown {
		return
	}
	s.mode = modeScan
	_, _, err := s.ioctl(0, s.ps, CatGuard)
	if errors.Is(err, unix.EINVAL) {
		// An unknown category bit (pagemap_scan_get_args): a kernel
		// without guard regions in pagemap.
		s.mode = modeScanNoGuard
		_, _, err = s.ioctl(0, s.ps, CatPresent)
	}
	if err != nil {
		// ENOTTY: no PAGEMAP_SCAN (before 6.7).
		s.mode = modeRead
	}
}

// Scan calls fn with each run of pages in [start, end) that is in one of
// the categories of any (any of CatPresent, CatSwapped, CatGuard), in
// address order, with all the categories of the run that Scan knows.
// Runs may be split anywhere (adjacent runs can have the same
// categories). A guard region is reported swapped as well, as the kernel
// has it: test CatGuard first. Memory use is bounded whatever the size of
// the range.
func (s *Scanner) Scan(start, end uint64, any PageCat, fn func(Region) error) error {
	s.probe()
	if s.mode == modeRead {
		return s.read(start, end, any, fn)
	}
	ask := any
	if s.mode == modeScanNoGuard {
		ask &^= CatGuard
		if ask == 0 {
			return nil
		}
	}
	for start < end {
		regs, walkEnd, err := s.ioctl(start, end, ask)
		if err != nil {
			return err
		}
		for _, r := range regs {
			if err := fn(Region{Start: r.start, End: r.end, Cat: PageCat(r.categories)}); err != nil {
				return err
			}
		}
		if walkEnd <= start {
			// No progress (an older kernel leaving walk_end unset
			// when the vector is full): go on after the last run.
			if len(regs) == 0 || regs[len(regs)-1].end <= start {
				return fmt.Errorf("PAGEMAP_SCAN %#x-%#x: no progress", start, end)
			}
			walkEnd = regs[len(regs)-1].end
		}
		start = walkEnd
	}
	return nil
}

// returnMask is what PAGEMAP_SCAN is asked to report of each run.
func (s *Scanner) returnMask() PageCat {
	m := CatPresent | CatSwapped | CatZeroPFN
	if s.mode == modeScan {
		m |= CatGuard
	}
	return m
}

// read is Scan where PAGEMAP_SCAN is missing: the entries, pagemapChunk
// at a time.
func (s *Scanner) read(start, end uint64, any PageCat, fn func(Region) error) error {
	if s.raw == nil {
		s.raw = make([]byte, 8*pagemapChunk)
	}
	var cur Region
	flush := func() error {
		if cur.End > cur.Start && cur.Cat&any != 0 {
			if err := fn(cur); err != nil {
				return err
			}
		}
		return nil
	}
	for addr := start; addr < end; {
		n := min((end-addr)/s.ps, pagemapChunk)
		raw := s.raw[:8*n]
		got, err := s.f.ReadAt(raw, int64(addr/s.ps*8))
		if err != nil && err != io.EOF {
			return fmt.Errorf("pagemap %#x-%#x: %w", addr, addr+n*s.ps, err)
		}
		if got < len(raw) {
			// Past the end of the address space: nothing there.
			clear(raw[got:])
		}
		for i := uint64(0); i < n; i++ {
			cat := entryCat(binary.LittleEndian.Uint64(raw[8*i:]))
			a := addr + i*s.ps
			if cat != cur.Cat || cur.End != a {
				if err := flush(); err != nil {
					return err
				}
				cur = Region{Start: a, Cat: cat}
			}
			cur.End = a + s.ps
		}
		addr += n * s.ps
	}
	return flush()
}

// entryCat gives a pagemap entry's categories. The zero page cannot be
// told from the entry (its PFN is hidden without CAP_SYS_ADMIN).
func entryCat(e uint64) PageCat {
	var c PageCat
	if e&PagePresent != 0 {
		c |= CatPresent
	}
	if e&PageSwapped != 0 {
		c |= CatSwapped
	}
	if e&PageGuard != 0 {
		c |= CatGuard
	}
	return c
}
