package ptrace

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// Wait statuses as wait4 reports them (include/uapi/linux/wait.h and
// ptrace(2)): exit code << 8; the terminating signal in the low 7 bits;
// a stop is 0x7f with the stop signal in bits 8-15 and the
// PTRACE_EVENT_* in bits 16-23.
func exitedStatus(code int) unix.WaitStatus { return unix.WaitStatus(code << 8) }
func killedStatus(sig unix.Signal) unix.WaitStatus {
	return unix.WaitStatus(sig)
}
func stoppedStatus(sig unix.Signal, event int) unix.WaitStatus {
	return unix.WaitStatus(event<<16 | int(sig)<<8 | 0x7f)
}

func TestStopDecoding(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  unix.WaitStatus
		exited  bool
		syscall bool
		event   int
		signal  unix.Signal
		str     string
	}{
		{name: "exited 3", status: exitedStatus(3),
			exited: true, str: "exited with status 3"},
		{name: "exited 0", status: exitedStatus(0),
			exited: true, str: "exited with status 0"},
		{name: "killed by SIGKILL", status: killedStatus(unix.SIGKILL),
			exited: true, str: "killed by SIGKILL"},
		{name: "killed by SIGSEGV with a core", status: killedStatus(unix.SIGSEGV) | 0x80,
			exited: true, str: "killed by SIGSEGV"},
		{name: "syscall stop", status: stoppedStatus(unix.SIGTRAP|0x80, 0),
			syscall: true, str: "syscall stop"},
		{name: "event stop, SIGTRAP", status: stoppedStatus(unix.SIGTRAP, EventStop),
			event: EventStop, str: "event 128 stop (SIGTRAP)"},
		{name: "event stop, SIGSTOP (group-stop)", status: stoppedStatus(unix.SIGSTOP, EventStop),
			event: EventStop, str: "event 128 stop (SIGSTOP)"},
		{name: "exec event", status: stoppedStatus(unix.SIGTRAP, EventExec),
			event: EventExec, str: "event 4 stop (SIGTRAP)"},
		{name: "signal stop SIGUSR1", status: stoppedStatus(unix.SIGUSR1, 0),
			signal: unix.SIGUSR1, str: "signal stop SIGUSR1"},
		{name: "signal stop SIGTRAP (a breakpoint, no 0x80)", status: stoppedStatus(unix.SIGTRAP, 0),
			signal: unix.SIGTRAP, str: "signal stop SIGTRAP"},
		{name: "signal stop, real-time", status: stoppedStatus(unix.Signal(35), 0),
			signal: unix.Signal(35), str: "signal stop signal 35"},
		{name: "continued", status: 0xffff,
			str: "status 0xffff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Stop{Status: tc.status}
			if got := s.Exited(); got != tc.exited {
				t.Errorf("Exited() = %v, want %v", got, tc.exited)
			}
			if got := s.SyscallStop(); got != tc.syscall {
				t.Errorf("SyscallStop() = %v, want %v", got, tc.syscall)
			}
			if got := s.Event(); got != tc.event {
				t.Errorf("Event() = %d, want %d", got, tc.event)
			}
			if got := s.Signal(); got != tc.signal {
				t.Errorf("Signal() = %v, want %v", got, tc.signal)
			}
			if got := s.String(); got != tc.str {
				t.Errorf("String() = %q, want %q", got, tc.str)
			}
		})
	}
}

// The branches of AttachError that depend on nothing but the errno. The
// EPERM diagnosis reads /proc and the yama sysctl: e2e/privilege_test.go
// checks it on real processes.
func TestAttachErrorByErrno(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		want  string
		wraps error
	}{
		{name: "ESRCH", err: unix.ESRCH, want: "pid 4242: no such process"},
		{name: "EIO", err: unix.EIO, want: "PTRACE_SEIZE pid 4242: input/output error", wraps: unix.EIO},
		{name: "EINVAL", err: unix.EINVAL, want: "PTRACE_SEIZE pid 4242: invalid argument", wraps: unix.EINVAL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := AttachError(4242, tc.err)
			if err == nil {
				t.Fatal("nil error")
			}
			if err.Error() != tc.want {
				t.Errorf("got %q, want %q", err, tc.want)
			}
			if tc.wraps != nil && !errors.Is(err, tc.wraps) {
				t.Errorf("%v does not wrap %v", err, tc.wraps)
			}
		})
	}
}

func TestStatusField(t *testing.T) {
	const status = "Name:\tsleep\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t411\nPid:\t411\nPPid:\t1\nTracerPid:\t377\nUid:\t0\t0\t0\t0\n"
	for _, tc := range []struct{ key, want string }{
		{"TracerPid", "377"},
		{"State", "S (sleeping)"},
		{"Uid", "0\t0\t0\t0"},
		{"Pid", "411"}, // not PPid's, nor Tgid's
		{"Missing", ""},
		{"racerPid", ""}, // whole keys only
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := statusField(status, tc.key); got != tc.want {
				t.Errorf("statusField(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
}
