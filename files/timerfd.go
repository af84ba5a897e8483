package files

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// FileTimerfd: a timerfd_create(2) timer: its clock, its settime flags
// (TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET), the time left and the
// interval, and the expirations not read yet.
//
// Freeze asks timerfd_gettime on its copy, never read (which would take
// the expirations). fdinfo alone is not enough (fs/timerfd.c): a periodic
// timer that expired stays expired, showing it_value 0 and ticks 1, until
// a read or timerfd_gettime moves it on to its next expiry, counting the
// periods that went by into its ticks. timerfd_gettime does that on the
// target's own timer: what a read would return is the same after it, the
// next expiry too; only fdinfo's "ticks" now counts what it left for
// later. The ticks are read from fdinfo after it.
//
// At thaw:
//   - a relative timer goes on with the time it had left at the freeze:
//     the time the process spent frozen does not count (as for its POSIX
//     timers and interval timers);
//   - an absolute timer (TFD_TIMER_ABSTIME) keeps its deadline on its
//     clock: a CLOCK_REALTIME deadline passed while frozen fires at once
//     (with the periods missed, as ticks). CLOCK_MONOTONIC and
//     CLOCK_BOOTTIME start again at each boot: thawed after a reboot, the
//     deadline is the same number on the new clock, as the process's own
//     timestamps of that clock are;
//   - the expirations not read are set again with TFD_IOC_SET_TICKS,
//     which needs CONFIG_CHECKPOINT_RESTORE in the thawing kernel (a thaw
//     without it says so), plus those of an absolute deadline passed
//     while frozen. An expiry due in the microseconds between the two
//     may be lost;
//   - whether a TFD_TIMER_CANCEL_ON_SET timer was already canceled by a
//     clock change is not shown by the kernel: the copy is not.
const FileTimerfd image.FileKind = "timerfd"

type timerfdPayload struct {
	Clock int `json:"clock"`
	// SettimeFlags are TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET.
	SettimeFlags int `json:"settime_flags"`
	// ValueNs is the time left at the freeze, 0 if disarmed.
	ValueNs    int64 `json:"value_ns"`
	IntervalNs int64 `json:"interval_ns"`
	// DeadlineNs, for an absolute timer that is armed, is its next
	// expiry on Clock.
	DeadlineNs int64 `json:"deadline_ns,omitempty"`
	// Ticks are the expirations not read yet.
	Ticks uint64 `json:"ticks,omitempty"`
}

var timerfdKind = kind{
	name:  FileTimerfd,
	match: func(d *Dumper, o *Object) bool { return o.Link == "anon_inode:[timerfd]" },
	dump:  dumpTimerfd,
	open:  openTimerfd,
}

func dumpTimerfd(d *Dumper, o *Object, f *image.File) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("fd %d is a timerfd (%s): %s", o.Num, o.Link, fmt.Sprintf(format, args...))
	}
	kv := infoFields(o.Info.Raw)
	var p timerfdPayload
	var err error
	if p.Clock, err = strconv.Atoi(kv["clockid"]); err != nil {
		return fail("clockid %q in its fdinfo: %v", kv["clockid"], err)
	}
	switch p.Clock {
	case unix.CLOCK_REALTIME, unix.CLOCK_MONOTONIC, unix.CLOCK_BOOTTIME, unix.CLOCK_REALTIME_ALARM, unix.CLOCK_BOOTTIME_ALARM:
	default:
		return fail("clock %d: unsupported", p.Clock)
	}
	sf, err := strconv.ParseInt(kv["settime flags"], 8, 32)
	if err != nil {
		return fail("settime flags %q in its fdinfo: %v", kv["settime flags"], err)
	}
	p.SettimeFlags = int(sf)
	if p.SettimeFlags&^(unix.TFD_TIMER_ABSTIME|unix.TFD_TIMER_CANCEL_ON_SET) != 0 {
		return fail("settime flags %#o: unsupported", p.SettimeFlags)
	}
	// gettime, fdinfo's ticks, gettime again: if the timer expired in
	// between, once more.
	for try := 0; ; try++ {
		var a, b unix.ItimerSpec
		var now unix.Timespec
		if err := unix.ClockGettime(int32(p.Clock), &now); err != nil {
			return fail("clock_gettime(%d): %v", p.Clock, err)
		}
		if err := unix.TimerfdGettime(int(o.Local.Fd()), &a); err != nil {
			return fail("timerfd_gettime: %v", err)
		}
		info, err := proc.ReadFDInfo(d.Pid, o.Num)
		if err != nil {
			return err
		}
		if err := unix.TimerfdGettime(int(o.Local.Fd()), &b); err != nil {
			return fail("timerfd_gettime: %v", err)
		}
		t := infoFields(info.Raw)["ticks"]
		ticks, err := strconv.ParseUint(t, 10, 64)
		if err != nil {
			return fail("ticks %q in its fdinfo: %v", t, err)
		}
		// Expired in between: a periodic timer's time left grew back,
		// a one-shot's fell to 0.
		moved := b.Value.Nano() > a.Value.Nano() || (a.Value.Nano() > 0 && b.Value.Nano() == 0)
		if moved && try < 10 {
			continue
		}
		p.ValueNs, p.IntervalNs, p.Ticks = a.Value.Nano(), a.Interval.Nano(), ticks
		if p.SettimeFlags&unix.TFD_TIMER_ABSTIME != 0 && p.ValueNs > 0 {
			p.DeadlineNs = now.Nano() + p.ValueNs
		}
		break
	}
	return setPayload(f, &p)
}

func openTimerfd(r *Restorer, f *image.File) (*os.File, error) {
	var p timerfdPayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	fd, err := unix.TimerfdCreate(p.Clock, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("fd %d: timerfd_create(clock %d): %w", n, p.Clock, err)
	}
	lf := os.NewFile(uintptr(fd), f.Path)
	if err := setTimerfd(lf, &p); err != nil {
		lf.Close()
		return nil, fmt.Errorf("fd %d: %w", n, err)
	}
	if err := setStatusFlags(lf, f.Flags); err != nil {
		lf.Close()
		return nil, fmt.Errorf("fd %d: %w", n, err)
	}
	return lf, nil
}

// setTimerfd arms the new timer lf as p says and gives it its ticks.
func setTimerfd(lf *os.File, p *timerfdPayload) error {
	its := unix.ItimerSpec{Interval: unix.NsecToTimespec(p.IntervalNs)}
	switch {
	case p.ValueNs == 0:
		// disarmed (its interval is kept all the same)
	case p.SettimeFlags&unix.TFD_TIMER_ABSTIME != 0:
		its.Value = unix.NsecToTimespec(p.DeadlineNs)
	default:
		its.Value = unix.NsecToTimespec(p.ValueNs)
	}
	if err := unix.TimerfdSettime(int(lf.Fd()), p.SettimeFlags, &its, nil); err != nil {
		return fmt.Errorf("timerfd_settime(flags %#o, %d ns, every %d ns): %w", p.SettimeFlags, its.Value.Nano(), p.IntervalNs, err)
	}
	if p.Ticks == 0 {
		return nil
	}
	// An absolute deadline that passed while frozen has fired already
	// (its periods missed counted by the read): those expirations add
	// to the ones the process had not read. A read of the new timer
	// (non-blocking) takes them, TFD_IOC_SET_TICKS sets the sum.
	ticks := p.Ticks
	var b [8]byte
	if n, err := unix.Read(int(lf.Fd()), b[:]); err == nil && n == 8 {
		ticks += binary.NativeEndian.Uint64(b[:])
	} else if err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("read the new timer: %w", err)
	}
	if err := setTicks(lf, ticks); err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("the timer has %d expirations not read yet, and this kernel cannot set them (TFD_IOC_SET_TICKS needs CONFIG_CHECKPOINT_RESTORE)", p.Ticks)
		}
		return fmt.Errorf("TFD_IOC_SET_TICKS %d: %w", p.Ticks, err)
	}
	return nil
}
