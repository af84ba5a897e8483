package ptrace

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// One wait dispatcher for every tracee (delve's trapWaitInternal is the
// model). A tracer of several threads cannot wait for one tid at a time
// with wait4(tid): a thread born meanwhile (PTRACE_O_TRACECLONE,
// CLONE_PTRACE), another that exits, a clone event of a third all report
// to the same tracer thread, in any order. So every wait is
// wait4(-1, __WALL) on the tracer thread, and a stop that is not the one
// asked for is queued for its tid, to be handed out when that tid is
// waited for. Queues live only on the tracer thread; a tid that is
// detached or has exited loses its queue.
//
// A process using this package must have no children of its own that
// something else waits for: wait4(-1) would reap them. freeze and the
// restore helper have none.

type dispatcher struct {
	mu     sync.Mutex
	queued map[int][]Stop
	// tracers are the OS threads of the live Tracers: only they may wait.
	tracers map[int]bool
}

var disp = dispatcher{queued: map[int][]Stop{}, tracers: map[int]bool{}}

func registerTracer(tid int) {
	disp.mu.Lock()
	disp.tracers[tid] = true
	disp.mu.Unlock()
}

func unregisterTracer(tid int) {
	disp.mu.Lock()
	delete(disp.tracers, tid)
	disp.mu.Unlock()
}

// onTracer tells whether the calling OS thread is a Tracer's: the
// property "called via Tracer.Do", checked where it is cheap (a gettid).
func onTracer() error {
	tid := unix.Gettid()
	disp.mu.Lock()
	ok := disp.tracers[tid]
	disp.mu.Unlock()
	if !ok {
		return fmt.Errorf("internal error: a ptrace wait outside the tracer thread (OS thread %d)", tid)
	}
	return nil
}

// pop returns the oldest queued stop of tid.
func (d *dispatcher) pop(tid int) (Stop, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queued[tid]
	if len(q) == 0 {
		return Stop{}, false
	}
	st := q[0]
	if len(q) == 1 {
		delete(d.queued, tid)
	} else {
		d.queued[tid] = q[1:]
	}
	return st, true
}

// popAny returns the oldest queued stop of any tid.
func (d *dispatcher) popAny() (int, Stop, bool) {
	d.mu.Lock()
	var tid int
	found := false
	for t := range d.queued {
		tid, found = t, true
		break
	}
	d.mu.Unlock()
	if !found {
		return 0, Stop{}, false
	}
	st, _ := d.pop(tid)
	return tid, st, true
}

func (d *dispatcher) push(tid int, st Stop) {
	d.mu.Lock()
	d.queued[tid] = append(d.queued[tid], st)
	d.mu.Unlock()
}

func (d *dispatcher) forget(tid int) {
	d.mu.Lock()
	delete(d.queued, tid)
	d.mu.Unlock()
}

// wait4all is one wait4(-1, __WALL), EINTR retried.
func wait4all() (int, Stop, error) {
	var ws unix.WaitStatus
	for {
		wpid, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, Stop{}, fmt.Errorf("wait4: %w", err)
		}
		return wpid, Stop{Status: ws}, nil
	}
}

// Wait returns the next state change of tid: a queued one, or the next
// one wait4 reports for it, queueing those of other tracees meanwhile.
// Precondition: called via Tracer.Do (checked).
func Wait(tid int) (Stop, error) {
	if err := onTracer(); err != nil {
		return Stop{}, err
	}
	if st, ok := disp.pop(tid); ok {
		return st, nil
	}
	for {
		wpid, st, err := wait4all()
		if err != nil {
			return Stop{}, fmt.Errorf("waiting for tid %d: %w", tid, err)
		}
		if wpid == tid {
			return st, nil
		}
		disp.push(wpid, st)
	}
}

// WaitAny returns the next state change of any tracee, queued first.
// Precondition: called via Tracer.Do (checked).
func WaitAny() (int, Stop, error) {
	if err := onTracer(); err != nil {
		return 0, Stop{}, err
	}
	if tid, st, ok := disp.popAny(); ok {
		return tid, st, nil
	}
	return wait4all()
}
