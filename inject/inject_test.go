package inject

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/proc"
)

// section is one section of a synthetic ELF image. off and size, when
// set, replace the section header's offset and size (the data is then not
// written): headers that lie.
type section struct {
	name      string
	typ       elf.SectionType
	flags     elf.SectionFlag
	data      []byte
	off, size uint64
}

// elfImage builds a little-endian ELF64 image: the header, the sections'
// data one after the other from offset 0x100 on, 16-aligned, then a
// .shstrtab and the section header table. It returns the image and the
// offset of each section's data.
func elfImage(t *testing.T, secs ...section) ([]byte, []uint64) {
	t.Helper()
	names := []byte{0}
	nameOff := make([]uint32, len(secs)+1)
	for i, s := range append(secs, section{name: ".shstrtab"}) {
		nameOff[i] = uint32(len(names))
		names = append(append(names, s.name...), 0)
	}
	body := make([]byte, 0x100)
	shdrs := []elf.Section64{{}} // the null section
	var offs []uint64
	for i, s := range secs {
		for len(body)%16 != 0 {
			body = append(body, 0)
		}
		h := elf.Section64{Name: nameOff[i], Type: uint32(s.typ), Flags: uint64(s.flags),
			Off: uint64(len(body)), Size: uint64(len(s.data)), Addralign: 16}
		if s.off != 0 || s.size != 0 {
			h.Off, h.Size = s.off, s.size
		} else {
			body = append(body, s.data...)
		}
		shdrs = append(shdrs, h)
		offs = append(offs, h.Off)
	}
	shdrs = append(shdrs, elf.Section64{Name: nameOff[len(secs)], Type: uint32(elf.SHT_STRTAB),
		Off: uint64(len(body)), Size: uint64(len(names)), Addralign: 1})
	body = append(body, names...)
	for len(body)%8 != 0 {
		body = append(body, 0)
	}
	shoff := len(body)

	hdr := elf.Header64{
		Type: uint16(elf.ET_DYN), Machine: arch.Current.ELFMachine, Version: uint32(elf.EV_CURRENT),
		Shoff: uint64(shoff), Ehsize: 64, Shentsize: 64,
		Shnum: uint16(len(shdrs)), Shstrndx: uint16(len(shdrs) - 1),
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	var hb bytes.Buffer
	if err := binary.Write(&hb, binary.LittleEndian, &hdr); err != nil {
		t.Fatal(err)
	}
	copy(body, hb.Bytes())
	out := bytes.NewBuffer(body)
	if err := binary.Write(out, binary.LittleEndian, shdrs); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), offs
}

func TestSyscallInELF(t *testing.T) {
	insn := arch.Current.SyscallInsn
	// Four zero bytes before the instruction: whole instructions on
	// amd64 (add [rax], al, twice) and one aligned word on arm64.
	code := append([]byte{0, 0, 0, 0}, insn...)
	text := section{name: ".text", typ: elf.SHT_PROGBITS, flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR, data: code}
	data := section{name: ".data", typ: elf.SHT_PROGBITS, flags: elf.SHF_ALLOC | elf.SHF_WRITE, data: code}
	rodata := section{name: ".rodata", typ: elf.SHT_PROGBITS, flags: elf.SHF_ALLOC, data: code}
	note := section{name: ".note", typ: elf.SHT_NOTE, flags: elf.SHF_ALLOC | elf.SHF_EXECINSTR, data: code}
	noInsn := text
	noInsn.data = make([]byte, 16)
	// A header that says the section goes on past the end of the
	// image: skipped, not read out of bounds.
	pastEnd := text
	pastEnd.off, pastEnd.size = 0x40, 1<<20
	// A compressed section's size is its compression header's, which
	// says anything: here one that wraps Offset+Size around to 8 (the
	// first section's data is at 0x100).
	var chdr bytes.Buffer
	if err := binary.Write(&chdr, binary.LittleEndian, elf.Chdr64{Type: uint32(elf.COMPRESS_ZLIB), Size: math.MaxUint64 - 0x100 + 1 + 8, Addralign: 1}); err != nil {
		t.Fatal(err)
	}
	compressed := text
	compressed.flags |= elf.SHF_COMPRESSED
	compressed.data = append(chdr.Bytes(), code...)

	for _, tc := range []struct {
		name string
		secs []section
		// at is the index in secs of the section holding the
		// instruction, 4 bytes in; -1 for none.
		at int
	}{
		{"text section", []section{text}, 0},
		// The same bytes in data sections come first and do not count.
		{"after data sections holding the same bytes", []section{data, rodata, text}, 2},
		{"no executable section", []section{data, rodata}, -1},
		{"executable but not PROGBITS", []section{note}, -1},
		{"executable section without the instruction", []section{noInsn}, -1},
		{"executable section past the end", []section{pastEnd, data}, -1},
		{"compressed executable section of a wrapping size", []section{compressed, data}, -1},
		{"compressed executable section, then text", []section{compressed, text}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, offs := elfImage(t, tc.secs...)
			off, err := syscallInELF(img, arch.FindSyscall)
			if tc.at < 0 {
				if !errors.Is(err, errNoSyscall) {
					t.Errorf("offset %#x, err %v; want %v", off, err, errNoSyscall)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := offs[tc.at] + 4; off != want {
				t.Errorf("offset %#x, want %#x", off, want)
			}
			if !bytes.Equal(img[off:off+uint64(len(insn))], insn) {
				t.Errorf("bytes at %#x are % x, not the syscall instruction % x", off, img[off:off+uint64(len(insn))], insn)
			}
		})
	}

	img, _ := elfImage(t, text)
	for _, tc := range []struct {
		name string
		img  []byte
	}{
		{"garbage", bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 1024)},
		{"empty", nil},
		{"truncated header", img[:40]},
		{"wrong class", append(append([]byte(nil), img[:elf.EI_CLASS]...), append([]byte{9}, img[elf.EI_CLASS+1:]...)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, err := syscallInELF(tc.img, arch.FindSyscall)
			if err == nil || errors.Is(err, errNoSyscall) {
				t.Errorf("offset %#x, err %v; want an ELF parse error", off, err)
			}
		})
	}
}

// ownVDSO returns this process's [vdso] mapping and its bytes, read
// through /proc/self/mem.
func ownVDSO(t *testing.T) (proc.Mapping, []proc.Mapping, []byte) {
	t.Helper()
	maps, err := proc.Maps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Path != "[vdso]" {
			continue
		}
		mem, err := os.Open("/proc/self/mem")
		if err != nil {
			t.Fatal(err)
		}
		defer mem.Close()
		buf := make([]byte, m.Len())
		if _, err := mem.ReadAt(buf, int64(m.Start)); err != nil {
			t.Fatalf("read [vdso] at %#x: %v", m.Start, err)
		}
		return m, maps, buf
	}
	t.Fatal("no [vdso] in /proc/self/maps")
	panic("unreachable")
}

// On the kernel's own vdso: the offset found holds the syscall
// instruction, inside an executable section, and FindSite answers the
// vdso's address plus that offset.
func TestSyscallInOwnVDSO(t *testing.T) {
	vdso, maps, img := ownVDSO(t)
	insn := arch.Current.SyscallInsn
	off, err := syscallInELF(img, arch.FindSyscall)
	if err != nil {
		t.Fatalf("vdso at %#x (%d bytes): %v", vdso.Start, len(img), err)
	}
	if off+uint64(len(insn)) > uint64(len(img)) || !bytes.Equal(img[off:off+uint64(len(insn))], insn) {
		t.Fatalf("offset %#x of the vdso does not hold % x", off, insn)
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	in := ""
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_EXECINSTR != 0 && off >= s.Offset && off+uint64(len(insn)) <= s.Offset+s.Size {
			in = s.Name
		}
	}
	if in == "" {
		t.Errorf("offset %#x is in no executable section", off)
	}
	site, err := FindSite(os.Getpid(), maps)
	if err != nil {
		t.Fatal(err)
	}
	if site != vdso.Start+off {
		t.Errorf("FindSite = %#x, want the vdso's %#x + %#x (%s)", site, vdso.Start, off, in)
	}
}

// FindSite falls back to the code mappings when the [vdso] is no ELF
// image, and fails when there is no code either.
func TestFindSiteFallback(t *testing.T) {
	vdso, maps, _ := ownVDSO(t)
	garbage, err := unix.Mmap(-1, 0, os.Getpagesize(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(garbage) })
	copy(garbage, bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, len(garbage)/4))
	fake := proc.Mapping{Start: uint64(reflect.ValueOf(garbage).Pointer()), Perms: "rw-p", Path: "[vdso]"}
	fake.End = fake.Start + uint64(len(garbage))
	var code, noCode []proc.Mapping
	for _, m := range maps {
		if m.Start == vdso.Start {
			continue
		}
		code = append(code, m)
		if !m.Exec() {
			noCode = append(noCode, m)
		}
	}
	code = append([]proc.Mapping{fake}, code...)

	site, err := FindSite(os.Getpid(), code)
	if err != nil {
		t.Fatal(err)
	}
	var in *proc.Mapping
	for i, m := range code {
		if site >= m.Start && site < m.End {
			in = &code[i]
		}
	}
	if in == nil || !in.Exec() {
		t.Fatalf("FindSite = %#x, in no executable mapping (%+v)", site, in)
	}
	got := make([]byte, len(arch.Current.SyscallInsn))
	mem, err := os.Open("/proc/self/mem")
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if _, err := mem.ReadAt(got, int64(site)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, arch.Current.SyscallInsn) {
		t.Errorf("FindSite = %#x (%s) holds % x, not the syscall instruction", site, in.Path, got)
	}

	if site, err := FindSite(os.Getpid(), append([]proc.Mapping{fake}, noCode...)); err == nil {
		t.Errorf("FindSite without code = %#x, want an error", site)
	}
}

func TestSyscallResult(t *testing.T) {
	neg := func(e int64) uint64 { return uint64(-e) }
	for _, tc := range []struct {
		name string
		ret  uint64
		err  error
	}{
		{"zero", 0, nil},
		{"a count", 4096, nil},
		{"an address", 0x7f12_3456_7000, nil},
		{"-EPERM", neg(1), unix.EPERM},
		{"-ENOSYS", neg(38), unix.ENOSYS},
		{"-ERESTARTSYS", neg(512), errRestart512},
		{"-MAX_ERRNO", neg(4095), unix.Errno(4095)},
		// One past MAX_ERRNO is a value (a kernel-half address), not
		// an error.
		{"-4096", neg(4096), nil},
		{"top bit set", 1 << 63, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := syscallResult(tc.ret)
			if got != tc.ret {
				t.Errorf("value %#x, want the raw %#x", got, tc.ret)
			}
			if err != tc.err { // unix.Errno values compare by number
				t.Errorf("err %v, want %v", err, tc.err)
			}
		})
	}
}

// A restart code is retried, up to 4 calls in all; any other result,
// EINTR included (the kernel gives it to user space as is), is final.
func TestRetryRestart(t *testing.T) {
	restart := func(e unix.Errno) []error { return []error{e, e, e, e, e, e} }
	for _, tc := range []struct {
		name    string
		results []error // what the calls return, in order
		calls   int
		err     error
	}{
		{"success", []error{nil}, 1, nil},
		{"ERESTARTSYS then success", []error{errRestart512, nil}, 2, nil},
		{"each restart code", []error{errRestart512, errRestart513, errRestart514, nil}, 4, nil},
		{"ERESTARTNOINTR forever", restart(errRestart513), 4, errRestart513},
		{"ERESTART_RESTARTBLOCK forever", restart(errRestart516), 4, errRestart516},
		{"EINTR", []error{unix.EINTR, nil}, 1, unix.EINTR},
		{"ENOIOCTLCMD (515) is no restart", []error{unix.Errno(515), nil}, 1, unix.Errno(515)},
		{"EAGAIN", []error{unix.EAGAIN, nil}, 1, unix.EAGAIN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			ret, err := retryRestart(func() (uint64, error) {
				e := tc.results[n]
				n++
				return uint64(100 + n), e
			})
			if n != tc.calls {
				t.Errorf("%d calls, want %d", n, tc.calls)
			}
			if err != tc.err {
				t.Errorf("err %v, want %v", err, tc.err)
			}
			if ret != uint64(100+n) {
				t.Errorf("value %d, want the last call's %d", ret, 100+n)
			}
		})
	}
}
