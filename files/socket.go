package files

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// What every kind of socket shares: which socket an fd is (its family,
// type and protocol, asked of freeze's copy), the refusal of the
// families no kind carries, and the SOL_SOCKET options a rebuilt socket
// gets again.

// FileSocket names socketKind. It never appears in an image: the kind
// only refuses.
const FileSocket image.FileKind = "socket"

// sockID is what the kernel says a socket is.
type sockID struct {
	Domain, Type, Protocol int
}

// socketOf asks o's socket (freeze's copy of it) its domain, type and
// protocol (SO_DOMAIN, SO_TYPE, SO_PROTOCOL, socket(7)).
func socketOf(o *Object) (sockID, error) {
	if o.Stat.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return sockID{}, fmt.Errorf("%s is no socket", o.Link)
	}
	if o.Local == nil {
		return sockID{}, errors.New("freeze holds no copy of it")
	}
	return sockIDOf(int(o.Local.Fd()))
}

func sockIDOf(fd int) (sockID, error) {
	var s sockID
	var err error
	if s.Domain, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil {
		return s, fmt.Errorf("SO_DOMAIN: %w", err)
	}
	if s.Type, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return s, fmt.Errorf("SO_TYPE: %w", err)
	}
	if s.Protocol, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL); err != nil {
		return s, fmt.Errorf("SO_PROTOCOL: %w", err)
	}
	return s, nil
}

// isSocketOf tells whether o is a socket of one of the families.
func isSocketOf(o *Object, families ...int) bool {
	if o.Stat.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return false
	}
	s, err := socketOf(o)
	if err != nil {
		return false
	}
	for _, f := range families {
		if s.Domain == f {
			return true
		}
	}
	return false
}

// socketKind comes after every kind of socket cryo carries (unix,
// inet...): it takes the sockets none of them took and refuses them,
// naming the family (netlink, packet, vsock, alg...).
var socketKind = kind{
	name:  FileSocket,
	match: func(d *Dumper, o *Object) bool { return o.Stat.Mode&unix.S_IFMT == unix.S_IFSOCK },
	dump: func(d *Dumper, o *Object, f *image.File) error {
		if o.Info.Flags&unix.O_PATH != 0 {
			return fmt.Errorf("fd %d is %s (a socket file opened with O_PATH): unsupported", o.Num, o.Link)
		}
		s, err := socketOf(o)
		if err != nil {
			return fmt.Errorf("fd %d is %s (a socket the kernel does not describe: %v): unsupported", o.Num, o.Link, err)
		}
		return fmt.Errorf("fd %d is %s (%s): unsupported", o.Num, familyPhrase(s.Domain), o.Link)
	},
	open: func(r *Restorer, f *image.File) (*os.File, error) {
		return nil, fmt.Errorf("fd %d: the image holds a socket of no known kind", r.firstFD(f.ID))
	},
}

// familyPhrase is "a netlink socket", "an inet6 socket"...
func familyPhrase(domain int) string {
	name, ok := familyNames[domain]
	if !ok {
		return fmt.Sprintf("a socket of address family %d", domain)
	}
	switch name[0] {
	case 'a', 'e', 'i', 'o': // not u: "a unix socket"
		return "an " + name + " socket"
	}
	return "a " + name + " socket"
}

// familyNames are the address families (linux/socket.h) by the name
// people know them by.
var familyNames = map[int]string{
	unix.AF_UNIX:       "unix",
	unix.AF_INET:       "inet",
	unix.AF_INET6:      "inet6",
	unix.AF_NETLINK:    "netlink",
	unix.AF_PACKET:     "packet",
	unix.AF_VSOCK:      "vsock",
	unix.AF_ALG:        "alg (kernel crypto)",
	unix.AF_BLUETOOTH:  "bluetooth",
	unix.AF_CAN:        "can",
	unix.AF_XDP:        "xdp",
	unix.AF_TIPC:       "tipc",
	unix.AF_KEY:        "pf_key",
	unix.AF_NFC:        "nfc",
	unix.AF_RDS:        "rds",
	unix.AF_LLC:        "llc",
	unix.AF_QIPCRTR:    "qipcrtr",
	unix.AF_SMC:        "smc",
	unix.AF_MCTP:       "mctp",
	unix.AF_IEEE802154: "ieee802154",
	unix.AF_KCM:        "kcm",
	unix.AF_APPLETALK:  "appletalk",
	unix.AF_X25:        "x25",
	unix.AF_AX25:       "ax25",
	unix.AF_IB:         "ib",
	unix.AF_ISDN:       "isdn",
	unix.AF_PPPOX:      "pppox",
	unix.AF_PHONET:     "phonet",
	unix.AF_CAIF:       "caif",
	unix.AF_RXRPC:      "rxrpc",
	unix.AF_IUCV:       "iucv",
}

// sockOpts are the SOL_SOCKET options (socket(7)) a rebuilt socket gets
// again, as getsockopt read them from the original. A field is its zero
// value when the socket does not offer the option; thaw sets only what
// differs from the new socket's own value, so an option the original
// never touched is never set (and needs no privilege).
//
// The buffer sizes are what getsockopt says, the double of what was set
// (the kernel doubles SO_RCVBUF and SO_SNDBUF for its bookkeeping): thaw
// sets half. Setting one fixes it (SOCK_RCVBUF_LOCK): a TCP socket whose
// buffers the kernel was growing by itself stops growing them, so the
// inet kind may clear RcvBuf and SndBuf of such a socket first.
type sockOpts struct {
	RcvBuf int `json:"rcvbuf,omitempty"`
	SndBuf int `json:"sndbuf,omitempty"`
	// RcvTimeo, SndTimeo are SO_RCVTIMEO and SO_SNDTIMEO in
	// microseconds (0: none).
	RcvTimeo int64 `json:"rcvtimeo_us,omitempty"`
	SndTimeo int64 `json:"sndtimeo_us,omitempty"`
	// Linger is SO_LINGER: on, and the seconds.
	Linger    bool  `json:"linger,omitempty"`
	LingerSec int32 `json:"linger_sec,omitempty"`
	// Priority above 6 and Mark need CAP_NET_ADMIN to set: a thaw
	// without it is refused rather than giving the socket another.
	Priority int `json:"priority,omitempty"`
	Mark     int `json:"mark,omitempty"`
	RcvLowat int `json:"rcvlowat,omitempty"`
	// PeekOff is SO_PEEK_OFF (-1: off, the default, where offered).
	PeekOff int `json:"peek_off,omitempty"`

	KeepAlive   bool `json:"keepalive,omitempty"`
	ReuseAddr   bool `json:"reuseaddr,omitempty"`
	ReusePort   bool `json:"reuseport,omitempty"`
	OOBInline   bool `json:"oobinline,omitempty"`
	Broadcast   bool `json:"broadcast,omitempty"`
	DontRoute   bool `json:"dontroute,omitempty"`
	PassCred    bool `json:"passcred,omitempty"`
	PassSec     bool `json:"passsec,omitempty"`
	PassPidfd   bool `json:"passpidfd,omitempty"`
	Timestamp   bool `json:"timestamp,omitempty"`
	TimestampNS bool `json:"timestampns,omitempty"`
	RxqOvfl     bool `json:"rxq_ovfl,omitempty"`
}

// sockIntOpts are the integer options, in the order thaw sets them.
var sockIntOpts = []struct {
	name  string
	opt   int
	field func(o *sockOpts) *int
	// zeroUnread: the kernel never reads 0 (a buffer, the low-water
	// mark): a 0 is an option not read, and not set.
	zeroUnread bool
}{
	{"SO_RCVBUF", unix.SO_RCVBUF, func(o *sockOpts) *int { return &o.RcvBuf }, true},
	{"SO_SNDBUF", unix.SO_SNDBUF, func(o *sockOpts) *int { return &o.SndBuf }, true},
	{"SO_PRIORITY", unix.SO_PRIORITY, func(o *sockOpts) *int { return &o.Priority }, false},
	{"SO_MARK", unix.SO_MARK, func(o *sockOpts) *int { return &o.Mark }, false},
	{"SO_RCVLOWAT", unix.SO_RCVLOWAT, func(o *sockOpts) *int { return &o.RcvLowat }, true},
	{"SO_PEEK_OFF", unix.SO_PEEK_OFF, func(o *sockOpts) *int { return &o.PeekOff }, false},
}

// sockBoolOpts are the on/off options.
var sockBoolOpts = []struct {
	name  string
	opt   int
	field func(o *sockOpts) *bool
}{
	{"SO_KEEPALIVE", unix.SO_KEEPALIVE, func(o *sockOpts) *bool { return &o.KeepAlive }},
	{"SO_REUSEADDR", unix.SO_REUSEADDR, func(o *sockOpts) *bool { return &o.ReuseAddr }},
	{"SO_REUSEPORT", unix.SO_REUSEPORT, func(o *sockOpts) *bool { return &o.ReusePort }},
	{"SO_OOBINLINE", unix.SO_OOBINLINE, func(o *sockOpts) *bool { return &o.OOBInline }},
	{"SO_BROADCAST", unix.SO_BROADCAST, func(o *sockOpts) *bool { return &o.Broadcast }},
	{"SO_DONTROUTE", unix.SO_DONTROUTE, func(o *sockOpts) *bool { return &o.DontRoute }},
	{"SO_PASSCRED", unix.SO_PASSCRED, func(o *sockOpts) *bool { return &o.PassCred }},
	{"SO_PASSSEC", unix.SO_PASSSEC, func(o *sockOpts) *bool { return &o.PassSec }},
	{"SO_PASSPIDFD", unix.SO_PASSPIDFD, func(o *sockOpts) *bool { return &o.PassPidfd }},
	{"SO_TIMESTAMP", unix.SO_TIMESTAMP, func(o *sockOpts) *bool { return &o.Timestamp }},
	{"SO_TIMESTAMPNS", unix.SO_TIMESTAMPNS, func(o *sockOpts) *bool { return &o.TimestampNS }},
	{"SO_RXQ_OVFL", unix.SO_RXQ_OVFL, func(o *sockOpts) *bool { return &o.RxqOvfl }},
}

// readSockOpts reads fd's options. Nothing is changed (SO_ERROR, which
// reading clears, is not read). An option the socket does not offer
// stays zero.
func readSockOpts(fd int) (sockOpts, error) {
	var o sockOpts
	absent := func(err error) bool {
		// Not offered by this family or this kernel.
		return errors.Is(err, unix.ENOPROTOOPT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)
	}
	for _, d := range sockIntOpts {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, d.opt)
		if err != nil {
			if absent(err) {
				continue
			}
			return o, fmt.Errorf("getsockopt %s: %w", d.name, err)
		}
		*d.field(&o) = v
	}
	for _, d := range sockBoolOpts {
		v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, d.opt)
		if err != nil {
			if absent(err) {
				continue
			}
			return o, fmt.Errorf("getsockopt %s: %w", d.name, err)
		}
		*d.field(&o) = v != 0
	}
	for _, t := range []struct {
		name string
		opt  int
		us   *int64
	}{{"SO_RCVTIMEO", unix.SO_RCVTIMEO, &o.RcvTimeo}, {"SO_SNDTIMEO", unix.SO_SNDTIMEO, &o.SndTimeo}} {
		tv, err := unix.GetsockoptTimeval(fd, unix.SOL_SOCKET, t.opt)
		if err != nil {
			if absent(err) {
				continue
			}
			return o, fmt.Errorf("getsockopt %s: %w", t.name, err)
		}
		*t.us = tv.Sec*1e6 + tv.Usec
	}
	l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil && !absent(err) {
		return o, fmt.Errorf("getsockopt SO_LINGER: %w", err)
	}
	if err == nil {
		o.Linger, o.LingerSec = l.Onoff != 0, l.Linger
	}
	return o, nil
}

// setSockOpts gives fd the options o, setting each that differs from
// what fd has now. An option that cannot be given as it was (a buffer
// above net.core.rmem_max/wmem_max, a priority or mark that needs
// CAP_NET_ADMIN) is an error naming it: the thaw never gives a socket
// less than it had without saying so, nor more privilege than the
// thawing user has.
func setSockOpts(fd int, o *sockOpts) error {
	cur, err := readSockOpts(fd)
	if err != nil {
		return err
	}
	for _, d := range sockIntOpts {
		want, have := *d.field(o), *d.field(&cur)
		if want == have || want == 0 && d.zeroUnread {
			continue
		}
		switch d.opt {
		case unix.SO_RCVBUF, unix.SO_SNDBUF:
			if err := setSockBuf(fd, d.opt, want); err != nil {
				return err
			}
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, d.opt, want); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("setsockopt %s %d: %w (it needs CAP_NET_ADMIN)", d.name, want, err)
			}
			return fmt.Errorf("setsockopt %s %d: %w", d.name, want, err)
		}
	}
	for _, d := range sockBoolOpts {
		want := *d.field(o)
		if want == *d.field(&cur) {
			continue
		}
		v := 0
		if want {
			v = 1
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, d.opt, v); err != nil {
			return fmt.Errorf("setsockopt %s %d: %w", d.name, v, err)
		}
	}
	for _, t := range []struct {
		name      string
		opt       int
		want, cur int64
	}{{"SO_RCVTIMEO", unix.SO_RCVTIMEO, o.RcvTimeo, cur.RcvTimeo}, {"SO_SNDTIMEO", unix.SO_SNDTIMEO, o.SndTimeo, cur.SndTimeo}} {
		if t.want == t.cur {
			continue
		}
		tv := unix.NsecToTimeval(t.want * 1000)
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, t.opt, &tv); err != nil {
			return fmt.Errorf("setsockopt %s %dus: %w", t.name, t.want, err)
		}
	}
	if o.Linger != cur.Linger || o.LingerSec != cur.LingerSec {
		l := unix.Linger{Linger: o.LingerSec}
		if o.Linger {
			l.Onoff = 1
		}
		if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &l); err != nil {
			return fmt.Errorf("setsockopt SO_LINGER %+v: %w", l, err)
		}
	}
	return nil
}

// setSockBuf makes fd's SO_RCVBUF or SO_SNDBUF read want: it sets half
// (the kernel doubles it), beyond net.core.[rw]mem_max with the FORCE
// variant where the thaw may (CAP_NET_ADMIN).
func setSockBuf(fd, opt, want int) error {
	name, force, sysctl := "SO_RCVBUF", unix.SO_RCVBUFFORCE, "net.core.rmem_max"
	if opt == unix.SO_SNDBUF {
		name, force, sysctl = "SO_SNDBUF", unix.SO_SNDBUFFORCE, "net.core.wmem_max"
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, want/2); err != nil {
		return fmt.Errorf("setsockopt %s %d: %w", name, want/2, err)
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
	if err != nil {
		return fmt.Errorf("getsockopt %s: %w", name, err)
	}
	if got == want {
		return nil
	}
	// Above the sysctl: only CAP_NET_ADMIN may (EPERM otherwise).
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, want/2); err == nil {
		if got, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt); err == nil && got == want {
			return nil
		}
	}
	return fmt.Errorf("%s: the socket had %d bytes, here it gets %d (%s is lower here; above it needs CAP_NET_ADMIN)", name, want, got, sysctl)
}
