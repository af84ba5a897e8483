// Package inject runs system calls inside a stopped tracee, without
// depending on its libc and without writing a byte of its memory.
//
// The lifecycle follows CRIU's compel, with plain verbs:
//
//	Begin    save the registers and the signal mask; block every signal
//	Syscall  point the pc at an existing syscall instruction, load the
//	         number and arguments, orig_rax = -1, PTRACE_SYSCALL to the
//	         entry stop and again to the exit stop, read the result
//	End      put the registers and mask back exactly as they were
//
// The syscall instruction is found, never written: FindSite decodes the
// vdso's .text (x86asm on amd64, so a 0f 05 inside another instruction is
// never mistaken for one). The tracee is stopped at syscall exit, so no
// int3 is needed after the instruction and the target's code is never
// modified. With all signals blocked, nothing of the target runs between
// the stops; a signal that still arrives (SIGSTOP) is held and delivered
// again when the session ends.
//
// A negative return in [-4095, -1] is an errno. A call that comes back
// with a kernel restart code (ERESTARTSYS and friends) is issued again.
package inject
