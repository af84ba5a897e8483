// Package freeze writes a running process into a self-restoring
// executable.
//
// The order of a freeze, and what the target sees:
//
//	check pid, kernel thread, privilege; create OUT.cryo-tmp-* (0700)
//	PTRACE_SEIZE + PTRACE_INTERRUPT          target stopped from here ─┐
//	refuse threads and live children (zombies are recorded)            │
//	a thread stopped in the vdso: single-stepped out of it (vdso.go)   │
//	smaps, stat, fds + fdinfo (kcmp for sharing, locks), cwd, auxv,    │
//	exe, CPU features (package cpu), creds, rlimits, /proc, vdso bytes │
//	GETREGSET (regs, xsave), GETSIGMASK, rseq config                   │
//	inject: mmap scratch, brk(0), rt_sigaction, personality, prctls,   │
//	        getitimer, timer_gettime, get_mempolicy, PR_GET_TID_ADDRESS,│
//	        get_robust_list, sigaltstack, TCGETS, munmap scratch       │
//	write: restorer ELF | header | PROCESS | THREAD | PAGES...         │
//	PEEKSIGINFO (pending, after the pages) → TAIL | END | trailer      │
//	fsync, rename OUT.cryo-tmp-* → OUT, fsync dir                      │
//	default: SIGKILL (the process lives in OUT now)                    │
//	--leave-running: PTRACE_DETACH ───────────────────── target runs ──┘
//
// What is read, and what is refused, is the inventory of docs/state.md:
// state.go reads it (from /proc and the tracer where it can, by injected
// calls where only the process can tell), files.go the descriptor table.
//
// Any error before the rename detaches (the injection session has already
// put back the registers and the mask) and removes the temporary file:
// the target goes on as it was. The dump reads only present or swapped
// pages of anonymous memory (pagemap) and every page of private file
// mappings (a page never touched still holds the file's bytes, and the
// file may be absent where the image thaws); pages that read as zero are
// not stored.
//
// # Streaming
//
// With Output "-" (freeze -o -) the executable goes to standard output,
// which may not be a terminal, as it is made: no temporary file, no
// rename. What cannot be taken back is held back instead: the last 64
// bytes, the trailer, are written only where the rename would be, after
// the tail and the fsync (of a regular file). A freeze that fails has
// written an executable without its trailer, which thaw - refuses
// (image.StreamHead.NewReader), while the target goes on as it was.
// SIGPIPE is ignored, so a reader that goes away (a thaw that refused
// early, a dead ssh) is an ordinary write error: the freeze fails and
// lets the target go. The target is killed (without --leave-running)
// once the whole stream is written, whatever its reader then does.
//
// # Progress
//
// Options.Progress, a terminal (cmd/freeze: stderr unless -v), shows a
// bar of the memory read against the resident size (package progress)
// once a freeze lasts a second.
package freeze
