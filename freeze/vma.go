package freeze

import (
	"fmt"
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
			return nil, fmt.Errorf("mapping %#x-%#x is a shared mapping of %s, which cannot be reopened: unsupported yet", m.Start, m.End, p)
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

// wantPage says whether page i (pagemap entry e) of v is dumped. Anonymous
// memory needs its present or swapped pages only: the rest reads as zero.
// A private file mapping needs every readable page: a page never touched
// still holds the file's bytes, and the file may be absent at thaw.
func wantPage(v *image.VMA, e uint64) bool {
	switch v.Kind {
	case image.VMAAnon, image.VMASharedAnon:
		return e&(proc.PagePresent|proc.PageSwapped) != 0
	case image.VMAFilePrivate:
		return v.Prot&unix.PROT_READ != 0 || e&(proc.PagePresent|proc.PageSwapped) != 0
	}
	return false
}
