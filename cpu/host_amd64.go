package cpu

import "github.com/cryo-project/cryo/arch/amd64"

// Implemented in cpuid_amd64.s.
func cpuid(leaf, sub uint32) (a, b, c, d uint32)
func xgetbv0() (lo, hi uint32)

// xcr0 is XCR0 as user code reads it, 0 where the OS has not enabled
// XGETBV (CPUID.1:ECX.OSXSAVE clear).
func xcr0() uint64 {
	if _, _, c, _ := cpuid(1, 0); c&(1<<27) == 0 {
		return 0
	}
	lo, hi := xgetbv0()
	return uint64(hi)<<32 | uint64(lo)
}

// HostFeatures is the instruction set features this CPU lets user code
// run, read as a process reads them: CPUID and XCR0, not /proc/cpuinfo.
func HostFeatures() ([]string, error) {
	return x86Usable(cpuid, xcr0()), nil
}

// HostXSave is this CPU's standard-format XSAVE layout, from CPUID leaf
// 0xD (Intel SDM vol. 1 13.2): the size for the components XCR0 enables
// and each user component's offset and size. It is nil where the OS has
// not enabled XSAVE.
func HostXSave() (*amd64.XSaveLayout, error) {
	return xsaveLayout(cpuid, xcr0()), nil
}

func xsaveLayout(cpuid CPUID, xcr0 uint64) *amd64.XSaveLayout {
	if max, _, _, _ := cpuid(0, 0); max < leafXSave || xcr0 == 0 {
		return nil
	}
	_, size, _, _ := cpuid(leafXSave, 0)
	l := &amd64.XSaveLayout{Size: int(size), XCR0: xcr0}
	for i := 2; i < 63; i++ {
		if xcr0&(1<<i) == 0 {
			continue
		}
		sz, off, flags, _ := cpuid(leafXSave, uint32(i))
		if sz == 0 || flags&1 != 0 { // absent, or a supervisor component
			continue
		}
		l.Components = append(l.Components, amd64.XComponent{Feature: i, Offset: int(off), Size: int(sz)})
	}
	return l
}
