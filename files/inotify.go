package files

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileInotify: an inotify instance and its watches, each with its mask
// and its watch descriptor (wd), which the process keeps and compares
// with the events' wd.
//
// fdinfo names each watched inode by its device, inode number and file
// handle (fs/notify/fdinfo.c, inotify_fdinfo), not by path. Freeze opens
// the handle (open_by_handle_at(2), on the mount of that device) and
// takes its path from /proc/self/fd. That needs CAP_DAC_READ_SEARCH:
// without it, or for a file that has no path any more, the freeze is
// refused naming the watch.
//
// Thaw adds the watches again by path, in the order of their wds, with
// the same masks (IN_ONESHOT and IN_EXCL_UNLINK included). The kernel
// hands out wds in increasing order (idr_alloc_cyclic): a watch that gets
// a lower number than it had is removed and added again until the number
// is its own, as CRIU does; the IN_IGNORED events that removal queues are
// read away before the process runs. A watched path that is gone, or is
// another file now (on the same machine: another inode), fails the thaw.
//
// Events queued and not read cannot be carried (they cannot be written
// into an inotify queue): freeze refuses an instance whose queue is not
// empty (FIONREAD, which takes nothing). Events about the watched files
// while the process is frozen are lost. The next wd the kernel would hand
// out after the highest one in use is not shown anywhere: after the thaw
// it is the highest wd plus one, where the original might have gone
// higher after removing watches.
const FileInotify image.FileKind = "inotify"

type inotifyWatch struct {
	WD   int    `json:"wd"`
	Path string `json:"path"`
	Mask uint32 `json:"mask"`
	Dev  uint64 `json:"dev"` // as stat says it
	Ino  uint64 `json:"ino"`
}

type inotifyPayload struct {
	Watches []inotifyWatch `json:"watches,omitempty"`
}

var inotifyKind = kind{
	name:  FileInotify,
	match: func(d *Dumper, o *Object) bool { return o.Link == "anon_inode:inotify" },
	dump:  dumpInotify,
	open:  openInotify,
}

// inotifyMark is one "inotify" line of fdinfo.
type inotifyMark struct {
	wd       int
	ino      uint64
	sdev     uint64 // the kernel's encoding: major << 20 | minor
	mask     uint32
	handleTy int32
	handle   []byte
}

func parseInotifyMarks(info string) ([]inotifyMark, error) {
	var marks []inotifyMark
	for _, l := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(l, "inotify ")
		if !ok {
			continue
		}
		kv := map[string]string{}
		for _, f := range strings.Fields(rest) {
			if k, v, ok := strings.Cut(f, ":"); ok {
				kv[k] = v
			}
		}
		bad := false
		hexField := func(name string) uint64 {
			v, err := strconv.ParseUint(kv[name], 16, 64)
			bad = bad || err != nil
			return v
		}
		m := inotifyMark{
			wd: int(hexField("wd")), ino: hexField("ino"), sdev: hexField("sdev"), mask: uint32(hexField("mask")),
		}
		if bad {
			return nil, fmt.Errorf("cannot parse %q", l)
		}
		if kv["f_handle"] != "" {
			ty, err := strconv.ParseInt(kv["fhandle-type"], 16, 32)
			h, err2 := hex.DecodeString(kv["f_handle"])
			if err != nil || err2 != nil {
				return nil, fmt.Errorf("cannot parse the file handle of %q", l)
			}
			m.handleTy, m.handle = int32(ty), h
		}
		marks = append(marks, m)
	}
	return marks, nil
}

func dumpInotify(d *Dumper, o *Object, f *image.File) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("fd %d is an inotify instance (%s): %s", o.Num, o.Link, fmt.Sprintf(format, args...))
	}
	queued, err := unix.IoctlGetInt(int(o.Local.Fd()), unix.SIOCINQ) // FIONREAD
	if err != nil {
		return fail("FIONREAD: %v", err)
	}
	if queued > 0 {
		return fail("%d bytes of events not read yet, which cannot be carried: let the process read them, then freeze it again", queued)
	}
	marks, err := parseInotifyMarks(o.Info.Raw)
	if err != nil {
		return fail("%v", err)
	}
	var p inotifyPayload
	for _, m := range marks {
		path, st, err := markPath(m)
		if errors.Is(err, errNeedCap) {
			path, st, err = searchInode(searchRoots(d.Pid), m)
		}
		if err != nil {
			return fail("watch %d (inode %d on device %d:%d): %v", m.wd, m.ino, m.sdev>>20, m.sdev&0xfffff, err)
		}
		p.Watches = append(p.Watches, inotifyWatch{WD: m.wd, Path: path, Mask: m.mask, Dev: st.Dev, Ino: st.Ino})
	}
	sort.Slice(p.Watches, func(a, b int) bool { return p.Watches[a].WD < p.Watches[b].WD })
	return setPayload(f, &p)
}

// markPath finds the path of the inode a watch is on: its file handle
// opened on a mount of its device, named by /proc/self/fd.
func markPath(m inotifyMark) (string, unix.Stat_t, error) {
	var st unix.Stat_t
	if m.handle == nil {
		return "", st, errors.New("the kernel gives no file handle for it (its filesystem cannot encode one): unsupported")
	}
	major, minor := uint32(m.sdev>>20), uint32(m.sdev&0xfffff)
	mnt, err := mountOf(major, minor)
	if err != nil {
		return "", st, err
	}
	mfd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0) // not O_PATH: open_by_handle_at refuses one
	if err != nil {
		return "", st, fmt.Errorf("open its mount %s: %w", mnt, err)
	}
	defer unix.Close(mfd)
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(m.handleTy, m.handle), unix.O_PATH|unix.O_CLOEXEC)
	if errors.Is(err, unix.EPERM) {
		return "", st, errNeedCap
	}
	if err != nil {
		return "", st, fmt.Errorf("open_by_handle_at: %w", err)
	}
	defer unix.Close(fd)
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", st, err
	}
	if !strings.HasPrefix(path, "/") || strings.HasSuffix(path, " (deleted)") {
		return "", st, fmt.Errorf("the watched file has no path (%s): unsupported", path)
	}
	// The path must lead to that very inode.
	if err := unix.Lstat(path, &st); err != nil {
		return "", st, fmt.Errorf("%s: %w", path, err)
	}
	if st.Ino != m.ino || unix.Major(st.Dev) != major || unix.Minor(st.Dev) != minor {
		return "", st, fmt.Errorf("%s is not the watched inode (a mount hides it?): unsupported", path)
	}
	return path, st, nil
}

// errNeedCap: open_by_handle_at needs CAP_DAC_READ_SEARCH.
var errNeedCap = errors.New("finding its path needs CAP_DAC_READ_SEARCH (open_by_handle_at)")

// The bounds of searchInode: how deep below each root, how many entries
// in all.
const (
	searchDepth   = 4
	searchEntries = 50000
)

// searchRoots are where a watched file is looked for without the
// capability: the process's working directory and the directories of
// the files it has open, as CRIU's irmap looks in a few likely places.
func searchRoots(pid int) []string {
	var roots []string
	seen := map[string]bool{}
	add := func(p string) {
		if strings.HasPrefix(p, "/") && !strings.HasSuffix(p, " (deleted)") && !seen[p] {
			seen[p] = true
			roots = append(roots, p)
		}
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err == nil {
		add(cwd)
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.HasPrefix(l, "/") {
			add(l[:max(strings.LastIndexByte(l, '/'), 1)])
		}
	}
	return roots
}

// searchInode looks for the watched inode below roots, breadth first,
// within searchDepth levels and searchEntries entries.
func searchInode(roots []string, m inotifyMark) (string, unix.Stat_t, error) {
	var st unix.Stat_t
	major, minor := uint32(m.sdev>>20), uint32(m.sdev&0xfffff)
	is := func(st *unix.Stat_t) bool {
		return st.Ino == m.ino && unix.Major(st.Dev) == major && unix.Minor(st.Dev) == minor
	}
	type dir struct {
		path  string
		depth int
	}
	var queue []dir
	for _, r := range roots {
		if unix.Lstat(r, &st) == nil && is(&st) {
			return r, st, nil
		}
		queue = append(queue, dir{r, 0})
	}
	seen := 0
	for len(queue) > 0 && seen < searchEntries {
		d := queue[0]
		queue = queue[1:]
		ents, err := os.ReadDir(d.path)
		if err != nil {
			continue
		}
		for _, e := range ents {
			seen++
			p := strings.TrimSuffix(d.path, "/") + "/" + e.Name()
			if unix.Lstat(p, &st) != nil {
				continue
			}
			if is(&st) {
				return p, st, nil
			}
			if e.IsDir() && d.depth+1 < searchDepth {
				queue = append(queue, dir{p, d.depth + 1})
			}
		}
	}
	return "", st, fmt.Errorf("%v, and it is not below the process's working directory nor beside the files it has open: freeze as root", errNeedCap)
}

// mountOf returns the mount point of a mount of device major:minor in
// freeze's mount namespace (/proc/self/mountinfo), the shortest.
func mountOf(major, minor uint32) (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	want := fmt.Sprintf("%d:%d", major, minor)
	best := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fl := strings.Fields(sc.Text())
		if len(fl) < 5 || fl[2] != want {
			continue
		}
		if best == "" || len(fl[4]) < len(best) {
			best = unescapeMount(fl[4])
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if best == "" {
		return "", fmt.Errorf("no mount of device %s here", want)
	}
	return best, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space...).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// maxWDBurn bounds how many wds a thaw goes through to reach one.
const maxWDBurn = 1 << 22

func openInotify(r *Restorer, f *image.File) (*os.File, error) {
	var p inotifyPayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("fd %d: inotify_init1: %w", n, err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	if err := addWatches(r, fd, p.Watches); err != nil {
		lf.Close()
		return nil, fmt.Errorf("fd %d (inotify): %w", n, err)
	}
	if err := setStatusFlags(lf, f.Flags); err != nil {
		lf.Close()
		return nil, fmt.Errorf("fd %d: %w", n, err)
	}
	return lf, nil
}

// addWatches adds each watch on fd with its own wd, then reads away the
// events that took (IN_IGNORED of the wds gone through).
func addWatches(r *Restorer, fd int, watches []inotifyWatch) error {
	for _, w := range watches {
		var st unix.Stat_t
		if err := unix.Lstat(w.Path, &st); err != nil {
			return fmt.Errorf("watch %d: %w", w.WD, err)
		}
		if st.Ino != w.Ino && sameMachine(r) && !r.Opts.AllowChanged {
			return fmt.Errorf("watch %d: %s changed since the freeze: inode %d, it was %d (thaw --allow-changed, or %s=1, thaws anyway)",
				w.WD, w.Path, st.Ino, w.Ino, EnvAllowChanged)
		}
		mask := w.Mask | unix.IN_DONT_FOLLOW
		for burnt := 0; ; burnt++ {
			got, err := unix.InotifyAddWatch(fd, w.Path, mask)
			if err != nil {
				return fmt.Errorf("watch %d: inotify_add_watch(%s, %#x): %w", w.WD, w.Path, w.Mask, err)
			}
			if got == w.WD {
				break
			}
			if got > w.WD {
				return fmt.Errorf("watch %d on %s: the kernel gave wd %d, past it", w.WD, w.Path, got)
			}
			if burnt == maxWDBurn {
				return fmt.Errorf("watch %d on %s: still at wd %d after %d tries", w.WD, w.Path, got, burnt)
			}
			if _, err := unix.InotifyRmWatch(fd, uint32(got)); err != nil {
				return fmt.Errorf("inotify_rm_watch(%d): %w", got, err)
			}
		}
	}
	buf := make([]byte, 64<<10)
	for {
		_, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read away the IN_IGNORED events: %w", err)
		}
	}
}
