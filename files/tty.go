package files

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

// FileTTY: a terminal on a fd that is not one of 0-2's (those are std.go's).
// Three roles, told apart at freeze by the device the fd reaches (its
// rdev; for /dev/tty and /dev/console the terminal behind it, TIOCGDEV):
//
//   - "ctty": the process's controlling terminal (/proc/PID/stat tty_nr),
//     as /dev/tty or by its own path, like a program that keeps /dev/tty on
//     fd 5 with 0-2 redirected. A thaw is exec semantics, so the process
//     is in the thaw's session: this fd is connected to the thaw's
//     controlling terminal, with its own access mode and status flags, and
//     the terminal gets the modes the process had set (as on 0-2). A
//     /dev/tty fd is opened again as /dev/tty by the thawing process
//     itself (an injected openat: only a process in the session can);
//     another is a new open of whichever of the thaw's fds is its
//     controlling terminal (/dev/tty when none is). A thaw without a
//     controlling terminal fails, naming the fd (thaw --fd N=PATH hands
//     one in).
//
//   - "master" and "slave": a pseudo-terminal pair the process holds
//     (/dev/ptmx and /dev/pts/N, like script or a terminal emulator). The
//     thaw makes a NEW pair (another N: ptsname(3) names the new slave)
//     with the slave's modes (termios), window size, packet mode, lock
//     and exclusive state; each slave description the process had is
//     opened again on it (TIOCGPTPEER) with its access mode. A master
//     whose slave was opened and closed again (reads fail with EIO) gets
//     a slave opened and closed too. Bytes queued in the pair cannot be
//     read without being taken (a terminal has no peek), so a pair with
//     unread bytes either way (FIONREAD after a poll, which moves what the
//     kernel still holds in its flip buffers into the line discipline)
//     is refused, naming the fd and the count: freeze again once the
//     process has read them. Not seen: a partial line typed into a slave
//     in canonical mode (the kernel counts only complete lines), and
//     input for a slave that is closed (asking would mean opening it,
//     which changes the master); both are lost. Nor carried: a packet-mode
//     status byte not yet read (TIOCPKT_FLUSHWRITE...), output stopped by
//     ^S (the new pair flows), the slave's foreground process group and
//     session. Other processes that hold the old slave (its session, when
//     it is someone's controlling terminal, is noted at freeze) keep the
//     old pair; the new one is the thawed process's alone. A program that
//     remembered the old slave's name (a string in its memory) keeps it.
//
//     A slave whose master is outside the process (and which is not its
//     controlling terminal) is an external peer: the thaw gives it a new
//     terminal whose master is gone, that is hung up (reads end, writes
//     fail with EIO), unless thaw --fd hands one in; freeze says so. So
//     is any terminal already hung up beyond 0-2 (its master closed: a
//     daemon whose terminal window closed; /dev/tty of a session that
//     ended), which answers no ioctl (its poll says POLLERR). It is
//     never reopened at its old path: that number may be someone else's
//     terminal by then.
//
// Any other terminal (a serial line, a virtual console, another session's
// terminal that is not a pty) is refused with one line naming the fd and
// the device: what is on its other side cannot be known or rebuilt.
const FileTTY image.FileKind = "tty"

// Roles of a FileTTY.
const (
	ttyCtty   = "ctty"
	ttyMaster = "master"
	ttySlave  = "slave"
)

// winsize is struct winsize.
type winsize struct {
	Rows   uint16 `json:"rows"`
	Cols   uint16 `json:"cols"`
	Xpixel uint16 `json:"xpixel,omitempty"`
	Ypixel uint16 `json:"ypixel,omitempty"`
}

type ttyPayload struct {
	Role string `json:"role"`
	// Pty is the number of the pair (master and slave: /dev/pts/Pty);
	// negative for a hung-up terminal (-1-fd: one pair each).
	Pty int `json:"pty,omitempty"`
	// DevTTY: a ctty opened as /dev/tty.
	DevTTY bool `json:"dev_tty,omitempty"`
	// PeerOutside: a slave whose master the process does not hold.
	PeerOutside bool `json:"peer_outside,omitempty"`
	// Termios is the terminal's (for a pair, the slave's) struct
	// termios, as TCGETS gives it.
	Termios []byte `json:"termios,omitempty"`
	// Winsize is the pair's window size (TIOCGWINSZ).
	Winsize *winsize `json:"winsize,omitempty"`
	// Locked, Packet: the master's TIOCGPTLCK and TIOCGPKT.
	Locked bool `json:"locked,omitempty"`
	Packet bool `json:"packet,omitempty"`
	// Excl: TIOCEXCL was set on this side.
	Excl bool `json:"excl,omitempty"`
	// SlaveClosed: a master whose slave was opened and is closed again
	// (poll says POLLHUP).
	SlaveClosed bool `json:"slave_closed,omitempty"`
}

var ttyKind = kind{
	name: FileTTY,
	match: func(d *Dumper, o *Object) bool {
		return o.Stat.Mode&unix.S_IFMT == unix.S_IFCHR && isTerminal(o.Stat.Rdev) && o.Info.Flags&unix.O_PATH == 0
	},
	dump: dumpTTY,
	open: openTTY,
}

// Device numbers (Documentation/admin-guide/devices.txt).
var (
	devTTY     = unix.Mkdev(5, 0) // /dev/tty: the caller's controlling terminal
	devConsole = unix.Mkdev(5, 1)
	devPtmx    = unix.Mkdev(5, 2)
)

func isPtmx(rdev uint64) bool { return sameDev(rdev, devPtmx) }

// ptsIndex is N of /dev/pts/N, or -1 (Unix98 pty slaves: majors 136-143).
func ptsIndex(rdev uint64) int {
	maj := unix.Major(rdev)
	if maj < 136 || maj > 143 {
		return -1
	}
	return int(maj-136)*256 + int(unix.Minor(rdev))
}

func sameDev(a, b uint64) bool {
	return unix.Major(a) == unix.Major(b) && unix.Minor(a) == unix.Minor(b)
}

func devName(rdev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
}

// ttyScan is what the terminal kinds need of the whole process, read
// once: its controlling terminal and the pty pairs whose master it holds.
type ttyScan struct {
	ctty    uint64       // tty_nr, 0 for none
	masters map[int]bool // pty numbers of the masters held
}

const ttyScanKey image.FileKind = "tty scan"

func (d *Dumper) ttys() (*ttyScan, error) {
	if s, ok := d.state[ttyScanKey].(*ttyScan); ok {
		return s, nil
	}
	s := &ttyScan{masters: map[int]bool{}}
	st, err := proc.ReadStat(d.Pid)
	if err != nil {
		return nil, err
	}
	s.ctty = st.TtyNr
	nums, err := proc.FDs(d.Pid)
	if err != nil {
		return nil, err
	}
	for _, n := range nums {
		var fst unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", d.Pid, n), &fst) != nil || fst.Mode&unix.S_IFMT != unix.S_IFCHR || !isPtmx(fst.Rdev) {
			continue
		}
		info, err := proc.ReadFDInfo(d.Pid, n)
		if err != nil {
			return nil, err
		}
		idx, ok := fdinfoField(info.Raw, "tty-index")
		if !ok {
			return nil, fmt.Errorf("fd %d is a pseudo-terminal master without a tty-index in its fdinfo", n)
		}
		s.masters[idx] = true
	}
	d.state[ttyScanKey] = s
	return s, nil
}

// heldSlave tells whether st is the slave of a pty whose master the
// process holds (such a slave is the pair's, even on fds 0-2).
func (d *Dumper) heldSlave(st *unix.Stat_t) bool {
	idx := ptsIndex(st.Rdev)
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || idx < 0 {
		return false
	}
	s, err := d.ttys()
	return err == nil && s.masters[idx]
}

func fdinfoField(raw, key string) (int, bool) {
	for _, l := range strings.Split(raw, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && k == key {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			return n, err == nil
		}
	}
	return 0, false
}

func dumpTTY(d *Dumper, o *Object, f *image.File) error {
	s, err := d.ttys()
	if err != nil {
		return err
	}
	fd := int(o.Local.Fd())
	rdev := o.Stat.Rdev
	var p ttyPayload
	switch {
	case isPtmx(rdev):
		idx, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
		if err != nil {
			return fmt.Errorf("fd %d (%s): TIOCGPTN: %w", o.Num, o.Link, err)
		}
		p = ttyPayload{Role: ttyMaster, Pty: idx}
		if err := dumpPair(o, &p, fd); err != nil {
			return err
		}
		// On a master, TIOCGSID answers for the slave: the session it
		// is the controlling terminal of, if any.
		if sid, err := unix.IoctlGetInt(fd, unix.TIOCGSID); err == nil && sid > 0 && !sameDev(s.ctty, unix.Mkdev(136+uint32(idx/256), uint32(idx%256))) {
			d.Note("fd %d: the master of /dev/pts/%d, the controlling terminal of session %d outside the process: thaw gives the process a new pair of its own; that session keeps the old one",
				o.Num, idx, sid)
		}
	case hungUp(fd):
		// A terminal hung up (its pty master closed, a terminal window
		// closed under a daemon; its session ended), which answers no
		// ioctl: a new terminal, hung up too, is the same to the
		// process.
		p = ttyPayload{Role: ttySlave, Pty: -1 - o.Num, PeerOutside: true}
		d.Note("fd %d: %s, a terminal that is hung up: thaw gives it a new terminal, hung up too", o.Num, o.Link)
	case ptsIndex(rdev) >= 0 && (s.masters[ptsIndex(rdev)] || !sameDev(rdev, s.ctty)):
		p = ttyPayload{Role: ttySlave, Pty: ptsIndex(rdev), PeerOutside: !s.masters[ptsIndex(rdev)]}
		if err := dumpPair(o, &p, fd); err != nil {
			return err
		}
		if p.PeerOutside {
			d.Note("fd %d: %s, a terminal whose master is outside the process: thaw gives it a new terminal that is hung up (reads end, writes fail with EIO); thaw --fd %d=PATH or --fd %d=&N hands one in",
				o.Num, o.Link, o.Num, o.Num)
		}
	default:
		real := rdev
		if sameDev(rdev, devTTY) || sameDev(rdev, devConsole) {
			// The terminal behind /dev/tty (the controlling terminal
			// when it was opened) or /dev/console.
			v, err := unix.IoctlGetUint32(fd, unix.TIOCGDEV)
			if err != nil {
				return fmt.Errorf("fd %d (%s): TIOCGDEV: %w", o.Num, o.Link, err)
			}
			real = uint64(v)
		}
		if s.ctty == 0 || !sameDev(real, s.ctty) {
			what := "neither the process's controlling terminal nor a pseudo-terminal it holds both sides of"
			if sameDev(rdev, devTTY) {
				what = fmt.Sprintf("the terminal %s, which is no longer the process's controlling terminal", devName(real))
			}
			return fmt.Errorf("fd %d is %s (terminal %s), %s: unsupported (what is on its other side cannot be rebuilt)",
				o.Num, o.Link, devName(rdev), what)
		}
		p = ttyPayload{Role: ttyCtty, DevTTY: sameDev(rdev, devTTY)}
		if t, err := termios(o.Local); err == nil {
			p.Termios = t
		}
	}
	return setPayload(f, &p)
}

// hungUp tells whether the terminal fd is hung up (tty_vhangup): its
// poll says POLLERR, which a live terminal's never does
// (hung_up_tty_poll, n_tty_poll).
func hungUp(fd int) bool {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	_, err := unix.Poll(pfd, 0)
	return err == nil && pfd[0].Revents&unix.POLLERR != 0
}

// dumpPair records a pty side's modes and refuses bytes it holds.
func dumpPair(o *Object, p *ttyPayload, fd int) error {
	name := o.Link
	if p.Role == ttyMaster {
		name = fmt.Sprintf("the master of /dev/pts/%d", p.Pty)
	}
	// poll first: the kernel moves bytes still in its flip buffers to
	// the line discipline (n_tty_poll), where FIONREAD counts them.
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLPRI}}
	if _, err := unix.Poll(pfd, 0); err != nil {
		return fmt.Errorf("fd %d (%s): poll: %w", o.Num, name, err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCINQ)
	if err != nil {
		return fmt.Errorf("fd %d (%s): FIONREAD: %w", o.Num, name, err)
	}
	if n > 0 {
		what := "input for the terminal"
		if p.Role == ttyMaster {
			what = "output of the terminal"
		}
		return fmt.Errorf("fd %d is %s, holding %d bytes of %s the process has not read: unsupported (a terminal cannot be read without taking them); freeze again once it has read them",
			o.Num, name, n, what)
	}
	if p.Role == ttyMaster {
		p.SlaveClosed = pfd[0].Revents&unix.POLLHUP != 0
		lck, err := unix.IoctlGetInt(fd, unix.TIOCGPTLCK)
		if err != nil {
			return fmt.Errorf("fd %d (%s): TIOCGPTLCK: %w", o.Num, name, err)
		}
		pkt, err := unix.IoctlGetInt(fd, unix.TIOCGPKT)
		if err != nil {
			return fmt.Errorf("fd %d (%s): TIOCGPKT: %w", o.Num, name, err)
		}
		p.Locked, p.Packet = lck != 0, pkt != 0
	} else {
		ld, err := unix.IoctlGetInt(fd, unix.TIOCGETD)
		if err != nil {
			return fmt.Errorf("fd %d (%s): TIOCGETD: %w", o.Num, name, err)
		}
		if ld != 0 { // N_TTY
			return fmt.Errorf("fd %d is %s, with line discipline %d (not N_TTY): unsupported", o.Num, name, ld)
		}
	}
	excl, err := unix.IoctlGetInt(fd, unix.TIOCGEXCL)
	if err != nil {
		return fmt.Errorf("fd %d (%s): TIOCGEXCL: %w", o.Num, name, err)
	}
	p.Excl = excl != 0
	// On a master, TCGETS and TIOCGWINSZ answer for the slave
	// (tty_pair_get_tty): the pair's modes either way.
	if p.Termios, err = termios(o.Local); err != nil {
		return fmt.Errorf("fd %d (%s): TCGETS: %w", o.Num, name, err)
	}
	ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
	if err != nil {
		return fmt.Errorf("fd %d (%s): TIOCGWINSZ: %w", o.Num, name, err)
	}
	p.Winsize = &winsize{Rows: ws.Row, Cols: ws.Col, Xpixel: ws.Xpixel, Ypixel: ws.Ypixel}
	return nil
}

func openTTY(r *Restorer, f *image.File) (*os.File, error) {
	var p ttyPayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	var lf *os.File
	var err error
	switch p.Role {
	case ttyCtty:
		lf, err = openCtty(r, f, &p, n)
	case ttyMaster, ttySlave:
		lf, err = openPtySide(r, f, &p, n)
	default:
		return nil, fmt.Errorf("fd %d: a terminal of unknown role %q", n, p.Role)
	}
	if err != nil {
		return nil, err
	}
	if err := setStatusFlags(lf, f.Flags); err != nil {
		lf.Close()
		return nil, fmt.Errorf("fd %d: %w", n, err)
	}
	return lf, nil
}

// openCtty connects fd n to the thaw's controlling terminal.
func openCtty(r *Restorer, f *image.File, p *ttyPayload, n int) (*os.File, error) {
	st, err := proc.ReadStat(r.Pid)
	if err != nil {
		return nil, err
	}
	if st.TtyNr == 0 {
		return nil, fmt.Errorf("fd %d is %s, the frozen process's controlling terminal, and this thaw has none: run it from a terminal, or hand one in with thaw --fd %d=PATH",
			n, f.Path, n)
	}
	acc := int(f.Flags & unix.O_ACCMODE)
	var lf *os.File
	if !p.DevTTY {
		// The thaw's controlling terminal among its own fds, opened
		// again with this fd's access mode.
		if lf, err = reopenStubTTY(r, st.TtyNr, acc); err != nil {
			return nil, fmt.Errorf("fd %d: %w", n, err)
		}
	}
	if lf == nil {
		// /dev/tty, opened by the thawing process: the helper is in
		// another session and has no controlling terminal.
		if lf, err = openInStub(r, "/dev/tty", acc|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
			return nil, fmt.Errorf("fd %d: open the thaw's controlling terminal: %w", n, err)
		}
	}
	if len(p.Termios) > 0 {
		set, err := setTermios(lf, p.Termios)
		if err != nil {
			lf.Close()
			return nil, fmt.Errorf("fd %d: %w", n, err)
		}
		r.Winch = r.Winch || set
	}
	return lf, nil
}

// reopenStubTTY opens again, with access mode acc, the thawing process's
// fd that is the terminal ctty (nil if it has none).
func reopenStubTTY(r *Restorer, ctty uint64, acc int) (*os.File, error) {
	nums, err := proc.FDs(r.Pid)
	if err != nil {
		return nil, err
	}
	for _, m := range nums {
		if m == r.Chan {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/fd/%d", r.Pid, m), &st) != nil ||
			st.Mode&unix.S_IFMT != unix.S_IFCHR || !sameDev(st.Rdev, ctty) {
			continue
		}
		sf, err := r.StubFD(m)
		if err != nil || sf == nil {
			return nil, err
		}
		return reopenTerminal(sf, acc)
	}
	return nil, nil
}

// reopenTerminal opens the terminal of f again (a new open file
// description, through /proc/self/fd), with access mode acc.
func reopenTerminal(f *os.File, acc int) (*os.File, error) {
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), acc|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the thaw's terminal again: %w", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// openInStub opens path in the thawing process (an injected openat) and
// takes the file into the helper.
func openInStub(r *Restorer, path string, flags int) (*os.File, error) {
	addr, err := r.T.Poke(0, append([]byte(path), 0))
	if err != nil {
		return nil, err
	}
	cwd := int64(unix.AT_FDCWD)
	got, err := r.T.Syscall("openat "+path, r.Sys.Openat, uint64(cwd), addr, uint64(flags), 0)
	if errors.Is(err, unix.ENXIO) {
		return nil, fmt.Errorf("%s: the thaw has no controlling terminal", path)
	}
	if err != nil {
		return nil, err
	}
	lfd, gerr := unix.PidfdGetfd(r.pidfd, int(got), 0)
	if _, err := r.T.Syscall("close", r.Sys.Close, got); err != nil {
		if gerr == nil {
			unix.Close(lfd)
		}
		return nil, err
	}
	if gerr != nil {
		return nil, fmt.Errorf("take %s from the thawing process: %w", path, gerr)
	}
	return os.NewFile(uintptr(lfd), path), nil
}

// ptyPair is a new pair being built for the frozen pair Pty.
type ptyPair struct {
	master *os.File // the helper's own
	index  int      // its number
	// slaves built, for what must wait until every one is open.
	exclSlaves []*os.File
	hasSlave   bool
}

func openPtySide(r *Restorer, f *image.File, p *ttyPayload, n int) (*os.File, error) {
	pairs, _ := r.state[FileTTY].(map[int]*ptyPair)
	if pairs == nil {
		pairs = map[int]*ptyPair{}
		r.state[FileTTY] = pairs
	}
	pr := pairs[p.Pty]
	if pr == nil {
		var err error
		if pr, err = newPtyPair(r, f, p, n); err != nil {
			return nil, err
		}
		pairs[p.Pty] = pr
	}
	mfd := int(pr.master.Fd())
	if p.Role == ttyMaster {
		// The pair's master is one open file description: ptmx makes a
		// new pair at each open.
		fd, err := unix.FcntlInt(uintptr(mfd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("fd %d: dup the new master: %w", n, err)
		}
		if p.Excl {
			if err := unix.IoctlSetInt(mfd, unix.TIOCEXCL, 0); err != nil {
				unix.Close(fd)
				return nil, fmt.Errorf("fd %d: TIOCEXCL: %w", n, err)
			}
		}
		return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
	}
	// TIOCGPTPEER opens the slave through the master's own devpts. Its
	// flags become the file's as they are (dentry_open: no O_LARGEFILE
	// added, O_CLOEXEC kept), so they are the recorded ones.
	sfd, err := ptyPeer(mfd, int(f.Flags)&^(unix.O_CLOEXEC|unix.O_ASYNC)|unix.O_NOCTTY)
	if err != nil {
		return nil, fmt.Errorf("fd %d: open the new terminal /dev/pts/%d: %w", n, pr.index, err)
	}
	unix.CloseOnExec(sfd)
	pr.hasSlave = true
	lf := os.NewFile(uintptr(sfd), fmt.Sprintf("/dev/pts/%d", pr.index))
	if p.Excl {
		pr.exclSlaves = append(pr.exclSlaves, lf)
	}
	return lf, nil
}

// ptyPeer is TIOCGPTPEER: a new open of the master's slave, with flags.
func ptyPeer(master, flags int) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, uintptr(flags))
	if errno != 0 {
		return -1, fmt.Errorf("TIOCGPTPEER: %w", errno)
	}
	return int(r), nil
}

// newPtyPair opens a new pair for the frozen pair p.Pty and gives it the
// modes recorded; what needs every side open is done after.
func newPtyPair(r *Restorer, f *image.File, p *ttyPayload, n int) (*ptyPair, error) {
	// The master's access mode and path, if the process holds it.
	path, acc := "/dev/ptmx", unix.O_RDWR
	var mp ttyPayload
	for i := range r.P.Files {
		g := &r.P.Files[i]
		if g.Kind != FileTTY || len(r.fds[g.ID]) == 0 || getPayload(g, &mp) != nil {
			continue
		}
		if mp.Role == ttyMaster && mp.Pty == p.Pty {
			acc = int(g.Flags & unix.O_ACCMODE)
			if g.Path == "/dev/pts/ptmx" {
				path = g.Path
			}
			p = &mp
			break
		}
	}
	fd, err := unix.Open(path, acc|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("fd %d: open %s for a new pseudo-terminal: %w", n, path, err)
	}
	pr := &ptyPair{master: os.NewFile(uintptr(fd), path)}
	r.keep(pr.master)
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return nil, fmt.Errorf("fd %d: unlock the new pseudo-terminal: %w", n, err)
	}
	if pr.index, err = unix.IoctlGetInt(fd, unix.TIOCGPTN); err != nil {
		return nil, fmt.Errorf("fd %d: TIOCGPTN: %w", n, err)
	}
	if len(p.Termios) > 0 {
		if _, err := setTermios(pr.master, p.Termios); err != nil {
			return nil, fmt.Errorf("fd %d: %w", n, err)
		}
	}
	if p.Winsize != nil {
		ws := &unix.Winsize{Row: p.Winsize.Rows, Col: p.Winsize.Cols, Xpixel: p.Winsize.Xpixel, Ypixel: p.Winsize.Ypixel}
		if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws); err != nil {
			return nil, fmt.Errorf("fd %d: TIOCSWINSZ: %w", n, err)
		}
	}
	if p.Packet {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCPKT, 1); err != nil {
			return nil, fmt.Errorf("fd %d: TIOCPKT: %w", n, err)
		}
	}
	master := p.Role == ttyMaster
	locked, slaveClosed := p.Locked, p.SlaveClosed
	r.after(func() error {
		if master && slaveClosed && !pr.hasSlave {
			// Opened once and closed: the master's reads fail with
			// EIO, as they did.
			sfd, err := ptyPeer(fd, unix.O_RDWR|unix.O_NOCTTY)
			if err != nil {
				return fmt.Errorf("fd %d: open and close the slave of the new pseudo-terminal: %w", n, err)
			}
			unix.Close(sfd)
		}
		for _, s := range pr.exclSlaves {
			if err := unix.IoctlSetInt(int(s.Fd()), unix.TIOCEXCL, 0); err != nil {
				return fmt.Errorf("fd %d: TIOCEXCL on the new slave: %w", n, err)
			}
		}
		if locked {
			if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 1); err != nil {
				return fmt.Errorf("fd %d: lock the new pseudo-terminal: %w", n, err)
			}
		}
		if !master {
			// The master is outside the process: gone. Closing the
			// last master hangs the slave up.
			return pr.master.Close()
		}
		return nil
	})
	return pr, nil
}
