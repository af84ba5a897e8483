package ptrace

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Requests and options not (all) named in x/sys/unix.
const (
	reqSeize          = 0x4206
	reqInterrupt      = 0x4207
	reqListen         = 0x4208
	reqPeekSiginfo    = 0x4209
	reqGetSigmask     = 0x420a
	reqSetSigmask     = 0x420b
	reqGetRseqConfig  = 0x420f
	reqGetRegset      = 0x4204
	reqSetRegset      = 0x4205
	reqSyscall        = 24
	reqCont           = 7
	reqSingleStep     = 9
	reqDetach         = 17
	reqGetEventMsg    = 0x4201
	OptTraceSysGood   = 0x1
	OptTraceClone     = 0x8
	OptTraceExec      = 0x10
	OptExitKill       = 0x100000
	EventClone        = 3
	EventExec         = 4
	EventStop         = 128
	peekSiginfoShared = 1
)

// Seize attaches to tid without stopping it.
// Precondition: called via Tracer.Do.
func Seize(tid int, opts int) error {
	if err := ptrace(reqSeize, tid, 0, uintptr(opts)); err != nil {
		return AttachError(tid, err)
	}
	return nil
}

// AttachError turns a PTRACE_SEIZE failure into a diagnosis a user can act on.
func AttachError(pid int, err error) error {
	switch err {
	case unix.ESRCH:
		return fmt.Errorf("pid %d: no such process", pid)
	case unix.EPERM:
		if st, rerr := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); rerr == nil {
			if tp := statusField(string(st), "TracerPid"); tp != "" && tp != "0" {
				return fmt.Errorf("pid %d is already traced by pid %s (%s): detach that debugger or tracer first", pid, tp, commOf(tp))
			}
		}
		if isKernelThread(pid) {
			return fmt.Errorf("pid %d is a kernel thread: kernel threads cannot be traced or frozen", pid)
		}
		if scope, rerr := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); rerr == nil {
			s := strings.TrimSpace(string(scope))
			if s != "0" {
				return fmt.Errorf("pid %d: ptrace not permitted (kernel.yama.ptrace_scope=%s): run as root, or set it to 0 with 'sysctl kernel.yama.ptrace_scope=0'", pid, s)
			}
		}
		if fi, serr := os.Stat(fmt.Sprintf("/proc/%d", pid)); serr == nil {
			if st, ok := fi.Sys().(*unix.Stat_t); ok && int(st.Uid) != os.Getuid() && os.Geteuid() != 0 {
				return fmt.Errorf("pid %d belongs to uid %d, not to you (uid %d): only its owner or root can freeze it", pid, st.Uid, os.Getuid())
			}
		}
		return fmt.Errorf("pid %d: ptrace not permitted (setuid program, or a security module forbids it): %w", pid, err)
	}
	return fmt.Errorf("PTRACE_SEIZE pid %d: %w", pid, err)
}

func statusField(status, key string) string {
	for _, l := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func commOf(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// isKernelThread tells from /proc/PID/stat's flags (PF_KTHREAD).
func isKernelThread(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:])
	// Fields after the comm: state is f[0]; flags is field 9 of stat, f[6].
	if len(f) < 7 {
		return false
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err == nil && flags&0x00200000 != 0
}

// IsKernelThread reports whether pid is a kernel thread.
func IsKernelThread(pid int) bool { return isKernelThread(pid) }

// Interrupt asks a seized tracee to stop (PTRACE_EVENT_STOP).
// Precondition: called via Tracer.Do.
func Interrupt(tid int) error {
	if err := ptrace(reqInterrupt, tid, 0, 0); err != nil {
		return fmt.Errorf("PTRACE_INTERRUPT tid %d: %w", tid, err)
	}
	return nil
}

// Cont resumes the tracee, delivering sig (0 for none).
// Precondition: called via Tracer.Do.
func Cont(tid int, sig int) error {
	if err := ptrace(reqCont, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("PTRACE_CONT tid %d: %w", tid, err)
	}
	return nil
}

// SingleStep resumes the tracee for one instruction, delivering sig (0
// for none); it then stops with SIGTRAP.
// Precondition: called via Tracer.Do.
func SingleStep(tid int, sig int) error {
	if err := ptrace(reqSingleStep, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("PTRACE_SINGLESTEP tid %d: %w", tid, err)
	}
	return nil
}

// Syscall resumes the tracee until the next syscall entry or exit.
// Precondition: called via Tracer.Do.
func Syscall(tid int, sig int) error {
	if err := ptrace(reqSyscall, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("PTRACE_SYSCALL tid %d: %w", tid, err)
	}
	return nil
}

// Detach lets the tracee go, delivering sig (0 for none).
// Precondition: called via Tracer.Do.
func Detach(tid int, sig int) error {
	disp.forget(tid)
	if err := ptrace(reqDetach, tid, 0, uintptr(sig)); err != nil {
		return fmt.Errorf("PTRACE_DETACH tid %d: %w", tid, err)
	}
	return nil
}

// Stop is what wait4 saw.
type Stop struct {
	Status unix.WaitStatus
}

// Exited reports whether the tracee is gone.
func (s Stop) Exited() bool { return s.Status.Exited() || s.Status.Signaled() }

// SyscallStop reports a syscall-entry or -exit stop (PTRACE_O_TRACESYSGOOD).
func (s Stop) SyscallStop() bool {
	return s.Status.Stopped() && s.Status.StopSignal() == unix.SIGTRAP|0x80
}

// Event is the PTRACE_EVENT_* of the stop, 0 if none.
func (s Stop) Event() int {
	if !s.Status.Stopped() {
		return 0
	}
	return int(s.Status>>16) & 0xff
}

// Signal is the signal of a signal-delivery stop, 0 otherwise.
func (s Stop) Signal() unix.Signal {
	if !s.Status.Stopped() || s.Event() != 0 || s.SyscallStop() {
		return 0
	}
	return s.Status.StopSignal()
}

func (s Stop) String() string {
	switch {
	case s.Status.Exited():
		return fmt.Sprintf("exited with status %d", s.Status.ExitStatus())
	case s.Status.Signaled():
		return fmt.Sprintf("killed by %s", signalName(s.Status.Signal()))
	case s.SyscallStop():
		return "syscall stop"
	case s.Event() != 0:
		return fmt.Sprintf("event %d stop (%s)", s.Event(), signalName(s.Status.StopSignal()))
	case s.Status.Stopped():
		return fmt.Sprintf("signal stop %s", signalName(s.Status.StopSignal()))
	}
	return fmt.Sprintf("status %#x", uint32(s.Status))
}

// signalName is "SIGKILL" where Signal.String says "killed", which reads
// badly in "killed by killed"; "signal 35" for a real-time signal.
func signalName(sig unix.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// GetSigMask reads the tracee's blocked-signal mask.
// Precondition: called via Tracer.Do.
func GetSigMask(tid int) (uint64, error) {
	var m uint64
	if err := ptracePtr(reqGetSigmask, tid, 8, ptrOf(&m)); err != nil {
		return 0, fmt.Errorf("PTRACE_GETSIGMASK tid %d: %w", tid, err)
	}
	return m, nil
}

// SetSigMask sets the tracee's blocked-signal mask.
// Precondition: called via Tracer.Do.
func SetSigMask(tid int, m uint64) error {
	if err := ptracePtr(reqSetSigmask, tid, 8, ptrOf(&m)); err != nil {
		return fmt.Errorf("PTRACE_SETSIGMASK tid %d: %w", tid, err)
	}
	return nil
}

// GetEventMsg returns PTRACE_GETEVENTMSG.
// Precondition: called via Tracer.Do.
func GetEventMsg(tid int) (uint64, error) {
	var m uint64
	if err := ptracePtr(reqGetEventMsg, tid, 0, ptrOf(&m)); err != nil {
		return 0, fmt.Errorf("PTRACE_GETEVENTMSG tid %d: %w", tid, err)
	}
	return m, nil
}
