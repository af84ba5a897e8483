package freeze

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/inject"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/ptrace"
)

// This file reads the process model's state beyond memory, registers and
// files: what /proc and the tracer can read from outside (collectProcess),
// and what only the process can tell, by injected calls (remote). Each
// item is a row of docs/state.md.

// rlimitCount is RLIM_NLIMITS (include/uapi/asm-generic/resource.h).
const rlimitCount = 16

// collectProcess reads the per-process state visible from outside, and
// refuses what thaw cannot give back.
func collectProcess(pid int, p *image.Process, status map[string]string) error {
	var err error
	if p.Creds, err = parseCreds(status); err != nil {
		return fmt.Errorf("pid %d: %w", pid, err)
	}
	um, err := strconv.ParseUint(status["Umask"], 8, 32)
	if err != nil {
		return fmt.Errorf("pid %d: bad Umask %q in /proc/PID/status: %w", pid, status["Umask"], err)
	}
	p.Umask = uint32(um)
	if v := status["Seccomp"]; v != "0" {
		return fmt.Errorf("pid %d runs under seccomp (mode %s): its filters cannot be carried yet", pid, v)
	}
	a := &p.Attrs
	oom, err := readProcInt(pid, "oom_score_adj", 10)
	if err != nil {
		return err
	}
	a.OOMScoreAdj = int(oom)
	cf, err := readProcInt(pid, "coredump_filter", 16)
	if err != nil {
		return err
	}
	a.CoredumpFilter = uint64(cf)
	if lu, err := readProcInt(pid, "loginuid", 10); err == nil {
		a.LoginUID = uint32(lu)
	} else if !errors.Is(err, os.ErrNotExist) { // CONFIG_AUDIT unset: no loginuid
		return err
	}
	root, err := os.Readlink(fmt.Sprintf("/proc/%d/root", pid))
	if err != nil {
		return fmt.Errorf("read root of pid %d: %w", pid, err)
	}
	if root != "/" {
		return fmt.Errorf("pid %d runs chrooted in %s: unsupported yet", pid, root)
	}
	if err := sameNamespaces(pid); err != nil {
		return err
	}
	if err := sameLSMContext(pid); err != nil {
		return err
	}
	return defaultNUMAPolicies(pid)
}

// sameLSMContext refuses a target whose security context (SELinux,
// AppArmor, Smack: /proc/PID/attr/current) is not freeze's own: the
// thawed process gets the thaw's.
func sameLSMContext(pid int) error {
	theirs, err := os.ReadFile(fmt.Sprintf("/proc/%d/attr/current", pid))
	if err != nil {
		return nil // no LSM that keeps a context (EINVAL), or none at all
	}
	mine, err := os.ReadFile("/proc/self/attr/current")
	if err != nil {
		return nil
	}
	if string(theirs) != string(mine) {
		return fmt.Errorf("pid %d runs in the security context %q, freeze in %q: the thawed process would get the thaw's: unsupported", pid, strings.TrimSpace(string(theirs)), strings.TrimSpace(string(mine)))
	}
	return nil
}

// defaultNUMAPolicies refuses memory with a NUMA policy (mbind) other
// than the default: it is not restored yet. /proc/PID/numa_maps exists
// only with CONFIG_NUMA. The process-wide policy (set_mempolicy) is
// checked by an injected get_mempolicy.
func defaultNUMAPolicies(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/numa_maps", pid))
	if err != nil {
		return nil
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[1] != "default" {
			return fmt.Errorf("pid %d: memory at %s has the NUMA policy %q: unsupported yet", pid, f[0], f[1])
		}
	}
	return nil
}

// tracesNobody refuses a target that is itself a tracer (a debugger):
// its tracees would be left without it. It reads the status of every
// process, so freeze runs it before it stops the target, not while.
func tracesNobody(pid int) error {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("scan /proc: %w", err)
	}
	me := strconv.Itoa(pid)
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == pid {
			continue
		}
		st, err := proc.Status(n)
		if err != nil {
			continue // gone meanwhile
		}
		if st["TracerPid"] == me {
			return fmt.Errorf("pid %d traces pid %d (a debugger or tracer): unsupported", pid, n)
		}
	}
	return nil
}

// sameNamespaces refuses a target in namespaces other than freeze's: the
// thawed process lives in the thaw's namespaces, which freeze cannot see
// but which, for a target in its own, are the ones it had.
func sameNamespaces(pid int) error {
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"} {
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // a kernel without this namespace
			}
			return fmt.Errorf("read namespace %s of pid %d: %w", ns, pid, err)
		}
		mine, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			return fmt.Errorf("read own namespace %s: %w", ns, err)
		}
		if theirs != mine {
			return fmt.Errorf("pid %d is in another %s namespace (%s, freeze is in %s): containers are unsupported yet", pid, ns, theirs, mine)
		}
	}
	return nil
}

func readProcInt(pid int, name string, base int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		return 0, fmt.Errorf("read /proc/%d/%s: %w", pid, name, err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), base, 64)
	if err != nil {
		// loginuid is unsigned (4294967295: unset).
		u, uerr := strconv.ParseUint(strings.TrimSpace(string(b)), base, 64)
		if uerr != nil {
			return 0, fmt.Errorf("parse /proc/%d/%s %q: %w", pid, name, b, err)
		}
		v = int64(u)
	}
	return v, nil
}

// parseCreds reads uids, gids, groups and capabilities from
// /proc/PID/status.
func parseCreds(st map[string]string) (image.Creds, error) {
	var c image.Creds
	ids := func(key string, out *[4]uint32) error {
		f := strings.Fields(st[key])
		if len(f) != 4 {
			return fmt.Errorf("bad %s line %q in /proc/PID/status", key, st[key])
		}
		for i, x := range f {
			v, err := strconv.ParseUint(x, 10, 32)
			if err != nil {
				return fmt.Errorf("bad %s line %q: %w", key, st[key], err)
			}
			out[i] = uint32(v)
		}
		return nil
	}
	if err := ids("Uid", &c.Uid); err != nil {
		return c, err
	}
	if err := ids("Gid", &c.Gid); err != nil {
		return c, err
	}
	for _, x := range strings.Fields(st["Groups"]) {
		v, err := strconv.ParseUint(x, 10, 32)
		if err != nil {
			return c, fmt.Errorf("bad Groups line %q: %w", st["Groups"], err)
		}
		c.Groups = append(c.Groups, uint32(v))
	}
	for _, cp := range []struct {
		key string
		out *uint64
	}{{"CapInh", &c.CapInh}, {"CapPrm", &c.CapPrm}, {"CapEff", &c.CapEff}, {"CapBnd", &c.CapBnd}, {"CapAmb", &c.CapAmb}} {
		v, err := strconv.ParseUint(st[cp.key], 16, 64)
		if err != nil {
			return c, fmt.Errorf("bad %s line %q: %w", cp.key, st[cp.key], err)
		}
		*cp.out = v
	}
	return c, nil
}

// readVDSO copies the vdso, which thaw compares with its kernel's.
func readVDSO(pid int, vmas []image.VMA) ([]byte, error) {
	for _, v := range vmas {
		if v.Kind != image.VMAVDSO {
			continue
		}
		b := make([]byte, v.End-v.Start)
		n, err := ptrace.ReadMem(pid, v.Start, b)
		if err != nil || n != len(b) {
			return nil, fmt.Errorf("read the vdso of pid %d (%d of %d bytes): %v", pid, n, len(b), err)
		}
		return b, nil
	}
	return nil, nil
}

// remote reads state by injecting calls into the stopped target, with a
// scratch page of its own for the results.
type remote struct {
	s       *inject.Session
	host    arch.Host
	pid     int // the process: its memory, its /proc
	tid     int // the thread the session runs in
	scratch uint64
	buf     []byte
}

const scratchLen = 4096

// Precondition: called via Tracer.Do.
func newRemote(s *inject.Session, host arch.Host) (*remote, error) {
	addr, err := s.Syscall(host.Sys.Mmap, 0, scratchLen, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uint64(0), 0)
	if err != nil {
		return nil, fmt.Errorf("injected mmap of a scratch page: %w", err)
	}
	return &remote{s: s, host: host, pid: s.Tid, tid: s.Tid, scratch: addr, buf: make([]byte, scratchLen)}, nil
}

func (r *remote) close() error {
	if _, err := r.s.Syscall(r.host.Sys.Munmap, r.scratch, scratchLen); err != nil {
		return fmt.Errorf("injected munmap of the scratch page: %w", err)
	}
	return nil
}

// call runs one injected syscall, naming it in the error.
func (r *remote) call(name string, nr uint64, args ...uint64) (uint64, error) {
	v, err := r.s.Syscall(nr, args...)
	if err != nil {
		return v, fmt.Errorf("injected %s: %w", name, err)
	}
	return v, nil
}

// read returns n bytes of the scratch page at off.
func (r *remote) read(off, n int) ([]byte, error) {
	got, err := ptrace.ReadMem(r.pid, r.scratch+uint64(off), r.buf[:n])
	if err != nil || got != n {
		return nil, fmt.Errorf("read scratch page: %d of %d bytes: %v", got, n, err)
	}
	return r.buf[:n], nil
}

// zero clears the first n bytes of the scratch page.
func (r *remote) zero(n int) error {
	z := make([]byte, n)
	got, err := ptrace.WriteMem(r.pid, r.scratch, z)
	if err != nil || got != n {
		return fmt.Errorf("clear scratch page: %d of %d bytes: %v", got, n, err)
	}
	return nil
}

// prctl returns prctl(op, args...)'s value (unused arguments 0).
func (r *remote) prctl(name string, op uint64, args ...uint64) (uint64, error) {
	v, err := r.s.Prctl(op, args...)
	if err != nil {
		return v, fmt.Errorf("injected prctl(%s): %w", name, err)
	}
	return v, nil
}

// prctlInt is for the prctls that store an int at their argument.
func (r *remote) prctlInt(name string, op uint64) (int, error) {
	if err := r.zero(4); err != nil {
		return 0, err
	}
	if _, err := r.prctl(name, op, r.scratch); err != nil {
		return 0, err
	}
	b, err := r.read(0, 4)
	if err != nil {
		return 0, err
	}
	return int(int32(binary.LittleEndian.Uint32(b))), nil
}

var le = binary.LittleEndian

// The prctl options read here (include/uapi/linux/prctl.h).
const (
	prGetPdeathsig        = 2
	prGetDumpable         = 3
	prGetKeepcaps         = 7
	prGetTSC              = 25
	prGetSecurebits       = 27
	prGetTimerslack       = 30
	prMCEKillGet          = 34
	prGetChildSubreaper   = 37
	prGetNoNewPrivs       = 39
	prGetTHPDisable       = 42
	prGetSpeculationCtrl  = 52
	prGetIOFlusher        = 58
	prSchedCore           = 62
	prGetMDWE             = 66
	prGetMemoryMerge      = 68
	prGetShadowStack      = 74
	prSchedCoreGet        = 0
	sigevSignal           = 0
	sigevNone             = 1
	sigevThread           = 2
	sigevThreadID         = 4
	personalityQuery      = 0xffffffff
	prSpeculationStoreByp = 0
)

// processState reads, by injected calls, the per-process state only the
// process can tell: dispositions, brk, personality, prctls, interval and
// POSIX timers.
// Precondition: called via Tracer.Do.
func (r *remote) processState(p *image.Process, status map[string]string) error {
	sys := r.host.Sys
	brk, err := r.call("brk(0)", sys.Brk, 0)
	if err != nil {
		return err
	}
	p.MM.Brk = brk
	// Dispositions: only caught and ignored signals differ from the
	// default; /proc/PID/status tells which.
	cgt, err := parseSigSet(status["SigCgt"])
	if err != nil {
		return err
	}
	ign, err := parseSigSet(status["SigIgn"])
	if err != nil {
		return err
	}
	for sig := 1; sig <= 64; sig++ {
		bit := uint64(1) << (sig - 1)
		if (cgt|ign)&bit == 0 || sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		if _, err := r.call(fmt.Sprintf("rt_sigaction(%d)", sig), sys.RtSigaction, uint64(sig), 0, r.scratch, 8); err != nil {
			return err
		}
		b, err := r.read(0, 32)
		if err != nil {
			return err
		}
		p.SigActions = append(p.SigActions, image.SigAction{Signo: sig,
			Handler: le.Uint64(b), Flags: le.Uint64(b[8:]), Restorer: le.Uint64(b[16:]), Mask: le.Uint64(b[24:])})
	}
	a := &p.Attrs
	pers, err := r.call("personality", sys.Personality, personalityQuery)
	if err != nil {
		return err
	}
	a.Personality = uint32(pers)
	sub, err := r.prctlInt("PR_GET_CHILD_SUBREAPER", prGetChildSubreaper)
	if err != nil {
		return err
	}
	a.ChildSubreaper = sub != 0
	d, err := r.prctl("PR_GET_DUMPABLE", prGetDumpable)
	if err != nil {
		return err
	}
	a.Dumpable = int(d)
	thp, err := r.prctl("PR_GET_THP_DISABLE", prGetTHPDisable)
	if err != nil {
		return err
	}
	a.THPDisable = thp != 0
	if v, err := r.prctl("PR_GET_MDWE", prGetMDWE); err == nil {
		a.MDWE = uint32(v)
	} else if !errors.Is(err, unix.EINVAL) { // before 6.3
		return err
	}
	mce, err := r.prctl("PR_MCE_KILL_GET", prMCEKillGet)
	if err != nil {
		return err
	}
	a.MCEKill = int(mce)
	if r.host.Image == image.ArchAMD64 {
		if a.TSC, err = r.prctlInt("PR_GET_TSC", prGetTSC); err != nil {
			return err
		}
	}
	if v, err := r.prctl("PR_GET_MEMORY_MERGE", prGetMemoryMerge); err == nil {
		a.MemoryMerge = v != 0
	} else if !errors.Is(err, unix.EINVAL) { // before 6.4, or no KSM
		return err
	}
	sb, err := r.prctl("PR_GET_SECUREBITS", prGetSecurebits)
	if err != nil {
		return err
	}
	p.Creds.Securebits = uint32(sb)
	kc, err := r.prctl("PR_GET_KEEPCAPS", prGetKeepcaps)
	if err != nil {
		return err
	}
	p.Creds.KeepCaps = kc != 0
	if err := r.itimers(p); err != nil {
		return err
	}
	if err := r.rlimits(p); err != nil {
		return err
	}
	if err := r.mlockFuture(p, status); err != nil {
		return err
	}
	if err := r.mempolicy(); err != nil {
		return err
	}
	return r.posixTimers(p)
}

// mlockFuture tells whether mlockall(MCL_FUTURE) is in force, which no
// interface reports: the scratch page, mapped after it, is then locked.
//
// Whether it is in force costs one small read: with it, the locked
// memory (status VmLck, read before the scratch page was mapped) has
// grown by the scratch page. Only then is smaps read again, to tell
// MCL_ONFAULT.
func (r *remote) mlockFuture(p *image.Process, before map[string]string) error {
	after, err := proc.Status(r.pid)
	if err != nil {
		return err
	}
	was, err := kB(before, "VmLck")
	if err != nil {
		return fmt.Errorf("pid %d: %w", r.pid, err)
	}
	now, err := kB(after, "VmLck")
	if err != nil {
		return fmt.Errorf("pid %d: %w", r.pid, err)
	}
	if now <= was {
		return nil
	}
	maps, err := proc.Maps(r.pid)
	if err != nil {
		return err
	}
	for _, m := range maps {
		// The scratch page may have merged with a neighbour of the same
		// flags: the VMA holding it says as much.
		if r.scratch < m.Start || r.scratch >= m.End {
			continue
		}
		switch {
		case m.VmFlags["lf"], m.VmFlags["lo"] && m.VmFlags["??"]: // "??": before 6.2, see classify
			p.Attrs.MlockFuture = unix.MCL_FUTURE | unix.MCL_ONFAULT
		case m.VmFlags["lo"]:
			p.Attrs.MlockFuture = unix.MCL_FUTURE
		}
		return nil
	}
	return fmt.Errorf("pid %d: the scratch page at %#x is not in its maps", r.pid, r.scratch)
}

// kB parses a "N kB" line of /proc/PID/status.
func kB(status map[string]string, key string) (uint64, error) {
	n, unit, _ := strings.Cut(status[key], " ")
	v, err := strconv.ParseUint(n, 10, 64)
	if err != nil || unit != "kB" {
		return 0, fmt.Errorf("bad %s line %q in /proc/PID/status", key, status[key])
	}
	return v, nil
}

// mempolicy refuses a process-wide NUMA policy other than the default.
func (r *remote) mempolicy() error {
	if err := r.zero(4); err != nil {
		return err
	}
	if _, err := r.s.Syscall(r.host.Sys.GetMempolicy, r.scratch, 0, 0, 0, 0); err != nil {
		return nil // ENOSYS: no NUMA support, so no policy
	}
	b, err := r.read(0, 4)
	if err != nil {
		return err
	}
	if mode := le.Uint32(b); mode != 0 {
		return fmt.Errorf("pid %d has the NUMA memory policy %d (set_mempolicy): unsupported yet", r.pid, mode)
	}
	return nil
}

// rlimits reads every resource limit, from inside: prlimit on another
// process needs matching credentials or CAP_SYS_RESOURCE, which even
// root may lack.
func (r *remote) rlimits(p *image.Process) error {
	for res := 0; res < rlimitCount; res++ {
		if _, err := r.call(fmt.Sprintf("prlimit64(%d)", res), r.host.Sys.Prlimit64, 0, uint64(res), 0, r.scratch); err != nil {
			return err
		}
		b, err := r.read(0, 16)
		if err != nil {
			return err
		}
		p.Rlimits = append(p.Rlimits, image.Rlimit{Resource: res, Cur: le.Uint64(b), Max: le.Uint64(b[8:])})
	}
	return nil
}

// itimers reads the three interval timers (getitimer).
func (r *remote) itimers(p *image.Process) error {
	for which := 0; which < 3; which++ {
		if _, err := r.call(fmt.Sprintf("getitimer(%d)", which), r.host.Sys.Getitimer, uint64(which), r.scratch); err != nil {
			return err
		}
		b, err := r.read(0, 32)
		if err != nil {
			return err
		}
		// struct itimerval: it_interval, it_value; timeval: sec, usec.
		iv := int64(le.Uint64(b))*1e6 + int64(le.Uint64(b[8:]))
		v := int64(le.Uint64(b[16:]))*1e6 + int64(le.Uint64(b[24:]))
		if iv != 0 || v != 0 {
			p.ITimers = append(p.ITimers, image.ITimer{Which: which, IntervalUs: iv, ValueUs: v})
		}
	}
	return nil
}

// posixTimers reads /proc/PID/timers and each timer's setting
// (timer_gettime).
func (r *remote) posixTimers(p *image.Process) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timers", r.pid))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // CONFIG_CHECKPOINT_RESTORE unset; then no timers can be seen
		}
		return fmt.Errorf("read /proc/%d/timers: %w", r.pid, err)
	}
	timers, err := proc.ParseTimers(string(b))
	if err != nil {
		return fmt.Errorf("pid %d: %w", r.pid, err)
	}
	slices.SortFunc(timers, func(a, b proc.Timer) int { return a.ID - b.ID })
	for _, t := range timers {
		pt := image.PosixTimer{ID: int32(t.ID), Clock: int32(t.Clock), Signo: int32(t.Signo), Sigval: t.Sigval}
		// fs/proc/base.c, show_timer: "signal", "none" or "thread"
		// (SIGEV_THREAD, which the kernel treats as a signal to the
		// process), then "/tid" for SIGEV_THREAD_ID or "/pid".
		switch t.Notify {
		case "signal":
			pt.Notify = sigevSignal
		case "none":
			pt.Notify = sigevNone
		case "thread":
			pt.Notify = sigevThread
		default:
			return fmt.Errorf("pid %d: POSIX timer %d notifies by %q: unsupported", r.pid, t.ID, t.Notify)
		}
		if t.NotifyTid {
			pt.Notify |= sigevThreadID
			pt.Tid = t.NotifyPid // one of the threads: collectThreads checks
		}
		if t.Clock < 0 {
			return fmt.Errorf("pid %d: POSIX timer %d runs on the CPU clock of a process or thread (%d): unsupported yet", r.pid, t.ID, t.Clock)
		}
		if _, err := r.call(fmt.Sprintf("timer_gettime(%d)", t.ID), r.host.Sys.TimerGettime, uint64(t.ID), r.scratch); err != nil {
			return err
		}
		b, err := r.read(0, 32)
		if err != nil {
			return err
		}
		pt.IntervalNs = int64(le.Uint64(b))*1e9 + int64(le.Uint64(b[8:]))
		pt.ValueNs = int64(le.Uint64(b[16:]))*1e9 + int64(le.Uint64(b[24:]))
		p.Timers = append(p.Timers, pt)
	}
	return nil
}

// threadState reads the per-thread state: tid address, robust list,
// sigaltstack, name, scheduling and the thread's prctls.
// Precondition: called via Tracer.Do.
func (r *remote) threadState(th *image.Thread) error {
	sys := r.host.Sys
	tid := r.tid
	// PR_GET_TID_ADDRESS (needs CONFIG_CHECKPOINT_RESTORE): where the
	// kernel clears the tid at exit (glibc: the TCB's tid).
	if _, err := r.prctl("PR_GET_TID_ADDRESS", unix.PR_GET_TID_ADDRESS, r.scratch); err == nil {
		b, err := r.read(0, 8)
		if err != nil {
			return err
		}
		th.ClearChildTid = le.Uint64(b)
	} else if !errors.Is(err, unix.EINVAL) {
		return err
	}
	if _, err := r.call("get_robust_list", sys.GetRobustList, 0, r.scratch, r.scratch+8); err != nil {
		return err
	}
	b, err := r.read(0, 16)
	if err != nil {
		return err
	}
	th.RobustList, th.RobustLen = le.Uint64(b), le.Uint64(b[8:])
	if _, err := r.call("sigaltstack", sys.Sigaltstack, 0, r.scratch); err != nil {
		return err
	}
	if b, err = r.read(0, 24); err != nil {
		return err
	}
	th.AltStack = image.AltStack{SP: le.Uint64(b), Flags: int32(le.Uint32(b[8:])), Size: le.Uint64(b[16:])}

	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", r.pid, tid))
	if err != nil {
		return fmt.Errorf("read comm of thread %d: %w", tid, err)
	}
	th.Comm = strings.TrimSuffix(string(comm), "\n")
	st, err := proc.ReadStat(tid)
	if err != nil {
		return err
	}
	th.Nice = st.Nice
	attr, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return fmt.Errorf("sched_getattr(%d): %w", tid, err)
	}
	if attr.Policy == unix.SCHED_DEADLINE {
		return fmt.Errorf("thread %d runs under SCHED_DEADLINE: unsupported yet", tid)
	}
	th.Sched = image.Sched{Policy: attr.Policy, Flags: attr.Flags, Priority: attr.Priority, UtilMin: attr.Util_min, UtilMax: attr.Util_max}
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(tid, &cpus); err != nil {
		return fmt.Errorf("sched_getaffinity(%d): %w", tid, err)
	}
	th.Affinity = append([]uint64(nil), cpusWords(&cpus)...)
	const ioprioWhoProcess = 1
	io, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		return fmt.Errorf("ioprio_get(%d): %w", tid, errno)
	}
	th.IOPrio = int(io)

	slack, err := r.prctl("PR_GET_TIMERSLACK", prGetTimerslack)
	if err != nil {
		return err
	}
	th.TimerSlackNs = slack
	if th.PDeathSig, err = r.prctlInt("PR_GET_PDEATHSIG", prGetPdeathsig); err != nil {
		return err
	}
	nnp, err := r.prctl("PR_GET_NO_NEW_PRIVS", prGetNoNewPrivs)
	if err != nil {
		return err
	}
	th.NoNewPrivs = nnp != 0
	for which := range th.Spec {
		v, err := r.prctl("PR_GET_SPECULATION_CTRL", prGetSpeculationCtrl, uint64(which))
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENODEV) {
			continue // not on this CPU or kernel
		}
		if err != nil {
			return err
		}
		th.Spec[which] = v
	}
	if v, err := r.prctl("PR_GET_IO_FLUSHER", prGetIOFlusher); err == nil {
		th.IOFlusher = v != 0
	} else if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EPERM) {
		// PR_GET_IO_FLUSHER needs CAP_SYS_RESOURCE; without it the
		// process cannot have set the flag either.
		return err
	}
	// What cannot be carried: syscall user dispatch, a core-scheduling
	// cookie, a shadow stack.
	if mode, err := ptrace.SyscallUserDispatchMode(tid); err != nil {
		return err
	} else if mode != 0 {
		return fmt.Errorf("thread %d uses syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH): unsupported yet", tid)
	}
	if err := r.zero(8); err != nil {
		return err
	}
	if _, err := r.prctl("PR_SCHED_CORE_GET", prSchedCore, prSchedCoreGet, 0, 0, r.scratch); err == nil {
		b, err := r.read(0, 8)
		if err != nil {
			return err
		}
		if le.Uint64(b) != 0 {
			return fmt.Errorf("thread %d has a core-scheduling cookie: unsupported", tid)
		}
	}
	if r.host.Image == image.ArchAMD64 {
		if err := r.zero(8); err != nil {
			return err
		}
		if _, err := r.prctl("PR_GET_SHADOW_STACK_STATUS", prGetShadowStack, r.scratch); err == nil {
			b, err := r.read(0, 8)
			if err != nil {
				return err
			}
			if le.Uint64(b)&1 != 0 {
				return fmt.Errorf("thread %d runs with a shadow stack (CET): unsupported yet", tid)
			}
		}
	}
	return nil
}

func parseSigSet(hex string) (uint64, error) {
	v, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("bad signal set %q in /proc/PID/status: %w", hex, err)
	}
	return v, nil
}

func cpusWords(s *unix.CPUSet) []uint64 {
	out := make([]uint64, len(s))
	for i := range s {
		out[i] = uint64(s[i])
	}
	// Trailing zero words say nothing.
	for len(out) > 1 && out[len(out)-1] == 0 {
		out = out[:len(out)-1]
	}
	return out
}
