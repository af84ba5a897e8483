package amd64

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// Layouts as CPUID leaf 0xD reports them on real CPUs and QEMU models.
var (
	haswell = &XSaveLayout{Size: 832, XCR0: 0x7, Components: []XComponent{{2, 576, 256}}}
	zen3    = &XSaveLayout{Size: 2440, XCR0: 0x207, Components: []XComponent{{2, 576, 256}, {9, 2432, 8}}}
	tcgMax  = &XSaveLayout{Size: 2696, XCR0: 0x2e7, Components: []XComponent{{2, 576, 256}, {5, 1088, 64}, {6, 1152, 512}, {7, 1664, 1024}, {9, 2688, 8}}}
	spr     = &XSaveLayout{Size: 11008, XCR0: 0x602e7, Components: []XComponent{{2, 576, 256}, {5, 1088, 64}, {6, 1152, 512}, {7, 1664, 1024}, {9, 2688, 8}, {17, 2752, 64}, {18, 2816, 8192}}}
)

// area builds a standard-format area of layout l with the legacy region
// and the components of bv filled with a pattern, PKRU with pkru.
func area(l *XSaveLayout, bv uint64, pkru uint32) []byte {
	b := make([]byte, l.Size)
	for i := 0; i < XSaveXCR0Offset; i++ {
		b[i] = byte(i)
	}
	binary.LittleEndian.PutUint32(b[24:], 0x1f80) // MXCSR
	binary.LittleEndian.PutUint64(b[XSaveXCR0Offset:], l.XCR0)
	binary.LittleEndian.PutUint64(b[XSaveLegacySize:], bv)
	for _, c := range l.Components {
		if bv&(1<<c.Feature) == 0 {
			continue
		}
		if c.Feature == XFeaturePKRU {
			binary.LittleEndian.PutUint32(b[c.Offset:], pkru)
			continue
		}
		for i := 0; i < c.Size; i++ {
			b[c.Offset+i] = byte(c.Feature*31 + i)
		}
	}
	return b
}

func TestConvertXSave(t *testing.T) {
	for _, tc := range []struct {
		name     string
		from, to *XSaveLayout
		bv       uint64
		pkru     uint32
		drop     bool
		wantBV   uint64
		dropped  uint64
		wantErr  string
	}{
		{name: "zen3 to haswell, default PKRU", from: zen3, to: haswell, bv: 0x207, pkru: PKRUDefault, wantBV: 0x7},
		{name: "haswell to zen3", from: haswell, to: zen3, bv: 0x7, wantBV: 0x207},
		{name: "haswell to sapphire rapids", from: haswell, to: spr, bv: 0x7, wantBV: 0x207},
		{name: "sapphire rapids to tcg max", from: spr, to: tcgMax, bv: 0x2e7, pkru: PKRUDefault, wantBV: 0x2e7},
		{name: "tcg max to zen3, AVX-512 in use", from: tcgMax, to: zen3, bv: 0x2e7, wantErr: "avx512-opmask avx512-zmm-hi256 avx512-hi16-zmm"},
		{name: "tcg max to zen3, AVX-512 dropped", from: tcgMax, to: zen3, bv: 0x2e7, drop: true, wantBV: 0x207, dropped: 0xe0},
		{name: "zen3 to haswell, pkeys in use", from: zen3, to: haswell, bv: 0x207, pkru: 0x4, wantErr: "pkru"},
		{name: "same layout", from: zen3, to: zen3, bv: 0x203, pkru: 0x8, wantBV: 0x203},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := area(tc.from, tc.bv, tc.pkru)
			here := area(tc.to, 0, 0)
			out, dropped, err := ConvertXSave(src, tc.from, tc.to, here, tc.drop)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != tc.to.Size || XStateBV(out) != tc.wantBV || dropped != tc.dropped {
				t.Fatalf("%d bytes XSTATE_BV %#x dropped %#x, want %d %#x %#x", len(out), XStateBV(out), dropped, tc.to.Size, tc.wantBV, tc.dropped)
			}
			if !bytes.Equal(out[:XSaveXCR0Offset], src[:XSaveXCR0Offset]) {
				t.Error("legacy region differs")
			}
			if AreaXCR0(out) != tc.to.XCR0 {
				t.Errorf("XCR0 word %#x, want this CPU's %#x", AreaXCR0(out), tc.to.XCR0)
			}
			if !bytes.Equal(out[XSaveLegacySize+8:XSaveExtended], make([]byte, XSaveHeaderSize-8)) {
				t.Error("XCOMP_BV or reserved header bytes set")
			}
			for _, c := range tc.from.Components {
				d, ok := tc.to.Component(c.Feature)
				if !ok || tc.bv&(1<<c.Feature) == 0 {
					continue
				}
				if !bytes.Equal(out[d.Offset:d.Offset+d.Size], src[c.Offset:c.Offset+c.Size]) {
					t.Errorf("component %s not moved from %d to %d", XFeatureName(c.Feature), c.Offset, d.Offset)
				}
			}
			if _, had := tc.from.Component(XFeaturePKRU); !had {
				if d, ok := tc.to.Component(XFeaturePKRU); ok {
					if v := binary.LittleEndian.Uint32(out[d.Offset:]); v != PKRUDefault {
						t.Errorf("PKRU from a CPU without it: %#x, want the default", v)
					}
				}
			}
		})
	}
}

func TestConvertXSaveBadInput(t *testing.T) {
	good := area(zen3, 0x207, PKRUDefault)
	for _, tc := range []struct {
		name     string
		src      []byte
		from, to *XSaveLayout
		here     []byte
		want     string
	}{
		{"short frozen area", good[:832], zen3, haswell, make([]byte, 832), "832 bytes"},
		{"short here", good, zen3, haswell, make([]byte, 512), "this CPU's xsave area is 512"},
		{"component past the end", good, &XSaveLayout{Size: 2440, XCR0: 0x207, Components: []XComponent{{2, 2400, 256}}}, haswell, make([]byte, 832), "does not fit"},
		{"unplaced state", good, &XSaveLayout{Size: 2440, XCR0: 0x7, Components: []XComponent{{2, 576, 256}}}, haswell, make([]byte, 832), "does not place"},
		{"size change", good, zen3, &XSaveLayout{Size: 832, XCR0: 0x7, Components: []XComponent{{2, 576, 128}}}, make([]byte, 832), "256 bytes there, 128 here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ConvertXSave(tc.src, tc.from, tc.to, tc.here, false)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestXSaveInUse(t *testing.T) {
	a := area(spr, 0x602e7, PKRUDefault)
	// XTILEDATA's bit set with zero contents: initial, not in use.
	tile, _ := spr.Component(18)
	for i := tile.Offset; i < tile.Offset+tile.Size; i++ {
		a[i] = 0
	}
	if got, want := XSaveInUse(a, spr), uint64(0x200e4); got != want {
		t.Fatalf("in use %#x (%s), want %#x (%s)", got, XFeatureNames(got), want, XFeatureNames(want))
	}
}

func TestXCR0(t *testing.T) {
	// xsave is an NT_X86_XSTATE area of n bytes, all 0xa5 but the XCR0
	// word at 464 (the first of the fxsave area's sw_reserved words).
	xsave := func(n int, mask uint64) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = 0xa5
		}
		if n >= 472 {
			binary.LittleEndian.PutUint64(b[464:], mask)
		}
		return b
	}
	for _, tc := range []struct {
		name string
		area []byte
		want uint64
	}{
		{"none", nil, 0},
		{"the legacy area only", xsave(464, 0), 0},
		{"one byte short", xsave(471, 0), 0},
		{"just long enough", xsave(472, 0x7), 0x7},
		{"x87, SSE, AVX", xsave(832, 0x7), 0x7},
		{"AVX-512 and PKRU", xsave(2696, 0x2e7), 0x2e7},
		{"AMX", xsave(11008, 0x602e7), 0x602e7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AreaXCR0(tc.area); got != tc.want {
				t.Errorf("AreaXCR0 = %#x, want %#x", got, tc.want)
			}
		})
	}
}
