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
//  2. checks that need nothing destroyed: FPU state size, vdso/vvar
//     layout and vdso bytes (carried in the metadata)
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
//     free in both layouts
//  8. mmap every VMA at its address (MAP_FIXED_NOREPLACE), a shared
//     memfd or unlinked file from the spare fd of its file, which is then
//     given its mode and seals and the spare fds closed; write the page
//     records; protections, advice, locks and seals (mem.go)
//  9. PR_SET_MM_MAP (brk, arg/env, auxv, exe), signal handlers,
//     sigaltstack, tid address, robust list, rseq, name, pending signals
//  10. restoreLate (state.go): personality, membarrier, mlockall, creds
//     (when the thaw runs as root), dumpable, MDWE, no_new_privs, then the
//     interval and POSIX timers, which start running when set
//  11. the last injected call unmaps the stub region; it enters from an
//     event stop with the frozen registers around its own (arm64 puts
//     back x7 from syscall entry at the end of a syscall stop); stopped
//     at its syscall exit, the helper loads the frozen registers (with
//     the syscall-restart fix-up), the FPU/xsave state, the TLS register
//     (arm64) and the signal mask, and detaches (with SIGSTOP if the
//     process was stopped)
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
// If any step fails, the helper prints the reason and makes P exit(1)
// through the injection site (which lives until the very last call); if
// even that fails, P is killed. PTRACE_O_EXITKILL kills P if the helper
// itself dies. A failed thaw leaves nothing half-alive.
package restore
