// Package cpu says which CPU a frozen process needs: the instruction set
// features it may rely on, recorded at freeze and checked at thaw, and
// (amd64) the XSAVE layout its registers were saved in, converted at thaw
// by arch/amd64.ConvertXSave.
//
// # What a process may rely on
//
// Code chooses instructions by asking the CPU, once, at start-up: glibc's
// ifuncs pick memcpy, strlen... variants (AVX2, EVEX/AVX-512), its
// dynamic linker picks XSAVEC to save registers, the Go runtime's
// internal/cpu picks AES, AVX2, AVX-512 code paths. Nothing tells which
// were taken, so by default a process may rely on every feature of the
// CPU it started on: freeze records them all, and thaw refuses a CPU that
// lacks one, listing what is missing.
//
// The features are read as a process reads them: the CPUID instruction,
// each bit counted only when the OS enabled the register state it needs
// in XCR0 (AVX needs YMM, AVX-512 the opmask and ZMM state). The table
// (features_x86.go) lists instructions whose absence raises #UD, named as
// in /proc/cpuinfo; hints that change only speed (erms, fsrm) and
// features only the kernel uses (smap, xsaves) are not in it. arm64 uses
// the "Features" line of /proc/cpuinfo, its HWCAPs.
//
// To make a process movable to an older CPU, start it with the switches
// of its runtimes, read by freeze from /proc/PID/environ (the start-up
// environment, which is what the runtimes read):
//
//	GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,...   glibc
//	GODEBUG=cpu.avx512f=off,...                              Go runtime
//	CRYO_CPU=x86-64-v3 or CRYO_CPU=-sha_ni,-gfni,...          everything else
//
// A feature is left out of the record when some switch turned it off and
// no runtime present in the process that dispatches on it on its own was
// left free to use it: a glibc tunable does not cover a Go program's
// runtime (present: a Go binary, read from its build info), GODEBUG does
// not cover glibc's ifuncs (present: libc.so.6 is mapped), and CRYO_CPU,
// the user's word for the program's own code and any library with its own
// CPUID dispatch (OpenSSL, a JIT), overrules neither. A switch of a
// runtime that is absent changes nothing. thaw's refusal ends with the
// switches that would have left the missing features out.
//
// # XSAVE layouts (amd64)
//
// NT_X86_XSTATE is the standard (non-compacted) format: the legacy region
// and header at fixed places, each extended component at the offset CPUID
// leaf 0xD gives on that CPU. freeze records the layout (HostXSave) with
// the areas; thaw reads its own and moves each component the process has
// to its offset here, keeping in XSTATE_BV those both CPUs have. A
// component in use there that this CPU lacks (AVX-512 registers, a
// protection key set) refuses the thaw, or with --ignore-cpu is dropped
// with a warning; one in its initial state is dropped silently.
package cpu
