package ptrace

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Tracer serialises every ptrace request on one locked OS thread.
type Tracer struct {
	reqs chan func()
	done chan struct{}
}

// NewTracer starts the tracer thread.
func NewTracer() *Tracer {
	t := &Tracer{reqs: make(chan func()), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		// The thread is never unlocked: when this goroutine returns,
		// the runtime discards the thread, and with it any stale
		// ptrace relationship.
		runtime.LockOSThread()
		tid := unix.Gettid()
		registerTracer(tid)
		close(ready)
		for fn := range t.reqs {
			fn()
		}
		unregisterTracer(tid)
		close(t.done)
	}()
	<-ready
	return t
}

// Do runs fn on the tracer thread and returns its error. A panic in fn is
// turned into an error so that the tracer thread survives: a tracee must
// never be left with foreign registers because the tracer died.
func (t *Tracer) Do(fn func() error) (err error) {
	ch := make(chan error, 1)
	t.reqs <- func() {
		defer func() {
			if r := recover(); r != nil {
				ch <- fmt.Errorf("internal error on the tracer thread: %v", r)
			}
		}()
		ch <- fn()
	}
	return <-ch
}

// Close stops the tracer thread.
func (t *Tracer) Close() {
	close(t.reqs)
	<-t.done
}

// ErrExited reports that the tracee exited or was killed while traced.
var ErrExited = errors.New("the process exited")
