package files

import (
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// A small NETLINK_SOCK_DIAG client for unix sockets (sock_diag(7),
// linux/unix_diag.h, net/unix/diag.c): what only the kernel knows of a
// unix socket and no getsockopt tells, asked by the socket's inode: the
// inode of its peer, its bound name and the inode of its file, the
// connections waiting in a listener's queue, the bytes queued and the
// backlog, and its shutdown state. No privilege is needed.

// unix_diag_req.udiag_show bits.
const (
	udiagShowName  = 0x01
	udiagShowVFS   = 0x02
	udiagShowPeer  = 0x04
	udiagShowIcons = 0x08
	udiagShowRQLen = 0x10
)

// The attributes of a reply (enum unix_diag_*).
const (
	unixDiagName     = 0
	unixDiagVFS      = 1
	unixDiagPeer     = 2
	unixDiagIcons    = 3
	unixDiagRQLen    = 4
	unixDiagShutdown = 6
)

// Socket states as unix sockets use them (include/net/tcp_states.h).
const (
	tcpEstablished = 1
	tcpClose       = 7
	tcpListen      = 10
)

// Shutdown bits (include/net/sock.h): sk_shutdown as UNIX_DIAG_SHUTDOWN
// reports it.
const (
	rcvShutdown  = 1
	sendShutdown = 2
)

// unixDiag is what sock_diag says of one unix socket.
type unixDiag struct {
	Type  uint8 // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
	State uint8 // tcpEstablished, tcpClose, tcpListen
	Ino   uint32
	// Name is the bound address's sun_path: a path without its
	// trailing NUL, or an abstract name with its leading NUL. Named is
	// false for an unbound socket.
	Name  []byte
	Named bool
	// VFSIno and VFSDev name the socket file of a path name (its
	// dev_t as the kernel keeps it: MAJOR<<20 | MINOR); HasVFS is
	// false without one.
	VFSIno, VFSDev uint32
	HasVFS         bool
	// Peer is the inode of the socket it is connected to; HasPeer
	// false when it is connected to none. A peer that was closed, or
	// that is still waiting in a listener's queue, has inode 0.
	Peer    uint32
	HasPeer bool
	// Icons are, for a listener, the inodes of the clients whose
	// connections wait to be accepted, in queue order.
	Icons []uint32
	// RQueue and WQueue: for a listener, the connections waiting and
	// the backlog; otherwise the bytes queued to be read (of a
	// datagram socket: the first datagram's) and those sent but not
	// yet read by the peer. HasRQLen is false when not asked for.
	RQueue, WQueue uint32
	HasRQLen       bool
	Shutdown       uint8 // rcvShutdown | sendShutdown
}

// unixDiagOf asks the kernel about the unix socket with inode ino. show
// is the udiagShow bits wanted.
func unixDiagOf(ino uint32, show uint32) (*unixDiag, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag: socket(AF_NETLINK, NETLINK_SOCK_DIAG): %w", err)
	}
	defer unix.Close(fd)
	const seq = 1
	req := unixDiagRequest(ino, show, seq)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag: send: %w", err)
	}
	// A reply is at most a page (net/unix/diag.c, unix_diag_get_exact).
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag: receive: %w", err)
		}
		d, err := parseUnixDiag(buf[:n], seq)
		if err == errNotOurs {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sock_diag of socket:[%d]: %w", ino, err)
		}
		return d, nil
	}
}

var errNotOurs = errors.New("a reply to another request")

// unixDiagRequest is a struct nlmsghdr and a struct unix_diag_req that
// ask for one socket by inode.
func unixDiagRequest(ino, show, seq uint32) []byte {
	const hdr, body = unix.SizeofNlMsghdr, 24
	b := make([]byte, hdr+body)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], hdr+body)                 // nlmsg_len
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY) // nlmsg_type
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)       // nlmsg_flags: one socket, no dump
	ne.PutUint32(b[8:], seq)                      // nlmsg_seq
	r := b[hdr:]
	r[0] = unix.AF_UNIX              // sdiag_family
	r[1] = 0                         // sdiag_protocol
	ne.PutUint32(r[4:], ^uint32(0))  // udiag_states: all (unused by an exact query)
	ne.PutUint32(r[8:], ino)         // udiag_ino
	ne.PutUint32(r[12:], show)       // udiag_show
	ne.PutUint32(r[16:], ^uint32(0)) // udiag_cookie: INET_DIAG_NOCOOKIE,
	ne.PutUint32(r[20:], ^uint32(0)) // both halves
	return b
}

// parseUnixDiag reads one reply: a struct unix_diag_msg and its
// attributes, or an NLMSG_ERROR.
func parseUnixDiag(b []byte, seq uint32) (*unixDiag, error) {
	ne := binary.NativeEndian
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(ne.Uint32(b[0:]))
		typ := ne.Uint16(b[4:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return nil, fmt.Errorf("bad netlink message length %d of %d bytes", l, len(b))
		}
		msg := b[unix.SizeofNlMsghdr:l]
		next := b[min(nlAlign(l), len(b)):]
		if ne.Uint32(b[8:]) != seq {
			b = next
			continue
		}
		switch typ {
		case unix.NLMSG_ERROR:
			if len(msg) < 4 {
				return nil, errors.New("short NLMSG_ERROR")
			}
			if e := int32(ne.Uint32(msg)); e < 0 {
				return nil, unix.Errno(-e)
			}
			return nil, errors.New("an acknowledgment, not the socket")
		case unix.SOCK_DIAG_BY_FAMILY:
			return parseUnixDiagMsg(msg)
		}
		b = next
	}
	return nil, errNotOurs
}

func parseUnixDiagMsg(msg []byte) (*unixDiag, error) {
	ne := binary.NativeEndian
	const fixed = 16 // struct unix_diag_msg
	if len(msg) < fixed {
		return nil, fmt.Errorf("short unix_diag_msg (%d bytes)", len(msg))
	}
	if msg[0] != unix.AF_UNIX {
		return nil, fmt.Errorf("reply of family %d", msg[0])
	}
	d := &unixDiag{Type: msg[1], State: msg[2], Ino: ne.Uint32(msg[4:])}
	for a := msg[fixed:]; len(a) >= unix.SizeofNlAttr; {
		l := int(ne.Uint16(a[0:]))
		typ := ne.Uint16(a[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofNlAttr || l > len(a) {
			return nil, fmt.Errorf("bad attribute length %d", l)
		}
		v := a[unix.SizeofNlAttr:l]
		short := func(n int) error {
			if len(v) < n {
				return fmt.Errorf("attribute %d of %d bytes, want %d", typ, len(v), n)
			}
			return nil
		}
		switch typ {
		case unixDiagName:
			d.Named = true
			d.Name = append([]byte(nil), v...)
			if len(d.Name) > 0 && d.Name[0] != 0 {
				// A path: the kernel counts its NUL.
				for len(d.Name) > 0 && d.Name[len(d.Name)-1] == 0 {
					d.Name = d.Name[:len(d.Name)-1]
				}
			}
		case unixDiagVFS:
			if err := short(8); err != nil {
				return nil, err
			}
			d.VFSIno, d.VFSDev, d.HasVFS = ne.Uint32(v[0:]), ne.Uint32(v[4:]), true
		case unixDiagPeer:
			if err := short(4); err != nil {
				return nil, err
			}
			d.Peer, d.HasPeer = ne.Uint32(v), true
		case unixDiagIcons:
			for i := 0; i+4 <= len(v); i += 4 {
				d.Icons = append(d.Icons, ne.Uint32(v[i:]))
			}
		case unixDiagRQLen:
			if err := short(8); err != nil {
				return nil, err
			}
			d.RQueue, d.WQueue, d.HasRQLen = ne.Uint32(v[0:]), ne.Uint32(v[4:]), true
		case unixDiagShutdown:
			if err := short(1); err != nil {
				return nil, err
			}
			d.Shutdown = v[0]
		}
		a = a[min(nlAlign(l), len(a)):]
	}
	return d, nil
}

func nlAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// vfsDevIs tells whether the kernel-internal dev_t of UNIX_DIAG_VFS
// (MAJOR<<20 | MINOR, include/linux/kdev_t.h) is stat's st_dev.
func vfsDevIs(kdev uint32, stDev uint64) bool {
	return unix.Major(stDev) == kdev>>20 && unix.Minor(stDev) == kdev&(1<<20-1)
}
