package cpu

// CPUID output registers.
const (
	eax = iota
	ebx
	ecx
	edx
)

// XCR0 state the OS must enable before a feature's instructions run.
const (
	stateAVX    = 1<<1 | 1<<2     // SSE, YMM_Hi128
	stateAVX512 = stateAVX | 7<<5 // opmask, ZMM_Hi256, Hi16_ZMM
	stateAMX    = 1<<17 | 1<<18   // XTILECFG, XTILEDATA
	statePKRU   = 1 << 9          // PKRU
	leafExt     = 0x80000000      // extended leaves start here
	leafXSave   = 0xd             // processor extended state
	leafExt1    = leafExt + 1     // extended features
	leafExt8    = leafExt + 8     // AMD extended features in EBX
	leafFeat7   = 7               // structured extended features
	leafFeat1   = 1               // basic features
)

// x86Feature is one user-visible instruction set feature: an instruction
// or register set a program may execute after checking a CPUID bit, so
// that a CPU without it would raise #UD (SIGILL). Hints that change only
// speed (erms, fsrm), and features only the kernel uses (smap, invpcid,
// xsaves), are not listed: a process cannot fail for their absence.
type x86Feature struct {
	name     string // as /proc/cpuinfo spells it
	leaf     uint32
	sub      uint32
	reg      int
	bit      uint
	state    uint64 // XCR0 bits the OS must enable too
	glibc    string // its name in GLIBC_TUNABLES glibc.cpu.hwcaps, if glibc dispatches on it
	goName   string // its name in GODEBUG cpu.NAME=off, if the Go runtime dispatches on it
	minLevel int    // the x86-64 psABI level that includes it (1-4), 0 if none
}

// x86Features lists the features in the order thaw names them.
var x86Features = []x86Feature{
	{name: "fpu", leaf: leafFeat1, reg: edx, bit: 0, minLevel: 1},
	{name: "cx8", leaf: leafFeat1, reg: edx, bit: 8, glibc: "CX8", minLevel: 1},
	{name: "cmov", leaf: leafFeat1, reg: edx, bit: 15, glibc: "CMOV", minLevel: 1},
	{name: "clflush", leaf: leafFeat1, reg: edx, bit: 19, minLevel: 1},
	{name: "mmx", leaf: leafFeat1, reg: edx, bit: 23, minLevel: 1},
	{name: "fxsr", leaf: leafFeat1, reg: edx, bit: 24, minLevel: 1},
	{name: "sse", leaf: leafFeat1, reg: edx, bit: 25, minLevel: 1},
	{name: "sse2", leaf: leafFeat1, reg: edx, bit: 26, glibc: "SSE2", minLevel: 1},
	{name: "pni", leaf: leafFeat1, reg: ecx, bit: 0, goName: "sse3", minLevel: 2},
	{name: "pclmulqdq", leaf: leafFeat1, reg: ecx, bit: 1, goName: "pclmulqdq"},
	{name: "ssse3", leaf: leafFeat1, reg: ecx, bit: 9, glibc: "SSSE3", goName: "ssse3", minLevel: 2},
	{name: "fma", leaf: leafFeat1, reg: ecx, bit: 12, state: stateAVX, glibc: "FMA", goName: "fma", minLevel: 3},
	{name: "cx16", leaf: leafFeat1, reg: ecx, bit: 13, minLevel: 2},
	{name: "sse4_1", leaf: leafFeat1, reg: ecx, bit: 19, glibc: "SSE4_1", goName: "sse41", minLevel: 2},
	{name: "sse4_2", leaf: leafFeat1, reg: ecx, bit: 20, glibc: "SSE4_2", goName: "sse42", minLevel: 2},
	{name: "movbe", leaf: leafFeat1, reg: ecx, bit: 22, glibc: "MOVBE", minLevel: 3},
	{name: "popcnt", leaf: leafFeat1, reg: ecx, bit: 23, glibc: "POPCNT", goName: "popcnt", minLevel: 2},
	{name: "aes", leaf: leafFeat1, reg: ecx, bit: 25, goName: "aes"},
	{name: "xsave", leaf: leafFeat1, reg: ecx, bit: 27, glibc: "XSAVE", minLevel: 3}, // OSXSAVE: XGETBV usable
	{name: "avx", leaf: leafFeat1, reg: ecx, bit: 28, state: stateAVX, glibc: "AVX", goName: "avx", minLevel: 3},
	{name: "f16c", leaf: leafFeat1, reg: ecx, bit: 29, state: stateAVX, minLevel: 3},
	{name: "rdrand", leaf: leafFeat1, reg: ecx, bit: 30},
	{name: "fsgsbase", leaf: leafFeat7, reg: ebx, bit: 0},
	{name: "bmi1", leaf: leafFeat7, reg: ebx, bit: 3, glibc: "BMI1", goName: "bmi1", minLevel: 3},
	{name: "hle", leaf: leafFeat7, reg: ebx, bit: 4},
	{name: "avx2", leaf: leafFeat7, reg: ebx, bit: 5, state: stateAVX, glibc: "AVX2", goName: "avx2", minLevel: 3},
	{name: "bmi2", leaf: leafFeat7, reg: ebx, bit: 8, glibc: "BMI2", goName: "bmi2", minLevel: 3},
	{name: "rtm", leaf: leafFeat7, reg: ebx, bit: 11, glibc: "RTM"},
	{name: "avx512f", leaf: leafFeat7, reg: ebx, bit: 16, state: stateAVX512, glibc: "AVX512F", goName: "avx512f", minLevel: 4},
	{name: "avx512dq", leaf: leafFeat7, reg: ebx, bit: 17, state: stateAVX512, glibc: "AVX512DQ", goName: "avx512dq", minLevel: 4},
	{name: "rdseed", leaf: leafFeat7, reg: ebx, bit: 18},
	{name: "adx", leaf: leafFeat7, reg: ebx, bit: 19, goName: "adx"},
	{name: "avx512ifma", leaf: leafFeat7, reg: ebx, bit: 21, state: stateAVX512},
	{name: "clflushopt", leaf: leafFeat7, reg: ebx, bit: 23},
	{name: "clwb", leaf: leafFeat7, reg: ebx, bit: 24},
	{name: "avx512pf", leaf: leafFeat7, reg: ebx, bit: 26, state: stateAVX512, glibc: "AVX512PF"},
	{name: "avx512er", leaf: leafFeat7, reg: ebx, bit: 27, state: stateAVX512, glibc: "AVX512ER"},
	{name: "avx512cd", leaf: leafFeat7, reg: ebx, bit: 28, state: stateAVX512, glibc: "AVX512CD", goName: "avx512cd", minLevel: 4},
	{name: "sha_ni", leaf: leafFeat7, reg: ebx, bit: 29, goName: "sha"},
	{name: "avx512bw", leaf: leafFeat7, reg: ebx, bit: 30, state: stateAVX512, glibc: "AVX512BW", goName: "avx512bw", minLevel: 4},
	{name: "avx512vl", leaf: leafFeat7, reg: ebx, bit: 31, state: stateAVX512, glibc: "AVX512VL", goName: "avx512vl", minLevel: 4},
	{name: "avx512vbmi", leaf: leafFeat7, reg: ecx, bit: 1, state: stateAVX512},
	{name: "ospke", leaf: leafFeat7, reg: ecx, bit: 4, state: statePKRU}, // pku usable: RDPKRU/WRPKRU
	{name: "waitpkg", leaf: leafFeat7, reg: ecx, bit: 5},
	{name: "avx512_vbmi2", leaf: leafFeat7, reg: ecx, bit: 6, state: stateAVX512},
	{name: "gfni", leaf: leafFeat7, reg: ecx, bit: 8},
	{name: "vaes", leaf: leafFeat7, reg: ecx, bit: 9, state: stateAVX},
	{name: "vpclmulqdq", leaf: leafFeat7, reg: ecx, bit: 10, state: stateAVX, goName: "vpclmulqdq"},
	{name: "avx512_vnni", leaf: leafFeat7, reg: ecx, bit: 11, state: stateAVX512},
	{name: "avx512_bitalg", leaf: leafFeat7, reg: ecx, bit: 12, state: stateAVX512},
	{name: "avx512_vpopcntdq", leaf: leafFeat7, reg: ecx, bit: 14, state: stateAVX512},
	{name: "rdpid", leaf: leafFeat7, reg: ecx, bit: 22},
	{name: "cldemote", leaf: leafFeat7, reg: ecx, bit: 25},
	{name: "movdiri", leaf: leafFeat7, reg: ecx, bit: 27},
	{name: "movdir64b", leaf: leafFeat7, reg: ecx, bit: 28},
	{name: "avx512_vp2intersect", leaf: leafFeat7, reg: edx, bit: 8, state: stateAVX512},
	{name: "serialize", leaf: leafFeat7, reg: edx, bit: 14},
	{name: "tsxldtrk", leaf: leafFeat7, reg: edx, bit: 16},
	{name: "amx_bf16", leaf: leafFeat7, reg: edx, bit: 22, state: stateAMX},
	{name: "avx512_fp16", leaf: leafFeat7, reg: edx, bit: 23, state: stateAVX512},
	{name: "amx_tile", leaf: leafFeat7, reg: edx, bit: 24, state: stateAMX},
	{name: "amx_int8", leaf: leafFeat7, reg: edx, bit: 25, state: stateAMX},
	{name: "avx_vnni", leaf: leafFeat7, sub: 1, reg: eax, bit: 4, state: stateAVX},
	{name: "avx512_bf16", leaf: leafFeat7, sub: 1, reg: eax, bit: 5, state: stateAVX512},
	{name: "cmpccxadd", leaf: leafFeat7, sub: 1, reg: eax, bit: 7},
	{name: "amx_fp16", leaf: leafFeat7, sub: 1, reg: eax, bit: 21, state: stateAMX},
	{name: "avx_ifma", leaf: leafFeat7, sub: 1, reg: eax, bit: 23, state: stateAVX},
	{name: "xsaveopt", leaf: leafXSave, sub: 1, reg: eax, bit: 0},
	{name: "xsavec", leaf: leafXSave, sub: 1, reg: eax, bit: 1, glibc: "XSAVEC"},
	{name: "xgetbv1", leaf: leafXSave, sub: 1, reg: eax, bit: 2},
	{name: "lahf_lm", leaf: leafExt1, reg: ecx, bit: 0, minLevel: 2},
	{name: "abm", leaf: leafExt1, reg: ecx, bit: 5, glibc: "LZCNT", minLevel: 3}, // LZCNT
	{name: "sse4a", leaf: leafExt1, reg: ecx, bit: 6},
	{name: "3dnowprefetch", leaf: leafExt1, reg: ecx, bit: 8}, // PREFETCHW
	{name: "xop", leaf: leafExt1, reg: ecx, bit: 11, state: stateAVX},
	{name: "fma4", leaf: leafExt1, reg: ecx, bit: 16, state: stateAVX, glibc: "FMA4"},
	{name: "tbm", leaf: leafExt1, reg: ecx, bit: 21},
	{name: "mmxext", leaf: leafExt1, reg: edx, bit: 22},
	{name: "rdtscp", leaf: leafExt1, reg: edx, bit: 27, goName: "rdtscp"},
	{name: "3dnowext", leaf: leafExt1, reg: edx, bit: 30},
	{name: "3dnow", leaf: leafExt1, reg: edx, bit: 31},
	{name: "clzero", leaf: leafExt8, reg: ebx, bit: 0},
	{name: "rdpru", leaf: leafExt8, reg: ebx, bit: 4},
}

// CPUID is one CPUID query: leaf and sub-leaf in, EAX..EDX out.
type CPUID func(leaf, sub uint32) (a, b, c, d uint32)

// x86Usable is the features of x86Features that a CPU answering cpuid,
// with XCR0 xcr0, lets user code run: the CPUID bit set, its leaf within
// the CPU's range, and the register state it needs enabled in XCR0.
func x86Usable(cpuid CPUID, xcr0 uint64) []string {
	maxBasic, _, _, _ := cpuid(0, 0)
	maxExt, _, _, _ := cpuid(leafExt, 0)
	var out []string
	for _, f := range x86Features {
		if f.leaf >= leafExt && f.leaf > maxExt || f.leaf < leafExt && f.leaf > maxBasic {
			continue
		}
		var r [4]uint32
		r[0], r[1], r[2], r[3] = cpuid(f.leaf, f.sub)
		if r[f.reg]&(1<<f.bit) == 0 || xcr0&f.state != f.state {
			continue
		}
		out = append(out, f.name)
	}
	return out
}

func x86Lookup(name string) (x86Feature, bool) {
	for _, f := range x86Features {
		if f.name == name {
			return f, true
		}
	}
	return x86Feature{}, false
}
