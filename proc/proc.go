// Package proc reads what /proc tells a tracer about a process: its
// mappings (maps, smaps VmFlags, pagemap), its mm fields (stat), its
// descriptors (fd, fdinfo) and its auxiliary vector.
package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mapping is one line of /proc/PID/maps plus its smaps VmFlags.
type Mapping struct {
	Start, End uint64
	Perms      string // "rwxp"
	Offset     uint64
	Dev        string
	Inode      uint64
	Path       string
	VmFlags    map[string]bool
	// Rss and Swap are smaps' "Rss:" and "Swap:", in bytes: the pages
	// present, and those swapped out (Maps only).
	Rss, Swap uint64
}

// Read, Write, Exec, Shared decode Perms.
func (m Mapping) Read() bool   { return m.Perms[0] == 'r' }
func (m Mapping) Write() bool  { return m.Perms[1] == 'w' }
func (m Mapping) Exec() bool   { return m.Perms[2] == 'x' }
func (m Mapping) Shared() bool { return m.Perms[3] == 's' }

// Len is the mapping's size in bytes.
func (m Mapping) Len() uint64 { return m.End - m.Start }

func parseMapsLine(line string) (Mapping, error) {
	var m Mapping
	f := strings.Fields(line)
	if len(f) < 5 {
		return m, fmt.Errorf("bad maps line %q", line)
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return m, fmt.Errorf("bad maps range %q", f[0])
	}
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, err
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return m, err
	}
	if len(f[1]) != 4 {
		return m, fmt.Errorf("bad maps perms %q", f[1])
	}
	m.Perms = f[1]
	if m.Offset, err = strconv.ParseUint(f[2], 16, 64); err != nil {
		return m, err
	}
	m.Dev = f[3]
	if m.Inode, err = strconv.ParseUint(f[4], 10, 64); err != nil {
		return m, err
	}
	// The path is everything after the fifth column, spaces included.
	rest := line
	for i := 0; i < 5; i++ {
		rest = strings.TrimLeft(rest, " ")
		if j := strings.IndexByte(rest, ' '); j >= 0 {
			rest = rest[j:]
		} else {
			rest = ""
		}
	}
	m.Path = strings.TrimLeft(rest, " ")
	return m, nil
}

// Maps reads /proc/PID/smaps: the mappings with their VmFlags.
func Maps(pid int) ([]Mapping, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return nil, fmt.Errorf("read mappings of pid %d: %w", pid, err)
	}
	var out []Mapping
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.Contains(k, " ") && !strings.Contains(k, "-") {
			if k == "VmFlags" && len(out) > 0 {
				fl := map[string]bool{}
				for _, x := range strings.Fields(v) {
					fl[x] = true
				}
				out[len(out)-1].VmFlags = fl
			}
			if (k == "Rss" || k == "Swap") && len(out) > 0 {
				kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					return nil, fmt.Errorf("pid %d smaps: bad line %q", pid, line)
				}
				if k == "Rss" {
					out[len(out)-1].Rss = kb << 10
				} else {
					out[len(out)-1].Swap = kb << 10
				}
			}
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return nil, fmt.Errorf("pid %d smaps: %w", pid, err)
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// Pagemap bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	PagePresent = 1 << 63
	PageSwapped = 1 << 62
)

// Stat is what cryo needs of /proc/PID/stat.
type Stat struct {
	State                              byte
	PPid                               int
	Flags                              uint64
	NumThreads                         int
	StartCode, EndCode, StartStack     uint64
	StartData, EndData, StartBrk       uint64
	ArgStart, ArgEnd, EnvStart, EnvEnd uint64
	Nice                               int
	// ExitCode is a zombie's wait status (field 52, Linux 3.5+).
	ExitCode int
	// TtyNr is the controlling terminal's device number, 0 for none
	// (field 7, encoded as new_encode_dev: unix.Major and unix.Minor
	// decode it).
	TtyNr uint64
}

// ReadStat parses /proc/PID/stat (proc(5)).
func ReadStat(pid int) (Stat, error) {
	var st Stat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return st, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return parseStat(pid, s[i+1:])
}

func parseStat(pid int, rest string) (Stat, error) {
	var st Stat
	f := strings.Fields(rest)
	if len(f) < 49 {
		return st, fmt.Errorf("/proc/%d/stat has %d fields, want at least 51", pid, len(f)+2)
	}
	// f[k] is stat field k+3 (1-based, as numbered in proc(5)). A field
	// that does not parse is an error, never a silent zero.
	var bad error
	field := func(n int) uint64 {
		v, err := strconv.ParseUint(f[n-3], 10, 64)
		if err != nil && bad == nil {
			bad = fmt.Errorf("/proc/%d/stat field %d (%q): %w", pid, n, f[n-3], err)
		}
		return v
	}
	st.State = f[0][0]
	st.PPid = int(field(4))
	st.TtyNr = field(7)
	st.Flags = field(9)
	st.NumThreads = int(field(20))
	st.StartCode, st.EndCode, st.StartStack = field(26), field(27), field(28)
	st.StartData, st.EndData, st.StartBrk = field(45), field(46), field(47)
	st.ArgStart, st.ArgEnd = field(48), field(49)
	st.EnvStart, st.EnvEnd = field(50), field(51)
	nice, err := strconv.Atoi(f[19-3])
	if err != nil && bad == nil {
		bad = fmt.Errorf("/proc/%d/stat field 19 (%q): %w", pid, f[19-3], err)
	}
	st.Nice = nice
	if len(f) >= 52-2 {
		st.ExitCode = int(field(52))
	}
	return st, bad
}

// Status returns the "Key:" fields of /proc/PID/status.
func Status(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, nil
}

// Tasks lists the thread ids of pid.
func Tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, fmt.Errorf("list threads of pid %d: %w", pid, err)
	}
	var out []int
	for _, e := range ents {
		if t, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, t)
		}
	}
	return out, nil
}

// FDInfo is /proc/PID/fdinfo/N.
type FDInfo struct {
	Pos   int64
	Flags uint32
	MntID int
	// Locks are the "lock:" lines: the locks and leases held through
	// this open file (fs/locks.c, show_fd_locks).
	Locks []Lock
	// Raw is the whole text: each kind of file adds its own lines
	// (eventfd-count, tfd, sigmask, inotify, timerfd's clockid...).
	Raw string
}

// ReadFDInfo parses /proc/PID/fdinfo/N.
func ReadFDInfo(pid, fd int) (FDInfo, error) {
	var fi FDInfo
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", pid, fd))
	if err != nil {
		return fi, fmt.Errorf("read fdinfo of fd %d: %w", fd, err)
	}
	fi, err = parseFDInfo(string(b))
	if err != nil {
		return fi, fmt.Errorf("fdinfo of fd %d of pid %d: %w", fd, pid, err)
	}
	return fi, nil
}

func parseFDInfo(s string) (FDInfo, error) {
	fi := FDInfo{Raw: s}
	var havePos, haveFlags bool
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "pos":
			fi.Pos, err = strconv.ParseInt(v, 10, 64)
			havePos = true
		case "flags":
			var x uint64
			x, err = strconv.ParseUint(v, 8, 32)
			fi.Flags = uint32(x)
			haveFlags = true
		case "mnt_id":
			fi.MntID, err = strconv.Atoi(v)
		case "lock":
			var lk Lock
			if lk, err = ParseLock(v); err == nil {
				fi.Locks = append(fi.Locks, lk)
			}
		}
		if err != nil {
			return fi, fmt.Errorf("bad %q line %q: %w", k, l, err)
		}
	}
	if !havePos || !haveFlags {
		return fi, fmt.Errorf("no pos or flags line in %q", s)
	}
	return fi, nil
}

// Lock is one line of /proc/locks, or of an fdinfo's "lock:" lines:
//
//	1: POSIX  ADVISORY  WRITE 1234 00:1f:5678 0 EOF
//	2: FLOCK  ADVISORY  READ 1234 00:1f:5678 0 EOF
//	3: OFDLCK ADVISORY  WRITE -1 00:1f:5678 10 19
//	4: LEASE  ACTIVE    READ 1234 00:1f:5678 0 EOF
type Lock struct {
	Class string // POSIX, FLOCK, OFDLCK, LEASE, DELEG...
	Mode  string // ADVISORY, MANDATORY, ACTIVE, BREAKING, BREAKER...
	Type  string // READ, WRITE, UNLCK
	Pid   int
	Dev   string
	Ino   uint64
	Start int64
	End   int64 // -1: to the end of the file (EOF)
}

// ParseLock parses one lock line (with or without its leading "N:").
func ParseLock(line string) (Lock, error) {
	var lk Lock
	f := strings.Fields(line)
	if len(f) > 0 && strings.HasSuffix(f[0], ":") {
		f = f[1:]
	}
	// A blocked waiter's line starts with "->"; it is no lock held.
	if len(f) > 0 && f[0] == "->" {
		return lk, fmt.Errorf("a waiting lock, not a held one")
	}
	if len(f) < 7 {
		return lk, fmt.Errorf("want 7 fields, have %d", len(f))
	}
	lk.Class, lk.Mode, lk.Type = f[0], f[1], f[2]
	var err error
	if lk.Pid, err = strconv.Atoi(f[3]); err != nil {
		return lk, err
	}
	i := strings.LastIndexByte(f[4], ':')
	if i < 0 {
		return lk, fmt.Errorf("bad device:inode %q", f[4])
	}
	lk.Dev = f[4][:i]
	if lk.Ino, err = strconv.ParseUint(f[4][i+1:], 10, 64); err != nil {
		return lk, err
	}
	if lk.Start, err = strconv.ParseInt(f[5], 10, 64); err != nil {
		return lk, err
	}
	if f[6] == "EOF" {
		lk.End = -1
	} else if lk.End, err = strconv.ParseInt(f[6], 10, 64); err != nil {
		return lk, err
	}
	return lk, nil
}

// FDs lists the open descriptor numbers of pid.
func FDs(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, fmt.Errorf("list fds of pid %d: %w", pid, err)
	}
	var out []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// CPUFlags returns the feature flags of the first CPU in /proc/cpuinfo
// ("flags" on x86, "Features" on arm64).
func CPUFlags() ([]string, error) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if k == "flags" || k == "Features" {
			return strings.Fields(v), nil
		}
	}
	return nil, errors.New("/proc/cpuinfo has no flags or Features line")
}

// Child is a child process and its state letter from /proc/PID/stat
// ('Z' for a zombie).
type Child struct {
	Pid      int
	State    byte
	ExitCode int
}

// ChildrenStates lists pid's children with their states. A child that
// vanishes while it is looked at (reaped meanwhile) is left out.
func ChildrenStates(pid int) ([]Child, error) {
	kids, err := Children(pid)
	if err != nil {
		return nil, err
	}
	var out []Child
	for _, c := range kids {
		n, err := strconv.Atoi(c)
		if err != nil {
			return nil, fmt.Errorf("children of pid %d: bad pid %q", pid, c)
		}
		st, err := ReadStat(n)
		if err != nil {
			if _, serr := os.Stat(fmt.Sprintf("/proc/%d", n)); serr != nil {
				continue // reaped meanwhile
			}
			return nil, err
		}
		out = append(out, Child{Pid: n, State: st.State, ExitCode: st.ExitCode})
	}
	return out, nil
}

// Children lists the pids of pid's children (zombies included), from
// /proc/PID/task/*/children, or by scanning /proc where that file is
// missing (CONFIG_PROC_CHILDREN unset).
func Children(pid int) ([]string, error) {
	tids, err := Tasks(pid)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range tids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, t))
		if errors.Is(err, os.ErrNotExist) {
			if _, serr := os.Stat(fmt.Sprintf("/proc/%d/task/%d", pid, t)); serr == nil {
				return scanChildren(pid)
			}
			continue // the thread exited meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("children of pid %d: %w", pid, err)
		}
		out = append(out, strings.Fields(string(b))...)
	}
	return out, nil
}

// scanChildren finds pid's children by their PPid in /proc/*/stat.
func scanChildren(pid int) ([]string, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("children of pid %d: %w", pid, err)
	}
	var out []string
	for _, e := range ents {
		c, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// A process that exits while /proc is scanned is nobody's
		// child any more.
		if st, err := ReadStat(c); err == nil && st.PPid == pid {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Timer is one POSIX timer of /proc/PID/timers (fs/proc/base.c,
// show_timer):
//
//	ID: 0
//	signal: 14/0000000000000000
//	notify: signal/pid.1234
//	ClockID: 1
type Timer struct {
	ID     int
	Signo  int
	Sigval uint64
	Notify string // signal, thread, none
	// NotifyTid says the notification targets a thread (SIGEV_THREAD_ID:
	// "signal/tid.N"), NotifyPid the pid or tid it names.
	NotifyTid bool
	NotifyPid int
	Clock     int
}

// ParseTimers parses the contents of /proc/PID/timers.
func ParseTimers(s string) ([]Timer, error) {
	var out []Timer
	var cur *Timer
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		var err error
		switch k {
		case "ID":
			out = append(out, Timer{})
			cur = &out[len(out)-1]
			cur.ID, err = strconv.Atoi(v)
		case "signal", "notify", "ClockID":
			if cur == nil {
				return nil, fmt.Errorf("timers: %q before any ID line", l)
			}
			switch k {
			case "signal":
				sig, val, ok := strings.Cut(v, "/")
				if !ok {
					return nil, fmt.Errorf("timers: bad signal line %q", l)
				}
				if cur.Signo, err = strconv.Atoi(sig); err == nil {
					cur.Sigval, err = strconv.ParseUint(val, 16, 64)
				}
			case "notify":
				how, who, ok := strings.Cut(v, "/")
				kind, n, ok2 := strings.Cut(who, ".")
				if !ok || !ok2 || (kind != "pid" && kind != "tid") {
					return nil, fmt.Errorf("timers: bad notify line %q", l)
				}
				cur.Notify, cur.NotifyTid = how, kind == "tid"
				cur.NotifyPid, err = strconv.Atoi(n)
			case "ClockID":
				cur.Clock, err = strconv.Atoi(v)
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("timers: bad line %q: %w", l, err)
		}
	}
	return out, nil
}
