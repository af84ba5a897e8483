package freeze

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// mapping builds a synthetic smaps entry: perms, path and VmFlags as
// smaps shows them ("rd wr mr mw me ac").
func mapping(start, end uint64, perms, path, flags string) proc.Mapping {
	m := proc.Mapping{Start: start, End: end, Perms: perms, Path: path, Dev: "00:00", VmFlags: map[string]bool{}}
	if strings.HasPrefix(path, "/") {
		m.Dev, m.Inode, m.Offset = "fe:00", 42, 0x3000
	}
	for _, f := range strings.Fields(flags) {
		m.VmFlags[f] = true
	}
	return m
}

func withRss(m proc.Mapping, rss uint64) proc.Mapping {
	m.Rss = rss
	return m
}

const (
	rw  = unix.PROT_READ | unix.PROT_WRITE
	rx  = unix.PROT_READ | unix.PROT_EXEC
	ro  = unix.PROT_READ
	rwx = unix.PROT_READ | unix.PROT_WRITE | unix.PROT_EXEC
)

func TestClassify(t *testing.T) {
	st := proc.Stat{StartStack: 0x7ff000123456}
	for _, tc := range []struct {
		name  string
		m     proc.Mapping
		kind  image.VMAKind
		prot  uint32
		flags uint32
		err   string // a word of the refusal
	}{
		{"anonymous", mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me ac"), image.VMAAnon, rw, 0, ""},
		{"reservation", mapping(0x1000, 0x3000, "---p", "", "mr mw me nr"), image.VMAAnon, 0, image.VMANoReserve, ""},
		{"heap", mapping(0x1000, 0x3000, "rw-p", "[heap]", "rd wr mr mw me ac"), image.VMAAnon, rw, image.VMAHeap, ""},
		{"stack", mapping(0x7ff000000000, 0x7ff000200000, "rw-p", "[stack]", "rd wr mr mw me gd ac"), image.VMAAnon, rw, image.VMAGrowsDown | image.VMAStack, ""},
		{"stack by start_stack", mapping(0x7ff000100000, 0x7ff000200000, "rw-p", "", "rd wr mr mw me ac"), image.VMAAnon, rw, image.VMAStack, ""},
		{"named", mapping(0x1000, 0x3000, "rw-p", "[anon:arena]", "rd wr mr mw me ac"), image.VMAAnon, rw, 0, ""},
		{"named shared", mapping(0x1000, 0x3000, "rw-s", "[anon_shmem:ring]", "rd wr sh mr mw me ms"), image.VMASharedAnon, rw, image.VMAMayWrite, ""},
		{"shared anonymous", mapping(0x1000, 0x3000, "r--s", "/dev/zero (deleted)", "rd sh mr mw me ms"), image.VMASharedAnon, ro, image.VMAMayWrite, ""},
		{"library text", mapping(0x1000, 0x3000, "r-xp", "/usr/lib/libc.so.6", "rd ex mr mw me"), image.VMAFilePrivate, rx, 0, ""},
		{"library gap", mapping(0x1000, 0x3000, "---p", "/usr/lib/libc.so.6", "mr mw me"), image.VMAFilePrivate, 0, 0, ""},
		{"private of a deleted file", mapping(0x1000, 0x3000, "rw-p", "/tmp/x (deleted)", "rd wr mr mw me ac"), image.VMAFilePrivate, rw, 0, ""},
		{"private memfd", mapping(0x1000, 0x3000, "rwxp", "/memfd:jit (deleted)", "rd wr ex mr mw me ac"), image.VMAFilePrivate, rwx, 0, ""},
		{"shared file, may write", mapping(0x1000, 0x3000, "r--s", "/data/db", "rd sh mr mw me ms"), image.VMAFileShared, ro, image.VMAMayWrite, ""},
		{"shared file, read-only", mapping(0x1000, 0x3000, "r--s", "/data/db", "rd sh mr me ms"), image.VMAFileShared, ro, 0, ""},
		{"vdso", mapping(0x1000, 0x3000, "r-xp", "[vdso]", "rd ex mr mw me de"), image.VMAVDSO, rx, 0, ""},
		{"vvar", mapping(0x1000, 0x3000, "r--p", "[vvar]", "rd mr pf io de dd"), image.VMAVVAR, ro, image.VMANoDump, ""},
		{"vvar_vclock", mapping(0x1000, 0x3000, "r--p", "[vvar_vclock]", "rd mr pf io de dd"), image.VMAVVAR, ro, image.VMANoDump, ""},
		{"advice", mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me ac dc wf dd hg mg"),
			image.VMAAnon, rw, image.VMADontFork | image.VMAWipeOnFork | image.VMANoDump | image.VMAHugePage | image.VMAMergeable, ""},
		{"no huge pages", mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me nh"), image.VMAAnon, rw, image.VMANoHugePage, ""},
		{"locked", mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me lo"), image.VMAAnon, rw, image.VMALocked, ""},
		{"locked on fault", mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me lo lf"), image.VMAAnon, rw, image.VMALocked | image.VMALockOnFault, ""},
		{"locked on fault, Linux 6.1", withRss(mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me lo ??"), 4096), image.VMAAnon, rw, image.VMALocked | image.VMALockOnFault, ""},
		{"locked on fault, Linux 6.1, every page touched", withRss(mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me lo ??"), 0x2000), image.VMAAnon, rw, image.VMALocked | image.VMALockOnFault, ""},
		{"locked, Linux 6.1", withRss(mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me lo"), 0x2000), image.VMAAnon, rw, image.VMALocked, ""},
		{"sealed", mapping(0x1000, 0x3000, "r--p", "", "rd mr mw me sl"), image.VMAAnon, ro, image.VMASealed, ""},
		{"guard region", mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me gu nr"), image.VMAAnon, rw, image.VMANoReserve, ""},
		{"device", mapping(0x1000, 0x3000, "rw-s", "/dev/mem", "rd wr sh mr mw me ms pf io"), 0, 0, 0, "device"},
		{"pfn mapping", mapping(0x1000, 0x3000, "rw-p", "/dev/fb0", "rd wr mr mw me pf"), 0, 0, 0, "device"},
		{"userfaultfd", mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me um"), 0, 0, 0, "userfaultfd"},
		{"userfaultfd wp", mapping(0x1000, 0x3000, "rw-p", "", "rd wr mr mw me uw"), 0, 0, 0, "userfaultfd"},
		{"shadow stack", mapping(0x1000, 0x3000, "r--p", "", "rd mr me ss"), 0, 0, 0, "shadow stack"},
		{"hugetlb", mapping(0x1000, 0x3000, "rw-p", "/anon_hugepage (deleted)", "rd wr mr mw me ht"), 0, 0, 0, "hugetlbfs"},
		{"sysv", mapping(0x1000, 0x3000, "rw-s", "/SYSV00000000 (deleted)", "rd wr sh mr mw me ms"), 0, 0, 0, "System V"},
		{"shared deleted", mapping(0x1000, 0x3000, "rw-s", "/tmp/x (deleted)", "rd wr sh mr mw me ms"), image.VMASharedObject, rw, image.VMAMayWrite | image.VMAShared, ""},
		{"shared memfd", mapping(0x1000, 0x3000, "rw-s", "/memfd:ring (deleted)", "rd wr sh mr mw me ms"), image.VMASharedObject, rw, image.VMAMayWrite | image.VMAShared, ""},
		{"shared memfd, sealed", mapping(0x1000, 0x3000, "r--s", "/memfd:ring (deleted)", "rd sh mr me ms"), image.VMASharedObject, ro, image.VMAShared, ""},
		{"shared memfd, read-only fd", mapping(0x1000, 0x3000, "r--s", "/memfd:ring (deleted)", "rd mr me ms"), image.VMASharedObject, ro, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vmas, err := classify([]proc.Mapping{tc.m}, st)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("classify = %v, %v; want an error about %q", vmas, err, tc.err)
				}
				return
			}
			if err != nil || len(vmas) != 1 {
				t.Fatalf("classify = %v, %v", vmas, err)
			}
			v := vmas[0]
			want := tc.flags
			if tc.m.VmFlags["ac"] { // the commit charge travels as it is
				want |= image.VMAAccount
			}
			if v.Kind != tc.kind || v.Prot != tc.prot || v.Flags != want {
				t.Errorf("kind %d prot %#x flags %#x, want kind %d prot %#x flags %#x", v.Kind, v.Prot, v.Flags, tc.kind, tc.prot, want)
			}
			m := tc.m
			if v.Start != m.Start || v.End != m.End || v.Offset != m.Offset || v.Path != m.Path || v.Dev != m.Dev || v.Inode != m.Inode {
				t.Errorf("got %+v from %+v", v, m)
			}
		})
	}
	vmas, err := classify([]proc.Mapping{mapping(0xffffffffff600000, 0xffffffffff601000, "--xp", "[vsyscall]", "ex")}, st)
	if err != nil || len(vmas) != 0 {
		t.Errorf("[vsyscall]: %v, %v; want it left out", vmas, err)
	}
}

// TestClassifyFlagNames: every VmFlag the image keeps is the kernel's
// name for it (fs/proc/task_mmu.c, show_smap_vma_flags), each maps to a
// distinct bit, and each bit has a name.
func TestClassifyFlagNames(t *testing.T) {
	kernel := map[string]bool{"gd": true, "dd": true, "dc": true, "wf": true, "hg": true, "nh": true,
		"mg": true, "lo": true, "lf": true, "nr": true, "sl": true, "mw": true, "ac": true, "sr": true, "rr": true}
	var all uint32
	for name, bit := range vmFlagBits {
		if !kernel[name] {
			t.Errorf("VmFlag %q is not one of the kernel's", name)
		}
		if bit&(bit-1) != 0 || all&bit != 0 {
			t.Errorf("VmFlag %q: bit %#x is not a single new bit", name, bit)
		}
		all |= bit
	}
	if len(vmFlagBits) != len(kernel) {
		t.Errorf("%d VmFlags mapped, want %d", len(vmFlagBits), len(kernel))
	}
}

func TestWantPage(t *testing.T) {
	anon := &image.VMA{Kind: image.VMAAnon, Prot: rw}
	none := &image.VMA{Kind: image.VMAAnon}
	shm := &image.VMA{Kind: image.VMASharedAnon, Prot: ro}
	text := &image.VMA{Kind: image.VMAFilePrivate, Prot: rx, Path: "/lib/libc.so.6"}
	gap := &image.VMA{Kind: image.VMAFilePrivate, Path: "/lib/libc.so.6"}
	shared := &image.VMA{Kind: image.VMAFileShared, Prot: rw, Path: "/data/db"}
	vdso := &image.VMA{Kind: image.VMAVDSO, Prot: rx, Path: "[vdso]"}
	const (
		present = proc.CatPresent
		swapped = proc.CatSwapped
		zero    = proc.CatPresent | proc.CatZeroPFN
		guard   = proc.CatSwapped | proc.CatGuard // as the kernel reports a guard page
	)
	for _, tc := range []struct {
		name string
		v    *image.VMA
		cat  proc.PageCat
		want bool
	}{
		{"anonymous present", anon, present, true},
		{"anonymous swapped", anon, swapped, true},
		{"anonymous untouched", anon, 0, false},
		{"anonymous zero page", anon, zero, false},
		{"anonymous guard", anon, guard, false},
		{"PROT_NONE with data", none, present, true},
		{"shared anonymous", shm, present, true},
		{"shared anonymous swapped", shm, swapped, true},
		{"shared anonymous zero page", shm, zero, false},
		// Readable private file mappings are dumped whole (pagesAll),
		// without a scan.
		{"library text", text, present, false},
		{"library gap present", gap, present, true},
		{"library gap untouched", gap, 0, false},
		{"library gap zero page", gap, zero, true},
		{"library gap guard", gap, guard, false},
		{"shared file", shared, present, false},
		{"vdso", vdso, present, false},
	} {
		if got := wantPage(tc.v, tc.cat); got != tc.want {
			t.Errorf("%s: wantPage(%#x) = %v, want %v", tc.name, uint64(tc.cat), got, tc.want)
		}
	}
}

func TestPagePolicy(t *testing.T) {
	for _, tc := range []struct {
		v    image.VMA
		want pagePolicy
		zero bool
	}{
		{image.VMA{Kind: image.VMAAnon, Prot: rw}, pagesPresent, false},
		{image.VMA{Kind: image.VMAAnon}, pagesPresent, false},
		{image.VMA{Kind: image.VMASharedAnon, Prot: rw}, pagesPresent, false},
		{image.VMA{Kind: image.VMAFilePrivate, Prot: rx}, pagesAll, true},
		{image.VMA{Kind: image.VMAFilePrivate, Prot: ro}, pagesAll, true},
		{image.VMA{Kind: image.VMAFilePrivate}, pagesPresent, true},
		{image.VMA{Kind: image.VMAFileShared, Prot: rw}, pagesNone, false},
		{image.VMA{Kind: image.VMAVDSO, Prot: rx}, pagesNone, false},
		{image.VMA{Kind: image.VMAVVAR, Prot: ro}, pagesNone, false},
	} {
		if got := policy(&tc.v); got != tc.want {
			t.Errorf("policy(kind %d prot %#x) = %d, want %d", tc.v.Kind, tc.v.Prot, got, tc.want)
		}
		if got := keepZero(&tc.v); got != tc.zero {
			t.Errorf("keepZero(kind %d prot %#x) = %v, want %v", tc.v.Kind, tc.v.Prot, got, tc.zero)
		}
	}
}

// TestNeedScan: a mapping with nothing resident or swapped (smaps Rss
// and Swap 0) is not scanned at all, where that says there is nothing to
// find; a readable private file mapping is dumped whole anyway.
func TestNeedScan(t *testing.T) {
	const start, end = 0x10000, 0x10000 + 64<<30
	res := &image.VMA{Start: start, End: end, Kind: image.VMAAnon, Flags: image.VMANoReserve}
	text := &image.VMA{Start: start, End: end, Kind: image.VMAFilePrivate, Prot: rx}
	gap := &image.VMA{Start: start, End: end, Kind: image.VMAFilePrivate}
	shm := &image.VMA{Start: start, End: end, Kind: image.VMASharedAnon, Prot: rw}
	file := &image.VMA{Start: start, End: end, Kind: image.VMAFileShared, Prot: rw}
	sm := func(rss, swap uint64) *proc.Mapping {
		return &proc.Mapping{Start: start, End: end, Rss: rss, Swap: swap}
	}
	for _, tc := range []struct {
		name string
		v    *image.VMA
		m    *proc.Mapping
		want bool
	}{
		{"empty reservation", res, sm(0, 0), false},
		{"reservation with pages", res, sm(8192, 0), true},
		{"reservation with swapped pages", res, sm(0, 4096), true},
		{"no smaps entry", res, nil, true},
		{"smaps entry of another range", res, &proc.Mapping{Start: start, End: end - 4096}, true},
		{"empty shared anonymous", shm, sm(0, 0), false},
		{"shared anonymous", shm, sm(4096, 0), true},
		{"unreadable file mapping, nothing resident", gap, sm(0, 0), false},
		{"unreadable file mapping", gap, sm(4096, 0), true},
		{"readable file mapping: every page, no scan", text, sm(0, 0), false},
		{"shared file", file, sm(4096, 0), false},
	} {
		if got := needScan(tc.v, tc.m); got != tc.want {
			t.Errorf("%s: needScan = %v, want %v", tc.name, got, tc.want)
		}
	}
}
