package amd64

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strings"
)

// The standard (non-compacted) XSAVE format of NT_X86_XSTATE, the regset
// PTRACE_GETREGSET returns and PTRACE_SETREGSET takes (Intel SDM vol. 1
// ch. 13.4; arch/x86/include/asm/fpu/types.h):
//
//	  0  legacy region (FXSAVE): x87, MXCSR, XMM0-15        components 0, 1
//	464  software-reserved bytes: word 0 is XCR0 (USER_XSTATE_XCR0_WORD)
//	512  XSAVE header: XSTATE_BV, XCOMP_BV (0 here), 48 reserved bytes
//	576  extended components 2.. at the offsets CPUID leaf 0xD gives
//	     (sub-leaf i: EAX size, EBX offset); a CPU that lacks one has no
//	     room for it, and the total size differs from CPU to CPU
//	     (Haswell 832 bytes, Zen 3 2440, Sapphire Rapids 11008).
const (
	XSaveLegacySize = 512
	XSaveXCR0Offset = 464
	XSaveHeaderSize = 64
	// XSaveExtended is where the first extended component may start.
	XSaveExtended = XSaveLegacySize + XSaveHeaderSize

	// XFeaturePKRU is the protection-keys register's component.
	XFeaturePKRU = 9
	// PKRUDefault is the value the kernel gives PKRU in every new process
	// (init_pkru_value, arch/x86/mm/pkeys.c): keys 1-15 access-disabled,
	// key 0 open. A process that never called pkey_alloc holds it.
	PKRUDefault = 0x55555554
)

// XComponent is one extended state component of a standard-format area.
type XComponent struct {
	Feature int `json:"feature"` // bit number in XCR0 and XSTATE_BV
	Offset  int `json:"offset"`
	Size    int `json:"size"`
}

// XSaveLayout is a CPU's standard-format XSAVE layout: its size, the
// components its kernel enables for user space (XCR0) and where they are.
type XSaveLayout struct {
	Size       int          `json:"size"`
	XCR0       uint64       `json:"xcr0"`
	Components []XComponent `json:"components"`
}

// Component finds feature i's component, if the layout has it.
func (l *XSaveLayout) Component(i int) (XComponent, bool) {
	for _, c := range l.Components {
		if c.Feature == i {
			return c, true
		}
	}
	return XComponent{}, false
}

// Check tells whether l describes an area that can hold its components.
func (l *XSaveLayout) Check() error {
	if l.Size < XSaveExtended {
		return fmt.Errorf("xsave layout of %d bytes: shorter than the legacy region and header", l.Size)
	}
	for _, c := range l.Components {
		if c.Feature < 2 || c.Feature > 63 || c.Offset < XSaveExtended || c.Size <= 0 || c.Offset+c.Size > l.Size {
			return fmt.Errorf("xsave layout of %d bytes: component %d at %d+%d does not fit", l.Size, c.Feature, c.Offset, c.Size)
		}
	}
	return nil
}

// XStateBV is the XSTATE_BV of a standard-format area: the components
// whose state is not in its initial configuration.
func XStateBV(area []byte) uint64 {
	if len(area) < XSaveExtended {
		return 0
	}
	return binary.LittleEndian.Uint64(area[XSaveLegacySize:])
}

// AreaXCR0 is the XCR0 word the kernel writes in the software-reserved
// bytes of an NT_X86_XSTATE area, 0 if the area is too short.
func AreaXCR0(area []byte) uint64 {
	if len(area) < XSaveXCR0Offset+8 {
		return 0
	}
	return binary.LittleEndian.Uint64(area[XSaveXCR0Offset:])
}

// XSaveInUse is the set of extended components (bit i: component i) of
// area that hold state other than their initial one: XSTATE_BV bit set
// and contents not all zero (the initial state of every extended
// component but PKRU), PKRU only when it differs from the kernel's
// default.
func XSaveInUse(area []byte, l *XSaveLayout) uint64 {
	var used uint64
	bv := XStateBV(area)
	for _, c := range l.Components {
		if bv&(1<<c.Feature) == 0 || c.Offset+c.Size > len(area) {
			continue
		}
		if !initial(c.Feature, area[c.Offset:c.Offset+c.Size]) {
			used |= 1 << c.Feature
		}
	}
	return used
}

func initial(feature int, b []byte) bool {
	if feature == XFeaturePKRU && len(b) >= 4 {
		if v := binary.LittleEndian.Uint32(b); v == 0 || v == PKRUDefault {
			return true
		}
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// ConvertXSave rebuilds area, saved on a CPU of layout from, for a CPU of
// layout to whose own area (as PTRACE_GETREGSET returned it there) is
// here: the legacy region is copied, the software-reserved bytes are
// here's, XSTATE_BV keeps the components both CPUs have, and each of those
// moves to its offset under to. A component in use (XSaveInUse) that to
// lacks is an error naming it, unless drop is set: then it is left out and
// returned in dropped. Components in their initial state that to lacks
// are left out silently: the kernel initialises what XSTATE_BV omits.
func ConvertXSave(area []byte, from, to *XSaveLayout, here []byte, drop bool) (out []byte, dropped uint64, err error) {
	if err := from.Check(); err != nil {
		return nil, 0, fmt.Errorf("frozen %w", err)
	}
	if err := to.Check(); err != nil {
		return nil, 0, err
	}
	if len(area) != from.Size {
		return nil, 0, fmt.Errorf("frozen xsave area is %d bytes, its layout says %d", len(area), from.Size)
	}
	if len(here) != to.Size {
		return nil, 0, fmt.Errorf("this CPU's xsave area is %d bytes, its layout says %d", len(here), to.Size)
	}
	out = make([]byte, to.Size)
	copy(out[:XSaveXCR0Offset], area[:XSaveXCR0Offset])
	copy(out[XSaveXCR0Offset:XSaveLegacySize], here[XSaveXCR0Offset:XSaveLegacySize])
	bv := XStateBV(area)
	keep := bv & 3 // x87 and SSE live in the legacy region
	used := XSaveInUse(area, from)
	var lacking uint64
	for _, c := range from.Components {
		bit := uint64(1) << c.Feature
		if bv&bit == 0 {
			continue
		}
		d, ok := to.Component(c.Feature)
		if !ok || to.XCR0&bit == 0 {
			if used&bit != 0 {
				lacking |= bit
			}
			continue
		}
		if d.Size != c.Size {
			return nil, 0, fmt.Errorf("xsave component %d (%s) is %d bytes there, %d here", c.Feature, XFeatureName(c.Feature), c.Size, d.Size)
		}
		copy(out[d.Offset:d.Offset+d.Size], area[c.Offset:c.Offset+c.Size])
		keep |= bit
	}
	// A bit set without a component in from's list (a layout that does not
	// describe it) cannot be moved: it is lost if in use, which only an
	// area that lies about its layout could make happen.
	if rest := bv &^ 3 &^ componentMask(from); rest != 0 {
		return nil, 0, fmt.Errorf("frozen xsave area has state components %s its layout does not place", XFeatureNames(rest))
	}
	if lacking != 0 && !drop {
		return nil, 0, fmt.Errorf("this CPU or kernel lacks xsave state the process holds: %s", XFeatureNames(lacking))
	}
	// A CPU without protection keys had no PKRU to save: give the process
	// the value a new process here starts with, not PKRU 0 (the kernel's
	// choice when XSTATE_BV omits it: every key open).
	if _, had := from.Component(XFeaturePKRU); !had && to.XCR0&(1<<XFeaturePKRU) != 0 {
		if d, ok := to.Component(XFeaturePKRU); ok && d.Size >= 4 {
			binary.LittleEndian.PutUint32(out[d.Offset:], PKRUDefault)
			keep |= 1 << XFeaturePKRU
		}
	}
	binary.LittleEndian.PutUint64(out[XSaveLegacySize:], keep)
	return out, lacking, nil
}

func componentMask(l *XSaveLayout) uint64 {
	var m uint64
	for _, c := range l.Components {
		m |= 1 << c.Feature
	}
	return m
}

var xfeatureNames = map[int]string{
	0: "x87", 1: "sse", 2: "avx", 3: "mpx-bndregs", 4: "mpx-bndcsr",
	5: "avx512-opmask", 6: "avx512-zmm-hi256", 7: "avx512-hi16-zmm",
	9: "pkru", 11: "cet-user", 17: "amx-tilecfg", 18: "amx-tiledata", 19: "apx",
}

// XFeatureName names xsave state component i.
func XFeatureName(i int) string {
	if n, ok := xfeatureNames[i]; ok {
		return n
	}
	return fmt.Sprintf("component-%d", i)
}

// XFeatureNames names the components of mask, in bit order.
func XFeatureNames(mask uint64) string {
	var names []string
	for m := mask; m != 0; m &= m - 1 {
		names = append(names, XFeatureName(bits.TrailingZeros64(m)))
	}
	return strings.Join(names, " ")
}
