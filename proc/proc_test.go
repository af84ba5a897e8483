package proc

import (
	"os"
	"runtime"
	"syscall"
	"testing"
)

func TestParseMapsLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Mapping
	}{
		{"7f00-7f10 r-xp 00001000 fe:00 42   /usr/lib/a b.so",
			Mapping{Start: 0x7f00, End: 0x7f10, Perms: "r-xp", Offset: 0x1000, Dev: "fe:00", Inode: 42, Path: "/usr/lib/a b.so"}},
		{"1000-2000 rw-p 00000000 00:00 0 ",
			Mapping{Start: 0x1000, End: 0x2000, Perms: "rw-p", Dev: "00:00"}},
		{"7ffc0000-7ffc1000 r--p 00000000 00:00 0                          [vvar]",
			Mapping{Start: 0x7ffc0000, End: 0x7ffc1000, Perms: "r--p", Dev: "00:00", Path: "[vvar]"}},
		{"1000-2000 rw-s 00000000 00:01 5 /dev/zero (deleted)",
			Mapping{Start: 0x1000, End: 0x2000, Perms: "rw-s", Dev: "00:01", Inode: 5, Path: "/dev/zero (deleted)"}},
	} {
		got, err := parseMapsLine(tc.line)
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		got.VmFlags = nil
		if got.Start != tc.want.Start || got.End != tc.want.End || got.Perms != tc.want.Perms ||
			got.Offset != tc.want.Offset || got.Dev != tc.want.Dev || got.Inode != tc.want.Inode || got.Path != tc.want.Path {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.line, got, tc.want)
		}
	}
	if _, err := parseMapsLine("garbage"); err == nil {
		t.Error("garbage accepted")
	}
}

// On this very process: smaps parses, the stack is there with its
// VmFlags, stat's start_stack lies inside it.
func TestMapsAndStatOfSelf(t *testing.T) {
	maps, err := Maps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// /proc/PID/stat shows the thread group leader, which need not be
	// the thread running this test (it was asleep under qemu): read the
	// calling thread's, which is running.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st, err := ReadStat(syscall.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range maps {
		if m.Path == "[stack]" {
			found = true
			if !m.VmFlags["gd"] {
				t.Errorf("[stack] lacks the gd VmFlag: %v", m.VmFlags)
			}
			if st.StartStack < m.Start || st.StartStack >= m.End {
				t.Errorf("start_stack %#x outside [stack] %#x-%#x", st.StartStack, m.Start, m.End)
			}
		}
	}
	if !found {
		t.Error("no [stack] mapping")
	}
	if st.State != 'R' {
		t.Errorf("state %c, want R for the running test", st.State)
	}
}
