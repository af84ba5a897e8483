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
//     layout and vdso bytes (the image's first page records)
//  3. chdir; descriptors: close the stub's, reopen files at path, flags
//     and offset, keep the thaw's fds 0-2 where the process had a pipe,
//     socket or terminal                ─ a missing file fails here, with
//     nothing yet destroyed
//  4. munmap every stub mapping but the stub region and the vdso/vvar
//  5. mremap vdso and vvar to the process's addresses, through a hole
//     free in both layouts
//  6. mmap every VMA at its address (MAP_FIXED_NOREPLACE), writable;
//     write the page records; mprotect to the final protections
//  7. PR_SET_MM_MAP (brk, arg/env, auxv, exe), signal handlers,
//     sigaltstack, tid address, robust list, rseq, name, pending signals
//  8. the last injected call unmaps the stub region; it enters from an
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
