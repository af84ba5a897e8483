package proc

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// madvGuardInstall is MADV_GUARD_INSTALL (Linux 6.13+).
const madvGuardInstall = 102

// reservation maps size bytes PROT_NONE|MAP_NORESERVE in this process,
// makes rwPages pages at rwOff read-write (without transparent huge
// pages, so that a touch is one page) and unmaps it all at the end.
func reservation(t *testing.T, size, rwOff uint64, rwPages int) (base uint64, rw []byte) {
	t.Helper()
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatalf("reserve %d GiB: %v", size>>30, err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	ps := os.Getpagesize()
	rw = b[rwOff : rwOff+uint64(rwPages*ps)]
	if err := unix.Mprotect(rw, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		t.Fatal(err)
	}
	if err := unix.Madvise(rw, unix.MADV_NOHUGEPAGE); err != nil {
		t.Fatal(err)
	}
	return uint64(reflect.ValueOf(b).Pointer()), rw
}

var sink byte

// scanAll collects the runs Scan reports, merging adjacent runs with the
// same categories (Scan may split runs anywhere).
func scanAll(t *testing.T, s *Scanner, start, end uint64, any PageCat, ignore PageCat) []Region {
	t.Helper()
	var out []Region
	err := s.Scan(start, end, any, func(r Region) error {
		if r.Start >= r.End || r.Start < start || r.End > end {
			return fmt.Errorf("run %#x-%#x outside %#x-%#x", r.Start, r.End, start, end)
		}
		if n := len(out); n > 0 && r.Start < out[n-1].End {
			return fmt.Errorf("run %#x-%#x before the end of the previous one %#x", r.Start, r.End, out[n-1].End)
		}
		r.Cat &^= ignore
		if n := len(out); n > 0 && out[n-1].End == r.Start && out[n-1].Cat == r.Cat {
			out[n-1].End = r.End
			return nil
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func openPagemap(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestScanReservation: in a 64 GiB reservation with a few touched pages,
// a page only read (the zero page) and a guard region, both ways of
// scanning (PAGEMAP_SCAN, and reading the entries as on kernels without
// it) report exactly those runs.
func TestScanReservation(t *testing.T) {
	ps := uint64(os.Getpagesize())
	const size = 64 << 30
	base, rw := reservation(t, size, 1<<30, 64)
	rwBase := base + 1<<30
	touched := []int{0, 1, 2, 10, 40, 63}
	for _, i := range touched {
		rw[uint64(i)*ps] = byte(i + 1)
	}
	sink += rw[20*ps] // the zero page
	guards := false
	if err := unix.Madvise(rw[30*ps:33*ps], madvGuardInstall); err == nil {
		guards = true
	} else if !errors.Is(err, unix.EINVAL) {
		t.Fatalf("MADV_GUARD_INSTALL: %v", err)
	}
	run := func(from, to int, c PageCat) Region {
		return Region{Start: rwBase + uint64(from)*ps, End: rwBase + uint64(to)*ps, Cat: c}
	}
	want := []Region{run(0, 3, CatPresent), run(10, 11, CatPresent), run(20, 21, CatPresent)}
	s := NewScanner(openPagemap(t), int(ps))
	if guards && s.ReportsGuards() {
		want = append(want, run(30, 33, CatSwapped|CatGuard))
	}
	want = append(want, run(40, 41, CatPresent), run(63, 64, CatPresent))

	for _, mode := range []scanMode{modeUnknown, modeRead} {
		name := "read"
		if mode == modeUnknown {
			if !s.UsesIoctl() {
				t.Logf("no PAGEMAP_SCAN on this kernel: only the fallback runs")
				continue
			}
			name = "PAGEMAP_SCAN"
		}
		t.Run(name, func(t *testing.T) {
			s := NewScanner(openPagemap(t), int(ps))
			s.probe()
			if mode == modeRead {
				s.mode = modeRead
			}
			var got []Region
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got = scanAll(t, s, base, base+size, CatPresent|CatSwapped|CatGuard, CatZeroPFN)
			runtime.ReadMemStats(&after)
			if !equalRegions(got, want) {
				t.Errorf("runs:\n got %s\nwant %s", fmtRegions(got, rwBase, ps), fmtRegions(want, rwBase, ps))
			}
			// The whole 64 GiB (16 Mi entries) in bounded memory.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
				t.Errorf("scanning 64 GiB allocated %d bytes, want at most 2 MiB", alloc)
			}
		})
	}
	if s.UsesIoctl() {
		// The zero page is told apart by PAGEMAP_SCAN.
		got := scanAll(t, s, rwBase+20*ps, rwBase+21*ps, CatPresent, 0)
		if len(got) != 1 || got[0].Cat&CatZeroPFN == 0 {
			t.Errorf("page only read: %s, want one run with CatZeroPFN", fmtRegions(got, rwBase, ps))
		}
	}
}

// TestScanManyRuns: more runs than one PAGEMAP_SCAN vector holds, and
// runs across the fallback's read chunks, come out whole and in order.
func TestScanManyRuns(t *testing.T) {
	ps := uint64(os.Getpagesize())
	n := 2*scanVec + 100
	// Every other page, and the last runs across a pagemapChunk border.
	size := uint64(pagemapChunk+2*n) * ps
	base, rw := reservation(t, size, 0, int(size/ps))
	var want []Region
	for i := 0; i < n; i++ {
		rw[uint64(2*i)*ps] = 1
		want = append(want, Region{Start: base + uint64(2*i)*ps, End: base + uint64(2*i+1)*ps, Cat: CatPresent})
	}
	from := uint64(pagemapChunk - 3)
	for i := from; i < from+7; i++ {
		rw[i*ps] = 1
	}
	want = append(want, Region{Start: base + from*ps, End: base + (from+7)*ps, Cat: CatPresent})
	for _, read := range []bool{false, true} {
		s := NewScanner(openPagemap(t), int(ps))
		if read {
			s.probe()
			s.mode = modeRead
		} else if !s.UsesIoctl() {
			continue
		}
		got := scanAll(t, s, base, base+size, CatPresent|CatSwapped, CatZeroPFN)
		if !equalRegions(got, want) {
			t.Errorf("read=%v: %d runs, want %d:\n got %s\nwant %s", read, len(got), len(want),
				fmtRegions(got[max(0, len(got)-3):], base, ps), fmtRegions(want[len(want)-3:], base, ps))
		}
	}
}

// TestScanError: an error from fn stops the scan and comes back.
func TestScanError(t *testing.T) {
	ps := uint64(os.Getpagesize())
	base, rw := reservation(t, 1<<20, 0, 8)
	rw[0], rw[4*ps] = 1, 1
	stop := errors.New("stop")
	for _, read := range []bool{false, true} {
		s := NewScanner(openPagemap(t), int(ps))
		if read {
			s.probe()
			s.mode = modeRead
		}
		calls := 0
		err := s.Scan(base, base+1<<20, CatPresent, func(Region) error { calls++; return stop })
		if err != stop || calls != 1 {
			t.Errorf("read=%v: Scan = %v after %d calls, want the callback's error after 1", read, err, calls)
		}
	}
}

func TestEntryCat(t *testing.T) {
	for _, tc := range []struct {
		e    uint64
		want PageCat
	}{
		{0, 0},
		{PagePresent | 0x1234, CatPresent},
		{PageSwapped | 0x55, CatSwapped},
		// A guard page, as 6.18 reports one: swapped and guard.
		{0x440000000000009f, CatSwapped | CatGuard},
		{1 << 55, 0}, // soft-dirty alone
	} {
		if got := entryCat(tc.e); got != tc.want {
			t.Errorf("entryCat(%#x) = %#x, want %#x", tc.e, got, tc.want)
		}
	}
}

func equalRegions(a, b []Region) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func fmtRegions(rs []Region, base, ps uint64) string {
	s := ""
	for _, r := range rs {
		s += fmt.Sprintf(" [%d-%d)%#x", int64(r.Start-base)/int64(ps), int64(r.End-base)/int64(ps), uint64(r.Cat))
	}
	return s
}

// TestMapsRss: Maps reads smaps' Rss and Swap, which the freeze uses to
// skip the pagemap of mappings with nothing in them.
func TestMapsRss(t *testing.T) {
	ps := uint64(os.Getpagesize())
	base, rw := reservation(t, 1<<30, 1<<20, 16)
	for _, i := range []uint64{0, 5, 9} {
		rw[i*ps] = 1
	}
	maps, err := Maps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range maps {
		if m.Start >= base && m.End <= base+1<<30 {
			got = append(got, fmt.Sprintf("%#x+%d %s rss %d swap %d", m.Start-base, m.Len(), m.Perms, m.Rss, m.Swap))
		}
	}
	want := []string{
		fmt.Sprintf("%#x+%d ---p rss 0 swap 0", 0, 1<<20),
		fmt.Sprintf("%#x+%d rw-p rss %d swap 0", 1<<20, 16*ps, 3*ps),
		fmt.Sprintf("%#x+%d ---p rss 0 swap 0", 1<<20+16*ps, 1<<30-1<<20-16*ps),
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the reservation in smaps:\n got %q\nwant %q", got, want)
	}
}
