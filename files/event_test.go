package files

import (
	"encoding/binary"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// fdinfo texts as Linux 6.18 prints them.
const (
	eventfdInfo = "pos:\t0\nflags:\t04002\nmnt_id:\t17\nino:\t1038\neventfd-count:        100000005\neventfd-id: 1\neventfd-semaphore: 1\n"
	epollInfo   = "pos:\t0\nflags:\t02\nmnt_id:\t17\nino:\t1038\n" +
		"tfd:        3 events: 80000019 data: 1122334455667788  pos:0 ino:40e sdev:10\n" +
		"tfd:       16 events: 40000000 data:             4444  pos:0 ino:40e sdev:10\n" +
		"tfd:       22 events:       1c data: 8888000000000000  pos:0 ino:9405c sdev:f\n"
	inotifyInfo = "pos:\t0\nflags:\t04000\nmnt_id:\t17\nino:\t1038\n" +
		"inotify wd:3 ino:2e1 sdev:fe00000 mask:80000002 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:e102000000000000\n" +
		"inotify wd:1 ino:3c4a3 sdev:fe00001 mask:2000300 ignored_mask:0\n"
)

func TestParseEventfd(t *testing.T) {
	p, err := parseEventfd(eventfdInfo)
	if err != nil {
		t.Fatal(err)
	}
	if want := (eventfdPayload{Count: 0x100000005, Semaphore: true}); p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	old := strings.Replace(eventfdInfo, "eventfd-semaphore: 1\n", "", 1)
	if _, err := parseEventfd(old); err == nil || !strings.Contains(err.Error(), "semaphore") {
		t.Errorf("fdinfo without eventfd-semaphore (before Linux 6.6): %v, want a refusal naming it", err)
	}
	if _, err := parseEventfd("pos:\t0\nflags:\t02\n"); err == nil {
		t.Error("fdinfo without eventfd-count: no error")
	}
}

func TestParseEpollItems(t *testing.T) {
	got, err := parseEpollItems(epollInfo)
	if err != nil {
		t.Fatal(err)
	}
	want := []epollLine{
		{epollItem{FD: 3, Events: 0x80000019, Data: 0x1122334455667788}, 0x40e, 0x10},
		{epollItem{FD: 16, Events: 0x40000000, Data: 0x4444}, 0x40e, 0x10},
		{epollItem{FD: 22, Events: 0x1c, Data: 0x8888000000000000}, 0x9405c, 0xf},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, err := parseEpollItems("tfd: x events: 1 data: 2 pos:0 ino:1 sdev:1\n"); err == nil {
		t.Error("a bad tfd line: no error")
	}
}

func TestParseInotifyMarks(t *testing.T) {
	got, err := parseInotifyMarks(inotifyInfo)
	if err != nil {
		t.Fatal(err)
	}
	want := []inotifyMark{
		{wd: 3, ino: 0x2e1, sdev: 0xfe00000, mask: 0x80000002, handleTy: 1, handle: []byte{0xe1, 2, 0, 0, 0, 0, 0, 0}},
		{wd: 1, ino: 0x3c4a3, sdev: 0xfe00001, mask: 0x2000300},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if _, err := parseInotifyMarks("inotify wd:zz ino:1 sdev:1 mask:1\n"); err == nil {
		t.Error("a bad inotify line: no error")
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/`: "/", `/mnt/a\040b`: "/mnt/a b", `/x\134y`: `/x\y`, `/end\04`: `/end\04`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// An epoll watched by another is filled first, whatever their fds.
func TestEpollOrder(t *testing.T) {
	files := []*image.File{{ID: 1}, {ID: 2}, {ID: 3}}
	payloads := map[int]*epollPayload{
		1: {Items: []epollItem{{FD: 24}, {FD: 11}}}, // fd 23 watches fd 24
		2: {Items: []epollItem{{FD: 10}, {FD: 25}}}, // fd 24 watches fd 25
		3: {Items: []epollItem{{FD: 10}}},           // fd 25
	}
	byFD := map[int]int{23: 1, 24: 2, 25: 3}
	order, err := epollOrder(files, payloads, byFD)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, f := range order {
		ids = append(ids, f.ID)
	}
	if !reflect.DeepEqual(ids, []int{3, 2, 1}) {
		t.Errorf("order %v, want [3 2 1]", ids)
	}
	payloads[3].Items = append(payloads[3].Items, epollItem{FD: 23})
	if _, err := epollOrder(files, payloads, byFD); err == nil {
		t.Error("epolls in a loop: no error")
	}
}

// struct epoll_event as the kernel of this machine reads it.
func TestEpollEvent(t *testing.T) {
	b := epollEvent(0x80000019, 0x1122334455667788)
	var off int
	switch len(b) {
	case 12: // x86-64: packed
		off = 4
	case 16: // arm64: data aligned
		off = 8
	default:
		t.Fatalf("%d bytes", len(b))
	}
	if got := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24; got != 0x80000019 {
		t.Errorf("events %#x", got)
	}
	var data uint64
	for i := 7; i >= 0; i-- {
		data = data<<8 | uint64(b[off+i])
	}
	if data != 0x1122334455667788 {
		t.Errorf("data %#x at offset %d of %x", data, off, b)
	}
	if fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC); err == nil {
		// The kernel agrees: an item added with these bytes' struct
		// comes back with the same data.
		defer unix.Close(fd)
		efd, err := unix.Eventfd(1, unix.EFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(efd)
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: 0x55667788, Pad: 0x11223344}
		if err := unix.EpollCtl(fd, unix.EPOLL_CTL_ADD, efd, &ev); err != nil {
			t.Fatal(err)
		}
		out := make([]unix.EpollEvent, 1)
		if n, err := unix.EpollWait(fd, out, 0); err != nil || n != 1 || out[0] != ev {
			t.Errorf("epoll_wait: %d %v %+v, want %+v", n, err, out[0], ev)
		}
	}
}

// Collect on a real process holding event fds: what each kind records.
func TestCollectEvents(t *testing.T) {
	cmd := fdVictim(t, `eventfd 5; exec 6>&5; epoll 7; epolladd 7 5; epoll 8; epolladd 8 7`)
	d, err := Collect(cmd.Process.Pid, DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tab := d.Table()
	byFD := map[int]*image.File{}
	for _, fd := range tab.FDs {
		for i := range tab.Files {
			if tab.Files[i].ID == fd.File {
				byFD[fd.Num] = &tab.Files[i]
			}
		}
	}
	if byFD[5] != byFD[6] || byFD[5].Kind != FileEventfd {
		t.Fatalf("fds 5 and 6: %+v %+v, want one eventfd", byFD[5], byFD[6])
	}
	var ev eventfdPayload
	if err := getPayload(byFD[5], &ev); err != nil || ev != (eventfdPayload{Count: 7}) {
		t.Errorf("eventfd payload %+v, %v; want count 7", ev, err)
	}
	for fd, want := range map[int][]epollItem{
		7: {{FD: 5, Events: unix.EPOLLIN | unix.EPOLLERR | unix.EPOLLHUP, Data: 5}},
		8: {{FD: 7, Events: unix.EPOLLIN | unix.EPOLLERR | unix.EPOLLHUP, Data: 7}},
	} {
		var p epollPayload
		if f := byFD[fd]; f == nil || f.Kind != FileEpoll || getPayload(f, &p) != nil || !reflect.DeepEqual(p.Items, want) {
			t.Errorf("fd %d: %+v, items %+v; want an epoll with %+v", fd, byFD[fd], p.Items, want)
		}
	}
}

// Without CAP_DAC_READ_SEARCH a watched inode is looked for below a few
// roots, by device and inode number.
func TestSearchInode(t *testing.T) {
	root := t.TempDir()
	deep := root + "/a/b/c"
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(deep+"/f", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mark := func(path string) inotifyMark {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			t.Fatal(err)
		}
		return inotifyMark{ino: st.Ino, sdev: uint64(unix.Major(st.Dev))<<20 | uint64(unix.Minor(st.Dev))}
	}
	for _, want := range []string{root, root + "/a", deep, deep + "/f"} {
		got, _, err := searchInode([]string{"/nonexistent", root}, mark(want))
		if err != nil || got != want {
			t.Errorf("searchInode(%s) = %q, %v", want, got, err)
		}
	}
	if err := os.MkdirAll(deep+"/d/e", 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := searchInode([]string{root}, mark(deep+"/d/e")); err == nil || !strings.Contains(err.Error(), "CAP_DAC_READ_SEARCH") {
		t.Errorf("an inode deeper than searchDepth: %v, want a refusal naming the capability", err)
	}
}

// probeSemaphore tells a semaphore from a counter by a read, and leaves
// the count as it was, whatever it is.
func TestProbeSemaphore(t *testing.T) {
	for _, sem := range []bool{false, true} {
		for _, c := range []uint64{0, 1, 2, 5, 1 << 40} {
			flags := unix.EFD_CLOEXEC
			if sem {
				flags |= unix.EFD_SEMAPHORE
			}
			fd, err := unix.Eventfd(0, flags)
			if err != nil {
				t.Fatal(err)
			}
			f := os.NewFile(uintptr(fd), "eventfd")
			var b [8]byte
			binary.NativeEndian.PutUint64(b[:], c)
			if c > 0 {
				if _, err := unix.Write(fd, b[:]); err != nil {
					t.Fatal(err)
				}
			}
			got, err := probeSemaphore(f, c)
			if err != nil || got != sem {
				t.Errorf("semaphore %v count %d: probe says %v, %v", sem, c, got, err)
			}
			info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("eventfd-count: %16x", c); !strings.Contains(strings.Join(strings.Fields(string(info)), " "), strings.Join(strings.Fields(want), " ")) {
				t.Errorf("semaphore %v count %d: after the probe fdinfo says %q", sem, c, info)
			}
			f.Close()
		}
	}
}
