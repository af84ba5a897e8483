// Package ptrace is a thin layer over ptrace(2) and the tracer thread.
//
// The kernel ties a tracee to the OS thread that attached it: every
// request for that tracee must come from the same thread. A Tracer owns
// one goroutine locked to its OS thread (runtime.LockOSThread) and runs
// every request through Tracer.Do, as delve's execPtraceFunc does.
// Functions documented "Precondition: called via Tracer.Do" must only run
// inside a Do callback. process_vm_readv/writev and /proc reads need no
// such care and may run anywhere.
//
// Attaching uses PTRACE_SEIZE + PTRACE_INTERRUPT: no SIGSTOP is sent, so
// neither the target nor its parent's job control sees a stop.
// SeizeGroup holds a whole thread group that way (group.go).
//
// Every wait goes through one dispatcher (wait.go): wait4(-1, __WALL) on
// the tracer thread, the stops of tracees nobody is waiting for queued
// per tid. Wait and WaitAny refuse to run on any other OS thread than a
// Tracer's.
package ptrace
