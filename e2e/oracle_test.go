package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The /proc oracle (issue 7). For a victim: freeze --leave-running, stop
// the original and read what /proc (and the few syscalls that read
// another process: kcmp, sched_getattr, ioprio_get) say about it; kill
// it, so that its locks are free; thaw; bring the copy to the same point,
// stop it, read the same; compare. Any difference fails, unless
// expectedDiffs lists it with its reason. Then the copy proves its own
// state through its line protocol, and the same is done again from the
// copy: a thawed process must freeze again.
//
// docs/state.md is the inventory of what a thaw restores; expectedDiffs
// holds the few rows that /proc shows and that are not state (or not the
// same object), each with its reason.

// envOracleDump, set to anything, logs every snapshot the oracle takes.
const envOracleDump = "CRYO_E2E_ORACLE_DUMP"

// procState is what /proc says about one stopped process: key → value.
// Keys read as "area what": "status Umask", "limit Max open files",
// "map 7f0c4000-7f0c8000" (the maps line | VmFlags | smaps | numa |
// pagemap marks), "fd 3", "fd 3 info", "fd 3 locks", "fd shared",
// "timer 0", "stat start_brk", "auxv AT_ENTRY", "ns mnt", "children".
type procState map[string]string

// mergeAnonMaps joins, in s, the "map" entries of adjacent private
// anonymous mappings that are alike in everything /proc shows: as the
// kernel merges them when they are made fresh.
func mergeAnonMaps(s procState) {
	type m struct {
		start, end uint64
		val        string
	}
	var ms []m
	for k, v := range s {
		r, ok := strings.CutPrefix(k, "map ")
		if !ok {
			continue
		}
		a, b, ok := strings.Cut(r, "-")
		x, err1 := strconv.ParseUint(a, 16, 64)
		y, err2 := strconv.ParseUint(b, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			continue
		}
		ms = append(ms, m{x, y, v})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].start < ms[j].start })
	anon := func(v string) bool { return strings.HasPrefix(v, "rw-p 00000000 00:00 0 |") }
	for i := 0; i < len(ms); {
		j := i
		for j+1 < len(ms) && ms[j+1].start == ms[j].end && ms[j+1].val == ms[i].val && anon(ms[i].val) {
			j++
		}
		if j > i {
			for k := i; k <= j; k++ {
				delete(s, fmt.Sprintf("map %08x-%08x", ms[k].start, ms[k].end))
			}
			s[fmt.Sprintf("map %08x-%08x", ms[i].start, ms[j].end)] = ms[i].val
		}
		i = j + 1
	}
}

// snapshot reads procState of pid, which must be stopped.
func snapshot(tb testing.TB, pid int) procState {
	tb.Helper()
	s := procState{}
	dir := fmt.Sprintf("/proc/%d/", pid)
	read := func(name string) string {
		b, err := os.ReadFile(dir + name)
		if err != nil {
			return "unreadable: " + errnoText(err)
		}
		return string(b)
	}
	link := func(name string) string {
		l, err := os.Readlink(dir + name)
		if err != nil {
			return "unreadable: " + errnoText(err)
		}
		return l
	}
	if _, err := os.Stat(dir); err != nil {
		tb.Fatalf("snapshot: %v", err)
	}

	// status, every line; the rules below say which may differ.
	for _, line := range strings.Split(read("status"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			s["status "+k] = strings.Join(strings.Fields(v), " ")
		}
	}

	// stat: the fields that are state (not counters nor times).
	statFields(s, read("stat"), pid)

	// limits: "Max open files  512  1048576  files".
	limRE := regexp.MustCompile(`^(.*?)\s{2,}(\S+)\s+(\S+)\s*(\S*)\s*$`)
	for i, line := range strings.Split(read("limits"), "\n") {
		if m := limRE.FindStringSubmatch(line); m != nil && i > 0 {
			s["limit "+m[1]] = strings.TrimSpace(m[2] + " " + m[3] + " " + m[4])
		}
	}

	mappings(s, pid, read("smaps"), read("numa_maps"))
	fdTable(s, pid)

	// POSIX timers: "ID: n" then its lines; the notify target masked.
	var id string
	for _, line := range strings.Split(read("timers"), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if k == "ID" {
			id = v
			continue
		}
		if k == "notify" {
			v = selfPid(v, pid, notifyPidRE)
		}
		s["timer "+id] += k + ": " + v + "; "
	}

	for _, name := range []string{
		"personality", "timerslack_ns", "coredump_filter", "oom_score_adj", "loginuid",
		"sessionid", "comm", "cgroup", "cpuset", "autogroup", "attr/current", "timens_offsets",
		"wchan", "syscall",
	} {
		s[name] = strings.TrimSpace(read(name))
	}
	// KSM: whether the process asked for merging (not what was merged).
	for _, line := range strings.Split(read("ksm_stat"), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && (k == "ksm_merge_any" || k == "ksm_mergeable") {
			s["ksm "+k] = v
		}
	}
	s["cmdline"] = fmt.Sprintf("%q", read("cmdline"))
	s["environ"] = fmt.Sprintf("%q", read("environ"))
	for _, name := range []string{"cwd", "root", "exe"} {
		s[name] = link(name)
	}
	nss, _ := os.ReadDir(dir + "ns")
	for _, e := range nss {
		s["ns "+e.Name()] = link("ns/" + e.Name())
	}
	auxv(s, read("auxv"))

	if a, err := unix.SchedGetAttr(pid, 0); err != nil {
		s["sched_getattr"] = errnoText(err)
	} else {
		s["sched_getattr"] = fmt.Sprintf("policy %d flags %#x nice %d priority %d runtime %d deadline %d period %d util %d-%d",
			a.Policy, a.Flags, a.Nice, a.Priority, a.Runtime, a.Deadline, a.Period, a.Util_min, a.Util_max)
	}
	const ioprioWhoProcess = 1
	if r, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(pid), 0); e != 0 {
		s["ioprio"] = e.Error()
	} else {
		s["ioprio"] = fmt.Sprintf("class %d level %d", r>>13, r&0x1fff)
	}

	// Children: pid, state and exit code (zombies may be there, and are
	// re-created with their pid and status; live children are refused
	// by freeze).
	s["children"] = strings.Join(childList(pid), "; ")

	if st := s["status State"]; !strings.HasPrefix(st, "T") {
		tb.Fatalf("snapshot of pid %d: State %q, want stopped (T)", pid, st)
	}
	return s
}

// String lists the state, one "key: value" a line, sorted.
func (s procState) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\t%s: %s\n", k, s[k])
	}
	return b.String()
}

// errnoText is the errno of a failed /proc access, without the path
// (which has the pid in it).
func errnoText(err error) string {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en.Error()
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// selfPid replaces the pid in v (the first group of re) with "self"
// when it is the process's own.
func selfPid(v string, pid int, re *regexp.Regexp) string {
	return re.ReplaceAllStringFunc(v, func(m string) string {
		sub := re.FindStringSubmatch(m)
		if sub[1] == strconv.Itoa(pid) {
			return strings.Replace(m, sub[1], "self", 1)
		}
		return m
	})
}

// statFields records the fields of /proc/PID/stat that are state: the
// process group and session, the controlling terminal, the PF_* flags,
// priority, nice and policy, RLIMIT_RSS, exit signal, and the mm fields
// that PR_SET_MM_MAP sets (code, data, brk, stack, arguments and
// environment addresses). Counters and times are left out.
func statFields(s procState, stat string, pid int) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		s["stat"] = "unparsable: " + stat
		return
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	names := map[int]string{
		5: "pgrp", 6: "session", 7: "tty_nr", 8: "tpgid", 9: "flags", 18: "priority", 19: "nice",
		20: "num_threads", 25: "rsslim", 26: "startcode", 27: "endcode", 28: "startstack",
		38: "exit_signal", 40: "rt_priority", 41: "policy", 45: "start_data", 46: "end_data",
		47: "start_brk", 48: "arg_start", 49: "arg_end", 50: "env_start", 51: "env_end", 52: "exit_code",
	}
	for n, name := range names {
		if n-3 >= len(f) {
			continue
		}
		v := f[n-3]
		if name == "flags" {
			if x, err := strconv.ParseUint(v, 10, 64); err == nil {
				v = fmt.Sprintf("%#x", x)
			}
		}
		if (name == "pgrp" || name == "session" || name == "tpgid") && v == strconv.Itoa(pid) {
			v = "self"
		}
		s["stat "+name] = v
	}
}

// mappings records each mapping (from smaps) as one key, "map LO-HI":
// its line in maps, then its VmFlags, the smaps fields that are not
// residency, its NUMA policy, and the pages pagemap marks as guard
// regions (MADV_GUARD_INSTALL) or userfaultfd write-protected.
func mappings(s procState, pid int, smaps, numaMaps string) {
	numa := map[string]string{}
	for _, line := range strings.Split(numaMaps, "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			numa[f[0]] = f[1]
		}
	}
	pagemap, _ := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if pagemap != nil {
		defer pagemap.Close()
	}
	var key, lo, hi, flags string
	var extra []string
	flush := func() {
		if key != "" {
			v := s[key] + " | VmFlags " + flags + " | " + strings.Join(extra, " ")
			if p, ok := numa[lo]; ok {
				v += " | numa " + p
			}
			if m := pagemapMarks(pagemap, lo, hi); m != "" {
				v += " | pagemap " + m
			}
			s[key] = v
		}
		key, flags, extra = "", "", nil
	}
	for _, line := range strings.Split(smaps, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !strings.HasSuffix(f[0], ":") && strings.Contains(f[0], "-") && len(f) >= 5 {
			flush()
			key = "map " + f[0]
			s[key] = strings.Join(f[1:], " ")
			lo, hi, _ = strings.Cut(f[0], "-")
			continue
		}
		switch name := strings.TrimSuffix(f[0], ":"); name {
		case "VmFlags":
			flags = strings.Join(f[1:], " ")
		case "KernelPageSize", "MMUPageSize", "THPeligible", "ProtectionKey":
			extra = append(extra, name+"="+strings.Join(f[1:], ""))
		}
	}
	flush()
}

// pagemapMarks lists the pages of [lo, hi) that pagemap marks as a guard
// region (bit 58, Linux 6.14+) or uffd write-protected (bit 57). Larger
// mappings than 1 GiB (reservations of tens of GiB) are not scanned: 8
// bytes a page.
func pagemapMarks(pm *os.File, loHex, hiHex string) string {
	lo, err1 := strconv.ParseUint(loHex, 16, 64)
	hi, err2 := strconv.ParseUint(hiHex, 16, 64)
	page := uint64(os.Getpagesize())
	if pm == nil || err1 != nil || err2 != nil || hi-lo > 1<<30 || lo >= 1<<62 {
		return "not scanned"
	}
	buf := make([]byte, (hi-lo)/page*8)
	n, _ := pm.ReadAt(buf, int64(lo/page*8))
	var marks []string
	for i := 0; i+8 <= n; i += 8 {
		e := binary.LittleEndian.Uint64(buf[i:])
		if e&(1<<58) != 0 {
			marks = append(marks, fmt.Sprintf("guard+%#x", uint64(i/8)*page))
		}
		if e&(1<<57) != 0 {
			marks = append(marks, fmt.Sprintf("uffd-wp+%#x", uint64(i/8)*page))
		}
	}
	if n < len(buf) {
		marks = append(marks, fmt.Sprintf("short read %d of %d", n, len(buf)))
	}
	return strings.Join(marks, " ")
}

// fdTable records each descriptor: its target, its fdinfo (pos, flags
// with O_CLOEXEC, mnt_id, ino, the kind's own lines, and its locks with
// the owner's pid masked when it is the process itself), and which
// descriptors share one open file description (kcmp KCMP_FILE).
func fdTable(s procState, pid int) {
	dir := fmt.Sprintf("/proc/%d/", pid)
	ents, err := os.ReadDir(dir + "fd")
	if err != nil {
		s["fd table"] = "unreadable: " + errnoText(err)
		return
	}
	var fds []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			fds = append(fds, n)
		}
	}
	sort.Ints(fds)
	for _, fd := range fds {
		key := fmt.Sprintf("fd %d", fd)
		target, err := os.Readlink(fmt.Sprintf("%sfd/%d", dir, fd))
		if err != nil {
			target = "unreadable: " + errnoText(err)
		}
		s[key] = target
		info, err := os.ReadFile(fmt.Sprintf("%sfdinfo/%d", dir, fd))
		if err != nil {
			s[key+" info"] = "unreadable: " + errnoText(err)
			continue
		}
		var parts, locks []string
		for _, line := range strings.Split(strings.TrimSpace(string(info)), "\n") {
			line = strings.Join(strings.Fields(line), " ")
			if strings.HasPrefix(line, "lock:") {
				locks = append(locks, selfPid(strings.TrimPrefix(line, "lock: "), pid, lockPidRE))
				continue
			}
			parts = append(parts, line)
		}
		s[key+" info"] = strings.Join(parts, "; ")
		if len(locks) > 0 {
			s[key+" locks"] = strings.Join(locks, "; ")
		}
	}
	// The sharing partition: descriptors of one description together.
	var groups []string
	grouped := map[int]bool{}
	for i, a := range fds {
		if grouped[a] {
			continue
		}
		g := []string{strconv.Itoa(a)}
		for _, b := range fds[i+1:] {
			if !grouped[b] && kcmpFile(pid, a, b) {
				g = append(g, strconv.Itoa(b))
				grouped[b] = true
			}
		}
		if len(g) > 1 {
			groups = append(groups, strings.Join(g, "="))
		}
	}
	s["fd shared"] = strings.Join(groups, " ")
}

// notifyPidRE matches the target of a timer's notification ("signal/pid.1234").
var notifyPidRE = regexp.MustCompile(`pid\.(\d+)`)

// lockPidRE matches the pid field of an fdinfo lock line without its
// "lock:" prefix ("1: FLOCK ADVISORY WRITE 1234 fe:00:99 0 EOF").
var lockPidRE = regexp.MustCompile(`^\d+: \S+ \S+ \S+ (-?\d+) `)

// kcmpFile says whether fds a and b of pid are one open file description
// (kcmp(2) KCMP_FILE returns 0).
func kcmpFile(pid, a, b int) bool {
	const kcmpTypeFile = 0 // KCMP_FILE, linux/kcmp.h
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(pid), uintptr(pid), kcmpTypeFile, uintptr(a), uintptr(b), 0)
	return e == 0 && r == 0
}

// auxv decodes /proc/PID/auxv (64-bit pairs) into "auxv AT_x" keys.
func auxv(s procState, raw string) {
	names := map[uint64]string{
		3: "PHDR", 4: "PHENT", 5: "PHNUM", 6: "PAGESZ", 7: "BASE", 8: "FLAGS", 9: "ENTRY",
		11: "UID", 12: "EUID", 13: "GID", 14: "EGID", 15: "PLATFORM", 16: "HWCAP", 17: "CLKTCK",
		23: "SECURE", 24: "BASE_PLATFORM", 25: "RANDOM", 26: "HWCAP2", 27: "RSEQ_FEATURE_SIZE",
		28: "RSEQ_ALIGN", 29: "HWCAP3", 30: "HWCAP4", 31: "EXECFN", 33: "SYSINFO_EHDR", 51: "MINSIGSTKSZ",
	}
	b := []byte(raw)
	if strings.HasPrefix(raw, "unreadable") {
		s["auxv"] = raw
		return
	}
	for i := 0; i+16 <= len(b); i += 16 {
		t, v := binary.LittleEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i+8:])
		if t == 0 {
			break
		}
		name, ok := names[t]
		if !ok {
			name = strconv.FormatUint(t, 10)
		}
		s["auxv AT_"+name] = fmt.Sprintf("%#x", v)
	}
}

// expectedDiff is a difference between a process and its thawed copy
// that is not a failure, and why. The list is short on purpose: anything
// else that differs is a failure, to be fixed in cryo, not added here.
type expectedDiff struct {
	what   string
	reason string
	// match says whether key's values a (original) and b (copy) differ
	// only in the way this entry allows.
	match func(key string, a, b procState) bool
}

var expectedDiffs = []expectedDiff{
	{
		what:   "status Pid, Tgid, NSpid, NStgid, PPid",
		reason: "a thaw keeps the PID (and the parent) of the process that ran the image",
		match:  keyIn("status Pid", "status Tgid", "status NSpid", "status NStgid", "status PPid"),
	},
	{
		what:   "status voluntary_ctxt_switches, nonvoluntary_ctxt_switches, VmPeak, VmHWM",
		reason: "history (counters and high-water marks), not state",
		match:  keyIn("status voluntary_ctxt_switches", "status nonvoluntary_ctxt_switches", "status VmPeak", "status VmHWM"),
	},
	{
		what:   "status VmRSS, RssAnon, RssFile, RssShmem, VmSwap, VmPTE",
		reason: "residency: which pages are in RAM (and the page tables that map them), not what the memory holds",
		match:  keyIn("status VmRSS", "status RssAnon", "status RssFile", "status RssShmem", "status VmSwap", "status VmPTE"),
	},
	{
		what: "sessionid",
		reason: "the audit session id is assigned by the kernel each time the login uid is written (docs/state.md: " +
			"not state); the login uid itself must match",
		match: func(key string, a, b procState) bool { return key == "sessionid" && a["loginuid"] == b["loginuid"] },
	},
	{
		what:   "status FDSize",
		reason: "the size the kernel allocated the fd table to: it grows in steps and never shrinks (the launcher, a Go program, had more fds)",
		match:  keyIn("status FDSize"),
	},
	{
		what:   "status SigQ, the count before the /",
		reason: "the signals queued for the whole user (every process of the uid), not this process's; the limit after the / must match",
		match: func(key string, a, b procState) bool {
			_, la, _ := strings.Cut(a[key], "/")
			_, lb, _ := strings.Cut(b[key], "/")
			return key == "status SigQ" && la == lb
		},
	},
	{
		what: "status ShdPnd: SIGWINCH more after the thaw, on a terminal",
		reason: "a thaw onto a terminal sends the process SIGWINCH, since the new terminal's size may differ " +
			"(restore: winch); a process thawed in a job-control stop holds it pending until continued",
		match: func(key string, a, b procState) bool {
			if key != "status ShdPnd" || !strings.HasPrefix(b["fd 0"], "/dev/pts/") {
				return false
			}
			pa, erra := strconv.ParseUint(a[key], 16, 64)
			pb, errb := strconv.ParseUint(b[key], 16, 64)
			const winch = 1 << (int(syscall.SIGWINCH) - 1)
			return erra == nil && errb == nil && pb == pa|winch
		},
	},
	{
		what: "fd N, fd N info: the inode of a pipe, socket or terminal on fds 0-2 (or a copy of one, like bash's 255)",
		reason: "the thaw connects these to its own fds 0-2 (README), and the harness gives the thaw stdio of the same kind: " +
			"the kind, position and flags must match, not the inode",
		match: stdioFd,
	},
	{
		what: "fd N, fd N info: the inode of a pipe or socket the process holds beyond its stdio",
		reason: "the thaw makes the pipe or socket anew and the kernel numbers it anew; the renaming must be " +
			"one to one (the ends of one pipe stay one pipe), and the rest of fdinfo must match",
		match: renamedObject,
	},
	{
		what: "fd N info: the inode of a deleted directory or device node",
		reason: "thaw makes a deleted directory or device node again and removes it (files/deleted.go): a new inode, " +
			"at the same path, so the link, position, flags and mount must match",
		match: deletedInode,
	},
	{
		what: "stat tty_nr: the controlling terminal",
		reason: "a thaw is exec semantics: the process is in the thaw's session, and its controlling terminal " +
			"is the thaw's (the harness gives the thaw one of the same kind); it had one, it has one",
		match: func(key string, a, b procState) bool {
			return key == "stat tty_nr" && a[key] != "0" && b[key] != "0"
		},
	},
	{
		what: "status NSpgid, NSsid, autogroup of a session leader",
		reason: "a process that leads its session and process group (setsid) is thawed by a process that " +
			"leads its own (exec semantics: the thaw's session); the ids are the pid in both, and setsid " +
			"gives each session its own autogroup, whose nice must match",
		match: func(key string, a, b procState) bool {
			switch key {
			case "status NSpgid", "status NSsid":
				return a[key] == a["status Pid"] && b[key] == b["status Pid"]
			case "autogroup":
				_, na, oka := strings.Cut(a[key], " ")
				_, nb, okb := strings.Cut(b[key], " ")
				return oka && okb && na == nb && a["stat session"] == "self" && b["stat session"] == "self"
			}
			return false
		},
	},
	{
		what: "fd N, fd N info: a terminal beyond fds 0-2 that is the controlling terminal, or a pty slave whose " +
			"master the process holds; the tty-index of a pty master",
		reason: "the controlling terminal is the thaw's; a pty pair the process holds is made again as a new " +
			"pair, whose number may differ (files/tty.go). The role must match (the same master's slave, " +
			"or the controlling terminal), and the fdinfo but for the inode and the pty number",
		match: terminalFd,
	},
	{
		what: "fd N info of an eventfd: eventfd-id",
		reason: "a number the kernel hands out to every eventfd of the machine (fs/eventfd.c, an ida), " +
			"seen only in fdinfo: the copy's eventfd is another one; count, semaphore mode and flags must match",
		match: anonInfoExcept("anon_inode:[eventfd]", "eventfd-id:"),
	},
	{
		what: "fd N info of a timerfd: it_value, and ticks of a periodic timer",
		reason: "the timer runs on in both processes: the time left differs by when each was looked at (at most " +
			"timerfdSlack), and a periodic timer's expirations keep coming (the copy's own check counts them); " +
			"clock, settime flags, interval and a one-shot timer's ticks must match",
		match: timerfdRunsOn,
	},
	{
		what: "fd N info of an epoll: the ino: of each tfd line, and the order of the lines",
		reason: "ino: is the inode of the watched file, a pipe or socket the thaw made anew: each must be the inode " +
			"its fd has in the same process (fd N info ino:), whose renaming the pipe rule checks; the lines come in " +
			"the kernel's tree order, by the address of each file in kernel memory, not state. The set of lines, " +
			"each with its fd, events, data and pos, must match",
		match: epollTargetsRenamed,
	},
	{
		what:   "map ...: the inode of a shared-anonymous mapping (/dev/zero (deleted), SYSV)",
		reason: "the kernel gives a re-created shared-anonymous mapping a new shmem inode; the rest of the line must match",
		match:  sharedAnonInode,
	},
	{
		what: "map ..., fd N info: the inode of a memfd or deleted file",
		reason: "thaw makes the file again (memfd_create, or created and unlinked in its directory), one object for " +
			"its fds and mappings, and the kernel gives it a new inode; the name, device, offsets and flags must match",
		match: rebuiltInode,
	},
	{
		what: "stat flags: PF_FORKNOEXEC (0x40), PF_SUPERPRIV (0x100)",
		reason: "history, not state: the task forked without exec since / has used a capability once; " +
			"the restore works inside the process, as root when root thaws",
		match: func(key string, a, b procState) bool {
			const history = 0x40 | 0x100
			fa, err1 := strconv.ParseUint(a[key], 0, 64)
			fb, err2 := strconv.ParseUint(b[key], 0, 64)
			return key == "stat flags" && err1 == nil && err2 == nil && fa&^history == fb&^history
		},
	},
	{
		what: "syscall (/proc/PID/syscall) of a process frozen in job-control stop",
		reason: "stopped inside a call (or at its exit), the original still shows that call; the copy comes back " +
			"stopped with the restart rules already applied (docs/state.md: a syscall in flight): out of any call, " +
			"at the same sp, its pc after the syscall instruction (the result, or EINTR for a sleep) or on it " +
			"(the call to be issued again)",
		match: func(key string, a, b procState) bool {
			fa, fb := strings.Fields(a[key]), strings.Fields(b[key])
			if key != "syscall" || len(fa) != 9 || len(fb) != 3 || fb[0] != "-1" || fa[7] != fb[1] {
				return false
			}
			pa, err1 := strconv.ParseUint(fa[8], 0, 64)
			pb, err2 := strconv.ParseUint(fb[2], 0, 64)
			insn := uint64(2) // x86-64 syscall
			if runtime.GOARCH == "arm64" {
				insn = 4 // svc #0
			}
			return err1 == nil && err2 == nil && (pb == pa || pb == pa-insn)
		},
	},
}

func keyIn(keys ...string) func(string, procState, procState) bool {
	return func(key string, _, _ procState) bool {
		for _, k := range keys {
			if key == k {
				return true
			}
		}
		return false
	}
}

// stdioKind is the kind of a terminal, pipe or socket target ("" for
// anything else).
func stdioKind(target string) string {
	switch {
	case strings.HasPrefix(target, "pipe:["):
		return "pipe"
	case strings.HasPrefix(target, "socket:["):
		return "socket"
	case strings.HasPrefix(target, "/dev/pts/"), strings.HasPrefix(target, "/dev/tty"), target == "/dev/console":
		return "terminal"
	}
	return ""
}

// isStdio says whether fd n of a process is 0-2 or shares its
// description with one of them.
func isStdio(s procState, n string) bool {
	if n == "0" || n == "1" || n == "2" {
		return true
	}
	for _, g := range strings.Fields(s["fd shared"]) {
		members := strings.Split(g, "=")
		has, std := false, false
		for _, m := range members {
			has = has || m == n
			std = std || m == "0" || m == "1" || m == "2"
		}
		if has && std {
			return true
		}
	}
	return false
}

var fdKeyRE = regexp.MustCompile(`^fd (\d+)( info)?$`)

func stdioFd(key string, a, b procState) bool {
	m := fdKeyRE.FindStringSubmatch(key)
	if m == nil || !isStdio(a, m[1]) || !isStdio(b, m[1]) {
		return false
	}
	ka, kb := stdioKind(a["fd "+m[1]]), stdioKind(b["fd "+m[1]])
	if ka == "" || ka != kb {
		return false
	}
	if m[2] == "" {
		return true // the target: the same kind
	}
	return stripTerminalInfo(a[key]) == stripTerminalInfo(b[key])
}

// stripTerminalInfo is a terminal's fdinfo but for the inode and the pty
// number (tty-index), which a new terminal may not share.
func stripTerminalInfo(info string) string {
	var keep []string
	for _, p := range strings.Split(info, "; ") {
		if !strings.HasPrefix(p, "ino:") && !strings.HasPrefix(p, "tty-index:") {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, "; ")
}

// terminalRole says what the terminal target of one of s's fds is to
// the process: "ctty", "master", "slave of fd M" (the pty master the
// process holds on fd M), or "".
func terminalRole(s procState, target string) string {
	if target == "/dev/ptmx" || target == "/dev/pts/ptmx" {
		return "master"
	}
	num, ok := strings.CutPrefix(target, "/dev/pts/")
	if !ok {
		return ""
	}
	if nr, err := strconv.ParseUint(s["stat tty_nr"], 10, 64); err == nil && nr != 0 {
		major, minor := (nr>>8)&0xfff, (nr&0xff)|((nr>>12)&0xfff00)
		if major >= 136 && major <= 143 && strconv.FormatUint((major-136)*256+minor, 10) == num {
			return "ctty"
		}
	}
	for k, v := range s {
		m := fdKeyRE.FindStringSubmatch(k)
		if m == nil || m[2] != "" || (v != "/dev/ptmx" && v != "/dev/pts/ptmx") {
			continue
		}
		for _, p := range strings.Split(s[k+" info"], "; ") {
			if p == "tty-index: "+num {
				return "slave of fd " + m[1]
			}
		}
	}
	return ""
}

func terminalFd(key string, a, b procState) bool {
	m := fdKeyRE.FindStringSubmatch(key)
	if m == nil {
		return false
	}
	ra, rb := terminalRole(a, a["fd "+m[1]]), terminalRole(b, b["fd "+m[1]])
	if ra == "" || ra != rb {
		return false
	}
	if m[2] == "" {
		return true // the target: the same role
	}
	return stripTerminalInfo(a[key]) == stripTerminalInfo(b[key])
}

// objectInode returns the inode in a pipe:[N] or socket:[N] link.
func objectInode(target string) (string, bool) {
	for _, p := range []string{"pipe:[", "socket:["} {
		if rest, ok := strings.CutPrefix(target, p); ok && strings.HasSuffix(rest, "]") {
			return strings.TrimSuffix(rest, "]"), true
		}
	}
	return "", false
}

// objectRenaming maps the inodes of the pipes and sockets of a (beyond
// stdio) to those at the same fds in b; ok is false unless the mapping
// is one to one and keeps the kind.
func objectRenaming(a, b procState) (map[string]string, bool) {
	fwd, back := map[string]string{}, map[string]string{}
	for k, va := range a {
		m := fdKeyRE.FindStringSubmatch(k)
		if m == nil || m[2] != "" || isStdio(a, m[1]) {
			continue
		}
		ia, oka := objectInode(va)
		ib, okb := objectInode(b[k])
		if !oka && !okb {
			continue
		}
		if !oka || !okb || stdioKind(va) != stdioKind(b[k]) {
			return nil, false
		}
		if x, seen := fwd[ia]; seen && x != ib {
			return nil, false
		}
		if x, seen := back[ib]; seen && x != ia {
			return nil, false
		}
		fwd[ia], back[ib] = ib, ia
	}
	return fwd, true
}

func renamedObject(key string, a, b procState) bool {
	m := fdKeyRE.FindStringSubmatch(key)
	if m == nil || isStdio(a, m[1]) {
		return false
	}
	ren, ok := objectRenaming(a, b)
	if !ok {
		return false
	}
	ia, oka := objectInode(a["fd "+m[1]])
	if !oka || ren[ia] == "" {
		return false
	}
	if m[2] == "" {
		return b[key] == strings.Replace(a[key], ia, ren[ia], 1)
	}
	// fdinfo: its "ino:" line is the object's inode.
	return b[key] == strings.Replace(a[key], "ino: "+ia, "ino: "+ren[ia], 1)
}

// deletedInode: fd N info of a deleted object (its link "... (deleted)",
// the same in both), equal but for the inode.
func deletedInode(key string, a, b procState) bool {
	m := fdKeyRE.FindStringSubmatch(key)
	if m == nil || m[2] == "" {
		return false
	}
	link := a["fd "+m[1]]
	if link != b["fd "+m[1]] || !strings.HasPrefix(link, "/") || !strings.HasSuffix(link, " (deleted)") {
		return false
	}
	return infoWithout(a[key], "ino:") == infoWithout(b[key], "ino:")
}

// infoWithout is an "fd N info" value without its parts that start with
// one of prefixes.
func infoWithout(v string, prefixes ...string) string {
	var keep []string
	for _, p := range infoParts(v) {
		if !slices.ContainsFunc(prefixes, func(pre string) bool { return strings.HasPrefix(p, pre) }) {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, "; ")
}

// infoParts splits an "fd N info" value ("pos: 0; flags: 02; ...").
func infoParts(v string) []string { return strings.Split(v, "; ") }

// anonInfoExcept: fd N's info may differ in the parts starting with
// prefix, for an fd whose target is link in both.
func anonInfoExcept(link, prefix string) func(string, procState, procState) bool {
	return func(key string, a, b procState) bool {
		m := fdKeyRE.FindStringSubmatch(key)
		if m == nil || m[2] == "" || a["fd "+m[1]] != link || b["fd "+m[1]] != link {
			return false
		}
		return infoWithout(a[key], prefix) == infoWithout(b[key], prefix)
	}
}

// timerfdSlack bounds how far the time left of a timer may be between
// the original and the copy, each seen a moment after its freeze or thaw.
const timerfdSlack = 10 * time.Second

var itValueRE = regexp.MustCompile(`^it_value: \((\d+), (\d+)\)$`)

func timerfdRunsOn(key string, a, b procState) bool {
	const link = "anon_inode:[timerfd]"
	m := fdKeyRE.FindStringSubmatch(key)
	if m == nil || m[2] == "" || a["fd "+m[1]] != link || b["fd "+m[1]] != link {
		return false
	}
	pa, pb := infoParts(a[key]), infoParts(b[key])
	if len(pa) != len(pb) {
		return false
	}
	periodic := !slices.Contains(pa, "it_interval: (0, 0)")
	for i := range pa {
		if pa[i] == pb[i] {
			continue
		}
		if strings.HasPrefix(pa[i], "ticks:") && strings.HasPrefix(pb[i], "ticks:") && periodic {
			continue
		}
		va, vb := itValueRE.FindStringSubmatch(pa[i]), itValueRE.FindStringSubmatch(pb[i])
		if va == nil || vb == nil {
			return false
		}
		ns := func(v []string) time.Duration {
			s, _ := strconv.ParseInt(v[1], 10, 64)
			n, _ := strconv.ParseInt(v[2], 10, 64)
			return time.Duration(s)*time.Second + time.Duration(n)
		}
		d := ns(va) - ns(vb)
		if d < -timerfdSlack || d > timerfdSlack || (ns(va) == 0) != (ns(vb) == 0) && !periodic {
			return false
		}
	}
	return true
}

var tfdInoRE = regexp.MustCompile(`^(tfd: (\d+) .* )ino:([0-9a-f]+)( .*)$`)

func epollTargetsRenamed(key string, a, b procState) bool {
	const link = "anon_inode:[eventpoll]"
	m := fdKeyRE.FindStringSubmatch(key)
	if m == nil || m[2] == "" || a["fd "+m[1]] != link || b["fd "+m[1]] != link {
		return false
	}
	// Each tfd line's ino is its fd's own (in hex), then dropped; the
	// lines sorted.
	norm := func(s procState) (string, bool) {
		var out, items []string
		for _, p := range infoParts(s[key]) {
			t := tfdInoRE.FindStringSubmatch(p)
			if t == nil {
				out = append(out, p)
				continue
			}
			ino, err := strconv.ParseUint(t[3], 16, 64)
			if err != nil || !slices.Contains(infoParts(s["fd "+t[2]+" info"]), "ino: "+strconv.FormatUint(ino, 10)) {
				return "", false
			}
			items = append(items, t[1]+"ino:"+t[4])
		}
		sort.Strings(items)
		return strings.Join(append(out, items...), "; "), true
	}
	na, oka := norm(a)
	nb, okb := norm(b)
	return oka && okb && na == nb
}

var mapKeyRE = regexp.MustCompile(`^map [0-9a-f]+-[0-9a-f]+$`)

func sharedAnonInode(key string, a, b procState) bool {
	if !mapKeyRE.MatchString(key) {
		return false
	}
	fa, fb := strings.Fields(a[key]), strings.Fields(b[key])
	if len(fa) < 6 || len(fa) != len(fb) {
		return false
	}
	if path := strings.Join(fa[4:6], " "); path != "/dev/zero (deleted)" && !strings.HasPrefix(path, "SYSV") {
		return false
	}
	fa[3], fb[3] = "", "" // the inode
	return strings.Join(fa, " ") == strings.Join(fb, " ")
}

// rebuiltInode allows a map line or an fd's fdinfo of a memfd or deleted
// file ("... (deleted)", not shared anonymous memory) to differ in the
// inode only.
func rebuiltInode(key string, a, b procState) bool {
	if mapKeyRE.MatchString(key) {
		fa, fb := strings.Fields(a[key]), strings.Fields(b[key])
		if len(fa) < 7 || len(fa) != len(fb) {
			return false
		}
		bar := slices.Index(fa, "|")
		if bar < 6 || fa[bar-1] != "(deleted)" || strings.Join(fa[4:6], " ") == "/dev/zero (deleted)" || strings.HasPrefix(fa[4], "/SYSV") {
			return false
		}
		fa[3], fb[3] = "", ""
		return strings.Join(fa, " ") == strings.Join(fb, " ")
	}
	return deletedInode(key, a, b) // an fd's fdinfo
}

// stateDiff is the result of comparing two snapshots.
type stateDiff struct {
	unexpected []string          // keys
	expected   map[string]string // key → the reason
}

func compareStates(a, b procState) stateDiff {
	d := stateDiff{expected: map[string]string{}}
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		va, oka := a[k]
		vb, okb := b[k]
		if oka == okb && va == vb {
			continue
		}
		allowed := false
		if oka && okb {
			for _, e := range expectedDiffs {
				if e.match(k, a, b) {
					d.expected[k] = e.what
					allowed = true
					break
				}
			}
		}
		if !allowed {
			d.unexpected = append(d.unexpected, k)
		}
	}
	sort.Strings(d.unexpected)
	return d
}

// report is the readable diff of the unexpected differences.
func (d stateDiff) report(a, b procState) string {
	var sb strings.Builder
	show := func(s procState, k string) string {
		if v, ok := s[k]; ok {
			return fmt.Sprintf("%q", v)
		}
		return "(absent)"
	}
	for _, k := range d.unexpected {
		fmt.Fprintf(&sb, "  %s\n    original: %s\n    thawed:   %s\n", k, show(a, k), show(b, k))
	}
	return sb.String()
}

// requireSameState fails t, with a readable diff, if the copy's state
// differs from the original's in any way expectedDiffs does not allow.
func requireSameState(t *testing.T, what string, a, b procState) {
	t.Helper()
	d := compareStates(a, b)
	var exp []string
	for k := range d.expected {
		exp = append(exp, k)
	}
	sort.Strings(exp)
	t.Logf("%s: %d keys compared; expected differences in %d: %s", what, len(a), len(exp), strings.Join(exp, ", "))
	if os.Getenv(envOracleDump) != "" {
		t.Logf("%s: the original's state:\n%s", what, a)
		t.Logf("%s: the copy's state:\n%s", what, b)
	}
	if len(d.unexpected) > 0 {
		t.Errorf("%s: /proc differs in %d places that expectedDiffs does not allow (original pid %s, thawed pid %s):\n%s",
			what, len(d.unexpected), a["status Pid"], b["status Pid"], d.report(a, b))
	}
}

// sigStop stops pid with SIGSTOP and waits for the stop.
func sigStop(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %d: %v", pid, err)
	}
	waitStopped(t, pid)
}

// waitStopped waits until pid is in job-control stop, every thread of
// it (a group stop completes thread by thread, and each thread's stat
// changes as it stops), and traced by no one (a thaw's helper traces the
// process until it is done with it).
func waitStopped(t *testing.T, pid int, diag ...func() string) {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		st, err := procStatus(pid)
		if err != nil {
			more := ""
			for _, d := range diag {
				more += "\n" + d()
			}
			t.Fatalf("pid %d: %v%s", pid, err, more)
		}
		if strings.HasPrefix(st["State"], "T") && st["TracerPid"] == "0" && allThreadsStopped(pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d not stopped within %v: %s", pid, lineTimeout, procStateLine(pid))
		}
		time.Sleep(2 * time.Millisecond) // polling /proc, bounded above
	}
}

// allThreadsStopped tells whether every thread of pid is in a stop,
// traced by no one.
func allThreadsStopped(pid int) bool {
	tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, e := range tids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()))
		if err != nil {
			return false
		}
		s := string(b)
		if !strings.Contains(s, "\nState:\tT") || !strings.Contains(s, "\nTracerPid:\t0\n") {
			return false
		}
	}
	return true
}

// waitIdle waits until the victim is blocked reading its stdin, and
// traced by no one.
func waitIdle(t *testing.T, o *oproc) {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	path := fmt.Sprintf("/proc/%d/syscall", o.pid)
	var last string
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s: %v\n%s", o.name, err, o.diag())
		}
		last = strings.TrimSpace(string(b))
		f := strings.Fields(last)
		if len(f) >= 2 && f[0] == strconv.FormatInt(sysRead, 10) && f[1] == "0x0" {
			if st, err := procStatus(o.pid); err == nil && strings.HasPrefix(st["State"], "S") && st["TracerPid"] == "0" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not blocked in read(0, ...) within %v; syscall %q\n%s", o.name, lineTimeout, last, o.diag())
		}
		time.Sleep(2 * time.Millisecond) // polling /proc, bounded above
	}
}

// oracleCase is one victim started one way, through two cycles.
type oracleCase struct {
	name   string
	victim string   // testdata/NAME.c
	args   []string // its arguments
	mode   startMode
	// stopped: the victim never idles in read(0) (it counts, sleeps or
	// churns): it is stopped with SIGSTOP before the freeze, and the
	// thaw brings it back stopped (README: a target in job-control stop
	// is thawed stopped), both at the very point of the freeze.
	stopped bool
	// ready reads what the victim says when it starts.
	ready func(t *testing.T, o *oproc)
	// prepare brings it to a known point before a freeze; what it
	// returns is given to prove.
	prepare func(t *testing.T, o *oproc) string
	// prove runs on the thawed copy, continued: the victim shows its
	// state is the one it had at prepare.
	prove func(t *testing.T, o *oproc, known string)
	// finish ends the last copy.
	finish func(t *testing.T, o *oproc)
	// anonMerged: adjacent private anonymous mappings alike in all but
	// their anon_vma, which the kernel keeps apart, are compared as one:
	// the thaw makes them fresh and the kernel merges them
	// (docs/state.md, "lost"). python3's arenas and thread stacks
	// sometimes lie so.
	anonMerged bool
}

// oracleCycles runs the case: start, then two freeze → thaw cycles, the
// second from the thawed copy of the first.
func oracleCycles(t *testing.T, c oracleCase, bin string) {
	setup(t)
	dir := t.TempDir()
	start := time.Now()
	cur, sio := startVictim(t, c.mode, c.victim, bin, c.args, dir)
	if c.ready != nil {
		c.ready(t, cur)
	}
	if c.mode == startZombie {
		waitZombieChild(t, cur)
	}
	for cycle := 1; cycle <= 2; cycle++ {
		known := ""
		if c.prepare != nil {
			known = c.prepare(t, cur)
		}
		if c.stopped {
			sigStop(t, cur.pid)
		} else {
			waitIdle(t, cur)
		}
		img := filepath.Join(dir, fmt.Sprintf("cycle%d.bin", cycle))
		freeze(t, "--leave-running", "-o", img, strconv.Itoa(cur.pid))
		if c.stopped {
			waitStopped(t, cur.pid)
		} else {
			sigStop(t, cur.pid)
		}
		before := snapshot(t, cur.pid)
		cur.kill()
		// Its zombie children, ours now (we are a subreaper), are reaped:
		// their pids are free for the thaw to re-create them with.
		scanChildren()

		next := sio.thawVictim(t, c.victim, img, cycle == 2)
		if c.stopped {
			waitStopped(t, next.pid, next.diag)
		} else {
			waitIdle(t, next)
			sigStop(t, next.pid)
		}
		after := snapshot(t, next.pid)
		if c.anonMerged {
			mergeAnonMaps(before)
			mergeAnonMaps(after)
		}
		requireSameState(t, fmt.Sprintf("cycle %d", cycle), before, after)
		if err := syscall.Kill(next.pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if c.prove != nil {
			c.prove(t, next, known)
		}
		cur = next
	}
	if c.finish != nil {
		c.finish(t, cur)
	}
	t.Logf("%s: two cycles in %v", c.name, time.Since(start).Round(time.Millisecond))
}

// checkOK asks a victim to check itself ("check" → "check ok ...") and
// returns its answer.
func checkOK(t *testing.T, o *oproc) string {
	got := o.ask("check", "check ")
	if !strings.HasPrefix(got, "check ok ") {
		t.Fatalf("%s before the freeze: %s", o.name, got)
	}
	return got
}

// sameCheck: after the thaw the victim's check says what it said before.
func sameCheck(t *testing.T, o *oproc, known string) {
	if got := o.ask("check", "check "); got != known {
		t.Errorf("%s after thaw:\n  before %s\n  after  %s", o.name, known, got)
	}
}

// oracleExcluded: the victims in testdata that TestOracle does not run,
// and why. Every other one must have a case (allstate: TestAllState).
var oracleExcluded = map[string]string{
	"tcpclient": "its established connection must pass to the copy, and the oracle's freeze --leave-running then kill " +
		"would close it for the peer: TestTCPRepair takes it through two freeze → thaw cycles (and a --leave-running one), " +
		"TestTCPUnprivileged through the refusal and the reset policy",
	"anonfd":   "holds an anon-inode file cryo cannot carry (io_uring, userfaultfd...): freeze refuses it (TestFreezeErrors); nothing to thaw",
	"sysvshm":  "attaches System V shared memory: freeze refuses it (TestUnsupportedMapping)",
	"tracer":   "not a victim: the ptrace tracer that makes another victim unfreezable",
	"allstate": "TestAllState runs it, with its own checks",
	"vdsoclock": "make test-migrate (e2e/migrate_test.go) freezes it under another kernel and thaws it here, " +
		"its cached vdso pointers proving the vdso proxy",
	"zombies": "TestZombieChildren proves its zombies' statuses across two thaws; the zombie start mode here covers a zombie child's /proc side",
}

// TestOracle: every victim in testdata that can be thawed, started as
// people start programs, through two freeze → thaw cycles, compared by
// the /proc oracle; each then proves its own state. allstate has its own
// test (TestAllState).
func TestOracle(t *testing.T) {
	regsVictim := "regs"
	if runtime.GOARCH == "arm64" {
		regsVictim = "regs-arm64"
	}
	cases := []oracleCase{
		{name: "pipe/pipes", victim: "pipe", mode: startPipes, ready: expectReady,
			prepare: pipePrepare, prove: pipeProve, finish: exitWith(0)},
		{name: "pipe/shell-log", victim: "pipe", mode: startShellLog, ready: expectReady,
			prepare: pipePrepare, prove: pipeProve, finish: exitWith(0)},
		{name: "pipe/fd7", victim: "pipe", mode: startInherited, ready: expectReady,
			prepare: pipePrepare, prove: pipeProve, finish: exitWith(0)},
		{name: "pipe/zombie", victim: "pipe", mode: startZombie, ready: expectReady,
			prepare: pipePrepare, prove: pipeProve, finish: exitWith(0)},
		{name: "pipes/pipes", victim: "pipes", mode: startPipes, ready: expectReady,
			prepare: checkOK, prove: sameCheck, finish: exitWith(0)},
		{name: "pipes/shell-log", victim: "pipes", mode: startShellLog, ready: expectReady,
			prepare: checkOK, prove: sameCheck, finish: exitWith(0)},
		{name: "events/pipes", victim: "events", mode: startPipes, ready: expectReady,
			prepare: checkOK, prove: sameCheck, finish: exitWith(0)},
		{name: "allfds/pipes", victim: "allfds", mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string {
				o.ask("live", "live ok")
				return checkOK(t, o)
			},
			prove: func(t *testing.T, o *oproc, known string) {
				sameCheck(t, o, known)
				if got := o.ask("live", "live "); got != "live ok" {
					t.Errorf("allfds after thaw: %s", got)
				}
			},
			finish: exitWith(0)},
		{name: "memcheck/pipes", victim: "memcheck", mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string {
				sum := o.ask("sum", "sum ")
				return sum + "|" + o.ask("inc", "inc ")
			},
			prove: func(t *testing.T, o *oproc, known string) {
				sum, inc, _ := strings.Cut(known, "|")
				if got := o.ask("sum", "sum "); got != sum {
					t.Errorf("memcheck memory after thaw:\n  before %s\n  after  %s", sum, got)
				}
				n, _ := strconv.Atoi(strings.TrimPrefix(inc, "inc "))
				if got := o.ask("inc", "inc "); got != fmt.Sprintf("inc %d", n+1) {
					t.Errorf("memcheck inc after thaw: %q, want inc %d", got, n+1)
				}
			},
			finish: exitWith(3)},
		{name: "signals/pipes", victim: "signals", mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string { return o.ask("state", "state ") },
			prove: func(t *testing.T, o *oproc, known string) {
				if got := o.ask("state", "state "); got != known {
					t.Errorf("signal state after thaw:\n  before %s\n  after  %s", known, got)
				}
			},
			finish: exitWith(0)},
		{name: "signals/zombie", victim: "signals", mode: startZombie, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string { return o.ask("state", "state ") },
			prove: func(t *testing.T, o *oproc, known string) {
				if got := o.ask("state", "state "); got != known {
					t.Errorf("signal state after thaw:\n  before %s\n  after  %s", known, got)
				}
			},
			finish: exitWith(0)},
		{name: regsVictim + "/pipes", victim: regsVictim, mode: startPipes,
			ready: func(t *testing.T, o *oproc) { o.expect("ready") },
			finish: func(t *testing.T, o *oproc) {
				o.write("x")
				if got := o.next(); got != "regs ok" {
					t.Errorf("registers after two thaws: %q, want \"regs ok\"", got)
				}
			}},
		{name: "lowmap/pipes", victim: "lowmap", mode: startPipes,
			ready:   func(t *testing.T, o *oproc) { o.expect("ready ") },
			prepare: func(t *testing.T, o *oproc) string { return o.ask("sum", "sum ") },
			prove:   sameAnswer("sum"), finish: exitWith(0)},
		// Unlinked files, memfds (sealed, one mapped with its fd
		// closed), shared anonymous memory, a shared file mapping:
		// "check" proves each is the same object, fds and mappings.
		{name: "shm/pipes", victim: "shm", mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string {
				if got := o.ask("check", "check "); got != "check ok" {
					t.Fatalf("shm before the freeze: %s", got)
				}
				return ""
			},
			prove: func(t *testing.T, o *oproc, _ string) {
				if got := o.ask("check", "check "); got != "check ok" {
					t.Errorf("shm after thaw: %s", got)
				}
			},
			finish: exitWith(0)},
		{name: "big/pipes", victim: "big", mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string { return o.ask("sum", "sum ") },
			prove:   sameAnswer("sum"), finish: exitWith(0)},
		{name: "rawtty/tty", victim: "rawtty", mode: startTTY, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string {
				o.write("q")
				return o.expect("icanon=")
			},
			prove: func(t *testing.T, o *oproc, known string) {
				o.write("q")
				if got := o.expect("icanon="); got != known || known != "icanon=0 echo=0 fd255=1 ro=1" {
					t.Errorf("terminal after thaw: %q, before %q, want icanon=0 echo=0 fd255=1 ro=1", got, known)
				}
			},
			finish: func(t *testing.T, o *oproc) { o.write("x"); o.top.waitExit() }},
		{name: "ptys/pipes", victim: "ptys", args: []string{"pair"}, mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string { return o.ask("check", "check ") },
			prove: func(t *testing.T, o *oproc, known string) {
				if got := o.ask("check", "check "); got != known || known != ptysPairCheck {
					t.Errorf("pty pairs after thaw: %q, before %q, want %q", got, known, ptysPairCheck)
				}
			},
			finish: exitWith(0)},
		{name: "ptys/ctty", victim: "ptys", args: []string{"ctty"}, mode: startCtty, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string { return o.ask("check", "check ") },
			prove: func(t *testing.T, o *oproc, known string) {
				if got := o.ask("check", "check "); got != known || known != cttyCheck {
					t.Errorf("controlling terminal after thaw: %q, before %q, want %q", got, known, cttyCheck)
				}
				o.send("read5")
				o.tty.Write([]byte("hi\n"))
				if got := o.expect("tty5 "); got != "tty5 hi" {
					t.Errorf("read from /dev/tty after thaw: %q, want \"tty5 hi\"", got)
				}
			},
			finish: exitWith(0)},
		sleeperCase(),
		inetCase(false),
		inetCase(true),
		{name: "counter/shell-log", victim: "counter", mode: startShellLog, stopped: true,
			prepare: func(t *testing.T, o *oproc) string {
				for i := 0; i < 20; i++ { // 20 more lines in the log
					o.next()
				}
				return ""
			},
			prove: func(t *testing.T, o *oproc, _ string) {
				// Counting on in the same log, without gap or repeat.
				n := countLines(t, o.log.path)
				waitLogLines(t, o.log.path, n+20, o.top)
				countLines(t, o.log.path)
				o.log.n = len(o.log.complete())
			},
			finish: func(t *testing.T, o *oproc) { o.kill() }},
		// The demo's victim: even ticks to stdout, odd ones to stderr,
		// started as the demo does, >log 2>&1.
		{name: "counter-demo/shell-log", victim: "counter-demo", mode: startShellLog, stopped: true,
			prepare: func(t *testing.T, o *oproc) string {
				o.next()
				o.next()
				return ""
			},
			prove: func(t *testing.T, o *oproc, _ string) {
				// Five more ticks, all in the log, in order, none
				// written over another (fds 1 and 2: one offset).
				n := len(o.log.complete())
				deadline := time.Now().Add(lineTimeout)
				for len(o.log.complete()) < n+5 && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond) // polling a file, bounded above
				}
				for i, l := range o.log.complete() {
					if l != fmt.Sprintf("tick %d", i) {
						t.Fatalf("log line %d is %q, want \"tick %d\"\n%s", i+1, l, i, o.diag())
					}
				}
				if got := len(o.log.complete()); got < n+5 {
					t.Errorf("the copy wrote %d ticks in %v, want 5", got-n, lineTimeout)
				}
				o.log.n = len(o.log.complete())
			},
			finish: func(t *testing.T, o *oproc) { o.kill() }},
		{name: "creds/pipes", victim: "creds", mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string { return o.ask("creds", "creds ") },
			prove: func(t *testing.T, o *oproc, known string) {
				if got := o.ask("creds", "creds "); got != known {
					t.Errorf("credentials after thaw:\n  before %s\n  after  %s", known, got)
				}
				if got := o.ask("newmap", "newmap "); got != "newmap locked=1" {
					t.Errorf("mlockall(MCL_FUTURE) after thaw: %q, want \"newmap locked=1\"", got)
				}
			},
			finish: exitWith(0)},
		{name: "reserve/pipes", victim: "reserve", args: []string{"64", "reserve.dat"}, mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string {
				return strings.Join([]string{o.ask("features", "features "), o.ask("sum", "sum "), o.ask("guard", "guard ")}, "|")
			},
			prove: func(t *testing.T, o *oproc, known string) {
				got := strings.Join([]string{o.ask("features", "features "), o.ask("sum", "sum "), o.ask("guard", "guard ")}, "|")
				if got != known {
					t.Errorf("reserve after thaw (features|sum|guard):\n  before %s\n  after  %s", known, got)
				}
				if got := o.ask("upgrade", "upgrade "); got != "upgrade ok" {
					t.Errorf("the MAP_SHARED PROT_READ mapping of an O_RDWR file could not be made writable: %q", got)
				}
			},
			finish: exitWith(0)},
		{name: "paths/pipes", victim: "paths", mode: startPipes, ready: pathsReady,
			prepare: pathsPrepare, prove: pathsProve, finish: pathsFinish},
		{name: "sockfd/pipes", victim: "sockfd", args: []string{"unix"}, mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string { return o.ask("ping", "pong ") },
			prove: func(t *testing.T, o *oproc, known string) {
				n, _ := strconv.Atoi(strings.TrimPrefix(known, "pong "))
				if got := o.ask("ping", "pong "); got != fmt.Sprintf("pong %d", n+1) {
					t.Errorf("sockfd after thaw: %q, want pong %d", got, n+1)
				}
			},
			finish: exitWith(0)},
		unixsockCase(),
		{name: "threads/pipes", victim: "threads", mode: startPipes, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string {
				// Signals pending across the freeze: one for one
				// thread, one for the process.
				o.ask("pend", "pend ok")
				return o.ask("tick", "tick ")
			},
			prove: func(t *testing.T, o *oproc, known string) {
				threadsProve(t, o, known)
				if got := o.ask("take", "take "); got != "take w1=12/0 others=none main=35/77" {
					t.Errorf("signals pending at freeze, after thaw: %q, want SIGUSR2 for worker 1 alone and signal 35 (value 77) for the process", got)
				}
			},
			finish: threadsFinish},
		{name: "threads/shell-log", victim: "threads", mode: startShellLog, ready: expectReady,
			prepare: func(t *testing.T, o *oproc) string { return o.ask("tick", "tick ") },
			prove:   threadsProve, finish: threadsFinish},
		{name: "churn/pipes", victim: "churn", mode: startPipes, stopped: true, ready: expectReady,
			prove:  func(t *testing.T, o *oproc, _ string) { o.ask("ping", "pong ") },
			finish: exitWith(0)},
	}
	t.Run("coverage", func(t *testing.T) {
		// Every victim in testdata has a case here, or a reason not to.
		srcs, err := filepath.Glob(filepath.Join("..", "testdata", "*.c"))
		if err != nil || len(srcs) == 0 {
			t.Fatalf("no victims in ../testdata: %v", err)
		}
		have := map[string]bool{"regs": true, "regs-arm64": true} // one per arch, below
		for _, c := range cases {
			have[c.victim] = true
		}
		for _, src := range srcs {
			v := strings.TrimSuffix(filepath.Base(src), ".c")
			if !have[v] && oracleExcluded[v] == "" {
				t.Errorf("testdata/%s.c has no TestOracle case and no reason in oracleExcluded", v)
			}
		}
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bin := buildVictim(t, c.victim)
			if c.victim == "regs" {
				requireAMD64(t)
			}
			if c.name == "inet/pair" {
				requireNetAdmin(t)
			}
			oracleCycles(t, c, bin)
		})
	}
}

func expectReady(t *testing.T, o *oproc) { o.expect("ready") }

// paths: the descriptors that name files (testdata/paths.c). An fd this
// machine cannot give (O_DIRECT on a filesystem without it, a device node
// without CAP_MKNOD) is left out, and said so.
func pathsReady(t *testing.T, o *oproc) {
	if line := o.expect("ready"); line != "ready" {
		t.Logf("paths: %s: those fds are left out here", line)
	}
}

// pathsPrepare reads on in the directory, checks, and returns the state.
func pathsPrepare(t *testing.T, o *oproc) string {
	o.ask("readdir 30", "readdir ")
	if got := o.ask("check", "check "); got != "check ok" {
		t.Fatalf("paths before the freeze: %s", got)
	}
	return o.ask("state", "state ")
}

func pathsProve(t *testing.T, o *oproc, known string) {
	if got := o.ask("state", "state "); got != known {
		t.Errorf("paths after thaw (fd:flags:fdflags:offset):\n  before %s\n  after  %s", known, got)
	}
	if got := o.ask("check", "check "); got != "check ok" {
		t.Errorf("paths after thaw: %s", got)
	}
	if got := o.ask("append", "append "); got != "append ok" {
		t.Errorf("paths after thaw: %s", got)
	}
}

// pathsFinish reads the rest of the directory: every entry once, across
// two thaws.
func pathsFinish(t *testing.T, o *oproc) {
	if got := o.ask("rest", "rest "); got != "rest ok 122" {
		t.Errorf("paths: the directory read across two thaws: %s, want rest ok 122", got)
	}
	exitWith(0)(t, o)
}

// threadsProve: each worker thread of testdata/threads.c takes the next
// tick from where it was (its TLS and stack counters one more), glibc's
// cached tids are the real ones, its malloc'd blocks are intact, the
// spinner spins and pthread_kill reaches every worker.
func threadsProve(t *testing.T, o *oproc, known string) {
	t.Helper()
	got := o.ask("tick", "tick ")
	if want := nextTick(t, known); got != want {
		t.Errorf("threads after thaw:\n  got  %s\n  want %s", got, want)
	}
	if got := o.ask("spin", "spin "); got != "spin ok" {
		t.Errorf("the spinning thread after thaw: %q", got)
	}
	if got := o.ask("timer", "timer "); got != "timer ok" {
		t.Errorf("the POSIX timer of worker 2 (SIGEV_THREAD_ID) after thaw: %q", got)
	}
	if got := o.ask("kill", "kill "); got != "kill ok" {
		t.Errorf("pthread_kill to each worker after thaw: %q", got)
	}
}

// threadsFinish: the thread blocked in pthread_join returns when the
// thread it joins ends; the main thread unlocks the robust mutex it
// held since before both freezes (its owner tid patched: the main
// thread's tid changed) and the thread blocked on it gets it.
func threadsFinish(t *testing.T, o *oproc) {
	t.Helper()
	if got := o.ask("join", "join "); got != "join ok" {
		t.Errorf("pthread_join after thaw: %q", got)
	}
	if got := o.ask("release", "release "); got != "release unlock=0 waiter=0" {
		t.Errorf("robust mutex held across the thaw: %q, want release unlock=0 waiter=0", got)
	}
	exitWith(0)(t, o)
}

// nextTick is the tick line that follows line: each counter one more.
func nextTick(t *testing.T, line string) string {
	t.Helper()
	f := strings.Fields(line)
	for i, w := range f {
		k, v, ok := strings.Cut(w, "=")
		a, b, ok2 := strings.Cut(v, "/")
		if !ok || !ok2 || !strings.HasPrefix(k, "w") {
			continue
		}
		x, err1 := strconv.Atoi(a)
		y, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil {
			t.Fatalf("bad tick line %q", line)
		}
		f[i] = fmt.Sprintf("%s=%d/%d", k, x+1, y+1)
	}
	return strings.Join(f, " ")
}

func exitWith(code int) func(*testing.T, *oproc) {
	return func(t *testing.T, o *oproc) {
		o.send(fmt.Sprintf("exit %d", code))
		if o.pid == o.top.pid() {
			if st := o.top.waitExit(); st.ExitCode() != code {
				t.Errorf("%s: %v, want exit status %d", o.name, st, code)
			}
		} else {
			waitGone(t, o.pid)
		}
	}
}

// sameAnswer: after thaw, cmd gives the answer it gave before.
func sameAnswer(cmd string) func(*testing.T, *oproc, string) {
	return func(t *testing.T, o *oproc, known string) {
		if got := o.ask(cmd, strings.SplitN(known, " ", 2)[0]+" "); got != known {
			t.Errorf("%s after thaw:\n  before %s\n  after  %s", cmd, known, got)
		}
	}
}

// pipePrepare: a complete line, then three bytes that leave the pipe and
// live only in the victim's memory.
func pipePrepare(t *testing.T, o *oproc) string {
	o.ask("one", "got one")
	o.write("hel")
	o.expect("buffered 3")
	return ""
}

func pipeProve(t *testing.T, o *oproc, _ string) {
	o.write("lo\n")
	if got := o.expect("got "); got != "got hello" {
		t.Errorf("%s: %q, want \"got hello\" (the bytes read before the freeze)", o.name, got)
	}
	if got := o.ask("pid", "pid "); got != "pid "+strconv.Itoa(o.pid) {
		t.Errorf("%s says %q, want pid %d", o.name, got, o.pid)
	}
}

// unixsockCase: unix sockets of every kind, bound to paths relative to
// the working directory (the victim's DIR is "."), with bytes queued;
// the copy finds them all and its listeners accept.
func unixsockCase() oracleCase {
	name := fmt.Sprintf("cryo-oracle-unixsock-%d", os.Getpid())
	return oracleCase{
		name: "unixsock/pipes", victim: "unixsock", args: []string{".", name}, mode: startPipes, ready: expectReady,
		prepare: func(t *testing.T, o *oproc) string { return o.ask("check", "check ") },
		prove: func(t *testing.T, o *oproc, known string) {
			if got := o.ask("check", "check "); got != "check ok" || known != "check ok" {
				t.Errorf("unixsock after thaw: %q (before: %q), want check ok", got, known)
			}
			dir, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", o.pid))
			if err != nil {
				t.Fatal(err)
			}
			unixsockServe(t, o, dir, name)
			o.ask("check", "check ok")
		},
		finish: exitWith(0),
	}
}

// sleeperCase: frozen (stopped) inside a 600 s nanosleep, which returns
// EINTR in the copy (README; arm64 starts it over); the second cycle
// freezes the copy awake, idle in read.
func sleeperCase() oracleCase {
	asleep := true
	return oracleCase{
		name: "sleeper/pipes", victim: "sleeper", args: []string{"nanosleep", "600"}, mode: startPipes, stopped: true,
		ready: func(t *testing.T, o *oproc) { o.expect("sleeping nanosleep") },
		prepare: func(t *testing.T, o *oproc) string {
			if asleep {
				waitSyscall(t, o, sysNanosleep)
				return ""
			}
			return o.ask("ping", "pong ")
		},
		prove: func(t *testing.T, o *oproc, known string) {
			if asleep {
				if runtime.GOARCH == "arm64" {
					waitSyscall(t, o, sysNanosleep)
					return
				}
				if got := o.expect("woke "); got != "woke -1 4" {
					t.Errorf("the sleep caught by the freeze: %q, want \"woke -1 4\" (EINTR)", got)
				}
				asleep = false
				o.ask("ping", "pong 1")
				return
			}
			n, _ := strconv.Atoi(strings.TrimPrefix(known, "pong "))
			if got := o.ask("ping", "pong "); got != fmt.Sprintf("pong %d", n+1) {
				t.Errorf("sleeper after thaw: %q, want pong %d", got, n+1)
			}
		},
		finish: func(t *testing.T, o *oproc) { o.kill() },
	}
}

// waitSyscall waits until the victim is blocked in one of the calls.
func waitSyscall(t *testing.T, o *oproc, nrs ...int64) {
	t.Helper()
	deadline := time.Now().Add(lineTimeout)
	for {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/syscall", o.pid))
		f := strings.Fields(string(b))
		if len(f) > 0 {
			for _, nr := range nrs {
				if f[0] == strconv.FormatInt(nr, 10) {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not in syscall %v within %v: %q\n%s", o.name, nrs, lineTimeout, b, o.diag())
		}
		time.Sleep(2 * time.Millisecond) // polling /proc, bounded above
	}
}

// TestAllState: the allstate victim sets every row of what a thaw must
// restore at once; the oracle compares /proc, its "check" line must be
// the same after each thaw (timers: just under), and its "verify" must
// say ok. Started from Go, from bash with its output in a log (stdout
// and stderr one description: lines written to both stay in order),
// and with a zombie child (re-created by the thaw, docs/state.md: after
// the second thaw, wait() reaps it, with its pid and exit status 7).
func TestAllState(t *testing.T) {
	for _, mode := range []startMode{startPipes, startShellLog, startZombie} {
		t.Run(string(mode), func(t *testing.T) {
			bin := buildVictim(t, "allstate")
			var checkedAt time.Time
			cycle, zombie := 0, ""
			c := oracleCase{
				name: "allstate/" + string(mode), victim: "allstate", mode: mode,
				ready: func(t *testing.T, o *oproc) {
					for {
						l := o.next()
						if l == "ready" {
							return
						}
						if !strings.HasPrefix(l, "unsupported ") {
							t.Fatalf("allstate: %q before ready\n%s", l, o.diag())
						}
						t.Logf("allstate on this kernel: %s", l)
					}
				},
				prepare: func(t *testing.T, o *oproc) string {
					cycle++
					if mode == startZombie && cycle == 1 {
						kids := childList(o.pid)
						if len(kids) != 1 {
							t.Fatalf("children %q, want one zombie", kids)
						}
						zombie = strings.Fields(kids[0])[0]
					}
					checkedAt = time.Now()
					return o.ask("check", "state ")
				},
				prove: func(t *testing.T, o *oproc, known string) {
					got := o.ask("check", "state ")
					requireSameCheck(t, known, got, time.Since(checkedAt))
					if v := o.ask("verify", ""); v != "ok" {
						t.Errorf("allstate verify after thaw: %s", v)
					}
					if mode == startZombie && cycle == 2 {
						// The zombie, re-created twice, is reaped now.
						want := "wait ret=" + zombie + " errno=0 status=0x700"
						if w := o.ask("wait", "wait "); w != want {
							t.Errorf("allstate's zombie child (pid %s, exit 7) after two thaws: %q, want %q", zombie, w, want)
						}
						if w := o.ask("wait", "wait "); w != "wait ret=-1 errno=ECHILD status=0" {
							t.Errorf("allstate after reaping its only child: %q, want ECHILD", w)
						}
					}
					if mode == startShellLog {
						// fds 1 and 2 are one description of the log: the
						// lines written alternately to each are all there,
						// in order, none written over another.
						o.send("out 20")
						for i := 1; i <= 20; i++ {
							if got := o.next(); got != fmt.Sprintf("out %d", i) {
								t.Fatalf("log line %q, want \"out %d\" (fds 1 and 2 must share one offset)\n%s", got, i, o.diag())
							}
						}
						o.expect("out done 20")
					}
				},
				finish: exitWith(0),
			}
			oracleCycles(t, c, bin)
		})
	}
}

// requireSameCheck compares allstate's check lines from before the
// freeze and after the thaw: every item the same, but the timers
// (remaining/interval in ms), whose remaining time may only have run
// down, by no more than the time between the two checks.
func requireSameCheck(t *testing.T, before, after string, elapsed time.Duration) {
	t.Helper()
	parse := func(line string) (map[string]string, []string) {
		m := map[string]string{}
		var order []string
		for _, kv := range strings.Fields(strings.TrimPrefix(line, "state ")) {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
			order = append(order, k)
		}
		return m, order
	}
	b, order := parse(before)
	a, aorder := parse(after)
	timers := map[string]bool{"itreal": true, "itvirt": true, "itprof": true, "t1": true, "t3": true}
	var bad []string
	for _, k := range order {
		vb, va := b[k], a[k]
		if timers[k] {
			var rb, ib, ra, ia int64
			_, e1 := fmt.Sscanf(vb, "%d/%d", &rb, &ib)
			_, e2 := fmt.Sscanf(va, "%d/%d", &ra, &ia)
			slack := elapsed.Milliseconds() + 1000
			if e1 != nil || e2 != nil || ia != ib || ra <= 0 || ra > rb+10 || rb-ra > slack {
				bad = append(bad, fmt.Sprintf("%s: before %s, after %s (the remaining time may only run down, by at most %d ms; the interval must stay)", k, vb, va, slack))
			}
			continue
		}
		if va != vb {
			bad = append(bad, fmt.Sprintf("%s: before %q, after %q", k, vb, va))
		}
	}
	if len(aorder) != len(order) {
		bad = append(bad, fmt.Sprintf("items: before %v, after %v", order, aorder))
	}
	if len(bad) > 0 {
		t.Errorf("allstate's own view differs after thaw:\n  %s", strings.Join(bad, "\n  "))
	}
}

// TestOracleRules: each expected difference allows what its reason says
// and nothing more (no process needed).
func TestOracleRules(t *testing.T) {
	insn := uint64(2)
	if runtime.GOARCH == "arm64" {
		insn = 4
	}
	pc := uint64(0x7f0000001000)
	sys := func(nr string, pcv uint64) string {
		return fmt.Sprintf("%s 0x0 0x5555 0x1000 0x0 0x0 0x0 0x7ffd0000 %#x", nr, pcv)
	}
	out := func(pcv uint64) string { return fmt.Sprintf("-1 0x7ffd0000 %#x", pcv) }
	const pipeInfo, fileInfo = "pos: 0; flags: 00; mnt_id: 16; ino: ", "pos: 0; flags: 02; mnt_id: 27; ino: 77"
	for _, tc := range []struct {
		name     string
		key      string
		a, b     procState // the key's values; other keys as given
		expected bool
	}{
		{"pid", "status Pid", procState{"status Pid": "10"}, procState{"status Pid": "20"}, true},
		{"umask", "status Umask", procState{"status Umask": "0022"}, procState{"status Umask": "0027"}, false},
		{"pid absent", "status Pid", procState{"status Pid": "10"}, procState{}, false},
		{"SigQ count", "status SigQ", procState{"status SigQ": "1/100"}, procState{"status SigQ": "3/100"}, true},
		{"SigQ limit", "status SigQ", procState{"status SigQ": "1/100"}, procState{"status SigQ": "1/200"}, false},
		{"stdin pipe inode", "fd 0", procState{"fd 0": "pipe:[1]"}, procState{"fd 0": "pipe:[2]"}, true},
		{"stdin pipe info", "fd 0 info", procState{"fd 0": "pipe:[1]", "fd 0 info": pipeInfo + "1"},
			procState{"fd 0": "pipe:[2]", "fd 0 info": pipeInfo + "2"}, true},
		{"stdin pipe flags", "fd 0 info", procState{"fd 0": "pipe:[1]", "fd 0 info": pipeInfo + "1"},
			procState{"fd 0": "pipe:[2]", "fd 0 info": "pos: 0; flags: 04000; mnt_id: 16; ino: 2"}, false},
		{"stdin pipe to file", "fd 0", procState{"fd 0": "pipe:[1]"}, procState{"fd 0": "/tmp/x"}, false},
		{"stdout file", "fd 1 info", procState{"fd 1": "/tmp/x", "fd 1 info": fileInfo},
			procState{"fd 1": "/tmp/x", "fd 1 info": "pos: 9; flags: 02; mnt_id: 27; ino: 77"}, false},
		{"fd 3 pipe renamed", "fd 3", procState{"fd 3": "pipe:[1]"}, procState{"fd 3": "pipe:[2]"}, true},
		{"fd 3 pipe renamed, its fdinfo", "fd 3 info", procState{"fd 3": "pipe:[1]", "fd 3 info": "pos: 0; flags: 0; ino: 1"},
			procState{"fd 3": "pipe:[2]", "fd 3 info": "pos: 0; flags: 0; ino: 2"}, true},
		{"fd 3 pipe renamed, its flags differ", "fd 3 info", procState{"fd 3": "pipe:[1]", "fd 3 info": "pos: 0; flags: 0; ino: 1"},
			procState{"fd 3": "pipe:[2]", "fd 3 info": "pos: 0; flags: 04000; ino: 2"}, false},
		{"two ends of one pipe stay one pipe", "fd 4", procState{"fd 3": "pipe:[1]", "fd 4": "pipe:[1]"},
			procState{"fd 3": "pipe:[2]", "fd 4": "pipe:[2]"}, true},
		{"two ends of one pipe become two pipes", "fd 4", procState{"fd 3": "pipe:[1]", "fd 4": "pipe:[1]"},
			procState{"fd 3": "pipe:[2]", "fd 4": "pipe:[3]"}, false},
		{"two pipes become one", "fd 4", procState{"fd 3": "pipe:[1]", "fd 4": "pipe:[5]"},
			procState{"fd 3": "pipe:[2]", "fd 4": "pipe:[2]"}, false},
		{"a pipe becomes a socket", "fd 3", procState{"fd 3": "pipe:[1]"}, procState{"fd 3": "socket:[2]"}, false},
		{"fd 3 socket", "fd 3", procState{"fd 3": "socket:[1]"}, procState{"fd 3": "socket:[2]"}, true},
		{"fd 3 socket info", "fd 3 info", procState{"fd 3": "socket:[1]", "fd 3 info": "pos: 0; flags: 02; mnt_id: 9; ino: 1"},
			procState{"fd 3": "socket:[2]", "fd 3 info": "pos: 0; flags: 02; mnt_id: 9; ino: 2"}, true},
		{"fd 3 socket flags", "fd 3 info", procState{"fd 3": "socket:[1]", "fd 3 info": "pos: 0; flags: 04002; mnt_id: 9; ino: 1"},
			procState{"fd 3": "socket:[2]", "fd 3 info": "pos: 0; flags: 02; mnt_id: 9; ino: 2"}, false},
		{"fd 3 socket to pipe", "fd 3", procState{"fd 3": "socket:[1]"}, procState{"fd 3": "pipe:[2]"}, false},
		{"fd 255 copy of 0", "fd 255", procState{"fd 255": "/dev/pts/1", "fd 0": "/dev/pts/1", "fd shared": "0=1=2=255"},
			procState{"fd 255": "/dev/pts/4", "fd 0": "/dev/pts/4", "fd shared": "0=1=2=255"}, true},
		{"fd 255 no longer a copy", "fd 255", procState{"fd 255": "/dev/pts/1", "fd shared": "0=1=2=255"},
			procState{"fd 255": "/dev/pts/4", "fd shared": "0=1=2"}, false},
		{"shared anon inode", "map 1000-2000", procState{"map 1000-2000": "rw-s 00000000 00:01 5 /dev/zero (deleted) | VmFlags rd wr sh"},
			procState{"map 1000-2000": "rw-s 00000000 00:01 9 /dev/zero (deleted) | VmFlags rd wr sh"}, true},
		{"shared anon flags", "map 1000-2000", procState{"map 1000-2000": "rw-s 00000000 00:01 5 /dev/zero (deleted) | VmFlags rd wr sh"},
			procState{"map 1000-2000": "rw-s 00000000 00:01 9 /dev/zero (deleted) | VmFlags rd wr sh dc"}, false},
		{"file inode", "map 1000-2000", procState{"map 1000-2000": "r--s 00000000 fe:00 5 /tmp/f | VmFlags rd sh"},
			procState{"map 1000-2000": "r--s 00000000 fe:00 9 /tmp/f | VmFlags rd sh"}, false},
		{"memfd inode", "map 1000-2000", procState{"map 1000-2000": "rw-s 00000000 00:01 5 /memfd:a b (deleted) | VmFlags rd wr sh"},
			procState{"map 1000-2000": "rw-s 00000000 00:01 9 /memfd:a b (deleted) | VmFlags rd wr sh"}, true},
		{"memfd offset", "map 1000-2000", procState{"map 1000-2000": "rw-s 00000000 00:01 5 /memfd:a (deleted) | VmFlags rd wr sh"},
			procState{"map 1000-2000": "rw-s 00001000 00:01 9 /memfd:a (deleted) | VmFlags rd wr sh"}, false},
		{"memfd flags", "map 1000-2000", procState{"map 1000-2000": "r--s 00000000 00:01 5 /memfd:a (deleted) | VmFlags rd sh"},
			procState{"map 1000-2000": "r--s 00000000 00:01 9 /memfd:a (deleted) | VmFlags rd"}, false},
		{"deleted file inode", "map 1000-2000", procState{"map 1000-2000": "rw-s 00000000 fe:00 5 /tmp/f (deleted) | VmFlags rd wr sh"},
			procState{"map 1000-2000": "rw-s 00000000 fe:00 9 /tmp/f (deleted) | VmFlags rd wr sh"}, true},
		{"deleted file device", "map 1000-2000", procState{"map 1000-2000": "rw-s 00000000 fe:00 5 /tmp/f (deleted) | VmFlags rd wr sh"},
			procState{"map 1000-2000": "rw-s 00000000 fe:01 9 /tmp/f (deleted) | VmFlags rd wr sh"}, false},
		{"memfd fd info", "fd 3 info", procState{"fd 3": "/memfd:a (deleted)", "fd 3 info": "pos: 5; flags: 02000002; mnt_id: 16; ino: 5"},
			procState{"fd 3": "/memfd:a (deleted)", "fd 3 info": "pos: 5; flags: 02000002; mnt_id: 16; ino: 9"}, true},
		{"memfd fd pos", "fd 3 info", procState{"fd 3": "/memfd:a (deleted)", "fd 3 info": "pos: 5; flags: 02000002; mnt_id: 16; ino: 5"},
			procState{"fd 3": "/memfd:a (deleted)", "fd 3 info": "pos: 0; flags: 02000002; mnt_id: 16; ino: 9"}, false},
		{"file fd info", "fd 3 info", procState{"fd 3": "/tmp/f", "fd 3 info": "pos: 5; flags: 02; mnt_id: 16; ino: 5"},
			procState{"fd 3": "/tmp/f", "fd 3 info": "pos: 5; flags: 02; mnt_id: 16; ino: 9"}, false},
		{"relro ac", "map 1000-2000", procState{"map 1000-2000": "r--p 00001000 fe:00 5 /lib/x | VmFlags rd mr mw me ac | x"},
			procState{"map 1000-2000": "r--p 00001000 fe:00 5 /lib/x | VmFlags rd mr mw me | x"}, false},
		{"writable ac", "map 1000-2000", procState{"map 1000-2000": "rw-p 00000000 00:00 0 | VmFlags rd wr mr mw me ac | x"},
			procState{"map 1000-2000": "rw-p 00000000 00:00 0 | VmFlags rd wr mr mw me | x"}, false},
		{"ac gained", "map 1000-2000", procState{"map 1000-2000": "r--p 00000000 00:00 0 | VmFlags rd mr mw me | x"},
			procState{"map 1000-2000": "r--p 00000000 00:00 0 | VmFlags rd mr mw me ac | x"}, false},
		{"ac and more", "map 1000-2000", procState{"map 1000-2000": "r--p 00000000 00:00 0 | VmFlags rd mr mw me ac nh | x"},
			procState{"map 1000-2000": "r--p 00000000 00:00 0 | VmFlags rd mr mw me | x"}, false},
		{"PF_SUPERPRIV", "stat flags", procState{"stat flags": "0x400000"}, procState{"stat flags": "0x400100"}, true},
		{"PF_MCE_PROCESS", "stat flags", procState{"stat flags": "0x400000"}, procState{"stat flags": "0x400080"}, false},
		{"stopped, restarted", "syscall", procState{"syscall": sys("0", pc)}, procState{"syscall": out(pc - insn)}, true},
		{"stopped, returned", "syscall", procState{"syscall": sys("230", pc)}, procState{"syscall": out(pc)}, true},
		{"stopped, elsewhere", "syscall", procState{"syscall": sys("0", pc)}, procState{"syscall": out(pc - 2*insn)}, false},
		{"other call", "syscall", procState{"syscall": sys("0", pc)}, procState{"syscall": sys("1", pc)}, false},
		{"other stack", "syscall", procState{"syscall": sys("0", pc)}, procState{"syscall": "-1 0x7ffd0008 " + fmt.Sprintf("%#x", pc)}, false},
		{"children", "children", procState{"children": "12 Z exit 1792"}, procState{"children": ""}, false},
		{"eventfd id", "fd 5 info", procState{"fd 5": efdLink, "fd 5 info": efdInfo("7", "1")},
			procState{"fd 5": efdLink, "fd 5 info": efdInfo("7", "2")}, true},
		{"eventfd count", "fd 5 info", procState{"fd 5": efdLink, "fd 5 info": efdInfo("7", "1")},
			procState{"fd 5": efdLink, "fd 5 info": efdInfo("6", "2")}, false},
		{"eventfd id of a file", "fd 5 info", procState{"fd 5": "/tmp/x", "fd 5 info": efdInfo("7", "1")},
			procState{"fd 5": "/tmp/x", "fd 5 info": efdInfo("7", "2")}, false},
		{"timer runs on", "fd 5 info", procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("0", "(49, 100)", "(100, 0)")},
			procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("0", "(48, 900)", "(100, 0)")}, true},
		{"timer far off", "fd 5 info", procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("0", "(49, 100)", "(100, 0)")},
			procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("0", "(9, 100)", "(100, 0)")}, false},
		{"timer interval", "fd 5 info", procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("0", "(49, 100)", "(100, 0)")},
			procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("0", "(49, 100)", "(10, 0)")}, false},
		{"periodic timer ticks", "fd 5 info", procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("101", "(0, 0)", "(1, 0)")},
			procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("103", "(0, 0)", "(1, 0)")}, true},
		{"one-shot timer ticks", "fd 5 info", procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("1", "(0, 0)", "(0, 0)")},
			procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("0", "(0, 0)", "(0, 0)")}, false},
		{"one-shot timer disarmed", "fd 5 info", procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("0", "(0, 500)", "(0, 0)")},
			procState{"fd 5": tfdLink, "fd 5 info": tfdInfo("0", "(0, 0)", "(0, 0)")}, false},
		{"epoll lines in another order", "fd 7 info", epollState("ino: 9", epLine("5", "1111", "9"), epLine("6", "2222", "40e")),
			epollState("ino: 9", epLine("6", "2222", "40e"), epLine("5", "1111", "9")), true},
		{"epoll watching a renamed pipe", "fd 7 info", epollState("ino: 9", epLine("5", "1111", "9")),
			epollState("ino: 12", epLine("5", "1111", "c")), true},
		{"epoll ino not its fd's", "fd 7 info", epollState("ino: 9", epLine("5", "1111", "9")),
			epollState("ino: 12", epLine("5", "1111", "d")), false},
		{"epoll data", "fd 7 info", epollState("ino: 9", epLine("5", "1111", "9")),
			epollState("ino: 9", epLine("5", "1112", "9")), false},
		{"epoll item lost", "fd 7 info", epollState("ino: 9", epLine("5", "1111", "9"), epLine("6", "2222", "40e")),
			epollState("ino: 9", epLine("5", "1111", "9")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := compareStates(tc.a, tc.b)
			_, expected := d.expected[tc.key]
			unexpected := slices.Contains(d.unexpected, tc.key)
			if expected != tc.expected || unexpected == tc.expected {
				t.Errorf("%s: expected=%v unexpected=%v, want expected=%v\n  a %v\n  b %v", tc.key, expected, unexpected, tc.expected, tc.a, tc.b)
			}
		})
	}
}

const (
	efdLink = "anon_inode:[eventfd]"
	tfdLink = "anon_inode:[timerfd]"
)

func efdInfo(count, id string) string {
	return "pos: 0; flags: 02; mnt_id: 17; ino: 1038; eventfd-count: " + count + "; eventfd-id: " + id + "; eventfd-semaphore: 0"
}

func tfdInfo(ticks, value, interval string) string {
	return "pos: 0; flags: 02; mnt_id: 17; ino: 1038; clockid: 1; ticks: " + ticks + "; settime flags: 00; it_value: " +
		value + "; it_interval: " + interval
}

func epLine(fd, data, inoHex string) string {
	return "tfd: " + fd + " events: 19 data: " + data + " pos:0 ino:" + inoHex + " sdev:f"
}

// epollState: fd 7 an epoll with the lines, fd 5 a pipe with inode ino
// (its fdinfo's "ino: N" part), fd 6 an eventfd.
func epollState(ino string, lines ...string) procState {
	return procState{
		"fd 7": "anon_inode:[eventpoll]", "fd 7 info": strings.Join(append([]string{"pos: 0; flags: 02; mnt_id: 17; ino: 1038"}, lines...), "; "),
		"fd 5 info": "pos: 0; flags: 00; mnt_id: 16; " + ino, "fd 6 info": "pos: 0; flags: 02; mnt_id: 17; ino: 1038",
	}
}

// TestOracleSelfCheck: the oracle sees state changed behind a process's
// back (a limit, nice, the OOM adjustment), and lets none of it pass.
func TestOracleSelfCheck(t *testing.T) {
	t.Cleanup(func() { checkNoStrays(t) })
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	pid := p.pid()
	sigStop(t, pid)
	a := snapshot(t, pid)
	var rl unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = rl.Cur / 2
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &rl, nil); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, pid, 7); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte("300"), 0); err != nil {
		t.Fatal(err)
	}
	b := snapshot(t, pid)
	d := compareStates(a, b)
	want := []string{"limit Max open files", "oom_score_adj", "sched_getattr", "stat nice", "stat priority"}
	if !slices.Equal(d.unexpected, want) {
		t.Errorf("differences seen: %q, want %q\n%s", d.unexpected, want, d.report(a, b))
	}
	syscall.Kill(pid, syscall.SIGCONT)
	p.ask("still", "got still")
}
