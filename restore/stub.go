package restore

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/image"
)

// stubCodeOffset is where the stub's code starts in its ELF file and page:
// after the ELF header and two program headers.
const (
	ehsize, phsize, nph = 64, 56, 2
	stubCodeOffset      = ehsize + phsize*nph
)

// stubELF builds the thaw stub: a static ELF executable of one R+X page at
// addr holding the arch's StubCode. The thawing process execs it, so that
// it keeps its PID but loses the Go runtime, its threads and mappings;
// the helper then rebuilds the image around it.
func stubELF(h arch.Host, addr uint64) (elf []byte, site uint64) {
	const codeOff = stubCodeOffset
	code := h.StubCode
	b := make([]byte, codeOff+uint64(len(code)))
	le := binary.LittleEndian
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2 /*64-bit*/, 1 /*LE*/, 1 /*version*/})
	le.PutUint16(b[16:], 2) // ET_EXEC
	le.PutUint16(b[18:], h.ELFMachine)
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], addr+codeOff) // e_entry
	le.PutUint64(b[32:], ehsize)       // e_phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], nph)
	ph := b[ehsize:]
	le.PutUint32(ph[0:], 1)     // PT_LOAD
	le.PutUint32(ph[4:], 1|4)   // PF_X|PF_R
	le.PutUint64(ph[16:], addr) // p_vaddr
	le.PutUint64(ph[24:], addr) // p_paddr
	le.PutUint64(ph[32:], uint64(len(b)))
	le.PutUint64(ph[40:], uint64(len(b)))
	le.PutUint64(ph[48:], 0x1000)
	ph = b[ehsize+phsize:]
	le.PutUint32(ph[0:], 0x6474e551) // PT_GNU_STACK: no executable stack
	le.PutUint32(ph[4:], 2|4)        // PF_W|PF_R
	copy(b[codeOff:], code)
	return b, addr + codeOff + h.StubSyscallOffset
}

// span is a half-open address range.
type span struct{ lo, hi uint64 }

// findHole returns the lowest address >= min, aligned to align, where size
// bytes overlap none of used.
func findHole(used []span, size, min, align uint64) (uint64, bool) {
	sort.Slice(used, func(i, j int) bool { return used[i].lo < used[j].lo })
	a := (min + align - 1) &^ (align - 1)
	for _, u := range used {
		if a+size <= u.lo {
			return a, true
		}
		if u.hi > a {
			a = (u.hi + align - 1) &^ (align - 1)
		}
	}
	const top = 1 << 47
	return a, a+size <= top
}

func imageSpans(p *image.Process) []span {
	var s []span
	for _, v := range p.VMAs {
		s = append(s, span{v.Start, v.End})
	}
	return s
}

// stubRegion is the stub's code page plus its scratch pages.
const scratchPages = 16

func stubRegionSize(ps uint64) uint64 { return ps * (1 + scratchPages) }

// chooseStubAddr picks the stub's place from the image's own map list: the
// lowest hole above mmap_min_addr, away from every mapping the process
// had (CryoPID dropped whatever lay under its fixed resumer; we don't).
func chooseStubAddr(p *image.Process, ps uint64) (uint64, error) {
	min := uint64(65536)
	if b, err := os.ReadFile("/proc/sys/vm/mmap_min_addr"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v > min {
			min = v
		}
	}
	// Leave a guard page on each side so that no VMA merges with ours.
	addr, ok := findHole(padded(imageSpans(p), ps), stubRegionSize(ps), min, ps)
	if !ok {
		return 0, fmt.Errorf("no room for the restorer in the process's address space")
	}
	return addr, nil
}

func padded(s []span, pad uint64) []span {
	out := make([]span, len(s))
	for i, x := range s {
		lo := x.lo
		if lo >= pad {
			lo -= pad
		}
		out[i] = span{lo, x.hi + pad}
	}
	return out
}

// writeStub puts the stub in a close-on-exec memfd and returns its path
// under /proc/self/fd, which execve resolves before closing the fd.
func writeStub(b []byte) (string, error) {
	fd, err := unix.MemfdCreate("cryo-stub", unix.MFD_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("memfd_create: %w", err)
	}
	if _, err := unix.Write(fd, b); err != nil {
		unix.Close(fd)
		return "", fmt.Errorf("write stub: %w", err)
	}
	return fmt.Sprintf("/proc/self/fd/%d", fd), nil
}
