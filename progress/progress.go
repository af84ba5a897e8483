// Package progress shows how far a long freeze or thaw is: a bar on a
// terminal with the bytes done, the rate and, when the total is known,
// the time left (github.com/schollz/progressbar/v3 draws it).
//
// A Bar shows nothing when its file is not a terminal, nor during the
// first second (Delay): a short freeze or thaw prints nothing, a long one
// shows where it is. Close erases the bar, so that the line is the
// terminal's again before a thawed process writes to it.
package progress

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"
)

// Delay is how long a Bar stays hidden. The tests set another in the
// environment (envDelay, a time.ParseDuration string).
const Delay = time.Second

const envDelay = "CRYO_TEST_PROGRESS_DELAY"

// A Bar counts bytes done; the nil Bar counts nothing and shows nothing.
// It draws only from its caller's calls (no spinner goroutine), so nothing
// is drawn after Close; it is not safe for concurrent use.
type Bar struct {
	bar  *progressbar.ProgressBar
	gate *gate
	done int64
	max  int64
}

// IsTerminal tells whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// New returns a Bar for work of total bytes (-1: unknown) described as
// what, drawn on f if f is a terminal, nil otherwise.
func New(f *os.File, what string, total int64) *Bar {
	if f == nil || !IsTerminal(f) {
		return nil
	}
	delay := Delay
	if d, err := time.ParseDuration(os.Getenv(envDelay)); err == nil {
		delay = d
	}
	return newBar(f, what, total, time.Now().Add(delay))
}

func newBar(w io.Writer, what string, total int64, from time.Time) *Bar {
	if total == 0 {
		total = -1
	}
	g := &gate{w: w, from: from}
	b := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(g),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionSetElapsedTime(total <= 0),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	return &Bar{bar: b, gate: g, max: total}
}

// Add counts n more bytes done.
func (b *Bar) Add(n int64) {
	if b == nil || n <= 0 {
		return
	}
	b.done += n
	if b.max > 0 && b.done >= b.max {
		// The total was an estimate, and too low: the bar is full
		// only at Close.
		b.max = b.done + b.done/8
		b.bar.ChangeMax64(b.max)
	}
	b.bar.Add64(n)
}

// Close erases the bar if it was shown; nothing is drawn after it.
func (b *Bar) Close() {
	if b == nil || b.gate.closed {
		return
	}
	b.bar.Exit()
	if b.gate.shown {
		b.bar.Clear()
	}
	b.gate.closed = true
}

// Shown tells whether the bar was ever drawn.
func (b *Bar) Shown() bool {
	if b == nil {
		return false
	}
	return b.gate.shown
}

// gate passes writes to w from the time from on, until closed.
type gate struct {
	w      io.Writer
	from   time.Time
	shown  bool
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	if g.closed || time.Now().Before(g.from) {
		return len(p), nil
	}
	g.shown = true
	return g.w.Write(p)
}
