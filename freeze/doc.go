// Package freeze writes a running process into a self-restoring
// executable.
//
// The order of a freeze, and what the target sees:
//
//	check pid, kernel thread, privilege; create OUT.cryo-tmp-* (0700)
//	PTRACE_SEIZE + PTRACE_INTERRUPT          target stopped from here ─┐
//	refuse threads and children                                        │
//	smaps, stat, fds + fdinfo, cwd, auxv, exe, CPU flags               │
//	GETREGSET (regs, xsave), GETSIGMASK, rseq config                   │
//	inject: brk(0), mmap scratch, PR_GET_TID_ADDRESS,                  │
//	        get_robust_list, sigaltstack, rt_sigaction, TCGETS, munmap │
//	write: restorer ELF | header | META | PAGES... (vdso first)        │
//	PEEKSIGINFO (pending, after the pages) → TAIL | END | trailer      │
//	fsync, rename OUT.cryo-tmp-* → OUT, fsync dir                      │
//	default: SIGKILL (the process lives in OUT now)                    │
//	--leave-running: PTRACE_DETACH ───────────────────── target runs ──┘
//
// Any error before the rename detaches (the injection session has already
// put back the registers and the mask) and removes the temporary file:
// the target goes on as it was. The dump reads only present or swapped
// pages of anonymous memory (pagemap) and every page of private file
// mappings (a page never touched still holds the file's bytes, and the
// file may be absent where the image thaws); pages that read as zero are
// not stored.
package freeze
