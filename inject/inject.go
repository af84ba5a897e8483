package inject

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/ptrace"
)

// Session is an injection context on one stopped thread.
type Session struct {
	Tid       int
	host      arch.Host
	site      uint64
	saved     []byte
	savedMask uint64
	ended     bool
}

// Begin saves tid's registers and mask and blocks all its signals. site
// is the address of a syscall instruction in the tracee.
// Precondition: called via Tracer.Do; tid is in a ptrace stop.
func Begin(tid int, site uint64) (*Session, error) {
	h := arch.Current
	regs, err := ptrace.GetRegset(tid, h.RegsNT, 1024)
	if err != nil {
		return nil, err
	}
	mask, err := ptrace.GetSigMask(tid)
	if err != nil {
		return nil, err
	}
	if err := ptrace.SetSigMask(tid, ^uint64(0)); err != nil {
		return nil, err
	}
	return &Session{Tid: tid, host: h, site: site, saved: regs, savedMask: mask}, nil
}

// SavedRegs returns the registers as they were at Begin.
func (s *Session) SavedRegs() []byte { return append([]byte(nil), s.saved...) }

// SavedMask returns the signal mask as it was at Begin.
func (s *Session) SavedMask() uint64 { return s.savedMask }

// SetBase makes regs (a raw general regset) the registers the next calls
// are built on and that End restores.
func (s *Session) SetBase(regs []byte) { s.saved = append([]byte(nil), regs...) }

// Settle moves the tracee from the syscall-exit stop an injected call
// left it in to a PTRACE_EVENT_STOP on its way back to user mode
// (PTRACE_INTERRUPT, then PTRACE_CONT). Registers written in a syscall
// stop do not all stick: arm64 puts back x7, its entry/exit marker, when
// the stop ends (report_syscall, arch/arm64/kernel/ptrace.c), so x7 keeps
// its value from the first call of the session on; in the event stop the
// next call's registers go in whole.
// Precondition: called via Tracer.Do; tid is in a syscall-exit stop.
func (s *Session) Settle() error {
	if err := ptrace.Interrupt(s.Tid); err != nil {
		return err
	}
	sig := 0
	for {
		if err := ptrace.Cont(s.Tid, sig); err != nil {
			return err
		}
		st, err := ptrace.Wait(s.Tid)
		if err != nil {
			return err
		}
		switch {
		case st.Exited():
			s.ended = true
			return fmt.Errorf("tid %d %s while leaving a syscall stop: %w", s.Tid, st, ptrace.ErrExited)
		case st.Event() == ptrace.EventStop:
			return nil // the interrupt, or a group-stop: either will do
		case st.SyscallStop() || st.Signal() == unix.SIGTRAP:
			// It went back to user mode without stopping.
			return fmt.Errorf("tid %d: %s where an event stop was expected", s.Tid, st)
		}
		sig = int(st.Signal()) // SIGSTOP: delivered, as resumeToSyscallStop does
	}
}

// SetSite moves the syscall instruction used for the next calls.
func (s *Session) SetSite(site uint64) { s.site = site }

// Syscall runs nr(args) in the tracee and returns its result.
// Precondition: called via Tracer.Do.
func (s *Session) Syscall(nr uint64, args ...uint64) (uint64, error) {
	return retryRestart(func() (uint64, error) { return s.SyscallNoReturn(nr, args...) })
}

// retryRestart runs call, and again while it comes back with a kernel
// restart code (ERESTART*: interrupted), at most 4 times in all; the last
// result is returned as it came.
func retryRestart(call func() (uint64, error)) (uint64, error) {
	for try := 0; ; try++ {
		ret, err := call()
		switch err {
		case errRestart512, errRestart513, errRestart514, errRestart516:
			if try < 3 {
				continue
			}
		}
		return ret, err
	}
}

// Prctl runs prctl(op, args...) with every argument it is not given as
// 0: many prctls refuse a non-zero unused argument (EINVAL), and an
// injected call would otherwise pass whatever the registers held.
// Precondition: called via Tracer.Do.
func (s *Session) Prctl(op uint64, args ...uint64) (uint64, error) {
	a := make([]uint64, 5)
	a[0] = op
	copy(a[1:], args)
	return s.Syscall(s.host.Sys.Prctl, a...)
}

// The kernel's restart codes as errnos (include/linux/errno.h).
const (
	errRestart512 = unix.Errno(512)
	errRestart513 = unix.Errno(513)
	errRestart514 = unix.Errno(514)
	errRestart516 = unix.Errno(516)
)

// SyscallNoReturn runs nr(args) up to its syscall-exit stop and leaves the
// tracee there, issuing it only once: for the call that unmaps the very
// instruction it ran from, after which only new registers may be set.
// Precondition: called via Tracer.Do.
func (s *Session) SyscallNoReturn(nr uint64, args ...uint64) (uint64, error) {
	if err := s.enter(nr, args); err != nil {
		return 0, err
	}
	if err := s.resumeToSyscallStop(ptrace.SyscallInfoExit); err != nil {
		return 0, err
	}
	raw, err := ptrace.GetRegset(s.Tid, s.host.RegsNT, 1024)
	if err != nil {
		return 0, err
	}
	r, err := s.host.NewRegs(raw)
	if err != nil {
		return 0, err
	}
	return syscallResult(r.Return())
}

// syscallResult decodes a syscall's return register: a value in
// [-4095, -1] is an errno (MAX_ERRNO, include/linux/err.h), returned
// with the raw value.
func syscallResult(ret uint64) (uint64, error) {
	if e := int64(ret); e < 0 && e >= -4095 {
		return ret, unix.Errno(-e)
	}
	return ret, nil
}

func (s *Session) enter(nr uint64, args []uint64) error {
	r, err := s.host.NewRegs(s.saved)
	if err != nil {
		return err
	}
	r.SetSyscall(s.site, nr, args...)
	if err := ptrace.SetRegset(s.Tid, s.host.RegsNT, r.Encode()); err != nil {
		return err
	}
	return s.resumeToSyscallStop(ptrace.SyscallInfoEntry)
}

// resumeToSyscallStop resumes with PTRACE_SYSCALL until a syscall stop of
// the wanted kind, holding any signal that stops the tracee on the way.
// A stop of the other kind means the tracee was taken inside a syscall
// (say, at an exec event) and the caller did not step it out first.
func (s *Session) resumeToSyscallStop(want int) error {
	if err := ptrace.Syscall(s.Tid, 0); err != nil {
		return err
	}
	for {
		st, err := ptrace.Wait(s.Tid)
		if err != nil {
			return err
		}
		switch {
		case st.Exited():
			s.ended = true
			return fmt.Errorf("tid %d %s during an injected syscall: %w", s.Tid, st, ptrace.ErrExited)
		case st.SyscallStop():
			op, err := ptrace.SyscallInfoOp(s.Tid)
			if err != nil {
				return err
			}
			if op != want {
				return fmt.Errorf("tid %d: syscall stop of kind %d where %d was expected", s.Tid, op, want)
			}
			return nil
		}
		// Blocked signals never stop the tracee; SIGSTOP does. Deliver
		// it: the task enters group-stop (reported as an event stop),
		// PTRACE_SYSCALL takes it on with the injection, and the kernel
		// puts it back in the stop when it is detached
		// (kernel/ptrace.c, __ptrace_unlink). A SIGCONT sent meanwhile
		// ends that stop as it would have without us.
		if err := ptrace.Syscall(s.Tid, int(st.Signal())); err != nil {
			return err
		}
	}
}

// End restores the registers and signal mask saved by Begin.
// Precondition: called via Tracer.Do.
func (s *Session) End() error {
	if s.ended {
		return nil
	}
	s.ended = true
	return errors.Join(
		ptrace.SetRegset(s.Tid, s.host.RegsNT, s.saved),
		ptrace.SetSigMask(s.Tid, s.savedMask))
}

// FindSite returns the address of a syscall instruction in pid: in the
// vdso's .text when there is one, else in the first executable mapping
// that has one.
func FindSite(pid int, maps []proc.Mapping) (uint64, error) {
	for _, m := range maps {
		if m.Path != "[vdso]" {
			continue
		}
		buf := make([]byte, m.Len())
		if _, err := ptrace.ReadMem(pid, m.Start, buf); err != nil {
			break
		}
		off, err := syscallInELF(buf, arch.FindSyscall)
		if err == nil {
			return m.Start + off, nil
		}
		if !errors.Is(err, errNoSyscall) {
			break // not an ELF image: fall back to the code mappings
		}
	}
	for _, m := range maps {
		if !m.Exec() || !m.Read() || m.Path == "[vsyscall]" {
			continue
		}
		n := m.Len()
		if n > 1<<20 {
			n = 1 << 20
		}
		buf := make([]byte, n)
		if _, err := ptrace.ReadMem(pid, m.Start, buf); err != nil {
			continue
		}
		if off, ok := arch.FindSyscall(buf); ok {
			return m.Start + uint64(off), nil
		}
	}
	return 0, fmt.Errorf("pid %d: no syscall instruction found in its vdso or code to inject through", pid)
}

// errNoSyscall is syscallInELF's answer for an ELF image that parses but
// has no syscall instruction in an executable section.
var errNoSyscall = errors.New("no syscall instruction in an executable section")

// syscallInELF returns the offset in img, an ELF image as it is mapped
// (the vdso: file offsets are offsets in the mapping), of a syscall
// instruction that find locates in one of its executable PROGBITS
// sections. A section reaching past img is skipped, and so is a
// compressed one: its bytes are no code, and its size is whatever its
// compression header says. img is the target's memory: its headers may
// say anything.
func syscallInELF(img []byte, find func(code []byte) (int, bool)) (uint64, error) {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return 0, err
	}
	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 || sec.Flags&elf.SHF_COMPRESSED != 0 ||
			sec.Offset > uint64(len(img)) || sec.Size > uint64(len(img))-sec.Offset {
			continue
		}
		if off, ok := find(img[sec.Offset : sec.Offset+sec.Size]); ok {
			return sec.Offset + uint64(off), nil
		}
	}
	return 0, errNoSyscall
}
