package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/files"
	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/ptrace"
)

// The address space: the stub's own mappings cleared, the vdso moved into
// place, every mapping of the image created, filled and protected.

// clearStub unmaps all of the stub's mappings but its own region and the
// vdso group ([vsyscall] cannot be unmapped and is the same everywhere).
func (h *helper) clearStub(stubMaps []proc.Mapping) error {
	end := h.stub + stubRegionSize(h.ps)
	for _, m := range stubMaps {
		if (m.Start >= h.stub && m.End <= end) || m.Path == "[vdso]" || strings.HasPrefix(m.Path, "[vvar") || m.Path == "[vsyscall]" {
			continue
		}
		if _, err := h.sys("munmap "+m.Path, h.host.Sys.Munmap, m.Start, m.Len()); err != nil {
			return err
		}
	}
	return nil
}

// moveVDSO moves this kernel's vdso and vvar to where the process had
// them, through a hole free of both layouts (mremap refuses overlapping
// moves). Same kernel: same sizes and code, checked by checkVDSO.
func (h *helper) moveVDSO(stubMaps []proc.Mapping) error {
	sys := h.host.Sys
	type piece struct {
		name     string
		cur, dst uint64
		size     uint64
	}
	dst := map[string]uint64{}
	for _, v := range h.p.VMAs {
		if v.Kind == image.VMAVDSO || v.Kind == image.VMAVVAR {
			dst[v.Path] = v.Start
		}
	}
	var pieces []piece
	var used []span
	var curLo, curHi uint64 = ^uint64(0), 0
	for _, m := range stubMaps {
		if m.Path != "[vdso]" && !strings.HasPrefix(m.Path, "[vvar") {
			continue
		}
		d, ok := dst[m.Path]
		if !ok {
			// The process had none: take ours away.
			if _, err := h.sys("munmap "+m.Path, sys.Munmap, m.Start, m.Len()); err != nil {
				return err
			}
			continue
		}
		pieces = append(pieces, piece{m.Path, m.Start, d, m.Len()})
		used = append(used, span{m.Start, m.End}, span{d, d + m.Len()})
		curLo, curHi = min(curLo, m.Start), max(curHi, m.End)
	}
	if len(pieces) == 0 {
		return nil
	}
	used = append(used, span{h.stub, h.stub + stubRegionSize(h.ps)})
	tmp, ok := findHole(used, curHi-curLo, 1<<32, h.ps)
	if !ok {
		return errors.New("no room to move the vdso")
	}
	mremap := func(from, size, to uint64, what string) error {
		_, err := h.sys("mremap "+what, sys.Mremap, from, size, size, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, to)
		return err
	}
	for _, pc := range pieces {
		if err := mremap(pc.cur, pc.size, tmp+(pc.cur-curLo), pc.name); err != nil {
			return err
		}
	}
	for _, pc := range pieces {
		if err := mremap(tmp+(pc.cur-curLo), pc.size, pc.dst, pc.name); err != nil {
			return err
		}
	}
	return nil
}

// The mappings are created with their final protection and flags, and
// written without ever being made writable: a PROT_NONE|MAP_NORESERVE
// reservation of 64 GiB (ASan, Go, the JVM, V8) costs nothing and is
// charged nothing, as in the original (issue 7, item 3). Commit charge
// (VM_ACCOUNT, mm/mmap.c accountable_mapping) comes from private writable
// mappings without MAP_NORESERVE, and from making one writable with
// mprotect; so:
//
//	kind                 created as             pages written with
//	anonymous            MAP_PRIVATE|ANONYMOUS  process_vm_writev if writable,
//	                                            else /proc/PID/mem (FOLL_FORCE:
//	                                            the helper is the tracer)
//	private file         MAP_PRIVATE of the     the same, only where they differ
//	                     file when it is there  from the file; anonymous memory
//	                     and big enough         when the file is not usable
//	shared anonymous     MAP_SHARED|ANONYMOUS;  process_vm_writev; read-only ones
//	                     one object mapped by   are made writable for their pages
//	                     several (a split, a    (no charge: shmem is charged at
//	                     second view): made     creation) and protected back
//	                     once, each a view of
//	                     it (mapSharedAnon)
//	shared file          the file, O_RDWR if    nothing: the file has the data
//	                     it may be made
//	                     writable ("mw")
//	shared memfd or      the file the files     nothing: the files package put
//	unlinked file        package rebuilt, one   the contents in once (BLOB
//	                     object with its fds;   records)
//	                     read-only fds for
//	                     read-only mappings;
//	                     after its seals for a
//	                     write-sealed one
//
// with MAP_NORESERVE where the original had it ("nr") and MAP_GROWSDOWN
// for a stack. Then the per-mapping settings (finishVMAs).

// addrSpace is what the mapping steps learn and pass on.
type addrSpace struct {
	// fileEnd is, for a private file mapping mapped from its file,
	// where the file's last page ends in the mapping (0: not from a
	// file). Its pages are compared with the file's before being
	// written, so that those that are the same stay shared with the
	// page cache.
	fileEnd []uint64
	// unlocked marks the mappings made writable to receive their
	// pages; finishVMAs gives them back their protection.
	unlocked []bool
	mem      *os.File // /proc/PID/mem, while the pages are written
	cmp      []byte   // the current contents, to compare with
	written  int64    // pages written
	same     int64    // pages left as the file has them
}

// mapVMAs creates every mapping of the process with its final
// protection.
func (h *helper) mapVMAs() (*addrSpace, error) {
	as := &addrSpace{fileEnd: make([]uint64, len(h.p.VMAs)), unlocked: make([]bool, len(h.p.VMAs))}
	shmem := sharedAnonObjects(h.p.VMAs)
	for i := range h.p.VMAs {
		v := &h.p.VMAs[i]
		flags := mapFlags(v)
		fd, off := ^uint64(0), uint64(0)
		switch v.Kind {
		case image.VMAVDSO, image.VMAVVAR:
			continue
		case image.VMAAnon:
			flags |= unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
			if v.Flags&image.VMAGrowsDown != 0 {
				flags |= unix.MAP_GROWSDOWN
			}
		case image.VMAFilePrivate:
			end, err := h.mapPrivateFile(v, flags)
			if err != nil {
				return nil, err
			}
			if end != 0 {
				as.fileEnd[i] = end
				continue
			}
			// The file is gone or not usable: anonymous memory, which
			// the image's pages fill with the same contents.
			flags |= unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
		case image.VMASharedAnon:
			if obj := shmem[sharedAnonKey(v)]; len(obj) > 0 {
				if obj[0] == i { // its first mapping: all of them
					if err := h.mapSharedAnon(obj); err != nil {
						return nil, err
					}
				}
				continue
			}
			flags |= unix.MAP_SHARED | unix.MAP_ANONYMOUS
		case image.VMAFileShared:
			var err error
			if fd, err = h.openShared(v); err != nil {
				return nil, err
			}
			flags |= unix.MAP_SHARED
			off = v.Offset
		case image.VMASharedObject:
			if !files.MapAfterSeals(v) {
				if err := h.mapObject(v, flags); err != nil {
					return nil, err
				}
			}
			continue
		default:
			return nil, fmt.Errorf("mapping %#x-%#x has unknown kind %d", v.Start, v.End, v.Kind)
		}
		err := h.mmap(v, flags, fd, off)
		if fd != ^uint64(0) {
			err = errors.Join(err, h.closeFD(fd, v.Path))
		}
		if err != nil {
			return nil, err
		}
	}
	if h.files != nil {
		// The memfds get their seals once mapped (F_SEAL_FUTURE_WRITE
		// would forbid a writable mapping made before it), but for the
		// read-only mappings made after a write seal.
		if err := h.files.Seal(); err != nil {
			return nil, err
		}
		for i := range h.p.VMAs {
			if v := &h.p.VMAs[i]; files.MapAfterSeals(v) {
				if err := h.mapObject(v, mapFlags(v)); err != nil {
					return nil, err
				}
			}
		}
		if err := h.files.MappingsDone(); err != nil {
			return nil, err
		}
	}
	return as, nil
}

// sharedAnonKey names the shmem object a shared anonymous mapping maps.
func sharedAnonKey(v *image.VMA) string { return v.Dev + " " + strconv.FormatUint(v.Inode, 10) }

// sharedAnonObjects finds the shared anonymous objects that more than a
// plain MAP_SHARED|MAP_ANONYMOUS mapping would get wrong: those mapped by
// several mappings (an mprotect split one, or mremap made a second view)
// or from an offset other than 0. It returns their mappings' indexes, by
// sharedAnonKey.
func sharedAnonObjects(vmas []image.VMA) map[string][]int {
	all := map[string][]int{}
	for i := range vmas {
		if v := &vmas[i]; v.Kind == image.VMASharedAnon && v.Inode != 0 {
			all[sharedAnonKey(v)] = append(all[sharedAnonKey(v)], i)
		}
	}
	for k, idx := range all {
		if len(idx) == 1 && vmas[idx[0]].Offset == 0 {
			delete(all, k)
		}
	}
	return all
}

// mapSharedAnon makes one shared anonymous object for the mappings idx
// (VMAs of one shmem inode): MAP_SHARED|MAP_ANONYMOUS as large as the
// furthest of them reaches, in a hole of the frozen layout, from which
// each is made a view at its own offset with mremap(old_size 0, which
// makes a second mapping of the same shared pages, mm/mremap.c), and
// given its protection; then the first one goes. /proc shows each with
// its offset, and the pages are one: a write through one mapping is seen
// through the others, as before.
func (h *helper) mapSharedAnon(idx []int) error {
	sys := h.host.Sys
	var size uint64
	used := []span{{h.stub, h.stub + stubRegionSize(h.ps)}}
	for _, v := range h.p.VMAs {
		used = append(used, span{v.Start, v.End})
	}
	for _, i := range idx {
		v := &h.p.VMAs[i]
		size = max(size, v.Offset+v.End-v.Start)
	}
	first := &h.p.VMAs[idx[0]]
	tmp, ok := findHole(used, size, 1<<32, h.ps)
	if !ok {
		return fmt.Errorf("no room to make the shared memory of %#x-%#x", first.Start, first.End)
	}
	flags := mapFlags(first) | unix.MAP_SHARED | unix.MAP_ANONYMOUS
	what := fmt.Sprintf("shared memory of %#x-%#x (%d mappings, %d bytes)", first.Start, first.End, len(idx), size)
	if _, err := h.sys("mmap "+what, sys.Mmap, tmp, size, unix.PROT_READ|unix.PROT_WRITE, flags, ^uint64(0), 0); err != nil {
		return err
	}
	for _, i := range idx {
		v := &h.p.VMAs[i]
		got, err := h.sys(fmt.Sprintf("mremap %s to %#x", what, v.Start), sys.Mremap,
			tmp+v.Offset, 0, v.End-v.Start, unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, v.Start)
		if err == nil && got != v.Start {
			err = fmt.Errorf("mremap %s: placed at %#x, not %#x", what, got, v.Start)
		}
		if err != nil {
			return err
		}
		if v.Prot != unix.PROT_READ|unix.PROT_WRITE {
			if _, err := h.sys(fmt.Sprintf("mprotect %#x-%#x", v.Start, v.End), sys.Mprotect, v.Start, v.End-v.Start, uint64(v.Prot)); err != nil {
				return err
			}
		}
	}
	_, err := h.sys("munmap the first view of "+what, sys.Munmap, tmp, size)
	return err
}

// mapObject maps v (VMASharedObject) from the memfd or deleted file the
// files package rebuilt: one object with the fds on it.
func (h *helper) mapObject(v *image.VMA, flags uint64) error {
	if h.files == nil {
		return fmt.Errorf("map %#x-%#x %s: its file was not rebuilt", v.Start, v.End, v.Path)
	}
	n, err := h.files.MappingFD(v)
	if err != nil {
		return err
	}
	return h.mmap(v, flags|unix.MAP_SHARED, uint64(n), v.Offset)
}

// mapFlags are the mmap flags every mapping of v gets.
func mapFlags(v *image.VMA) uint64 {
	flags := uint64(unix.MAP_FIXED_NOREPLACE)
	if v.Flags&image.VMANoReserve != 0 {
		flags |= unix.MAP_NORESERVE
	}
	return flags
}

func (h *helper) mmap(v *image.VMA, flags, fd, off uint64) error {
	got, err := h.s.Syscall(h.host.Sys.Mmap, v.Start, v.End-v.Start, uint64(v.Prot), flags, fd, off)
	if err == nil && got != v.Start {
		err = fmt.Errorf("placed at %#x", got)
	}
	if err != nil {
		return fmt.Errorf("map %#x-%#x %s: %w", v.Start, v.End, v.Path, err)
	}
	return nil
}

// closeFD closes the process's descriptor fd, open on path.
func (h *helper) closeFD(fd uint64, path string) error {
	_, err := h.sys(fmt.Sprintf("close fd %d of %s", fd, path), h.host.Sys.Close, fd)
	return err
}

// openat opens path in the process and returns the descriptor.
func (h *helper) openat(path string, flags uint64) (uint64, error) {
	addr, err := h.poke(0, cstring(path))
	if err != nil {
		return 0, err
	}
	atFDCWD := int64(unix.AT_FDCWD)
	return h.s.Syscall(h.host.Sys.Openat, uint64(atFDCWD), addr, flags|unix.O_CLOEXEC, 0)
}

// mapPrivateFile maps a private file mapping from its file when the file
// is at its path and regular, and returns where the file's last page
// ends in the mapping; 0 when it maps nothing and the caller is to map
// anonymous memory. A readable mapping needs a file that reaches into
// its last page: the image holds all of its pages, and one wholly past
// the end would fault (SIGBUS) where the original had data; the end
// cutting a page is fine, the rest of it reads as zero (ld.so's data,
// where the bss starts). An unreadable one (a library's PROT_NONE gap,
// which ld.so maps past the end of the file) only has its present pages
// in the image, checked against the end as they come. The kernel may
// also refuse to map the file (a noexec mount for an executable
// mapping): anonymous memory then too.
func (h *helper) mapPrivateFile(v *image.VMA, flags uint64) (fileEnd uint64, err error) {
	if !strings.HasPrefix(v.Path, "/") || strings.HasSuffix(v.Path, " (deleted)") || strings.HasPrefix(v.Path, "/memfd:") {
		return 0, nil
	}
	fd, err := h.openat(v.Path, unix.O_RDONLY)
	if err != nil {
		h.logf("%#x-%#x %s comes back anonymous: open: %v", v.Start, v.End, v.Path, err)
		return 0, nil
	}
	defer func() { err = errors.Join(err, h.closeFD(fd, v.Path)) }()
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/fd/%d", h.pid, fd))
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", v.Path, err)
	}
	size := (uint64(fi.Size()) + h.ps - 1) &^ (h.ps - 1)
	fileEnd = v.End
	if size < v.Offset+(v.End-v.Start) {
		fileEnd = v.Start + max(size, v.Offset) - v.Offset
	}
	if !fi.Mode().IsRegular() || (v.Prot&unix.PROT_READ != 0 && fileEnd < v.End) {
		h.logf("%#x-%#x %s comes back anonymous: not a regular file reaching offset %#x", v.Start, v.End, v.Path, v.Offset+(v.End-v.Start))
		return 0, nil
	}
	got, err := h.s.Syscall(h.host.Sys.Mmap, v.Start, v.End-v.Start, uint64(v.Prot), flags|unix.MAP_PRIVATE, fd, v.Offset)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.ENODEV) {
		h.logf("%#x-%#x %s comes back anonymous: mmap: %v", v.Start, v.End, v.Path, err)
		return 0, nil
	}
	if err == nil && got != v.Start {
		err = fmt.Errorf("placed at %#x", got)
	}
	if err != nil {
		return 0, fmt.Errorf("map %#x-%#x %s: %w", v.Start, v.End, v.Path, err)
	}
	return fileEnd, nil
}

// openShared opens the file of a shared file mapping: read-write if the
// mapping is writable or may be made so (mw: the original's file was open
// for writing), so that mprotect can make it writable later as it could
// before.
func (h *helper) openShared(v *image.VMA) (uint64, error) {
	oflags := uint64(unix.O_RDONLY)
	if v.Prot&unix.PROT_WRITE != 0 || v.Flags&image.VMAMayWrite != 0 {
		oflags = unix.O_RDWR
	}
	fd, err := h.openat(v.Path, oflags)
	if err != nil && oflags == unix.O_RDWR && v.Prot&unix.PROT_WRITE == 0 &&
		(errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS) || errors.Is(err, unix.EPERM)) {
		// Not writable for the thawing user: the mapping as it is
		// needs no more, only a later mprotect would.
		h.logf("%s: %v read-write; reopened read-only, it cannot be made writable", v.Path, err)
		fd, err = h.openat(v.Path, unix.O_RDONLY)
	}
	if err != nil {
		return 0, fmt.Errorf("reopen shared mapping %#x-%#x of %s: %w", v.Start, v.End, v.Path, err)
	}
	return fd, nil
}

// fillPages streams the page records into the new mappings.
func (h *helper) fillPages(as *addrSpace) (err error) {
	if as.mem, err = os.OpenFile(fmt.Sprintf("/proc/%d/mem", h.pid), os.O_RDWR, 0); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, as.mem.Close()) }()
	vmas := h.p.VMAs
	find := func(a uint64) int {
		i := sort.Search(len(vmas), func(i int) bool { return vmas[i].End > a })
		if i < len(vmas) && vmas[i].Start <= a {
			return i
		}
		return -1
	}
	// A record may span adjacent mappings: write it piece by piece.
	put := func(addr uint64, data []byte) error {
		for len(data) > 0 {
			i := find(addr)
			if i < 0 {
				return fmt.Errorf("image has pages at %#x outside any mapping", addr)
			}
			v := &vmas[i]
			switch v.Kind {
			case image.VMAAnon, image.VMAFilePrivate, image.VMASharedAnon:
			default:
				return fmt.Errorf("image has pages at %#x in %s, which takes none", addr, v.Path)
			}
			n := min(uint64(len(data)), v.End-addr)
			var err error
			if as.fileEnd[i] != 0 {
				err = h.writeChanged(as, i, addr, data[:n])
			} else {
				err = h.writePages(as, i, addr, data[:n])
			}
			if err != nil {
				return err
			}
			addr += n
			data = data[n:]
		}
		return nil
	}
	for {
		addr, data, err := h.r.Next()
		if err == io.EOF {
			h.logf("%d pages written, %d left as their file has them", as.written, as.same)
			return nil
		}
		if err != nil {
			return fmt.Errorf("read image: %w", err)
		}
		if err := put(addr, data); err != nil {
			return err
		}
	}
}

// writePages writes b at addr, inside VMA i: with process_vm_writev where
// the mapping is writable, through /proc/PID/mem where it is private
// (FOLL_FORCE writes a private copy, as a debugger's breakpoint does, and
// charges nothing), and for a read-only shared mapping, which FOLL_FORCE
// cannot write (mm/gup.c, check_vma_flags), after making it writable.
func (h *helper) writePages(as *addrSpace, i int, addr uint64, b []byte) error {
	v := &h.p.VMAs[i]
	as.written += int64(uint64(len(b)) / h.ps)
	if v.Prot&unix.PROT_WRITE != 0 || as.unlocked[i] {
		return writeFull(h.pid, addr, b)
	}
	if v.Kind != image.VMASharedAnon {
		_, err := as.mem.WriteAt(b, int64(addr))
		if err == nil {
			return nil
		}
		// A kernel that refuses FOLL_FORCE on /proc/PID/mem
		// (proc_mem.force_override=never): the slow way.
		h.logf("write %#x-%#x through /proc/PID/mem: %v; making %s writable for it", addr, addr+uint64(len(b)), err, v.Path)
	}
	if _, err := h.sys(fmt.Sprintf("mprotect %#x-%#x writable for its pages", v.Start, v.End), h.host.Sys.Mprotect,
		v.Start, v.End-v.Start, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return err
	}
	as.unlocked[i] = true
	return writeFull(h.pid, addr, b)
}

// writeChanged writes the pages of b that differ from what the mapping
// (of the file) shows at addr.
func (h *helper) writeChanged(as *addrSpace, i int, addr uint64, b []byte) error {
	v := &h.p.VMAs[i]
	if end := addr + uint64(len(b)); end > as.fileEnd[i] {
		return fmt.Errorf("the image has data for %#x-%#x of %s, past the end of the file: it is shorter than when frozen", max(addr, as.fileEnd[i]), end, v.Path)
	}
	if cap(as.cmp) < len(b) {
		as.cmp = make([]byte, len(b))
	}
	cur := as.cmp[:len(b)]
	var n int
	var err error
	if v.Prot&unix.PROT_READ != 0 {
		n, err = ptrace.ReadMem(h.pid, addr, cur)
		n = max(n, 0)
	}
	if n < len(cur) {
		var m int
		m, err = as.mem.ReadAt(cur[n:], int64(addr)+int64(n))
		n += m
	}
	if n < len(cur) {
		return fmt.Errorf("read %#x-%#x of %s to compare: %v", addr, addr+uint64(len(b)), v.Path, err)
	}
	ps := int(h.ps)
	for p := 0; p < len(b); {
		if bytes.Equal(b[p:p+ps], cur[p:p+ps]) {
			as.same++
			p += ps
			continue
		}
		q := p + ps
		for q < len(b) && !bytes.Equal(b[q:q+ps], cur[q:q+ps]) {
			q += ps
		}
		if err := h.writePages(as, i, addr+uint64(p), b[p:q]); err != nil {
			return err
		}
		p = q
	}
	return nil
}

// madvise advice given back per VMA flag, in this order.
var vmaAdvice = []struct {
	flag   uint32
	advice uint64
	name   string
}{
	{image.VMADontFork, unix.MADV_DONTFORK, "MADV_DONTFORK"},
	{image.VMAWipeOnFork, unix.MADV_WIPEONFORK, "MADV_WIPEONFORK"},
	{image.VMANoDump, unix.MADV_DONTDUMP, "MADV_DONTDUMP"},
	{image.VMAHugePage, unix.MADV_HUGEPAGE, "MADV_HUGEPAGE"},
	{image.VMANoHugePage, unix.MADV_NOHUGEPAGE, "MADV_NOHUGEPAGE"},
	{image.VMAMergeable, unix.MADV_MERGEABLE, "MADV_MERGEABLE"},
	{image.VMASequential, unix.MADV_SEQUENTIAL, "MADV_SEQUENTIAL"},
	{image.VMARandom, unix.MADV_RANDOM, "MADV_RANDOM"},
}

// finishVMAs gives each mapping, once its pages are in, what its VmFlags
// said: each phase over all mappings before the next, because each may
// split mappings that were created as one (the kernel merges adjacent
// mappings made alike):
//
//  1. the protection of the mappings made writable for their pages; and
//     the commit charge (VM_ACCOUNT, VmFlag "ac") of a private mapping
//     that is not writable but was once (glibc's RELRO): made writable
//     and read-only again, as the original was, it is charged as it was
//  2. madvise: DONTFORK, WIPEONFORK, DONTDUMP, HUGEPAGE, NOHUGEPAGE,
//     MERGEABLE, SEQUENTIAL, RANDOM
//  3. the names of [anon:NAME] and [anon_shmem:NAME] mappings
//  4. guard regions (MADV_GUARD_INSTALL), after the advice so that the
//     "gu" flag lands on the very mappings that hold them, and before
//     mlock, which refuses them once locked
//  5. mlock2 (MLOCK_ONFAULT for lf); RLIMIT_MEMLOCK is restored before
//  6. mseal, last of all: a sealed mapping takes no more changes
func (h *helper) finishVMAs(as *addrSpace) error {
	sys := h.host.Sys
	var vmas []image.VMA // the kernel's vdso and vvar are as they should be
	for _, v := range h.p.VMAs {
		if v.Kind != image.VMAVDSO && v.Kind != image.VMAVVAR {
			vmas = append(vmas, v)
		}
	}
	for i := range h.p.VMAs {
		v := &h.p.VMAs[i]
		if as.unlocked[i] {
			if _, err := h.sys(fmt.Sprintf("mprotect %#x-%#x", v.Start, v.End), sys.Mprotect, v.Start, v.End-v.Start, uint64(v.Prot)); err != nil {
				return err
			}
		}
	}
	for i := range vmas {
		v := &vmas[i]
		private := v.Kind == image.VMAAnon || v.Kind == image.VMAFilePrivate
		if !private || v.Flags&image.VMAAccount == 0 || v.Prot&unix.PROT_WRITE != 0 {
			continue
		}
		what := fmt.Sprintf("charge %#x-%#x %s as before (mprotect)", v.Start, v.End, describeVMA(v))
		if _, err := h.sys(what, sys.Mprotect, v.Start, v.End-v.Start, uint64(v.Prot|unix.PROT_READ|unix.PROT_WRITE)); err != nil {
			return err
		}
		// Made read-only again, an anonymous mapping that has no
		// anon_vma yet (no page ever faulted in: a guard page) loses
		// its charge (mm/mprotect.c, mprotect_fixup). Its first byte
		// written back as it is gives it one (and a page).
		if v.Kind == image.VMAAnon {
			b := make([]byte, 1)
			if n, err := ptrace.ReadMem(h.pid, v.Start, b); err != nil || n != 1 {
				return fmt.Errorf("%s: read %#x: %v", what, v.Start, err)
			}
			if n, err := ptrace.WriteMem(h.pid, v.Start, b); err != nil || n != 1 {
				return fmt.Errorf("%s: write %#x: %v", what, v.Start, err)
			}
		}
		if _, err := h.sys(what, sys.Mprotect, v.Start, v.End-v.Start, uint64(v.Prot)); err != nil {
			return err
		}
	}
	for _, a := range vmaAdvice {
		for i := range vmas {
			v := &vmas[i]
			if v.Flags&a.flag == 0 {
				continue
			}
			if _, err := h.sys(fmt.Sprintf("madvise(%#x-%#x %s, %s)", v.Start, v.End, describeVMA(v), a.name), sys.Madvise, v.Start, v.End-v.Start, a.advice); err != nil {
				return err
			}
		}
	}
	for i := range vmas {
		v := &vmas[i]
		name, ok := anonName(v.Path)
		if !ok {
			continue
		}
		addr, err := h.poke(0, cstring(name))
		if err != nil {
			return err
		}
		if _, err := h.sys(fmt.Sprintf("name %#x-%#x %s", v.Start, v.End, v.Path), sys.Prctl, unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME, v.Start, v.End-v.Start, addr); err != nil {
			return err
		}
	}
	for i := range vmas {
		for _, g := range vmas[i].Guards {
			if _, err := h.sys(fmt.Sprintf("guard region %#x-%#x (MADV_GUARD_INSTALL)", g[0], g[1]), sys.Madvise, g[0], g[1]-g[0], unix.MADV_GUARD_INSTALL); err != nil {
				return err
			}
		}
	}
	for i := range vmas {
		v := &vmas[i]
		if v.Flags&image.VMALocked == 0 {
			continue
		}
		var fl uint64
		if v.Flags&image.VMALockOnFault != 0 {
			fl = unix.MLOCK_ONFAULT
		}
		if _, err := h.s.Syscall(sys.Mlock2, v.Start, v.End-v.Start, fl); err != nil {
			return fmt.Errorf("lock %#x-%#x %s in memory (mlock2): %w: the process had it locked; "+
				"its RLIMIT_MEMLOCK or this machine's memory does not allow it here", v.Start, v.End, describeVMA(v), err)
		}
	}
	for i := range vmas {
		v := &vmas[i]
		if v.Flags&image.VMASealed == 0 {
			continue
		}
		if _, err := h.sys(fmt.Sprintf("mseal %#x-%#x %s", v.Start, v.End, describeVMA(v)), sys.Mseal, v.Start, v.End-v.Start, 0); err != nil {
			return err
		}
	}
	return nil
}

// anonName is the name PR_SET_VMA_ANON_NAME gave an anonymous mapping,
// from its maps path: [anon:NAME] or, shared, [anon_shmem:NAME]
// (fs/proc/task_mmu.c, get_vma_name).
func anonName(path string) (string, bool) {
	for _, pre := range []string{"[anon:", "[anon_shmem:"} {
		if name, ok := strings.CutPrefix(path, pre); ok && strings.HasSuffix(name, "]") {
			return strings.TrimSuffix(name, "]"), true
		}
	}
	return "", false
}

func describeVMA(v *image.VMA) string {
	if v.Path == "" {
		return "(anonymous)"
	}
	return v.Path
}
