package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// Hidden for its first second, then a bar with bytes, rate and time
// left; erased by Close and silent after it.
func TestBar(t *testing.T) {
	var out bytes.Buffer
	b := newBar(&out, "freeze", 64<<20, time.Now().Add(150*time.Millisecond))
	b.Add(1 << 20)
	if out.Len() != 0 || b.Shown() {
		t.Fatalf("drawn before its delay: %q", out.String())
	}
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < 5; i++ {
		b.Add(4 << 20)
		time.Sleep(110 * time.Millisecond) // past the throttle
	}
	s := out.String()
	if !b.Shown() || !strings.Contains(s, "freeze") || !strings.Contains(s, "MiB") || !strings.Contains(s, "/s") {
		t.Fatalf("no bar with its description, bytes and rate: %q", s)
	}
	if !strings.Contains(s, "%") {
		t.Errorf("a known total shows no percentage: %q", s)
	}
	b.Close()
	after := out.String()
	if !strings.HasSuffix(after, "\r") || len(after) <= len(s) {
		t.Errorf("Close did not erase the bar: %q", after[len(s):])
	}
	b.Add(8 << 20)
	if out.String() != after {
		t.Errorf("drawn after Close: %q", out.String()[len(after):])
	}

	// Beyond an estimated total: no error, the bar carries on.
	out.Reset()
	b = newBar(&out, "thaw", 1<<20, time.Now())
	b.Add(4 << 20)
	time.Sleep(110 * time.Millisecond)
	b.Add(4 << 20)
	if !strings.Contains(out.String(), "MiB") {
		t.Errorf("past its estimate: %q", out.String())
	}
	b.Close()

	// Unknown total.
	out.Reset()
	b = newBar(&out, "thaw", -1, time.Now())
	b.Add(3 << 20)
	time.Sleep(110 * time.Millisecond)
	b.Add(3 << 20)
	if !strings.Contains(out.String(), "MiB") {
		t.Errorf("unknown total: %q", out.String())
	}
	b.Close()

	// Work that ends within its delay shows nothing.
	out.Reset()
	b = newBar(&out, "freeze", 1<<20, time.Now().Add(time.Hour))
	b.Add(1 << 20)
	b.Close()
	if out.Len() != 0 {
		t.Errorf("a short job drew %q", out.String())
	}
}

// Not a terminal: no bar at all.
func TestNotTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("a regular file is a terminal")
	}
	b := New(f, "freeze", 1<<20)
	if b != nil {
		t.Fatal("a bar on a regular file")
	}
	b.Add(1) // the nil Bar
	b.Close()
}
