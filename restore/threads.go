package restore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/inject"
	"github.com/cryo-project/cryo/ptrace"
)

// Threads (see doc.go, "Threads"). The leader is rebuilt first, as a
// single-threaded process; then cloneThreads makes each other thread
// with an injected clone3 from the leader, restores its state through an
// injection session of its own at the same site, loads its frozen
// registers and parks it in a syscall-exit stop. Nothing of the process
// runs until releaseThreads, after the leader's last call.

// threadCloneFlags are a pthread's: one address space, fs, fd table,
// signal handlers, thread group and SysV semaphore undo list. The TLS
// and the tid address are given with the registers and by an injected
// set_tid_address. CLONE_PTRACE makes the thread the helper's tracee
// from its first instruction, stopped (PTRACE_O_TRACECLONE would do the
// same, but set at the seize it would also trace the threads the thaw
// launcher's Go runtime starts before its exec).
const threadCloneFlags = unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND |
	unix.CLONE_THREAD | unix.CLONE_SYSVSEM | unix.CLONE_PTRACE

// parked is a thread made again, stopped with its frozen registers.
type parked struct {
	tid int
	th  *image.Thread
}

// cloneThreads makes every thread but the leader and patches the
// thread ids that changed.
func (h *helper) cloneThreads() error {
	h.tids = map[int]int{h.p.Threads[0].Tid: h.pid}
	if len(h.p.Threads) < 2 {
		return h.patchTids()
	}
	restored := 0
	for i := 1; i < len(h.p.Threads); i++ {
		th := &h.p.Threads[i]
		tid, err := h.cloneThread(th)
		if err != nil {
			return fmt.Errorf("make thread %d again: %w", th.Tid, err)
		}
		if tid == th.Tid {
			restored++
		}
	}
	h.logf("%d threads made again, %d with their tids", len(h.p.Threads)-1, restored)
	return h.patchTids()
}

// cloneThread makes th again: a clone3 from the leader, with th's tid if
// this thaw may choose it (set_tid: CAP_CHECKPOINT_RESTORE) and it is
// free; then its state, then its frozen registers.
func (h *helper) cloneThread(th *image.Thread) (int, error) {
	args := make([]byte, cloneArgsSize+8)
	le.PutUint64(args[0:], threadCloneFlags)
	ret, err := h.clone3(args, th.Tid) // any tid if not this one: patched below
	if err != nil {
		return 0, err
	}
	tid := int(ret)
	h.tids[th.Tid] = tid
	for {
		st, err := ptrace.Wait(tid)
		if err != nil {
			return tid, err
		}
		if st.Exited() {
			return tid, fmt.Errorf("thread %d %s before its first stop", tid, st)
		}
		if st.Event() == ptrace.EventStop {
			break
		}
		if err := ptrace.Cont(tid, 0); err != nil {
			return tid, err
		}
	}
	s, err := inject.Begin(tid, h.site)
	if err != nil {
		return tid, err
	}
	leader := h.s
	h.s = s
	err = h.threadState(th)
	if err == nil {
		err = h.restorePending(th, tid, false)
	}
	h.s = leader
	if err != nil {
		return tid, err
	}
	// Its registers, loaded in the exit stop of one last call built on
	// them (arm64's x7: see resume). It stays there, parked.
	regs, err := h.host.NewRegs(th.Regs)
	if err != nil {
		return tid, err
	}
	if what := regs.PrepareResume(); what != "" {
		h.logf("thread %d frozen inside a syscall: %s", th.Tid, what)
	}
	if err := s.Settle(); err != nil {
		return tid, err
	}
	s.SetBase(regs.Encode())
	if _, err := s.SyscallNoReturn(h.host.Sys.Gettid); err != nil {
		return tid, fmt.Errorf("last call: %w", err)
	}
	if err := h.loadFrozen(tid, th, regs); err != nil {
		return tid, err
	}
	h.parked = append(h.parked, parked{tid: tid, th: th})
	return tid, nil
}

// threadState gives the thread h.s runs in its own state: what a new
// thread does not inherit from the leader (sigaltstack, tid address,
// robust list, rseq, name) and what it inherits but had otherwise
// (scheduling, prctls). Credentials, personality and no_new_privs are
// the leader's, set before the clone: the threads of a process share
// them (glibc's setxid broadcast keeps them so).
func (h *helper) threadState(th *image.Thread) error {
	if err := h.restoreThread(th); err != nil {
		return err
	}
	if err := h.restoreSched(th); err != nil {
		return err
	}
	return h.restoreThreadPrctls(th)
}

// releaseThreads lets the whole process go: the other threads, then the
// leader, each detached from its parked stop. A process frozen stopped
// comes back stopped, and no thread of it runs a single instruction on
// the way: the leader is detached first with SIGSTOP, which it takes
// before returning to user mode and which starts the group stop; once
// it has stopped, the others, detached, join the stop before their
// first instruction (kernel/ptrace.c, __ptrace_unlink). SIGSTOP goes to
// the leader alone, as kill(pid, SIGSTOP) would have left it: no
// thread keeps one pending.
func (h *helper) releaseThreads(stopped bool) error {
	var errs []error
	if stopped {
		if err := ptrace.Detach(h.pid, int(unix.SIGSTOP)); err != nil {
			return err
		}
		if err := waitTaskStopped(h.pid, h.pid); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range h.parked {
		if err := ptrace.Detach(p.tid, 0); err != nil {
			errs = append(errs, err)
		}
	}
	if !stopped {
		if err := ptrace.Detach(h.pid, 0); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// waitTaskStopped waits, a bounded time, until thread tid of pid is in a
// job-control stop.
func waitTaskStopped(pid, tid int) error {
	path := fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid)
	for i := 0; i < 2000; i++ {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if j := bytes.LastIndexByte(b, ')'); j > 0 && j+2 < len(b) && b[j+2] == 'T' {
			return nil
		}
		time.Sleep(500 * time.Microsecond)
	}
	return fmt.Errorf("thread %d did not stop after SIGSTOP", tid)
}

// futexTidMask is FUTEX_TID_MASK (include/uapi/linux/futex.h): the owner
// tid bits of a robust or PI futex word; the others are FUTEX_WAITERS
// and FUTEX_OWNER_DIED.
const futexTidMask = 0x3fffffff

// maxRobust bounds a robust list walk (the kernel's ROBUST_LIST_LIMIT).
const maxRobust = 2048

// patchTids rewrites the thread ids the process keeps in its memory
// where a thread came back with another tid (the leader always, unless
// the thaw has the frozen pid): glibc's cached tid in each struct pthread
// (the tid address points at it), and the owner words of the robust
// mutexes each thread holds (its robust list: the futex word's tid bits,
// and glibc's __owner, 8 bytes further). See doc.go for what cannot be
// found.
func (h *helper) patchTids() error {
	changed := map[uint32]uint32{}
	for old, cur := range h.tids {
		if old != cur {
			changed[uint32(old)] = uint32(cur)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	u32 := func(addr uint64) (uint32, bool) {
		var b [4]byte
		n, err := ptrace.ReadMem(h.pid, addr, b[:])
		return le.Uint32(b[:]), err == nil && n == 4
	}
	put := func(addr uint64, v uint32) error {
		return writeFull(h.pid, addr, le.AppendUint32(nil, v))
	}
	u64 := func(addr uint64) (uint64, bool) {
		var b [8]byte
		n, err := ptrace.ReadMem(h.pid, addr, b[:])
		return le.Uint64(b[:]), err == nil && n == 8
	}
	owner := func(word uint64) error {
		v, ok := u32(word)
		if !ok {
			return nil
		}
		if cur, ok := changed[v&futexTidMask]; ok {
			if err := put(word, v&^futexTidMask|cur); err != nil {
				return err
			}
			if o, ok := u32(word + 8); ok && o == v&futexTidMask {
				return put(word+8, cur)
			}
		}
		return nil
	}
	n := 0
	for i := range h.p.Threads {
		th := &h.p.Threads[i]
		if cur, ok := changed[uint32(th.Tid)]; ok && th.ClearChildTid != 0 {
			if v, ok := u32(th.ClearChildTid); ok && v == uint32(th.Tid) {
				if err := put(th.ClearChildTid, cur); err != nil {
					return err
				}
				n++
			}
		}
		// struct robust_list_head: list.next, futex_offset, list_op_pending.
		if th.RobustList == 0 || th.RobustLen != 24 {
			continue
		}
		head := th.RobustList
		next, ok1 := u64(head)
		off, ok2 := u64(head + 8)
		pending, ok3 := u64(head + 16)
		if !ok1 || !ok2 || !ok3 {
			continue
		}
		for e, k := next&^1, 0; e != head && e != 0 && k < maxRobust; k++ {
			if err := owner(e + off); err != nil {
				return err
			}
			if e, ok1 = u64(e); !ok1 {
				break
			}
			e &^= 1 // bit 0 marks a PI futex
		}
		if pending &^= 1; pending != 0 {
			if err := owner(pending + off); err != nil {
				return err
			}
		}
	}
	h.logf("%d thread ids changed, %d cached tids patched", len(changed), n)
	return nil
}

// restorePending queues again the signals pending at freeze that th's
// queue held, in the thread h.s runs in (tid, th's thread here), and
// with shared the process's: a signal with a user si_code may only be
// queued to a thread by itself (kernel/signal.c,
// do_rt_tgsigqueueinfo), so each thread queues its own.
func (h *helper) restorePending(th *image.Thread, tid int, shared bool) error {
	t := h.r.Tail()
	if t == nil {
		return nil
	}
	sys := h.host.Sys
	for _, si := range t.Pending {
		if si.Shared != shared || !si.Shared && si.Tid != th.Tid {
			continue
		}
		addr, err := h.poke(0, si.Raw[:])
		if err != nil {
			return err
		}
		signo := uint64(le.Uint32(si.Raw[:]))
		if si.Shared {
			_, err = h.sys("rt_sigqueueinfo", sys.RtSigqueueinfo, uint64(h.pid), signo, addr)
		} else {
			_, err = h.sys("rt_tgsigqueueinfo", sys.RtTgsigqueueinfo, uint64(h.pid), uint64(tid), signo, addr)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkPending refuses an image with a signal pending for a thread it
// does not hold.
func (h *helper) checkPending() error {
	t := h.r.Tail()
	if t == nil {
		return nil
	}
	held := map[int]bool{}
	for _, th := range h.p.Threads {
		held[th.Tid] = true
	}
	for _, si := range t.Pending {
		if si.Shared {
			continue
		}
		if !held[si.Tid] {
			return fmt.Errorf("a signal is pending for thread %d, which the image does not hold", si.Tid)
		}
	}
	return nil
}
