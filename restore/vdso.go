package restore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/ptrace"
)

// The vdso of another kernel.
//
// The process holds pointers into the vdso it was frozen with: glibc
// caches its functions' addresses at start (GLRO(dl_vdso_clock_gettime)
// and the like), the Go runtime keeps its own table, and auxv's
// AT_SYSINFO_EHDR names its ELF header. The thawing kernel's vdso is
// handled in one of three ways, chosen before anything is destroyed:
//
//	same     byte for byte the frozen one (the same kernel): moved to
//	         the frozen addresses with its vvar pages (moveVDSO)
//	moved    another build, but the same layout: the same size, the
//	         same vvar pages at the same distances, and every function
//	         the frozen one exported at the same offset: moved the same
//	         way; the cached pointers land on the same functions
//	proxy    anything else (6.1 and 6.18: clock_gettime at 0x960 and
//	         0xaf0, a [vvar_vclock] only in 6.18): the thawing kernel's
//	         vdso and vvar pages are moved together to a hole of the
//	         frozen layout, and at the frozen vdso's address a copy of
//	         the frozen vdso is mapped whose every exported function
//	         starts with a jump to the same function of the new one
//	         (CRIU's vdso proxy). A function the new vdso lacks (6.1 has
//	         no getrandom) becomes its system call (glibc and the Go
//	         runtime call the vdso's getrandom with getrandom(2)'s first
//	         three arguments), or returns -ENOSYS when it has none. The
//	         frozen [vvar] pages are never dumped and not made again:
//	         nothing runs the old code that read them.
//
// The proxy is plain anonymous memory, r-x, at the vdso's frozen place,
// so AT_SYSINFO_EHDR still finds an ELF there, whose symbols lead to the
// new vdso. A later freeze sees it as any other mapping and the new
// vdso as the process's vdso.
//
// CRYO_THAW_VDSO=proxy forces the proxy on the same kernel (the e2e
// tests go through it on every run); proxy:-NAME,-NAME... also treats
// this kernel's vdso as lacking the functions NAME (getrandom: then
// __vdso_getrandom and getrandom on amd64), as an older kernel's does.
//
// MAP_DROPPABLE (Linux 6.11+; glibc's and the Go runtime's getrandom
// state) is not a mapping type the image keeps: a droppable mapping
// ("dp" in VmFlags) comes back as private anonymous memory with its
// MAP_NORESERVE, WIPEONFORK and DONTDUMP, which every kernel makes. Its
// contents only cache random state; kept in ordinary memory they are
// never dropped, which the vdso's getrandom does not mind (and the
// syscall that replaces it on an older kernel does not read).

const envVDSOMode = "CRYO_THAW_VDSO"

// forcedProxy reads CRYO_THAW_VDSO: whether to proxy, and the names to
// pretend this kernel's vdso lacks.
func forcedProxy() (bool, []string) {
	v := os.Getenv(envVDSOMode)
	mode, list, _ := strings.Cut(v, ":")
	if mode != "proxy" {
		return false, nil
	}
	var drop []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimPrefix(n, "-"); n != "" {
			drop = append(drop, n, "__vdso_"+n, "__kernel_"+n)
		}
	}
	return true, drop
}

type vdsoMode int

const (
	vdsoSame vdsoMode = iota
	vdsoMoved
	vdsoProxy
)

func (m vdsoMode) String() string {
	return [...]string{"same", "moved", "proxy"}[m]
}

// vdsoFunc is one exported function of a vdso: the names at one offset.
type vdsoFunc struct {
	off   uint64
	names []string
}

// vdsoFuncs parses a vdso image (its bytes as mapped: the section
// headers are part of it) and returns its exported functions by offset,
// and their offsets by name. ELF64, little-endian, read by hand: the
// restorer every image carries would grow by 200 KB with debug/elf's
// symbol tables (issue 10, item 7).
func vdsoFuncs(b []byte) ([]vdsoFunc, map[string]uint64, error) {
	bad := func(what string) ([]vdsoFunc, map[string]uint64, error) {
		return nil, nil, fmt.Errorf("parse the vdso: %s", what)
	}
	le := binary.LittleEndian
	size := uint64(len(b))
	if size < 64 || string(b[:4]) != "\x7fELF" || b[4] != 2 || b[5] != 1 {
		return bad("not a little-endian ELF64 image")
	}
	// in reports whether [off, off+n) lies within b.
	in := func(off, n uint64) bool { return off <= size && n <= size-off }
	phoff, shoff := le.Uint64(b[0x20:]), le.Uint64(b[0x28:])
	phent, phnum := uint64(le.Uint16(b[0x36:])), uint64(le.Uint16(b[0x38:]))
	shent, shnum := uint64(le.Uint16(b[0x3a:])), uint64(le.Uint16(b[0x3c:]))
	if phent < 56 || shent < 64 || !in(phoff, phent*phnum) || !in(shoff, shent*shnum) {
		return bad("program or section headers out of bounds")
	}
	bias, found := uint64(0), false
	for i := uint64(0); i < phnum; i++ {
		ph := b[phoff+i*phent:]
		if le.Uint32(ph) == 1 { // PT_LOAD
			bias, found = le.Uint64(ph[16:])-le.Uint64(ph[8:]), true
			break
		}
	}
	if !found {
		return bad("no PT_LOAD")
	}
	byName := map[string]uint64{}
	byOff := map[uint64][]string{}
	dynsym := false
	for i := uint64(0); i < shnum; i++ {
		sh := b[shoff+i*shent:]
		if le.Uint32(sh[4:]) != 11 { // SHT_DYNSYM
			continue
		}
		dynsym = true
		off, n, link := le.Uint64(sh[0x18:]), le.Uint64(sh[0x20:]), uint64(le.Uint32(sh[0x28:]))
		if !in(off, n) || link >= shnum {
			return bad("symbol table out of bounds")
		}
		str := b[shoff+link*shent:]
		stroff, strn := le.Uint64(str[0x18:]), le.Uint64(str[0x20:])
		if !in(stroff, strn) {
			return bad("string table out of bounds")
		}
		strs := b[stroff : stroff+strn]
		for j := uint64(0); j+24 <= n; j += 24 {
			sym := b[off+j:]
			name, info, shndx, value := uint64(le.Uint32(sym)), sym[4], le.Uint16(sym[6:]), le.Uint64(sym[8:])
			if info&0xf != 2 || shndx == 0 || value < bias { // STT_FUNC, defined
				continue
			}
			if name >= uint64(len(strs)) {
				return bad("symbol name out of bounds")
			}
			nm := strs[name:]
			if k := bytes.IndexByte(nm, 0); k >= 0 {
				nm = nm[:k]
			}
			o := value - bias
			if o >= size {
				return bad(fmt.Sprintf("%s at %#x, past its end", nm, value))
			}
			byName[string(nm)] = o
			byOff[o] = append(byOff[o], string(nm))
		}
	}
	if !dynsym {
		return bad("no dynamic symbol table")
	}
	var funcs []vdsoFunc
	for off, names := range byOff {
		sort.Strings(names)
		funcs = append(funcs, vdsoFunc{off, names})
	}
	sort.Slice(funcs, func(i, j int) bool { return funcs[i].off < funcs[j].off })
	return funcs, byName, nil
}

// vdsoPlan is what checkVDSO decided.
type vdsoPlan struct {
	mode vdsoMode
	// proxy: the frozen vdso's functions and the new one's offsets.
	oldFuncs []vdsoFunc
	newSyms  map[string]uint64
	// Where placeProxy put things: this kernel's vdso group (its
	// mappings, their lowest address) goes to dst; code is the proxy,
	// mapped at the frozen vdso's address at.
	group   []proc.Mapping
	lo, dst uint64
	code    []byte
	at      uint64
}

// planVDSO compares the frozen vdso group (its VMAs in the image, its
// bytes in the metadata) with this kernel's (cur, from the stub's maps,
// and its bytes) and chooses how to handle it.
func planVDSO(arch image.Arch, frozen []image.VMA, oldVDSO []byte, cur []proc.Mapping, newVDSO []byte) (*vdsoPlan, error) {
	var oldV *image.VMA
	for i := range frozen {
		if frozen[i].Kind == image.VMAVDSO {
			oldV = &frozen[i]
		}
	}
	if oldV == nil {
		return &vdsoPlan{mode: vdsoSame}, nil // the process unmapped its vdso: nothing to keep
	}
	var newV *proc.Mapping
	for i := range cur {
		if cur[i].Path == "[vdso]" {
			newV = &cur[i]
		}
	}
	if newV == nil {
		return nil, errors.New("this kernel gave the process no vdso, and the frozen process has one")
	}
	layout := sameVDSOLayout(frozen, cur, oldV, newV)
	force, drop := forcedProxy()
	if layout && bytes.Equal(oldVDSO, newVDSO) && !force {
		return &vdsoPlan{mode: vdsoSame}, nil
	}
	oldFuncs, oldSyms, err := vdsoFuncs(oldVDSO)
	if err != nil {
		return nil, fmt.Errorf("the frozen vdso: %w", err)
	}
	_, newSyms, err := vdsoFuncs(newVDSO)
	if err != nil {
		return nil, fmt.Errorf("this kernel's vdso: %w", err)
	}
	for _, n := range drop {
		delete(newSyms, n)
	}
	if layout && !force {
		same := true
		for name, off := range oldSyms {
			if n, ok := newSyms[name]; !ok || n != off {
				same = false
				break
			}
		}
		if same {
			return &vdsoPlan{mode: vdsoMoved}, nil
		}
	}
	return &vdsoPlan{mode: vdsoProxy, oldFuncs: oldFuncs, newSyms: newSyms}, nil
}

// sameVDSOLayout: the same vdso size and the same vvar pages (names,
// sizes, distances from the vdso), so that the group moves as a whole.
func sameVDSOLayout(frozen []image.VMA, cur []proc.Mapping, oldV *image.VMA, newV *proc.Mapping) bool {
	if oldV.End-oldV.Start != newV.Len() {
		return false
	}
	type piece struct {
		rel  int64
		size uint64
	}
	old, now := map[string]piece{}, map[string]piece{}
	for _, v := range frozen {
		if v.Kind == image.VMAVVAR {
			old[v.Path] = piece{int64(v.Start - oldV.Start), v.End - v.Start}
		}
	}
	for _, m := range cur {
		if strings.HasPrefix(m.Path, "[vvar") {
			now[m.Path] = piece{int64(m.Start - newV.Start), m.Len()}
		}
	}
	if len(old) != len(now) {
		return false
	}
	for k, v := range old {
		if now[k] != v {
			return false
		}
	}
	return true
}

// vdsoSyscalls are the system calls behind the vdso's functions, for
// those a new vdso lacks (include/uapi/asm-generic/unistd.h,
// arch/x86/entry/syscalls/syscall_64.tbl).
var vdsoSyscalls = map[image.Arch]map[string]uint32{
	image.ArchAMD64: {
		"__vdso_clock_gettime": 228, "clock_gettime": 228,
		"__vdso_gettimeofday": 96, "gettimeofday": 96,
		"__vdso_time": 201, "time": 201,
		"__vdso_clock_getres": 229, "clock_getres": 229,
		"__vdso_getcpu": 309, "getcpu": 309,
		"__vdso_getrandom": 318, "getrandom": 318,
	},
	image.ArchARM64: {
		"__kernel_clock_gettime": 113,
		"__kernel_gettimeofday":  169,
		"__kernel_clock_getres":  114,
		"__kernel_getrandom":     278,
		"__kernel_rt_sigreturn":  139,
	},
}

// proxy returns the frozen vdso (old, which was at oldBase) with each
// exported function patched to jump to the same function of the new
// vdso at newBase, or to make its system call.
func (p *vdsoPlan) proxy(arch image.Arch, old []byte, oldBase, newBase uint64) ([]byte, error) {
	out := append([]byte(nil), old...)
	for i, fn := range p.oldFuncs {
		end := uint64(len(old))
		if i+1 < len(p.oldFuncs) {
			end = p.oldFuncs[i+1].off
		}
		room := end - fn.off
		entry := oldBase + fn.off
		var code []byte
		target, found := uint64(0), false
		for _, n := range fn.names {
			if off, ok := p.newSyms[n]; ok {
				target, found = newBase+off, true
				break
			}
		}
		nr, isSyscall := uint32(0), false
		for _, n := range fn.names {
			if nr, isSyscall = vdsoSyscalls[arch][n]; isSyscall {
				break
			}
		}
		switch {
		case slices.Contains(fn.names, "__kernel_rt_sigreturn"):
			// arm64's signal trampoline is its system call (mov x8,
			// #139; svc #0) on every kernel, and reads no vvar: kept.
			continue
		case found:
			code = jumpCode(arch, entry, target, room)
			if uint64(len(code)) > room && isSyscall {
				code = syscallCode(arch, nr) // too short for a far jump
			}
		case isSyscall:
			code = syscallCode(arch, nr)
		default:
			code = enosysCode(arch)
		}
		if code == nil {
			return nil, fmt.Errorf("no vdso proxy for this architecture (%v)", arch)
		}
		if uint64(len(code)) > room {
			return nil, fmt.Errorf("the frozen vdso's %s has %d bytes, too few for the %d-byte jump into this kernel's vdso", strings.Join(fn.names, "/"), room, len(code))
		}
		copy(out[fn.off:], code)
	}
	return out, nil
}

// jumpCode is a jump from entry to target, the shortest that reaches
// and fits, clobbering no argument register (amd64: a jmp rel32, else
// jmp [rip+0] with the address after it; arm64: a b, else ldr x16 of
// the address after it and br x16: x16 is the linker's scratch register
// IP0).
func jumpCode(arch image.Arch, entry, target, room uint64) []byte {
	le := binary.LittleEndian
	d := int64(target - entry)
	switch arch {
	case image.ArchAMD64:
		if rel := d - 5; rel >= -1<<31 && rel < 1<<31 && room >= 5 {
			b := []byte{0xe9, 0, 0, 0, 0}
			le.PutUint32(b[1:], uint32(int32(rel)))
			return b
		}
		b := []byte{0xff, 0x25, 0, 0, 0, 0}
		return le.AppendUint64(b, target)
	case image.ArchARM64:
		if d >= -1<<27 && d < 1<<27 && d%4 == 0 && room >= 4 {
			return le.AppendUint32(nil, 0x14000000|uint32(d>>2)&0x3ffffff)
		}
		b := le.AppendUint32(nil, 0x58000050) // ldr x16, .+8
		b = le.AppendUint32(b, 0xd61f0200)    // br x16
		return le.AppendUint64(b, target)
	}
	return nil
}

// syscallCode makes system call nr with the function's arguments, which
// are the system call's, and returns its result.
func syscallCode(arch image.Arch, nr uint32) []byte {
	le := binary.LittleEndian
	switch arch {
	case image.ArchAMD64:
		b := []byte{0xb8, 0, 0, 0, 0} // mov eax, nr
		le.PutUint32(b[1:], nr)
		return append(b, 0x0f, 0x05, 0xc3) // syscall; ret
	case image.ArchARM64:
		b := le.AppendUint32(nil, 0xd2800008|(nr&0xffff)<<5) // movz x8, #nr
		b = le.AppendUint32(b, 0xd4000001)                   // svc #0
		return le.AppendUint32(b, 0xd65f03c0)                // ret
	}
	return nil
}

// enosysCode returns -ENOSYS.
func enosysCode(arch image.Arch) []byte {
	le := binary.LittleEndian
	switch arch {
	case image.ArchAMD64:
		return []byte{0x48, 0xc7, 0xc0, 0xda, 0xff, 0xff, 0xff, 0xc3} // mov rax, -38; ret
	case image.ArchARM64:
		b := le.AppendUint32(nil, 0x92800000|37<<5) // movn x0, #37
		return le.AppendUint32(b, 0xd65f03c0)       // ret
	}
	return nil
}

// readCurVDSO reads this kernel's vdso in the stub.
func (h *helper) readCurVDSO(cur []proc.Mapping) ([]byte, error) {
	for _, m := range cur {
		if m.Path != "[vdso]" {
			continue
		}
		b := make([]byte, m.Len())
		if n, err := ptrace.ReadMem(h.pid, m.Start, b); err != nil || n != len(b) {
			return nil, fmt.Errorf("read this kernel's vdso (%d of %d bytes): %v", n, len(b), err)
		}
		return b, nil
	}
	return nil, nil
}

// placeProxy chooses, before anything is destroyed, where this kernel's
// vdso group goes (a hole of the frozen layout near the frozen vdso, so
// that short jumps reach: amd64's rel32, arm64's b) and builds the
// proxy's bytes for it.
func (h *helper) placeProxy(stubMaps []proc.Mapping) error {
	var oldV *image.VMA
	for i := range h.p.VMAs {
		if h.p.VMAs[i].Kind == image.VMAVDSO {
			oldV = &h.p.VMAs[i]
		}
	}
	used := imageSpans(h.p)
	used = append(used, span{h.stub, h.stub + stubRegionSize(h.ps)})
	for _, v := range h.p.VMAs {
		if v.Flags&image.VMAGrowsDown != 0 {
			// Room for the stack to grow.
			lo := uint64(0)
			if v.Start > 256<<20 {
				lo = v.Start - 256<<20
			}
			used = append(used, span{lo, v.Start})
		}
	}
	// freeze steps a running thread out of the vdso; one of a process
	// frozen in a job-control stop may still be inside, where the proxy
	// has the old body, which reads the old [vvar].
	for _, th := range h.p.Threads {
		regs, err := h.host.NewRegs(th.Regs)
		if err != nil {
			return err
		}
		pc := regs.PC()
		atEntry := slices.ContainsFunc(h.vdso.oldFuncs, func(f vdsoFunc) bool { return oldV.Start+f.off == pc })
		if pc >= oldV.Start && pc < oldV.End && !atEntry {
			return fmt.Errorf("thread %d was frozen inside the vdso (at %#x), which differs here: thaw it on a kernel like the freezing one", th.Tid, pc)
		}
	}
	var lo, hi uint64 = ^uint64(0), 0
	var newOff uint64
	h.vdso.group = nil
	for _, m := range stubMaps {
		if m.Path == "[vdso]" || strings.HasPrefix(m.Path, "[vvar") {
			h.vdso.group = append(h.vdso.group, m)
			used = append(used, span{m.Start, m.End})
			lo, hi = min(lo, m.Start), max(hi, m.End)
		}
	}
	for _, m := range h.vdso.group {
		if m.Path == "[vdso]" {
			newOff = m.Start - lo
		}
	}
	reach := uint64(1 << 30) // amd64: jmp rel32 reaches 2 GiB
	if h.host.Image == image.ArchARM64 {
		reach = 64 << 20 // b reaches 128 MiB
	}
	from := uint64(1 << 32)
	if oldV.Start > reach+from {
		from = oldV.Start - reach
	}
	dst, ok := findHole(used, hi-lo, from, h.ps)
	if !ok {
		if dst, ok = findHole(used, hi-lo, 1<<32, h.ps); !ok {
			return errors.New("no room for this kernel's vdso")
		}
	}
	code, err := h.vdso.proxy(h.host.Image, h.p.VDSO, oldV.Start, dst+newOff)
	if err != nil {
		return err
	}
	h.vdso.lo, h.vdso.dst, h.vdso.code, h.vdso.at = lo, dst, code, oldV.Start
	return nil
}

// proxyVDSO moves this kernel's vdso group to the hole placeProxy chose
// and maps the proxy at the frozen vdso's address.
func (h *helper) proxyVDSO() error {
	sys := h.host.Sys
	for _, m := range h.vdso.group {
		if _, err := h.sys("mremap "+m.Path, sys.Mremap, m.Start, m.Len(), m.Len(), unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED, h.vdso.dst+(m.Start-h.vdso.lo)); err != nil {
			return err
		}
	}
	at, size := h.vdso.at, uint64(len(h.vdso.code))
	if _, err := h.sys("mmap the vdso proxy", sys.Mmap, at, size, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0); err != nil {
		return err
	}
	if err := writeFull(h.pid, at, h.vdso.code); err != nil {
		return err
	}
	if _, err := h.sys("mprotect the vdso proxy", sys.Mprotect, at, size, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return err
	}
	h.logf("vdso proxy at %#x, this kernel's vdso group at %#x", at, h.vdso.dst)
	return nil
}
