package freeze

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// vmFlagBits maps smaps VmFlags (fs/proc/task_mmu.c, show_smap_vma_flags)
// to the image's VMA flags: the advice and locking thaw gives back.
var vmFlagBits = map[string]uint32{
	"gd": image.VMAGrowsDown,
	"dd": image.VMANoDump,
	"dc": image.VMADontFork,
	"wf": image.VMAWipeOnFork,
	"hg": image.VMAHugePage,
	"nh": image.VMANoHugePage,
	"mg": image.VMAMergeable,
	"lo": image.VMALocked,
	"lf": image.VMALockOnFault,
	"nr": image.VMANoReserve,
	"sl": image.VMASealed,
	"mw": image.VMAMayWrite,
	"ac": image.VMAAccount,
	"sr": image.VMASequential,
	"rr": image.VMARandom,
}

// classify turns /proc maps lines into image VMAs, refusing what thaw
// cannot rebuild. [vsyscall] is the kernel's fixed page and is skipped.
func classify(maps []proc.Mapping, st proc.Stat) ([]image.VMA, error) {
	var out []image.VMA
	for _, m := range maps {
		if m.Path == "[vsyscall]" {
			continue
		}
		v := image.VMA{Start: m.Start, End: m.End, Offset: m.Offset, Path: m.Path, Dev: m.Dev, Inode: m.Inode}
		if m.Read() {
			v.Prot |= unix.PROT_READ
		}
		if m.Write() {
			v.Prot |= unix.PROT_WRITE
		}
		if m.Exec() {
			v.Prot |= unix.PROT_EXEC
		}
		for flag, bit := range vmFlagBits {
			if m.VmFlags[flag] {
				v.Flags |= bit
			}
		}
		if !m.Shared() {
			// Every private mapping may be written (VM_MAYWRITE):
			// mw only says something of a shared one.
			v.Flags &^= image.VMAMayWrite
		}
		if m.VmFlags["lo"] && !m.VmFlags["lf"] && m.VmFlags["??"] {
			// Before Linux 6.2 (8614d6c5eda0) smaps had no name for
			// VM_LOCKONFAULT: "??" beside "lo" (all the other bits a
			// locked anonymous or file mapping can have are named). A
			// mapping locked on fault may hold every page too, when
			// every page was touched: its residency tells nothing.
			v.Flags |= image.VMALockOnFault
		}
		for _, flag := range []string{"um", "uw", "ui"} {
			if m.VmFlags[flag] {
				return nil, fmt.Errorf("mapping %#x-%#x %s is registered with userfaultfd: unsupported", m.Start, m.End, describe(m.Path))
			}
		}
		if m.VmFlags["ss"] {
			return nil, fmt.Errorf("mapping %#x-%#x is a shadow stack: unsupported yet", m.Start, m.End)
		}
		if m.VmFlags["ht"] {
			return nil, fmt.Errorf("mapping %#x-%#x %s is hugetlbfs memory: unsupported yet", m.Start, m.End, describe(m.Path))
		}
		p := m.Path
		anon := p == "" || p == "[heap]" || p == "[stack]" || strings.HasPrefix(p, "[anon:") || strings.HasPrefix(p, "[anon_shmem:")
		switch {
		case p == "[vvar]" || p == "[vvar_vclock]":
			v.Kind = image.VMAVVAR
		case p == "[vdso]":
			v.Kind = image.VMAVDSO
		case m.VmFlags["io"] || m.VmFlags["pf"]:
			return nil, fmt.Errorf("mapping %#x-%#x %s is device memory (VM_IO/VM_PFNMAP): unsupported", m.Start, m.End, describe(p))
		case anon && m.Shared():
			v.Kind = image.VMASharedAnon
		case anon:
			v.Kind = image.VMAAnon
			if p == "[heap]" {
				v.Flags |= image.VMAHeap
			}
			if p == "[stack]" || (m.Start <= st.StartStack && st.StartStack < m.End) {
				v.Flags |= image.VMAStack
			}
		case p == "/dev/zero (deleted)" && m.Shared():
			v.Kind = image.VMASharedAnon
		case strings.HasPrefix(p, "/SYSV"):
			return nil, fmt.Errorf("mapping %#x-%#x is System V shared memory (%s): unsupported yet", m.Start, m.End, p)
		case !m.Shared():
			// Private file mapping, deleted or not, memfd included:
			// its contents travel in the image.
			v.Kind = image.VMAFilePrivate
		case strings.HasSuffix(p, " (deleted)") || strings.HasPrefix(p, "/memfd:"):
			// A memfd or an unlinked file: the files package carries
			// the file (files.Dumper.Mapped) and names it in v.File.
			v.Kind = image.VMASharedObject
			if m.VmFlags["sh"] {
				v.Flags |= image.VMAShared
			}
		default:
			v.Kind = image.VMAFileShared
		}
		out = append(out, v)
	}
	return out, nil
}

func describe(p string) string {
	if p == "" {
		return "(anonymous)"
	}
	return p
}

// pagePolicy says which pages of a VMA the image holds.
type pagePolicy int

const (
	// pagesNone: the vdso and vvar (the thawing kernel's are moved into
	// place) and shared file mappings (the file holds the data).
	pagesNone pagePolicy = iota
	// pagesPresent: the present and swapped pages only; the others read
	// as zero in new anonymous memory, or hold the file's bytes where
	// the mapping cannot be read.
	pagesPresent
	// pagesAll: every page outside guard regions, present or not: a
	// readable private file mapping, whose untouched pages still hold
	// the file's bytes and whose file may be gone at thaw.
	pagesAll
)

func policy(v *image.VMA) pagePolicy {
	switch v.Kind {
	case image.VMAAnon, image.VMASharedAnon:
		return pagesPresent
	case image.VMAFilePrivate:
		if v.Prot&unix.PROT_READ != 0 {
			return pagesAll
		}
		return pagesPresent
	}
	return pagesNone
}

// keepZero says whether v's pages that read as zero are stored anyway: a
// private file mapping may be mapped from its file again at thaw, where
// a page left out would show the file's bytes.
func keepZero(v *image.VMA) bool { return v.Kind == image.VMAFilePrivate }

// needScan says whether v's pagemap must be scanned for its present and
// swapped pages; m is v's smaps entry (nil if unknown). A mapping with
// no page resident or swapped (smaps Rss and Swap 0) has none to find:
// a 64 GiB reservation costs nothing, even where pagemap is read entry
// by entry. Rss leaves out the shared zero page, which reads as zero.
func needScan(v *image.VMA, m *proc.Mapping) bool {
	if policy(v) != pagesPresent {
		return false
	}
	return m == nil || m.Start != v.Start || m.End != v.End || m.Rss != 0 || m.Swap != 0
}

// wantPage says whether a run of pages of v in categories c (from a scan
// of pagemap) goes in the image, for a VMA whose policy is pagesPresent.
// Guard pages (which the kernel also reports swapped) hold nothing: they
// are recorded in VMA.Guards. The shared zero page reads as zero, as new
// anonymous memory does; over a file it must be written as zeros.
func wantPage(v *image.VMA, c proc.PageCat) bool {
	if policy(v) != pagesPresent || c&proc.CatGuard != 0 || c&(proc.CatPresent|proc.CatSwapped) == 0 {
		return false
	}
	return c&proc.CatZeroPFN == 0 || keepZero(v)
}

// findGuards records the MADV_GUARD_INSTALL guard regions of each VMA in
// VMA.Guards, where the kernel reports them (PAGE_IS_GUARD, Linux 6.14+;
// before, PAGEMAP_SCAN cannot ask and 6.1's pagemap knows no guards).
// It must run before the metadata is written, with the target stopped.
func findGuards(pid, pageSize int, vmas []image.VMA) error {
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return fmt.Errorf("open pagemap of pid %d: %w", pid, err)
	}
	defer pm.Close()
	sc := proc.NewScanner(pm, pageSize)
	if !sc.ReportsGuards() {
		return nil
	}
	for i := range vmas {
		v := &vmas[i]
		if v.Kind == image.VMAVDSO || v.Kind == image.VMAVVAR {
			continue
		}
		v.Guards = nil
		err := sc.Scan(v.Start, v.End, proc.CatGuard, func(r proc.Region) error {
			if r.Cat&proc.CatGuard == 0 {
				return nil
			}
			if n := len(v.Guards); n > 0 && v.Guards[n-1][1] == r.Start {
				v.Guards[n-1][1] = r.End
			} else {
				v.Guards = append(v.Guards, [2]uint64{r.Start, r.End})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("guard regions of %#x-%#x %s: %w", v.Start, v.End, describe(v.Path), err)
		}
	}
	return nil
}
