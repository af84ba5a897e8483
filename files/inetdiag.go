package files

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// inetQueues asks sock_diag(7) (NETLINK_SOCK_DIAG, inet_diag) about the
// socket with inode ino of the given family and protocol, in one of
// states (a bit mask of TCP_* states; UDP sockets are "TCP_CLOSE" or
// "TCP_ESTABLISHED" there too). It returns idiag_rqueue and
// idiag_wqueue: for a TCP listener the connections waiting to be
// accepted and the backlog listen(2) was given (tcp_diag_get_info), for a
// UDP socket the bytes queued to be read and to be sent. found is false
// when no such socket is listed.
func inetQueues(family, proto int, states uint32, ino uint64) (rq, wq uint32, found bool, err error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, 0, false, fmt.Errorf("sock_diag socket: %w", err)
	}
	defer unix.Close(fd)
	// struct nlmsghdr (16) + struct inet_diag_req_v2 (56): family,
	// protocol, ext, pad, states, and an inet_diag_sockid left zero
	// (every socket of the family; matched by inode below).
	req := make([]byte, 16+56)
	binary.LittleEndian.PutUint32(req[0:], uint32(len(req)))
	binary.LittleEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.LittleEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.LittleEndian.PutUint32(req[8:], 1)
	req[16] = byte(family)
	req[17] = byte(proto)
	binary.LittleEndian.PutUint32(req[20:], states)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, 0, false, fmt.Errorf("sock_diag request: %w", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, 0, false, fmt.Errorf("sock_diag reply: %w", err)
		}
		for b := buf[:n]; len(b) >= 16; {
			l := int(binary.LittleEndian.Uint32(b[0:]))
			typ := binary.LittleEndian.Uint16(b[4:])
			if l < 16 || l > len(b) {
				return 0, 0, false, fmt.Errorf("sock_diag reply: a message of %d bytes in %d", l, len(b))
			}
			d := b[16:l]
			b = b[min(len(b), (l+3)&^3):]
			switch typ {
			case unix.NLMSG_DONE:
				return rq, wq, found, nil
			case unix.NLMSG_ERROR:
				if len(d) >= 4 {
					if e := int32(binary.LittleEndian.Uint32(d)); e != 0 {
						return 0, 0, false, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return rq, wq, found, nil
			}
			// struct inet_diag_msg: family, state, timer, retrans,
			// inet_diag_sockid (48), expires, rqueue, wqueue, uid,
			// inode.
			if len(d) < 72 {
				continue
			}
			if uint64(binary.LittleEndian.Uint32(d[68:])) == ino {
				rq, wq, found = binary.LittleEndian.Uint32(d[56:]), binary.LittleEndian.Uint32(d[60:]), true
			}
		}
	}
}
