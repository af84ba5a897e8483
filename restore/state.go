package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/ptrace"
)

// The process model's state beyond memory, registers and files, given
// back in two steps (docs/state.md has the inventory):
//
//   - restoreEarly, before the stub's address space is touched: what can
//     fail for a reason outside the image (a hard limit or priority the
//     thawing user may not set, an oom_score_adj it may not lower), so
//     that such a failure leaves nothing half-built;
//   - restoreLate, once memory is in place, just before the registers:
//     what changes how later calls behave (personality, MDWE,
//     credentials, no_new_privs, dumpable) and the timers, which start
//     running when set.
//
// A setting equal to the stub's own is left alone: setting it again
// could need a privilege that keeping it does not.

var le = binary.LittleEndian

// The prctl options set here (include/uapi/linux/prctl.h).
const (
	prSetPdeathsig       = 1
	prGetDumpable        = 3
	prSetDumpable        = 4
	prSetKeepcaps        = 8
	prSetTSC             = 26
	prGetTSC             = 25
	prGetSecurebits      = 27
	prSetSecurebits      = 28
	prSetTimerslack      = 29
	prGetTimerslack      = 30
	prMCEKill            = 33
	prMCEKillGet         = 34
	prSetChildSubreaper  = 36
	prGetChildSubreaper  = 37
	prSetNoNewPrivs      = 38
	prGetNoNewPrivs      = 39
	prSetTHPDisable      = 41
	prGetTHPDisable      = 42
	prCapAmbient         = 47
	prCapAmbientRaise    = 2
	prCapbsetRead        = 23
	prCapbsetDrop        = 24
	prGetSpeculationCtrl = 52
	prSetSpeculationCtrl = 53
	prSetIOFlusher       = 57
	prGetIOFlusher       = 58
	prSetMDWE            = 65
	prGetMDWE            = 66
	prSetMemoryMerge     = 67
	prGetMemoryMerge     = 68
	prTimerRestoreIDs    = 77 // PR_TIMER_CREATE_RESTORE_IDS
	prMCEKillClear       = 0
	prMCEKillSet         = 1
	prMCEKillDefault     = 2
	prSpecPrctl          = 1 // PR_SPEC_PRCTL: "can be set", not a setting

	personalityQuery = 0xffffffff
	ioprioWhoProcess = 1
	sigevThreadID    = 4
	secbitKeepCaps   = 1 << 4
	secbitKeepLocked = 1 << 5
	capLastCapMax    = 63
	linuxCapV3       = 0x20080522

	membarrierQuery = 0
	// The MEMBARRIER_CMD_REGISTER_* commands: registrations cannot be
	// read back, so every one the kernel offers is made (include/uapi/
	// linux/membarrier.h).
	membarrierRegisterGlobalExp  = 1 << 2
	membarrierRegisterPrivateExp = 1 << 4
	membarrierRegisterSyncCore   = 1 << 6
	membarrierRegisterRseq       = 1 << 8
)

// prctl runs prctl(op, args...) in the stub, unused arguments 0.
func (h *helper) prctl(name string, op uint64, args ...uint64) (uint64, error) {
	v, err := h.s.Prctl(op, args...)
	if err != nil {
		return v, fmt.Errorf("prctl(%s): %w", name, err)
	}
	return v, nil
}

// peek reads n bytes of the scratch area at off.
func (h *helper) peek(off uint64, n int) ([]byte, error) {
	b := make([]byte, n)
	if got, err := ptrace.ReadMem(h.pid, h.scratch+off, b); err != nil || got != n {
		return nil, fmt.Errorf("read scratch: %d of %d bytes: %v", got, n, err)
	}
	return b, nil
}

// takeSignals dequeues every signal in set pending for the thread h.s
// runs in or for the process (rt_sigtimedwait with a zero timeout, until
// none is left) and returns their numbers. Injection sessions block all
// signals, so nothing of the process sees them.
func (h *helper) takeSignals(set uint64, what string) ([]int, error) {
	b := make([]byte, 8+16+128)
	le.PutUint64(b, set)
	addr, err := h.poke(0, b) // the set, a zero timespec, a siginfo
	if err != nil {
		return nil, err
	}
	var taken []int
	for {
		sig, err := h.s.Syscall(h.host.Sys.RtSigtimedwait, addr, addr+24, addr+8, 8)
		if errors.Is(err, unix.EAGAIN) {
			return taken, nil
		}
		if err != nil {
			return taken, fmt.Errorf("take pending %s: %w", what, err)
		}
		taken = append(taken, int(sig))
	}
}

// dropInheritedSignals takes away the signals pending in the stub when
// the helper starts: an exec keeps pending signals, and the thaw
// launcher, a Go program, may have had one queued to it just before its
// exec (the runtime's SIGURG preemption requests; a SIGCHLD of its spawn).
// They are the launcher's, not the process's: left, a thawed process
// would find a signal pending that it never had (the oracle saw SIGURG).
// The image's pending signals are queued at the end (restorePending).
func (h *helper) dropInheritedSignals() error {
	all := ^uint64(0) &^ (1<<(unix.SIGKILL-1) | 1<<(unix.SIGSTOP-1))
	taken, err := h.takeSignals(all, "signals")
	for _, sig := range taken {
		h.logf("signal %d pending in the thaw launcher at its exec: dropped", sig)
	}
	return err
}

// prctlInt is for the prctls that store an int at their argument.
func (h *helper) prctlInt(name string, op uint64) (int, error) {
	addr, err := h.poke(0, make([]byte, 4))
	if err != nil {
		return 0, err
	}
	if _, err := h.prctl(name, op, addr); err != nil {
		return 0, err
	}
	b, err := h.peek(0, 4)
	if err != nil {
		return 0, err
	}
	return int(int32(le.Uint32(b))), nil
}

// restoreEarly gives back what the thawing user may be refused, before
// anything irreversible happens.
func (h *helper) restoreEarly() error {
	p := h.p
	th := &p.Threads[0]
	sys := h.host.Sys
	if _, err := h.sys("umask", sys.Umask, uint64(p.Umask)); err != nil {
		return err
	}
	if err := h.restoreRlimits(); err != nil {
		return err
	}
	if err := h.restoreSched(th); err != nil {
		return err
	}
	// Process-wide prctls, each set only where it differs.
	a := &p.Attrs
	if err := h.knob("PR_SET_CHILD_SUBREAPER", prGetChildSubreaper, true, b2u(a.ChildSubreaper), prSetChildSubreaper); err != nil {
		return err
	}
	if err := h.knob("PR_SET_THP_DISABLE", prGetTHPDisable, false, b2u(a.THPDisable), prSetTHPDisable); err != nil {
		return err
	}
	if err := h.restoreMCEKill(a.MCEKill); err != nil {
		return err
	}
	if h.host.Image == image.ArchAMD64 && a.TSC != 0 {
		if err := h.knob("PR_SET_TSC", prGetTSC, true, uint64(a.TSC), prSetTSC); err != nil {
			return err
		}
	}
	if cur, err := h.prctl("PR_GET_MEMORY_MERGE", prGetMemoryMerge); err == nil {
		if cur != b2u(a.MemoryMerge) {
			if _, err := h.prctl("PR_SET_MEMORY_MERGE", prSetMemoryMerge, b2u(a.MemoryMerge)); err != nil {
				return fmt.Errorf("%w (the process had KSM merging on: CAP_SYS_RESOURCE is needed to set it)", err)
			}
		}
	} else if a.MemoryMerge {
		return fmt.Errorf("the process had KSM merging on, this kernel cannot: %w", err)
	}
	// Per-thread prctls of the leader (the other threads: cloneThreads).
	if err := h.restoreThreadPrctls(th); err != nil {
		return err
	}
	nnp, err := h.prctl("PR_GET_NO_NEW_PRIVS", prGetNoNewPrivs)
	if err != nil {
		return err
	}
	if nnp != 0 && !th.NoNewPrivs {
		return errors.New("this thaw runs with no_new_privs set and the process did not: it cannot be unset (thaw it from a shell without it)")
	}
	if err := h.createPosixTimers(false); err != nil {
		return err
	}
	// /proc files the helper writes for the stub.
	if err := h.writeProc("oom_score_adj", strconv.Itoa(a.OOMScoreAdj)); err != nil {
		return err
	}
	if err := h.writeProc("coredump_filter", fmt.Sprintf("0x%x", a.CoredumpFilter)); err != nil {
		return err
	}
	return h.restoreLoginUID(a.LoginUID)
}

// restoreThreadPrctls gives the thread h.s runs in its own prctls:
// timer slack, parent-death signal, speculation controls, I/O flusher.
func (h *helper) restoreThreadPrctls(th *image.Thread) error {
	if err := h.knob("PR_SET_TIMERSLACK", prGetTimerslack, false, th.TimerSlackNs, prSetTimerslack); err != nil {
		return err
	}
	if err := h.knob("PR_SET_PDEATHSIG", 2 /* PR_GET_PDEATHSIG */, true, uint64(th.PDeathSig), prSetPdeathsig); err != nil {
		return err
	}
	for which, v := range th.Spec {
		if v == 0 {
			continue // not readable where frozen
		}
		cur, err := h.prctl("PR_GET_SPECULATION_CTRL", prGetSpeculationCtrl, uint64(which))
		if err != nil || cur&^prSpecPrctl == v&^prSpecPrctl || v&prSpecPrctl == 0 {
			continue // nothing this kernel lets us set, or already so
		}
		if _, err := h.prctl("PR_SET_SPECULATION_CTRL", prSetSpeculationCtrl, uint64(which), v&^prSpecPrctl); err != nil {
			return err
		}
	}
	if th.IOFlusher {
		if _, err := h.prctl("PR_SET_IO_FLUSHER", prSetIOFlusher, 1); err != nil {
			return fmt.Errorf("%w (the process was an I/O flusher: CAP_SYS_RESOURCE is needed)", err)
		}
	}
	return nil
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// knob sets a prctl to want when its GET (returning the value, or
// storing an int at its argument when byPtr) says otherwise.
func (h *helper) knob(name string, get uint64, byPtr bool, want, set uint64) error {
	var cur uint64
	if byPtr {
		v, err := h.prctlInt(name, get)
		if err != nil {
			return err
		}
		cur = uint64(int64(v))
	} else {
		v, err := h.prctl(name, get)
		if err != nil {
			return err
		}
		cur = v
	}
	if cur == want {
		return nil
	}
	_, err := h.prctl(name, set, want)
	return err
}

func (h *helper) restoreMCEKill(v int) error {
	cur, err := h.prctl("PR_MCE_KILL_GET", prMCEKillGet)
	if err != nil || int(cur) == v {
		return err
	}
	if v == prMCEKillDefault {
		_, err = h.prctl("PR_MCE_KILL", prMCEKill, prMCEKillClear)
	} else {
		_, err = h.prctl("PR_MCE_KILL", prMCEKill, prMCEKillSet, uint64(v))
	}
	return err
}

// restoreRlimits sets every resource limit that differs from the stub's
// (prlimit64). Raising a hard limit needs CAP_SYS_RESOURCE: without it
// the thaw says which limit it cannot give back.
func (h *helper) restoreRlimits() error {
	for _, rl := range h.p.Rlimits {
		var cur unix.Rlimit
		if err := unix.Prlimit(h.pid, rl.Resource, nil, &cur); err != nil {
			return fmt.Errorf("prlimit(%d) of the stub: %w", rl.Resource, err)
		}
		if cur.Cur == rl.Cur && cur.Max == rl.Max {
			continue
		}
		b := make([]byte, 16)
		le.PutUint64(b, rl.Cur)
		le.PutUint64(b[8:], rl.Max)
		addr, err := h.poke(0, b)
		if err != nil {
			return err
		}
		if _, err := h.s.Syscall(h.host.Sys.Prlimit64, 0, uint64(rl.Resource), addr, 0); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("the process had %s limits %s/%s, this thaw may not raise its hard limit %s that far", rlimitName(rl.Resource), limStr(rl.Cur), limStr(rl.Max), limStr(cur.Max))
			}
			return fmt.Errorf("prlimit64(%s): %w", rlimitName(rl.Resource), err)
		}
	}
	return nil
}

func limStr(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

func rlimitName(r int) string {
	names := []string{"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
		"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS", "RLIMIT_SIGPENDING",
		"RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"}
	if r >= 0 && r < len(names) {
		return names[r]
	}
	return fmt.Sprintf("resource %d", r)
}

// restoreSched gives the thread its policy, nice value, CPU affinity and
// I/O priority.
func (h *helper) restoreSched(th *image.Thread) error {
	sys := h.host.Sys
	tid := h.s.Tid
	cur, err := unix.SchedGetAttr(tid, 0)
	if err != nil {
		return fmt.Errorf("sched_getattr of the stub: %w", err)
	}
	st, err := proc.ReadStat(tid)
	if err != nil {
		return err
	}
	if cur.Policy != th.Sched.Policy || cur.Priority != th.Sched.Priority || cur.Flags != th.Sched.Flags ||
		cur.Util_min != th.Sched.UtilMin || cur.Util_max != th.Sched.UtilMax || st.Nice != th.Nice {
		// struct sched_attr (SCHED_ATTR_SIZE_VER1): size, policy,
		// flags, nice, priority, runtime, deadline, period, util_min,
		// util_max.
		b := make([]byte, 56)
		le.PutUint32(b[0:], 56)
		le.PutUint32(b[4:], th.Sched.Policy)
		flags := th.Sched.Flags
		if cur.Util_min != th.Sched.UtilMin || cur.Util_max != th.Sched.UtilMax {
			flags |= unix.SCHED_FLAG_UTIL_CLAMP_MIN | unix.SCHED_FLAG_UTIL_CLAMP_MAX
		}
		le.PutUint64(b[8:], flags)
		le.PutUint32(b[16:], uint32(int32(th.Nice)))
		le.PutUint32(b[20:], th.Sched.Priority)
		le.PutUint32(b[48:], th.Sched.UtilMin)
		le.PutUint32(b[52:], th.Sched.UtilMax)
		addr, err := h.poke(0, b)
		if err != nil {
			return err
		}
		if _, err := h.s.Syscall(sys.SchedSetattr, 0, addr, 0); err != nil {
			return fmt.Errorf("the process ran with scheduling policy %d, priority %d, nice %d; this thaw may not set that: sched_setattr: %w",
				th.Sched.Policy, th.Sched.Priority, th.Nice, err)
		}
	}
	if len(th.Affinity) > 0 {
		var now unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &now); err != nil {
			return fmt.Errorf("sched_getaffinity of the stub: %w", err)
		}
		want := make([]byte, 8*len(now))
		same, any := true, false
		for i := range now {
			var w uint64
			if i < len(th.Affinity) {
				w = th.Affinity[i]
			}
			le.PutUint64(want[8*i:], w)
			same = same && uint64(now[i]) == w
			any = any || w != 0
		}
		if !same && any {
			addr, err := h.poke(0, want)
			if err != nil {
				return err
			}
			if _, err := h.s.Syscall(sys.SchedSetaffinity, 0, uint64(len(want)), addr); err != nil {
				return fmt.Errorf("the process was bound to CPUs %s, which this machine cannot give it: %w", cpuList(th.Affinity), err)
			}
		}
	}
	io, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		return fmt.Errorf("ioprio_get of the stub: %w", errno)
	}
	if int(io) != th.IOPrio {
		if _, err := h.sys("ioprio_set", sys.IoprioSet, ioprioWhoProcess, 0, uint64(th.IOPrio)); err != nil {
			return err
		}
	}
	return nil
}

func cpuList(words []uint64) string {
	var out []string
	for i, w := range words {
		for b := 0; b < 64; b++ {
			if w&(1<<b) != 0 {
				out = append(out, strconv.Itoa(i*64+b))
			}
		}
	}
	return strings.Join(out, ",")
}

// writeProc writes a /proc/PID file of the stub when it differs.
func (h *helper) writeProc(name, value string) error {
	path := fmt.Sprintf("/proc/%d/%s", h.pid, name)
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s of the stub: %w", name, err)
	}
	if same(strings.TrimSpace(string(cur)), value) {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return fmt.Errorf("the process had %s %s, this thaw may not set it: %w", name, value, err)
	}
	return nil
}

// same compares two numbers as /proc writes and reads them.
func same(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 0, 64)
	y, err2 := strconv.ParseInt(b, 0, 64)
	if err1 == nil && err2 == nil {
		return x == y
	}
	if strings.HasPrefix(b, "0x") {
		x, err1 := strconv.ParseUint(a, 16, 64)
		y, err2 := strconv.ParseUint(b[2:], 16, 64)
		return err1 == nil && err2 == nil && x == y
	}
	return a == b
}

// restoreLoginUID gives the process its audit login uid when it differs
// and the thaw may (CAP_AUDIT_CONTROL); otherwise it keeps the thaw's,
// as it keeps the thaw's uid (the image carries memory, not identity).
// The kernel lets a process write only its own loginuid: the stub does
// it with injected calls.
func (h *helper) restoreLoginUID(want uint32) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/loginuid", h.pid))
	if err != nil {
		return nil // no audit support: nothing to give back
	}
	cur, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil || uint32(cur) == want || os.Geteuid() != 0 {
		return nil
	}
	path, err := h.poke(0, cstring("/proc/self/loginuid"))
	if err != nil {
		return err
	}
	val, err := h.poke(64, []byte(strconv.FormatUint(uint64(want), 10)))
	if err != nil {
		return err
	}
	atFDCWD := int64(unix.AT_FDCWD)
	fd, err := h.s.Syscall(h.host.Sys.Openat, uint64(atFDCWD), path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /proc/self/loginuid: %w", err)
	}
	n := uint64(len(strconv.FormatUint(uint64(want), 10)))
	_, werr := h.s.Syscall(h.host.Sys.Write, fd, val, n)
	_, cerr := h.s.Syscall(h.host.Sys.Close, fd)
	if werr != nil {
		return fmt.Errorf("the process had loginuid %d, this thaw may not set it: %w", want, werr)
	}
	return cerr
}

// restoreLate gives back, once memory is in place, what changes how later
// calls behave, and the timers.
func (h *helper) restoreLate() error {
	p := h.p
	th := &p.Threads[0]
	sys := h.host.Sys
	cur, err := h.sys("personality", sys.Personality, personalityQuery)
	if err != nil {
		return err
	}
	if uint32(cur) != p.Attrs.Personality {
		if _, err := h.sys("personality", sys.Personality, uint64(p.Attrs.Personality)); err != nil {
			return err
		}
	}
	if err := h.registerMembarrier(); err != nil {
		return err
	}
	if p.Attrs.MlockFuture != 0 {
		if _, err := h.sys("mlockall", sys.Mlockall, uint64(p.Attrs.MlockFuture)); err != nil {
			return err
		}
	}
	if err := h.restoreCreds(); err != nil {
		return err
	}
	// After the credentials, which reset it.
	if err := h.knob("PR_SET_DUMPABLE", prGetDumpable, false, uint64(p.Attrs.Dumpable), prSetDumpable); err != nil {
		return err
	}
	if p.Attrs.MDWE != 0 {
		if now, err := h.prctl("PR_GET_MDWE", prGetMDWE); err != nil || uint32(now) != p.Attrs.MDWE {
			if _, err := h.prctl("PR_SET_MDWE", prSetMDWE, uint64(p.Attrs.MDWE)); err != nil {
				return err
			}
		}
	}
	if th.NoNewPrivs {
		if _, err := h.prctl("PR_SET_NO_NEW_PRIVS", prSetNoNewPrivs, 1); err != nil {
			return err
		}
	}
	if err := h.restoreITimers(); err != nil {
		return err
	}
	return h.armPosixTimers(p.Timers)
}

// registerMembarrier makes every membarrier registration the kernel
// offers: a process's registrations cannot be read back, and one that is
// missing makes its later membarrier calls fail with EPERM, while an
// extra one changes nothing it can see.
func (h *helper) registerMembarrier() error {
	sys := h.host.Sys
	avail, err := h.s.Syscall(sys.Membarrier, membarrierQuery, 0, 0)
	if err != nil {
		return nil // CONFIG_MEMBARRIER unset: nothing to register
	}
	for _, cmd := range []uint64{membarrierRegisterGlobalExp, membarrierRegisterPrivateExp, membarrierRegisterSyncCore, membarrierRegisterRseq} {
		if avail&cmd == 0 {
			continue
		}
		if _, err := h.sys(fmt.Sprintf("membarrier(%#x)", cmd), sys.Membarrier, cmd, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// capNames are the capabilities by number (linux/capability.h).
var capNames = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
	"CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
	"CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
	"CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"}

// capList names the capabilities in mask.
func capList(mask uint64) string {
	var names []string
	for n := 0; n < 64; n++ {
		if mask&(1<<n) == 0 {
			continue
		}
		if n < len(capNames) {
			names = append(names, capNames[n])
		} else {
			names = append(names, fmt.Sprintf("capability %d", n))
		}
	}
	return strings.Join(names, ", ")
}

// checkCreds refuses, before anything is destroyed, a root thaw that
// could not give the process its capabilities: those it had permitted,
// effective or inheritable that this thaw does not hold (root in a
// container, a machine whose root has fewer), which capset would refuse
// late with a bare EPERM.
func (h *helper) checkCreds() error {
	if os.Geteuid() != 0 {
		return nil
	}
	st, err := proc.Status(h.pid)
	if err != nil {
		return err
	}
	mine, err := strconv.ParseUint(st["CapPrm"], 16, 64)
	if err != nil {
		return fmt.Errorf("/proc/%d/status CapPrm %q: %w", h.pid, st["CapPrm"], err)
	}
	c := &h.p.Creds
	if missing := (c.CapPrm | c.CapEff | c.CapInh) &^ mine; missing != 0 {
		return fmt.Errorf("the process held capabilities this thaw does not have: %s (thaw where root has them, or freeze the process without them)", capList(missing))
	}
	return nil
}

// restoreCreds gives the process its uids, gids, groups, capabilities
// and securebits when the thaw runs as root, which may set any of them
// (this never gives more privilege than the thawing user has). Any other
// thawing user's process keeps the thawing user's identity: the image
// carries memory, not privilege (README, threat model).
func (h *helper) restoreCreds() error {
	c := &h.p.Creds
	if os.Geteuid() != 0 {
		return nil
	}
	st, err := proc.Status(h.pid)
	if err != nil {
		return err
	}
	sys := h.host.Sys
	// The bounding set first, while CAP_SETPCAP is there.
	for capn := 0; capn <= capLastCapMax; capn++ {
		has, err := h.s.Syscall(sys.Prctl, prCapbsetRead, uint64(capn), 0, 0, 0)
		if err != nil {
			break // past the kernel's last capability
		}
		if has == 1 && c.CapBnd&(1<<capn) == 0 {
			if _, err := h.prctl("PR_CAPBSET_DROP", prCapbsetDrop, uint64(capn)); err != nil {
				return err
			}
		}
	}
	sb, err := h.prctl("PR_GET_SECUREBITS", prGetSecurebits)
	if err != nil {
		return err
	}
	// Keep the capabilities across the uid change; the process's own
	// securebits (and KEEP_CAPS) are set at the end.
	if sb&secbitKeepLocked == 0 {
		if _, err := h.prctl("PR_SET_KEEPCAPS", prSetKeepcaps, 1); err != nil {
			return err
		}
	}
	groups := make([]byte, 4*len(c.Groups))
	for i, g := range c.Groups {
		le.PutUint32(groups[4*i:], g)
	}
	if strings.Join(strings.Fields(st["Groups"]), " ") != joinU32(c.Groups) {
		addr, err := h.poke(0, groups)
		if err != nil {
			return err
		}
		if _, err := h.sys("setgroups", sys.Setgroups, uint64(len(c.Groups)), addr); err != nil {
			return err
		}
	}
	if _, err := h.sys("setresgid", sys.Setresgid, uint64(c.Gid[0]), uint64(c.Gid[1]), uint64(c.Gid[2])); err != nil {
		return err
	}
	if _, err := h.sys("setresuid", sys.Setresuid, uint64(c.Uid[0]), uint64(c.Uid[1]), uint64(c.Uid[2])); err != nil {
		return err
	}
	// capset: struct __user_cap_header_struct {version, pid}, then two
	// __user_cap_data_struct {effective, permitted, inheritable} for
	// the low and high 32 bits.
	b := make([]byte, 8+24)
	le.PutUint32(b[0:], linuxCapV3)
	d := b[8:]
	for i, shift := range []uint{0, 32} {
		le.PutUint32(d[12*i:], uint32(c.CapEff>>shift))
		le.PutUint32(d[12*i+4:], uint32(c.CapPrm>>shift))
		le.PutUint32(d[12*i+8:], uint32(c.CapInh>>shift))
	}
	addr, err := h.poke(0, b)
	if err != nil {
		return err
	}
	if _, err := h.sys("capset", sys.Capset, addr, addr+8); err != nil {
		return err
	}
	for capn := 0; capn <= capLastCapMax; capn++ {
		if c.CapAmb&(1<<capn) != 0 {
			if _, err := h.prctl("PR_CAP_AMBIENT_RAISE", prCapAmbient, prCapAmbientRaise, uint64(capn)); err != nil {
				return err
			}
		}
	}
	want := uint64(c.Securebits)
	if c.KeepCaps {
		want |= secbitKeepCaps
	} else {
		want &^= secbitKeepCaps
	}
	if now, err := h.prctl("PR_GET_SECUREBITS", prGetSecurebits); err == nil && now != want {
		if now&^secbitKeepCaps == want&^secbitKeepCaps {
			_, err = h.prctl("PR_SET_KEEPCAPS", prSetKeepcaps, b2u(c.KeepCaps))
		} else {
			_, err = h.prctl("PR_SET_SECUREBITS", prSetSecurebits, want)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func joinU32(v []uint32) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatUint(uint64(x), 10)
	}
	return strings.Join(s, " ")
}

// restoreITimers arms the interval timers again with the time they had
// left at freeze (time spent frozen does not count, as for a stopped
// process's CPU timers).
func (h *helper) restoreITimers() error {
	for _, t := range h.p.ITimers {
		b := make([]byte, 32)
		le.PutUint64(b[0:], uint64(t.IntervalUs/1e6))
		le.PutUint64(b[8:], uint64(t.IntervalUs%1e6))
		le.PutUint64(b[16:], uint64(t.ValueUs/1e6))
		le.PutUint64(b[24:], uint64(t.ValueUs%1e6))
		addr, err := h.poke(0, b)
		if err != nil {
			return err
		}
		if _, err := h.sys(fmt.Sprintf("setitimer(%d)", t.Which), h.host.Sys.Setitimer, uint64(t.Which), addr, 0); err != nil {
			return err
		}
	}
	return nil
}

// createPosixTimers creates the POSIX timers again with their ids,
// disarmed (armPosixTimers arms them). It runs twice. Early, before
// anything is destroyed, so that an id this kernel cannot give back
// fails the thaw cleanly; a timer that signals a thread other than the
// leader (SIGEV_THREAD_ID: glibc's SIGEV_THREAD timers signal their
// helper thread) needs that thread made again, so it waits for the late
// run, after cloneThreads, which creates the rest and arms them.
//
// PR_TIMER_CREATE_RESTORE_IDS (Linux 6.17+) makes timer_create take the
// id in *timerid. Older kernels hand ids out from a counter of the
// signal struct, which an exec keeps: the timers are created in id order
// with placeholders for the gaps (deleted afterwards), which works as
// long as the counter has not gone past an id already. There, if one
// timer must wait for its thread, they all do (in id order), and an id
// that cannot be had fails the thaw after the point of no return.
func (h *helper) createPosixTimers(late bool) error {
	if len(h.p.Timers) == 0 {
		return nil
	}
	if h.timersMade == nil {
		h.timersMade = map[int32]bool{}
	}
	sys := h.host.Sys
	_, err := h.s.Syscall(sys.Prctl, prTimerRestoreIDs, 1, 0, 0, 0)
	restoreIDs := err == nil
	leader := h.p.Threads[0].Tid
	toThread := func(t image.PosixTimer) bool { return t.Notify&sigevThreadID != 0 && t.Tid != leader }
	var timers []image.PosixTimer
	for _, t := range h.p.Timers {
		if !h.timersMade[t.ID] && (late || !toThread(t)) {
			timers = append(timers, t)
		}
	}
	if !late && !restoreIDs && slices.ContainsFunc(h.p.Timers, toThread) {
		timers = nil
	}
	var placeholders []uint64
	create := func(t image.PosixTimer) (int32, error) {
		// struct sigevent: sigval, signo, notify, then the union
		// (the thread id for SIGEV_THREAD_ID); 64 bytes.
		b := make([]byte, 64+8)
		le.PutUint64(b[0:], t.Sigval)
		le.PutUint32(b[8:], uint32(t.Signo))
		le.PutUint32(b[12:], uint32(t.Notify))
		if t.Notify&sigevThreadID != 0 {
			tid, ok := h.tids[t.Tid]
			if t.Tid == leader {
				tid, ok = h.pid, true
			}
			if !ok {
				return 0, fmt.Errorf("POSIX timer %d signals thread %d, which the image does not hold", t.ID, t.Tid)
			}
			le.PutUint32(b[16:], uint32(tid))
		}
		le.PutUint32(b[64:], uint32(t.ID))
		addr, err := h.poke(0, b)
		if err != nil {
			return 0, err
		}
		if _, err := h.sys(fmt.Sprintf("timer_create (id %d)", t.ID), sys.TimerCreate, uint64(t.Clock), addr, addr+64); err != nil {
			return 0, err
		}
		got, err := h.peek(64, 4)
		if err != nil {
			return 0, err
		}
		return int32(le.Uint32(got)), nil
	}
	// In id order (/proc/PID/timers lists them in the kernel's order),
	// so that placeholders fill only the gaps.
	slices.SortFunc(timers, func(a, b image.PosixTimer) int { return int(a.ID) - int(b.ID) })
	next := int32(0)
	for _, t := range timers {
		for !restoreIDs && next < t.ID {
			id, err := create(image.PosixTimer{Clock: unix.CLOCK_MONOTONIC, Notify: 1 /* SIGEV_NONE */})
			if err != nil {
				return err
			}
			placeholders = append(placeholders, uint64(id))
			next = id + 1
		}
		id, err := create(t)
		if err != nil {
			return err
		}
		if id != t.ID {
			return fmt.Errorf("POSIX timer %d would come back as timer %d: this kernel cannot give timers their ids back here (Linux 6.17 can: PR_TIMER_CREATE_RESTORE_IDS)", t.ID, id)
		}
		h.timersMade[t.ID] = true
		next = id + 1
	}
	if restoreIDs {
		if _, err := h.s.Syscall(sys.Prctl, prTimerRestoreIDs, 0, 0, 0, 0); err != nil {
			return fmt.Errorf("prctl(PR_TIMER_CREATE_RESTORE_IDS, off): %w", err)
		}
	}
	for _, id := range placeholders {
		if _, err := h.sys("timer_delete", sys.TimerDelete, id); err != nil {
			return err
		}
	}
	if late {
		return h.armPosixTimers(timers)
	}
	return nil
}

// armPosixTimers gives each of timers that is made the time it had left
// and its period.
func (h *helper) armPosixTimers(timers []image.PosixTimer) error {
	for _, t := range timers {
		if t.ValueNs == 0 || !h.timersMade[t.ID] {
			continue
		}
		b := make([]byte, 32)
		le.PutUint64(b[0:], uint64(t.IntervalNs/1e9))
		le.PutUint64(b[8:], uint64(t.IntervalNs%1e9))
		le.PutUint64(b[16:], uint64(t.ValueNs/1e9))
		le.PutUint64(b[24:], uint64(t.ValueNs%1e9))
		addr, err := h.poke(0, b)
		if err != nil {
			return err
		}
		if _, err := h.sys(fmt.Sprintf("timer_settime(%d)", t.ID), h.host.Sys.TimerSettime, uint64(t.ID), 0, addr, 0); err != nil {
			return err
		}
	}
	return nil
}
