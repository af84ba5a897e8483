package restore

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
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

// mapVMAs creates every mapping of the process, writable for now.
func (h *helper) mapVMAs() error {
	sys := h.host.Sys
	rw := uint64(unix.PROT_READ | unix.PROT_WRITE)
	for _, v := range h.p.VMAs {
		size := v.End - v.Start
		flags := uint64(unix.MAP_FIXED_NOREPLACE)
		fd := ^uint64(0)
		prot, off := rw, uint64(0)
		switch v.Kind {
		case image.VMAVDSO, image.VMAVVAR:
			continue
		case image.VMAAnon, image.VMAFilePrivate:
			flags |= unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
			if v.Flags&image.VMAGrowsDown != 0 {
				flags |= unix.MAP_GROWSDOWN
			}
		case image.VMASharedAnon:
			flags |= unix.MAP_SHARED | unix.MAP_ANONYMOUS
		case image.VMAFileShared:
			path, err := h.poke(0, cstring(v.Path))
			if err != nil {
				return err
			}
			oflags := uint64(unix.O_RDONLY)
			if v.Prot&unix.PROT_WRITE != 0 {
				oflags = unix.O_RDWR
			}
			atFDCWD := int64(unix.AT_FDCWD)
			if fd, err = h.s.Syscall(sys.Openat, uint64(atFDCWD), path, oflags|unix.O_CLOEXEC, 0); err != nil {
				return fmt.Errorf("reopen shared mapping %#x-%#x of %s: %w", v.Start, v.End, v.Path, err)
			}
			flags |= unix.MAP_SHARED
			prot, off = uint64(v.Prot), v.Offset
		default:
			return fmt.Errorf("mapping %#x-%#x has unknown kind %d", v.Start, v.End, v.Kind)
		}
		got, err := h.s.Syscall(sys.Mmap, v.Start, size, prot, flags, fd, off)
		if fd != ^uint64(0) {
			h.s.Syscall(sys.Close, fd)
		}
		if err == nil && got != v.Start {
			err = fmt.Errorf("placed at %#x", got)
		}
		if err != nil {
			return fmt.Errorf("map %#x-%#x %s: %w", v.Start, v.End, v.Path, err)
		}
	}
	return nil
}

// fillPages streams the page records into the new mappings.
func (h *helper) fillPages() error {
	vmas := h.p.VMAs
	find := func(a uint64) *image.VMA {
		i := sort.Search(len(vmas), func(i int) bool { return vmas[i].End > a })
		if i < len(vmas) && vmas[i].Start <= a {
			return &vmas[i]
		}
		return nil
	}
	// A record may span adjacent mappings: write it piece by piece.
	put := func(addr uint64, data []byte) error {
		for len(data) > 0 {
			v := find(addr)
			if v == nil {
				return fmt.Errorf("image has pages at %#x outside any mapping", addr)
			}
			switch v.Kind {
			case image.VMAAnon, image.VMAFilePrivate, image.VMASharedAnon:
			default:
				return fmt.Errorf("image has pages at %#x in %s, which takes none", addr, v.Path)
			}
			n := min(uint64(len(data)), v.End-addr)
			if err := writeFull(h.pid, addr, data[:n]); err != nil {
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

// protect gives each mapping its final protection.
func (h *helper) protect() error {
	for _, v := range h.p.VMAs {
		switch v.Kind {
		case image.VMAVDSO, image.VMAVVAR, image.VMAFileShared:
			continue
		}
		if v.Prot == unix.PROT_READ|unix.PROT_WRITE {
			continue
		}
		if _, err := h.sys(fmt.Sprintf("mprotect %#x-%#x", v.Start, v.End), h.host.Sys.Mprotect, v.Start, v.End-v.Start, uint64(v.Prot)); err != nil {
			return err
		}
	}
	return nil
}

