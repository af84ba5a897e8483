package proc

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// Lines as Linux 6.18 prints them: fs/proc/fd.c (seq_show) and fs/locks.c
// (show_fd_locks, lock_get_status) for fdinfo, fs/proc/base.c
// (show_timer) for timers, fs/proc/array.c (do_task_stat) for stat.

func TestParseFDInfo(t *testing.T) {
	const reg = "pos:\t0\nflags:\t0100002\nmnt_id:\t27\nino:\t9986482\n"
	for _, tc := range []struct {
		name string
		text string
		want FDInfo
	}{
		{"regular file", reg,
			FDInfo{Pos: 0, Flags: 0100002, MntID: 27}},
		{"seeked, O_CLOEXEC|O_APPEND|O_WRONLY",
			"pos:\t1048576\nflags:\t02102001\nmnt_id:\t31\nino:\t12\n",
			FDInfo{Pos: 1048576, Flags: 02102001, MntID: 31}},
		{"flock", reg + "lock:\t1: FLOCK  ADVISORY  READ 411 fe:00:9986482 0 EOF\n",
			FDInfo{Flags: 0100002, MntID: 27, Locks: []Lock{
				{Class: "FLOCK", Mode: "ADVISORY", Type: "READ", Pid: 411, Dev: "fe:00", Ino: 9986482, Start: 0, End: -1}}}},
		{"flock and an OFD lock on one description",
			reg + "lock:\t1: FLOCK  ADVISORY  WRITE 411 fe:00:9986482 0 EOF\n" +
				"lock:\t2: OFDLCK ADVISORY  WRITE -1 fe:00:9986482 10 19\n",
			FDInfo{Flags: 0100002, MntID: 27, Locks: []Lock{
				{Class: "FLOCK", Mode: "ADVISORY", Type: "WRITE", Pid: 411, Dev: "fe:00", Ino: 9986482, Start: 0, End: -1},
				{Class: "OFDLCK", Mode: "ADVISORY", Type: "WRITE", Pid: -1, Dev: "fe:00", Ino: 9986482, Start: 10, End: 19}}}},
		// eventfd_show_fdinfo: lines of its own, ignored.
		{"eventfd",
			"pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\neventfd-count:                0\neventfd-id: 3\neventfd-semaphore: 0\n",
			FDInfo{Flags: 02, MntID: 16}},
		// ep_show_fdinfo: a "pos:" inside a tfd line is the target's,
		// not this file's.
		{"epoll",
			"pos:\t0\nflags:\t02\nmnt_id:\t16\nino:\t1057\ntfd:        5 events:       19 data:                5  pos:77 ino:1f sdev:d\n",
			FDInfo{Flags: 02, MntID: 16}},
		{"inotify",
			"pos:\t0\nflags:\t02004000\nmnt_id:\t16\nino:\t1057\ninotify wd:1 ino:e8a sdev:d mask:fce ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:8a0e000000000000\n",
			FDInfo{Flags: 02004000, MntID: 16}},
		{"O_PATH directory", "pos:\t0\nflags:\t010000000\nmnt_id:\t27\nino:\t9986433\n",
			FDInfo{Flags: 010000000, MntID: 27}},
		{"no trailing newline", "pos:\t5\nflags:\t02",
			FDInfo{Pos: 5, Flags: 02}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFDInfo(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if got.Raw != tc.text {
				t.Errorf("Raw %q, want the whole text", got.Raw)
			}
			got.Raw = ""
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// A line that does not parse is an error that names it, never a zero.
func TestParseFDInfoMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		bad  string // in the error: the offending text
	}{
		{"empty", "", "no pos or flags"},
		{"no flags line", "pos:\t0\nmnt_id:\t27\n", "no pos or flags"},
		{"no pos line", "flags:\t02\nmnt_id:\t27\n", "no pos or flags"},
		{"pos not a number", "pos:\tx\nflags:\t02\n", `parsing "x"`},
		{"pos empty", "pos:\nflags:\t02\n", `"pos"`},
		{"flags in hex", "pos:\t0\nflags:\t0x8002\n", "0x8002"},
		{"flags not octal", "pos:\t0\nflags:\t0100009\n", "0100009"},
		{"flags beyond 32 bits", "pos:\t0\nflags:\t077777777777\n", "077777777777"},
		{"mnt_id not a number", "pos:\t0\nflags:\t02\nmnt_id:\tfe\n", `parsing "fe"`},
		{"lock with a bad inode", "pos:\t0\nflags:\t02\nlock:\t1: FLOCK  ADVISORY  READ 411 fe:00:x 0 EOF\n", "fe:00:x"},
		{"lock cut short", "pos:\t0\nflags:\t02\nlock:\t1: FLOCK  ADVISORY  READ 411\n", "FLOCK  ADVISORY  READ 411"},
		{"lock of a waiter", "pos:\t0\nflags:\t02\nlock:\t1: -> FLOCK  ADVISORY  WRITE 412 fe:00:9 0 EOF\n", "->"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseFDInfo(tc.text)
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			if !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("error %q does not mention %q", err, tc.bad)
			}
		})
	}
}

func TestParseLock(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		want Lock
	}{
		{"POSIX from /proc/locks", "1: POSIX  ADVISORY  READ 411 fe:00:9986498 5 EOF",
			Lock{Class: "POSIX", Mode: "ADVISORY", Type: "READ", Pid: 411, Dev: "fe:00", Ino: 9986498, Start: 5, End: -1}},
		{"without the N:", "POSIX  ADVISORY  WRITE 411 fe:00:9986498 0 99",
			Lock{Class: "POSIX", Mode: "ADVISORY", Type: "WRITE", Pid: 411, Dev: "fe:00", Ino: 9986498, Start: 0, End: 99}},
		{"OFD lock, no pid", "2: OFDLCK ADVISORY  WRITE -1 fe:00:9986482 10 19",
			Lock{Class: "OFDLCK", Mode: "ADVISORY", Type: "WRITE", Pid: -1, Dev: "fe:00", Ino: 9986482, Start: 10, End: 19}},
		{"lease", "3: LEASE  ACTIVE    READ 411 00:1f:5678 0 EOF",
			Lock{Class: "LEASE", Mode: "ACTIVE", Type: "READ", Pid: 411, Dev: "00:1f", Ino: 5678, Start: 0, End: -1}},
		{"lease being broken", "3: LEASE  BREAKING  UNLCK 411 00:1f:5678 0 EOF",
			Lock{Class: "LEASE", Mode: "BREAKING", Type: "UNLCK", Pid: 411, Dev: "00:1f", Ino: 5678, Start: 0, End: -1}},
		{"a major beyond 255", "12: DELEG  ACTIVE    READ 7 103:02:77 0 EOF",
			Lock{Class: "DELEG", Mode: "ACTIVE", Type: "READ", Pid: 7, Dev: "103:02", Ino: 77, Start: 0, End: -1}},
		{"offsets beyond 4 GiB", "1: POSIX  ADVISORY  WRITE 411 fe:00:9 4294967296 9223372036854775806",
			Lock{Class: "POSIX", Mode: "ADVISORY", Type: "WRITE", Pid: 411, Dev: "fe:00", Ino: 9, Start: 1 << 32, End: 1<<63 - 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLock(tc.line)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseLockMalformed(t *testing.T) {
	for _, tc := range []struct{ name, line, err string }{
		{"empty", "", "want 7 fields, have 0"},
		{"only the number", "1:", "want 7 fields, have 0"},
		{"six fields", "1: POSIX  ADVISORY  WRITE 411 fe:00:9 0", "want 7 fields, have 6"},
		{"a waiter", "1: -> POSIX  ADVISORY  WRITE 412 fe:00:9 0 EOF", "a waiting lock"},
		{"pid not a number", "1: POSIX  ADVISORY  WRITE x fe:00:9 0 EOF", `parsing "x"`},
		{"no device:inode", "1: POSIX  ADVISORY  WRITE 411 fe009 0 EOF", `bad device:inode "fe009"`},
		{"inode not a number", "1: POSIX  ADVISORY  WRITE 411 fe:00:x 0 EOF", `parsing "x"`},
		{"negative inode", "1: POSIX  ADVISORY  WRITE 411 fe:00:-9 0 EOF", `parsing "-9"`},
		{"start not a number", "1: POSIX  ADVISORY  WRITE 411 fe:00:9 x EOF", `parsing "x"`},
		{"end not a number", "1: POSIX  ADVISORY  WRITE 411 fe:00:9 0 eof", `parsing "eof"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLock(tc.line)
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q, want it to say %q", err, tc.err)
			}
		})
	}
}

func TestParseTimers(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want []Timer
	}{
		{"none", "", nil},
		// Four timers of one process, newest first as the kernel lists
		// them: SIGEV_THREAD (raw, not glibc's), SIGEV_NONE,
		// SIGEV_THREAD_ID ("signal/tid"), SIGEV_SIGNAL.
		{"four", "ID: 3\nsignal: 14/0000000000000000\nnotify: thread/pid.411\nClockID: 1\n" +
			"ID: 2\nsignal: 12/0000000000001234\nnotify: none/pid.411\nClockID: 7\n" +
			"ID: 1\nsignal: 12/0000000000001234\nnotify: signal/tid.412\nClockID: 0\n" +
			"ID: 0\nsignal: 10/00007ffc0ba1d2c8\nnotify: signal/pid.411\nClockID: 1\n",
			[]Timer{
				{ID: 3, Signo: 14, Sigval: 0, Notify: "thread", NotifyPid: 411, Clock: 1},
				{ID: 2, Signo: 12, Sigval: 0x1234, Notify: "none", NotifyPid: 411, Clock: 7},
				{ID: 1, Signo: 12, Sigval: 0x1234, Notify: "signal", NotifyTid: true, NotifyPid: 412, Clock: 0},
				{ID: 0, Signo: 10, Sigval: 0x7ffc0ba1d2c8, Notify: "signal", NotifyPid: 411, Clock: 1},
			}},
		// The CPU clock of a process: MAKE_PROCESS_CPUCLOCK(pid, 2).
		{"process CPU clock", "ID: 0\nsignal: 14/ffffffffffffffff\nnotify: signal/pid.411\nClockID: -3294\n",
			[]Timer{{ID: 0, Signo: 14, Sigval: ^uint64(0), Notify: "signal", NotifyPid: 411, Clock: -3294}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTimers(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseTimersMalformed(t *testing.T) {
	const good = "ID: 0\nsignal: 14/0000000000000000\nnotify: signal/pid.411\nClockID: 1\n"
	for _, tc := range []struct{ name, text string }{
		{"ID not a number", strings.Replace(good, "ID: 0", "ID: x", 1)},
		{"ID empty", strings.Replace(good, "ID: 0", "ID:", 1)},
		{"signal before any ID", "signal: 14/0000000000000000\n" + good},
		{"signal without value", strings.Replace(good, "14/0000000000000000", "14", 1)},
		{"signal not a number", strings.Replace(good, "14/", "x/", 1)},
		{"sigval not hex", strings.Replace(good, "/0000000000000000", "/zz", 1)},
		{"notify without pid", strings.Replace(good, "signal/pid.411", "signal", 1)},
		{"notify without number", strings.Replace(good, "signal/pid.411", "signal/pid", 1)},
		{"notify pid not a number", strings.Replace(good, "pid.411", "pid.x", 1)},
		{"ClockID not a number", strings.Replace(good, "ClockID: 1", "ClockID: x", 1)},
		{"a bad second timer", good + strings.Replace(good, "ClockID: 1", "ClockID: one", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := ParseTimers(tc.text); err == nil {
				t.Errorf("no error; got %+v", got)
			}
		})
	}
}

// numberedStat is a stat line after the comm in which field k (1-based,
// as proc(5) numbers them) is k, but the state (S) and the nice value
// (-19): a field read from the wrong place shows.
func numberedStat(last int) string {
	var f []string
	for k := 3; k <= last; k++ {
		switch k {
		case 3:
			f = append(f, "S")
		case 19:
			f = append(f, "-19")
		default:
			f = append(f, strconv.Itoa(k))
		}
	}
	return " " + strings.Join(f, " ")
}

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		rest string // after the comm's ')'
		want Stat
	}{
		{"numbered fields", numberedStat(52), Stat{State: 'S', PPid: 4, Flags: 9, NumThreads: 20,
			StartCode: 26, EndCode: 27, StartStack: 28, StartData: 45, EndData: 46, StartBrk: 47,
			ArgStart: 48, ArgEnd: 49, EnvStart: 50, EnvEnd: 51, Nice: -19, ExitCode: 52, TtyNr: 7}},
		// A kernel before 3.5 stops at env_end (field 51): no exit code.
		{"without exit_code", numberedStat(51), Stat{State: 'S', PPid: 4, Flags: 9, NumThreads: 20,
			StartCode: 26, EndCode: 27, StartStack: 28, StartData: 45, EndData: 46, StartBrk: 47,
			ArgStart: 48, ArgEnd: 49, EnvStart: 50, EnvEnd: 51, Nice: -19, TtyNr: 7}},
		{"sleep under nice -5",
			" S 1 4296 28801 0 -1 4194560 222 0 1 0 0 0 0 0 15 -5 1 0 172207 2990080 414 18446744073709551615 94846908477440 94846908495369 140726655813072 0 0 0 0 6 0 1 0 0 17 0 0 0 0 0 0 94846908509456 94846908510720 94847484919808 140726655818440 140726655818448 140726655818448 140726655819753 0",
			Stat{State: 'S', PPid: 1, Flags: 4194560, NumThreads: 1,
				StartCode: 94846908477440, EndCode: 94846908495369, StartStack: 140726655813072,
				StartData: 94846908509456, EndData: 94846908510720, StartBrk: 94847484919808,
				ArgStart: 140726655818440, ArgEnd: 140726655818448, EnvStart: 140726655818448, EnvEnd: 140726655819753,
				Nice: -5}},
		// A zombie that exited with status 1: no mm, exit_code 1<<8.
		{"zombie",
			" Z 4299 4296 28801 0 -1 4227084 70 0 1 0 0 0 0 0 20 0 1 0 172063 0 0 18446744073709551615 0 0 0 0 0 0 0 6 0 1 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 256",
			Stat{State: 'Z', PPid: 4299, Flags: 4227084, NumThreads: 1, ExitCode: 256}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(42, tc.rest)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseStatMalformed(t *testing.T) {
	// field replaces stat field k of a numbered line with v.
	field := func(k int, v string) string {
		f := strings.Fields(numberedStat(52))
		f[k-3] = v
		return " " + strings.Join(f, " ")
	}
	for _, tc := range []struct {
		name string
		rest string
		bad  string // in the error
	}{
		{"empty", "", "has 2 fields"},
		{"cut at field 50", numberedStat(50), "has 50 fields"},
		{"ppid not a number", field(4, "x"), "field 4"},
		{"tty_nr negative", field(7, "-1"), "field 7"},
		{"flags negative", field(9, "-1"), "field 9"},
		{"num_threads not a number", field(20, "one"), "field 20"},
		{"nice not a number", field(19, "n"), "field 19"},
		{"start_code in hex", field(26, "0x5555"), "field 26"},
		{"start_stack overflows", field(28, "18446744073709551616"), "field 28"},
		{"start_brk not a number", field(47, "?"), "field 47"},
		{"env_end not a number", field(51, "-"), "field 51"},
		{"exit_code not a number", field(52, "x"), "field 52"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseStat(42, tc.rest)
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			if !strings.Contains(err.Error(), tc.bad) || !strings.Contains(err.Error(), "/proc/42/stat") {
				t.Errorf("error %q does not name /proc/42/stat and %q", err, tc.bad)
			}
		})
	}
}
