// Package restore brings a frozen process back: the thaw.
//
// The process that runs ./app.bin (or thaw app.bin) becomes the restored
// process, so it keeps that process's PID and parent: the shell's job
// control and wait status stay right. Three processes take part:
//
//	launcher (pid P, the user's)      spawn               helper
//	----------------------------      -----               ------
//	read + check the image header,
//	CPU features, threads
//	choose the stub's address
//	memfd with the stub ELF
//	start spawn ───────────────────▶  start helper ────▶  PTRACE_SEIZE(P,
//	wait for spawn ◀──────────────── exit (helper is       EXITKILL|TRACEEXEC)
//	                                  reparented, not      write "S" on the
//	read "S" ◀───────────────────────────────────────────  ready pipe
//	execve(stub) ─ ─ ─ exec event ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ─ ▶  step to execve's exit
//	(the Go runtime, its threads                           rebuild P (below)
//	and mappings are gone)                                 PTRACE_DETACH: P runs
//	                                                       the frozen program
//
// The helper rebuilds P with syscalls injected at the stub's syscall
// instruction (package inject) and process_vm_writev:
//
//  1. mmap the scratch pages after the stub page; copy the stub code into
//     the last one and move the injection site there; unmap the stub
//     page, so nothing maps the stub's file (for PR_SET_MM_MAP's exe_fd)
//  2. checks that need nothing destroyed: every thread's XSAVE area
//     converted to this CPU's layout (arch/amd64.ConvertXSave; refused
//     if it holds state this CPU lacks); the vdso: the same as the
//     frozen one (carried in the metadata), the same layout, or a proxy
//     (vdso.go), its symbol tables parsed here
//  3. zombie children made again (zombies.go): an injected clone3 with
//     CLONE_PTRACE per zombie, which the helper makes exit with the
//     recorded status; the SIGCHLDs this queues are consumed
//  4. chdir; descriptors (files.go): the thaw's std fds copied high, all
//     of the stub's closed, each open file description of the image
//     opened once (or taken from the std copies) and dup3'ed onto every
//     fd that shared it; offsets; locks and leases taken again. memfds
//     and unlinked files are made again with their contents, once each;
//     those a MAP_SHARED mapping maps are also moved in on spare fds
//     for step 8
//  5. restoreEarly (state.go): umask, rlimits, scheduling, affinity,
//     ioprio, prctls, oom_score_adj, coredump_filter, loginuid, each only
//     where it differs from the stub's   ─ a missing file, a lock held by
//     someone else or a setting the thawing user may not make fails here,
//     with nothing yet destroyed
//  6. munmap every stub mapping but the stub region and the vdso/vvar
//  7. mremap vdso and vvar to the process's addresses, through a hole
//     free in both layouts; for a proxy, to a hole of the frozen layout
//     near them, and the proxy mapped at the frozen vdso's address
//  8. mmap every VMA at its address (MAP_FIXED_NOREPLACE), a shared
//     memfd or unlinked file from the spare fd of its file, which is then
//     given its mode and seals and the spare fds closed; write the page
//     records; protections, advice, locks and seals (mem.go)
//  9. PR_SET_MM_MAP (brk, arg/env, auxv, exe), signal handlers,
//     sigaltstack, tid address, robust list, rseq, name, pending signals
//  10. restoreLate (state.go): personality, membarrier, mlockall, creds
//     (when the thaw runs as root), dumpable, MDWE, no_new_privs, then the
//     interval and POSIX timers, which start running when set
//  11. the other threads (threads.go, below): each made by an injected
//     clone3 from the leader, its state restored, its frozen registers
//     loaded, parked; thread ids patched; pending signals queued again,
//     each thread's by itself, the process's by the leader
//  12. the last injected call unmaps the stub region; it enters from an
//     event stop with the frozen registers around its own (arm64 puts
//     back x7 from syscall entry at the end of a syscall stop); stopped
//     at its syscall exit, the helper loads the frozen registers (with
//     the syscall-restart fix-up), the FPU/xsave state, the TLS register
//     (arm64) and the signal mask, and detaches every thread (a process
//     frozen stopped: the leader first, with SIGSTOP)
//
// The address space during the restore:
//
//	0 ─┬─ mmap_min_addr ─┬───────────┬──────────────────── ... ────┬─ top
//	   │                 │ stub page │ scratch (16 pages; the last │
//	   │                 │ + scratch │ holds the code copy)        │
//	   │                 └───────────┘                             │
//	   │   the stub region: the lowest hole of the FROZEN layout   │
//	   │   (with a guard page each side), so it never overlaps a   │
//	   │   mapping the process needs; it is unmapped last          │
//	   │                                                           │
//	   │   [process mappings, created at their own addresses] ...  │
//	   │                       [vvar][vvar_vclock][vdso] moved in  │
//
// # Threads
//
// The leader is rebuilt as above, as if it were alone. Then, for each
// other thread of the image, in tid order:
//
//	leader:  clone3(CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|PTRACE,
//	                set_tid = {frozen tid}, stack = 0)
//	           └─▶ new thread T, traced from birth, stops (EVENT_STOP)
//	                 with every signal blocked (the leader's injected mask)
//	T:       inject.Begin at the same site (one address space)
//	         sigaltstack, set_tid_address, set_robust_list, rseq,
//	         PR_SET_NAME, sched_setattr/affinity/ioprio, prctls,
//	         its own pending signals (rt_tgsigqueueinfo to itself)
//	         Settle; one last call (gettid) built on its frozen registers;
//	         in that syscall-exit stop: registers, FPU, TLS, mask
//	         ── parked: nothing of T runs until the release
//
// Threads are made after restoreLate, so they inherit what a
// pthread_create'd thread shares with its creator: credentials,
// personality, no_new_privs (per-task in the kernel, kept equal by
// glibc's setxid broadcast). None of them runs before the leader's
// last call has unmapped the restorer: the address space is whole
// before any instruction of the program runs. A failure on the way ends
// the stub with exit_group, which takes the parked threads with it.
//
// Thread ids. The leader's tid is the thawing process's pid (exec
// semantics), so it changes unless the thaw runs with the frozen pid. The
// others get their frozen tids back with clone3's set_tid when this thaw
// may choose them (CAP_CHECKPOINT_RESTORE in its user namespace, which
// the credentials restored before the clones decide) and they are free;
// otherwise any tid. Where a tid changed, what the process keeps of it
// is patched, for every thread:
//
//   - glibc's cached tid in struct pthread, which the tid address
//     (set_tid_address, CLONE_CHILD_CLEARTID) points at: pthread_kill,
//     pthread mutex owners and everything else glibc does with
//     THREAD_SELF->tid use the new one;
//   - the robust mutexes each thread holds (its robust list, walked from
//     the head set_robust_list registered): the owner tid in the futex
//     word (FUTEX_TID_MASK; FUTEX_WAITERS and FUTEX_OWNER_DIED kept), and
//     glibc's __owner 8 bytes further when it holds the same tid, so
//     that the owner can unlock it and a waiter (re-issuing its futex
//     wait, whose expected value is then stale) sees the new word.
//
// What cannot be found is not patched: the __owner of a held non-robust
// ERRORCHECK or RECURSIVE mutex (its owner's unlock then fails with
// EPERM, a recursive relock blocks) or of a held PI mutex, and tids a
// program copied elsewhere (the Go runtime's m.procid, used to preempt a
// thread with tgkill: the leader's M is then not preempted by signal).
// Held across the freeze by a thread whose tid changed, those are
// wrong after the thaw; every other thread keeps its tid whenever the
// thaw may choose it.
//
// # thaw --restore-pid
//
// With --restore-pid the process gets its frozen pid back: the thaw
// starts a launcher that thaws as above, and the helper, right after step
// 1, makes the stub clone3(CLONE_PARENT|CLONE_PTRACE, set_tid={pid}):
// that child, the thaw's, is rebuilt instead of the launcher, which
// exits. The thaw stays as its parent, in the manner of a shell's job:
// the child in a process group of its own holding the terminal, signals
// forwarded, its exit status or signal passed on (restorepid.go). Its
// threads get their tids as above.
//
// # Streams
//
// thaw - (Thaw(Stdin, ...)) reads an executable from standard input, a
// pipe read once, front to back. The launcher reads the loader and the
// restorer without keeping them (this binary restores; image.SkipToImage
// sums the restorer for the trailer's check) and the metadata, for its
// checks; it hands the helper the image bytes it read, in a memfd
// (fdImage), and its stdin (fdStream) for the rest, and puts /dev/null
// on its own fd 0, which the restored process finds where its stdin was
// the thaw's. The helper reads the blobs and then the pages as they
// arrive, each written into the process as soon as it is read: nothing is
// buffered in proportion to the image. The END record and the trailer
// come last, and Next returns io.EOF only once both are checked, so step
// 8 ends before anything runs: a stream cut short or damaged fails the
// thaw there (exit 1, one line), as any failed step does, and never
// resumes a half-written process. What a stream cannot do is fail before
// the stub's mappings are gone (step 6): the pages are not all there yet.
// --restore-pid refuses a stream (its launcher reads the image again).
//
// A thaw taking more than a second shows a progress bar of the image
// bytes read on stderr when it is a terminal (package progress, through
// NewProgress, which cmd/thaw sets: the restorer ./app.bin runs has no
// bar, its library would make it a third larger), drawn by the helper and
// erased after step 8, before the process writes to the terminal.
//
// If any step fails, the helper prints the reason and makes P exit(1)
// through the injection site (which lives until the very last call); if
// even that fails, P is killed. PTRACE_O_EXITKILL kills P if the helper
// itself dies. A failed thaw leaves nothing half-alive.
package restore
