package files

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileInet: a TCP or UDP socket, IPv4 or IPv6 (AF_INET/AF_INET6,
// SOCK_STREAM or SOCK_DGRAM; raw, SCTP and ICMP sockets are refused).
// Thaw makes a new socket of the same family, type and protocol in the
// helper and gives it what freeze read from the original:
//
//   - the options the process changed from a new socket's defaults
//     (optTable: SO_REUSEADDR/PORT, keepalive and its TCP_KEEP*, TCP_NODELAY,
//     buffer sizes, linger, timeouts, IPV6_V6ONLY, IP_TOS, TTLs,
//     TCP_DEFER_ACCEPT...), set before bind as the process did;
//   - its local address (getsockname): a bound socket is bound there
//     again, with SO_REUSEADDR on for the bind (and listen, which checks
//     the port again) so that connections of the frozen process still in
//     TIME_WAIT do not keep the port, then set back to what the process
//     had;
//   - a listener listens with its backlog (sock_diag: idiag_wqueue of a
//     listener is sk_max_ack_backlog). Connections waiting in its accept
//     queue cannot be put back into a new listener: freeze refuses the
//     socket then, naming how many wait (try again once they are
//     accepted), as CRIU does;
//   - a connected UDP socket connects to its peer again. Datagrams
//     queued to be read are not carried: a new socket cannot be given
//     them with their senders' addresses. freeze says so in a note; UDP
//     promises no delivery, and an application that uses it lives with
//     lost datagrams;
//   - an established TCP connection: see tcp.go (TCP_REPAIR, or the
//     --tcp-established policy).
//
// Multicast group memberships and a socket's BPF filters are not
// carried (docs/state.md).
const FileInet image.FileKind = "inet"

// TCPPolicy is what freeze does with an established TCP connection.
type TCPPolicy string

const (
	// TCPAuto: TCPRepair when freeze may (CAP_NET_ADMIN), else refuse.
	TCPAuto TCPPolicy = ""
	// TCPRepair carries the connection itself with TCP_REPAIR: the peer
	// sees nothing. Needs CAP_NET_ADMIN at freeze and at thaw.
	TCPRepair TCPPolicy = "repair"
	// TCPReset gives the thawed process a connection that was reset:
	// its next read or write fails with ECONNRESET, and it reconnects
	// as it would after a network failure.
	TCPReset TCPPolicy = "reset"
	// TCPRefuse refuses the freeze.
	TCPRefuse TCPPolicy = "refuse"
)

// ParseTCPPolicy reads a --tcp-established value.
func ParseTCPPolicy(s string) (TCPPolicy, error) {
	switch p := TCPPolicy(s); p {
	case TCPRepair, TCPReset, TCPRefuse:
		return p, nil
	case "", "auto":
		return TCPAuto, nil
	}
	return "", fmt.Errorf("--tcp-established %q: want repair, reset or refuse", s)
}

// The socket's state, as the payload says it.
const (
	inetClosed      = "closed"      // neither listening nor connected (maybe bound)
	inetListen      = "listen"      // a TCP listener
	inetConnected   = "connected"   // a UDP socket with a peer
	inetEstablished = "established" // a TCP connection
)

type inetAddr struct {
	IP    netip.Addr `json:"ip"`
	Port  int        `json:"port"`
	Scope uint32     `json:"scope,omitempty"`
}

func (a inetAddr) String() string {
	return netip.AddrPortFrom(a.IP.WithZone(zoneName(a.Scope)), uint16(a.Port)).String()
}

func zoneName(scope uint32) string {
	if scope == 0 {
		return ""
	}
	return strconv.Itoa(int(scope))
}

// sockOpt is one option the process set: setsockopt(level, name, Val).
type sockOpt struct {
	Level int    `json:"level"`
	Name  int    `json:"name"`
	Val   []byte `json:"val"`
}

type inetPayload struct {
	Family int    `json:"family"` // AF_INET or AF_INET6
	Type   int    `json:"type"`   // SOCK_STREAM or SOCK_DGRAM
	Proto  int    `json:"proto"`  // IPPROTO_TCP or IPPROTO_UDP
	State  string `json:"state"`
	// Local is set for a bound socket; Peer for a connected one.
	Local *inetAddr `json:"local,omitempty"`
	Peer  *inetAddr `json:"peer,omitempty"`
	// Backlog is a listener's listen(2) backlog.
	Backlog int       `json:"backlog,omitempty"`
	Opts    []sockOpt `json:"opts,omitempty"`
	// Reset: an established connection the thaw gives back reset
	// (TCPReset).
	Reset bool `json:"reset,omitempty"`
	// Repair is an established connection carried with TCP_REPAIR.
	Repair *tcpRepair `json:"repair,omitempty"`
}

// The options freeze reads, and which sockets they apply to.
const (
	optTCP  = 1 << iota // SOCK_STREAM only
	optUDP              // SOCK_DGRAM only
	optV4               // AF_INET only
	optV6               // AF_INET6 only
	optHalf             // the kernel keeps twice what is set (SO_RCVBUF, SO_SNDBUF)
	optIdle             // not on an established connection (its mss, its window clamp: TCP_REPAIR sets those)
)

type optDesc struct {
	level, name, size, only int
}

var optTable = []optDesc{
	{unix.SOL_SOCKET, unix.SO_REUSEADDR, 4, 0},
	{unix.SOL_SOCKET, unix.SO_REUSEPORT, 4, 0},
	{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 4, 0},
	{unix.SOL_SOCKET, unix.SO_BROADCAST, 4, optUDP},
	{unix.SOL_SOCKET, unix.SO_OOBINLINE, 4, 0},
	{unix.SOL_SOCKET, unix.SO_DONTROUTE, 4, 0},
	{unix.SOL_SOCKET, unix.SO_PRIORITY, 4, 0},
	{unix.SOL_SOCKET, unix.SO_MARK, 4, 0},
	{unix.SOL_SOCKET, unix.SO_RCVLOWAT, 4, 0},
	{unix.SOL_SOCKET, unix.SO_RCVBUF, 4, optHalf},
	{unix.SOL_SOCKET, unix.SO_SNDBUF, 4, optHalf},
	{unix.SOL_SOCKET, unix.SO_LINGER, unix.SizeofLinger, 0},
	{unix.SOL_SOCKET, unix.SO_RCVTIMEO, 16, 0},
	{unix.SOL_SOCKET, unix.SO_SNDTIMEO, 16, 0},
	{unix.SOL_SOCKET, unix.SO_BINDTODEVICE, unix.IFNAMSIZ, 0},
	{unix.SOL_SOCKET, unix.SO_TIMESTAMP, 4, 0},
	{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 4, 0},
	{unix.IPPROTO_TCP, unix.TCP_NODELAY, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_CORK, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_SYNCNT, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_LINGER2, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_WINDOW_CLAMP, 4, optTCP | optIdle},
	{unix.IPPROTO_TCP, unix.TCP_MAXSEG, 4, optTCP | optIdle},
	{unix.IPPROTO_TCP, unix.TCP_FASTOPEN, 4, optTCP},
	{unix.IPPROTO_TCP, unix.TCP_CONGESTION, 16, optTCP},
	{unix.IPPROTO_IP, unix.IP_TOS, 4, optV4},
	{unix.IPPROTO_IP, unix.IP_TTL, 4, optV4},
	{unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, 4, optV4},
	{unix.IPPROTO_IP, unix.IP_FREEBIND, 4, optV4},
	{unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 4, optV4},
	{unix.IPPROTO_IP, unix.IP_RECVERR, 4, optV4},
	{unix.IPPROTO_IP, unix.IP_PKTINFO, 4, optV4 | optUDP},
	{unix.IPPROTO_IP, unix.IP_RECVTOS, 4, optV4},
	{unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 4, optV4 | optUDP},
	{unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 4, optV4 | optUDP},
	{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 4, optV6},
	{unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 4, optV6},
	{unix.IPPROTO_IPV6, unix.IPV6_TCLASS, 4, optV6},
	{unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, 4, optV6},
	{unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 4, optV6},
	{unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 4, optV6},
	{unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 4, optV6 | optUDP},
	{unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 4, optV6 | optUDP},
	{unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 4, optV6 | optUDP},
}

func (o optDesc) appliesTo(p *inetPayload) bool {
	switch {
	case o.only&optTCP != 0 && p.Type != unix.SOCK_STREAM,
		o.only&optUDP != 0 && p.Type != unix.SOCK_DGRAM,
		o.only&optV4 != 0 && p.Family != unix.AF_INET,
		o.only&optV6 != 0 && p.Family != unix.AF_INET6,
		o.only&optIdle != 0 && p.State == inetEstablished:
		return false
	}
	return true
}

func optDescOf(level, name int) optDesc {
	for _, o := range optTable {
		if o.level == level && o.name == name {
			return o
		}
	}
	return optDesc{level: level, name: name}
}

var inetKind = kind{
	name:  FileInet,
	match: func(d *Dumper, o *Object) bool { return isSocketOf(o, unix.AF_INET, unix.AF_INET6) },
	dump:  dumpInet,
	open:  openInet,
}

// sockName names a socket in messages: "TCP 127.0.0.1:80" or "UDP [::1]:53 -> [::1]:9".
func (p *inetPayload) String() string {
	s := "UDP"
	if p.Type == unix.SOCK_STREAM {
		s = "TCP"
	}
	if p.Family == unix.AF_INET6 {
		s += "v6"
	}
	if p.Local != nil {
		s += " " + p.Local.String()
	} else {
		s += " (unbound)"
	}
	if p.Peer != nil {
		s += " -> " + p.Peer.String()
	}
	return s
}

func dumpInet(d *Dumper, o *Object, f *image.File) error {
	fd := int(o.Local.Fd())
	p := &inetPayload{}
	id, err := socketOf(o)
	if err != nil {
		return fmt.Errorf("fd %d (%s): %w", o.Num, o.Link, err)
	}
	p.Family, p.Type, p.Proto = id.Domain, id.Type, id.Protocol
	switch {
	case p.Type == unix.SOCK_STREAM && p.Proto == unix.IPPROTO_TCP,
		p.Type == unix.SOCK_DGRAM && p.Proto == unix.IPPROTO_UDP:
	case p.Type == unix.SOCK_STREAM && p.Proto == unix.IPPROTO_MPTCP:
		// Go 1.24's listeners are MPTCP by default where the kernel
		// has it (net.ListenConfig.SetMultipathTCP).
		return fmt.Errorf("fd %d is %s, %s of protocol MPTCP (multipath TCP): unsupported yet (a Go program can be started with GODEBUG=multipathtcp=0)",
			o.Num, o.Link, familyPhrase(p.Family))
	default:
		return fmt.Errorf("fd %d is %s, %s of type %d, protocol %d: only TCP and UDP sockets are supported",
			o.Num, o.Link, familyPhrase(p.Family), p.Type, p.Proto)
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		if a := addrOf(sa); a != nil && (a.Port != 0 || !a.IP.IsUnspecified()) {
			p.Local = a
		}
	}
	if sa, err := unix.Getpeername(fd); err == nil {
		p.Peer = addrOf(sa)
	}
	p.State = inetClosed
	if p.Type == unix.SOCK_DGRAM {
		if p.Peer != nil {
			p.State = inetConnected
		}
		// sock_diag's rqueue counts every queued datagram; SIOCINQ
		// (the first one's size) where udp_diag is missing.
		rq, _, found, err := inetQueues(p.Family, p.Proto, ^uint32(0), o.Stat.Ino)
		if err != nil || !found {
			if n, err := unix.IoctlGetInt(fd, unix.SIOCINQ); err == nil {
				rq = uint32(n)
			}
		}
		if rq > 0 {
			d.Note("fd %d: %s has datagrams waiting to be read: thaw drops them, as a network may (their senders' addresses cannot be given to a new socket)",
				o.Num, p)
		}
	} else {
		info, err := getsockoptBytesRetry(fd, unix.IPPROTO_TCP, unix.TCP_INFO, 8)
		if err != nil {
			return fmt.Errorf("fd %d (%s): TCP_INFO: %w", o.Num, p, err)
		}
		switch st := info[0]; st {
		case unix.BPF_TCP_CLOSE:
		case unix.BPF_TCP_LISTEN:
			p.State = inetListen
			if err := dumpListener(o, p); err != nil {
				return err
			}
		case unix.BPF_TCP_ESTABLISHED:
			p.State = inetEstablished
		default:
			// Closing, or still connecting: neither a listener nor a
			// connection TCP_REPAIR can set up again.
			if d.Opts.TCPEstablished == TCPReset {
				p.State, p.Reset = inetEstablished, true
				d.Note("fd %d: %s is %s: thaw gives the process a reset connection (ECONNRESET on its next read or write), as --tcp-established=reset asks",
					o.Num, p, tcpStateName(st))
				break
			}
			return fmt.Errorf("fd %d: %s is %s, a TCP state cryo cannot restore: freeze again later, or with --tcp-established=reset to give the process a reset connection",
				o.Num, p, tcpStateName(st))
		}
	}
	if err := readOpts(o, p); err != nil {
		return err
	}
	if p.State == inetEstablished && !p.Reset {
		if err := dumpEstablished(d, o, p); err != nil {
			return err
		}
	}
	return setPayload(f, p)
}

// getsockoptBytesRetry is getsockoptBytes for options that may give
// fewer bytes than asked (TCP_INFO grows with kernels).
func getsockoptBytesRetry(fd, level, name, size int) ([]byte, error) {
	b, err := getsockoptBytes(fd, level, name, size)
	if err == nil && len(b) < size {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), size)
	}
	return b, err
}

// dumpListener reads a listener's backlog and refuses one with
// connections waiting to be accepted.
func dumpListener(o *Object, p *inetPayload) error {
	const listen = 1 << unix.BPF_TCP_LISTEN
	rq, wq, found, err := inetQueues(p.Family, p.Proto, listen, o.Stat.Ino)
	if err != nil || !found {
		// No sock_diag (a kernel without inet_diag): the default
		// backlog of most servers, and the accept queue from
		// /proc/net/tcp, whose rx_queue of a listener is it.
		p.Backlog = unix.SOMAXCONN
		rq, err = procNetAcceptQueue(p.Family, o.Stat.Ino)
		if err != nil {
			return fmt.Errorf("fd %d: %s: %w", o.Num, p, err)
		}
	}
	if rq > 0 {
		return fmt.Errorf("fd %d: %s has %d connection(s) waiting to be accepted, which a new listener cannot be given: freeze again once the process has accepted them",
			o.Num, p, rq)
	}
	p.Backlog = int(wq)
	return nil
}

// procNetAcceptQueue reads the connections waiting in the accept queue
// of the listener with inode ino from /proc/net/tcp (tcp6): the rx_queue
// column of a listener is sk_ack_backlog (get_tcp4_sock()).
func procNetAcceptQueue(family int, ino uint64) (uint32, error) {
	path := "/proc/net/tcp"
	if family == unix.AF_INET6 {
		path = "/proc/net/tcp6"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	want := strconv.FormatUint(ino, 10)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[9] != want {
			continue
		}
		_, rx, ok := strings.Cut(f[4], ":")
		n, err := strconv.ParseUint(rx, 16, 32)
		if !ok || err != nil {
			return 0, fmt.Errorf("%s: bad queue column %q", path, f[4])
		}
		return uint32(n), nil
	}
	return 0, fmt.Errorf("%s does not list the listener (inode %d)", path, ino)
}

// readOpts records the options of o whose values differ from those of a
// new socket of the same kind: what the process set.
func readOpts(o *Object, p *inetPayload) error {
	fresh, err := unix.Socket(p.Family, p.Type|unix.SOCK_CLOEXEC, p.Proto)
	if err != nil {
		return fmt.Errorf("fd %d: make a %s socket to compare options with: %w", o.Num, p, err)
	}
	defer unix.Close(fresh)
	fd := int(o.Local.Fd())
	for _, od := range optTable {
		if !od.appliesTo(p) {
			continue
		}
		v, err := getsockoptBytes(fd, od.level, od.name, od.size)
		if err != nil {
			continue // not known to this kernel, or not for this socket
		}
		def, err := getsockoptBytes(fresh, od.level, od.name, od.size)
		if err == nil && bytes.Equal(v, def) {
			continue
		}
		p.Opts = append(p.Opts, sockOpt{Level: od.level, Name: od.name, Val: v})
	}
	return nil
}

// opt returns the recorded value of an int option, and whether there is one.
func (p *inetPayload) opt(level, name int) (int, bool) {
	for _, o := range p.Opts {
		if o.Level == level && o.Name == name && len(o.Val) >= 4 {
			return int(int32(binary.LittleEndian.Uint32(o.Val))), true
		}
	}
	return 0, false
}

// setOpts gives fd the recorded options. SO_MARK and other options that
// need a capability fail the thaw if the thawing user lacks it. A
// connection carried with TCP_REPAIR (the thaw has CAP_NET_ADMIN) gets
// its buffer sizes exactly, past net.core.[rw]mem_max
// (SO_RCVBUFFORCE): its queues were as large as they.
func setOpts(fd int, p *inetPayload, n int) error {
	for _, o := range p.Opts {
		v := o.Val
		od := optDescOf(o.Level, o.Name)
		if od.only&optIdle != 0 && p.State == inetEstablished {
			continue
		}
		name := o.Name
		if od.only&optHalf != 0 && len(v) >= 4 {
			v = binary.LittleEndian.AppendUint32(nil, binary.LittleEndian.Uint32(v)/2)
			if p.Repair != nil && name == unix.SO_RCVBUF {
				name = unix.SO_RCVBUFFORCE
			}
			if p.Repair != nil && name == unix.SO_SNDBUF {
				name = unix.SO_SNDBUFFORCE
			}
		}
		if err := setsockoptBytes(fd, o.Level, name, v); err != nil {
			return fmt.Errorf("fd %d: %s: set %s: %w", n, p, optName(o.Level, o.Name), err)
		}
	}
	return nil
}

// newInetSocket makes the socket of p with its options, not bound.
func newInetSocket(p *inetPayload, n int) (*os.File, error) {
	fd, err := unix.Socket(p.Family, p.Type|unix.SOCK_CLOEXEC, p.Proto)
	if err != nil {
		return nil, fmt.Errorf("fd %d: %s: socket: %w", n, p, err)
	}
	lf := os.NewFile(uintptr(fd), "socket")
	if err := setOpts(fd, p, n); err != nil {
		lf.Close()
		return nil, err
	}
	return lf, nil
}

func openInet(r *Restorer, f *image.File) (*os.File, error) {
	p := &inetPayload{}
	if err := getPayload(f, p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	if p.Reset {
		return openReset(r, f, p, n)
	}
	if p.Repair != nil {
		return openRepair(r, f, p, n)
	}
	lf, err := newInetSocket(p, n)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*os.File, error) {
		lf.Close()
		return nil, err
	}
	fd := int(lf.Fd())
	if p.Local != nil {
		// SO_REUSEADDR for the bind and the listen: the frozen
		// process's own connections may still be in TIME_WAIT on the
		// port. Set back to what the process had after.
		reuse, _ := p.opt(unix.SOL_SOCKET, unix.SO_REUSEADDR)
		if reuse == 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return fail(fmt.Errorf("fd %d: %s: SO_REUSEADDR: %w", n, p, err))
			}
		}
		if err := unix.Bind(fd, p.Local.sockaddr(p.Family)); err != nil {
			return fail(fmt.Errorf("fd %d: %s: bind %s: %w%s", n, p, p.Local, err, bindHint(err)))
		}
		if p.State == inetListen {
			if err := unix.Listen(fd, p.Backlog); err != nil {
				return fail(fmt.Errorf("fd %d: %s: listen: %w%s", n, p, err, bindHint(err)))
			}
		}
		if reuse == 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 0); err != nil {
				return fail(fmt.Errorf("fd %d: %s: SO_REUSEADDR: %w", n, p, err))
			}
		}
	} else if p.State == inetListen {
		// listen(2) on an unbound socket binds it to a port of the
		// kernel's choosing; the recorded one is in Local, so this is
		// only a listener whose name could not be read.
		if err := unix.Listen(fd, p.Backlog); err != nil {
			return fail(fmt.Errorf("fd %d: %s: listen: %w", n, p, err))
		}
	}
	if p.State == inetConnected && p.Peer != nil {
		if err := unix.Connect(fd, p.Peer.sockaddr(p.Family)); err != nil {
			return fail(fmt.Errorf("fd %d: %s: connect: %w", n, p, err))
		}
	}
	r.after(func() error {
		if err := setStatusFlags(lf, f.Flags); err != nil {
			return fmt.Errorf("fd %d: %w", n, err)
		}
		return nil
	})
	return lf, nil
}

func bindHint(err error) string {
	if errors.Is(err, unix.EADDRINUSE) {
		return " (is the frozen process, or another, still using the port?)"
	}
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return " (this machine has no such address)"
	}
	return ""
}

func addrOf(sa unix.Sockaddr) *inetAddr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return &inetAddr{IP: netip.AddrFrom4(a.Addr), Port: a.Port}
	case *unix.SockaddrInet6:
		return &inetAddr{IP: netip.AddrFrom16(a.Addr), Port: a.Port, Scope: a.ZoneId}
	}
	return nil
}

func (a *inetAddr) sockaddr(family int) unix.Sockaddr {
	if family == unix.AF_INET {
		return &unix.SockaddrInet4{Addr: a.IP.As4(), Port: a.Port}
	}
	return &unix.SockaddrInet6{Addr: a.IP.As16(), Port: a.Port, ZoneId: a.Scope}
}

func tcpStateName(st byte) string {
	names := map[byte]string{
		unix.BPF_TCP_SYN_SENT: "connecting (SYN_SENT)", unix.BPF_TCP_SYN_RECV: "connecting (SYN_RECV)",
		unix.BPF_TCP_FIN_WAIT1: "closing (FIN_WAIT1)", unix.BPF_TCP_FIN_WAIT2: "closing (FIN_WAIT2)",
		unix.BPF_TCP_TIME_WAIT: "closing (TIME_WAIT)", unix.BPF_TCP_CLOSE_WAIT: "closed by its peer (CLOSE_WAIT)",
		unix.BPF_TCP_LAST_ACK: "closing (LAST_ACK)", unix.BPF_TCP_CLOSING: "closing (CLOSING)",
	}
	if s, ok := names[st]; ok {
		return s
	}
	return "in TCP state " + strconv.Itoa(int(st))
}

func optName(level, name int) string {
	names := map[[2]int]string{
		{unix.SOL_SOCKET, unix.SO_REUSEADDR}: "SO_REUSEADDR", {unix.SOL_SOCKET, unix.SO_REUSEPORT}: "SO_REUSEPORT",
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE}: "SO_KEEPALIVE", {unix.SOL_SOCKET, unix.SO_MARK}: "SO_MARK",
		{unix.SOL_SOCKET, unix.SO_PRIORITY}: "SO_PRIORITY", {unix.SOL_SOCKET, unix.SO_RCVBUF}: "SO_RCVBUF",
		{unix.SOL_SOCKET, unix.SO_SNDBUF}: "SO_SNDBUF", {unix.SOL_SOCKET, unix.SO_BINDTODEVICE}: "SO_BINDTODEVICE",
		{unix.IPPROTO_TCP, unix.TCP_CONGESTION}: "TCP_CONGESTION", {unix.IPPROTO_IP, unix.IP_TOS}: "IP_TOS",
		{unix.IPPROTO_IPV6, unix.IPV6_V6ONLY}: "IPV6_V6ONLY",
	}
	if s, ok := names[[2]int{level, name}]; ok {
		return s
	}
	return fmt.Sprintf("option %d of level %d", name, level)
}
