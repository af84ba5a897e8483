package arm64

import "encoding/binary"

// Signal details. cryo builds no signal frame: registers are loaded with
// PTRACE_SETREGSET, and a process frozen inside a handler has its frame
// (struct rt_sigframe: siginfo, then a ucontext whose sigcontext ends in
// records such as fpsimd_context) on its own stack, which travels with
// its memory. What the restorer does rely on:
//
//   - rt_sigaction takes the generic struct sigaction (handler, flags,
//     restorer, mask: SigactionSize bytes), the same layout as on x86-64;
//     arm64 defines SA_RESTORER.
//   - glibc on arm64 sets no SA_RESTORER: the kernel returns from a handler
//     through the vdso's sigtramp (__kernel_rt_sigreturn: SigreturnCode),
//     found through mm->context.vdso (setup_return in
//     arch/arm64/kernel/signal.c). mremap of [vdso] updates that pointer
//     (vdso_mremap in arch/arm64/kernel/vdso.c), so moving this kernel's
//     vdso to the frozen address keeps handlers returning.
const (
	SigactionSize = 32
	SA_RESTORER   = 0x04000000
)

// SigreturnCode is the vdso's __kernel_rt_sigreturn: mov x8, #139;
// svc #0.
func SigreturnCode() []byte {
	b := binary.LittleEndian.AppendUint32(nil, movz(8, SysRtSigreturn))
	return append(b, SyscallInsn...)
}
