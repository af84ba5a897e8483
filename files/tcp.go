package files

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// Established TCP connections (the inet kind's), by policy
// (DumpOptions.TCPEstablished, freeze --tcp-established):
//
// repair (the default when freeze has CAP_NET_ADMIN): the connection
// itself is carried, and the peer sees nothing, with TCP_REPAIR
// (Documentation/networking/ip-sysctl and CRIU's soccr for the sequence).
// At freeze, on freeze's own copy of the socket (the same socket as the
// target's): a socket filter that drops every packet is attached, so
// that nothing the peer sends is taken (and acknowledged) after the
// queues are read — the peer sends it again to the thawed socket; the
// socket enters repair mode; freeze reads the sequence numbers of both
// queues (TCP_QUEUE_SEQ), the bytes in each (recv with MSG_PEEK under
// TCP_REPAIR_QUEUE: the send queue holds what the peer has not
// acknowledged, part of it never sent), the window (TCP_REPAIR_WINDOW),
// the options agreed at the handshake (TCP_INFO: SACK, window scales,
// timestamps; TCP_MAXSEG in repair mode is the mss clamp) and the
// timestamp clock (TCP_TIMESTAMP). The socket stays in repair mode: when
// the original is killed and freeze lets go of its copy, the close sends
// neither FIN nor RST (tcp_disconnect in repair mode). If the freeze fails, or
// with --leave-running, Dumper.Release takes it out of repair mode
// (TCP_REPAIR_OFF_NO_WP), removes the filter and gives back
// SO_REUSEADDR (leaving repair mode clears it) before the target runs:
// it goes on with its connection, the peer resends what was dropped.
//
// At thaw the helper makes a socket, enters repair mode (CAP_NET_ADMIN
// again), binds the local address (repair mode forces the reuse),
// sets both sequence numbers to where the queued bytes start, connects
// (no handshake in repair mode), sets the options, refills the receive
// queue and the sent part of the send queue, sets the window and leaves
// repair mode, which sends a window probe: the peer answers, and what it
// has not acknowledged is sent again. The never-sent part of the send
// queue is then written as the process would.
//
// Between the moment freeze lets go of the socket and the thaw, the port
// has no socket: a packet from the peer then (more data, a keepalive)
// is answered with a reset by the kernel. CRIU closes that gap with
// firewall rules; cryo does not touch the firewall, so a connection
// survives when its peer is silent meanwhile (a client waiting for its
// next request, a server waiting for the client).
//
// reset: the thawed process gets a connection that was reset: its next
// read or write fails with ECONNRESET, poll reports POLLERR|POLLHUP, as
// after a network failure, and the application reconnects. Needs no
// privilege. refuse: freeze refuses, naming the connection. Without
// CAP_NET_ADMIN and without a policy, freeze refuses and names the flag.

// tcpRepair is what TCP_REPAIR needs to set a connection up again.
type tcpRepair struct {
	// SndSeq is the sequence number after the send queue (write_seq),
	// RcvSeq after the receive queue (rcv_nxt).
	SndSeq uint32 `json:"snd_seq"`
	RcvSeq uint32 `json:"rcv_seq"`
	// SndLen bytes are in the send queue (not yet acknowledged), the
	// last Unsent of them never sent; RcvLen bytes wait to be read.
	SndLen int `json:"snd_len"`
	Unsent int `json:"unsent"`
	RcvLen int `json:"rcv_len"`
	// The queues' bytes, as BLOB records.
	SndBlob uint64 `json:"snd_blob,omitempty"`
	RcvBlob uint64 `json:"rcv_blob,omitempty"`
	// Options agreed at the handshake: TCPI_OPT_* bits, window scales,
	// the mss clamp.
	Options   uint8  `json:"options"`
	SndWscale uint8  `json:"snd_wscale"`
	RcvWscale uint8  `json:"rcv_wscale"`
	MSS       uint32 `json:"mss"`
	// Timestamp is the connection's timestamp clock (TCP_TIMESTAMP).
	Timestamp uint32 `json:"timestamp"`
	// Window is struct tcp_repair_window: snd_wl1, snd_wnd,
	// max_window, rcv_wnd, rcv_wup.
	Window []byte `json:"window"`
	// SndBuf is SO_SNDBUF (as getsockopt says it: twice what is set).
	SndBuf int `json:"sndbuf"`
}

// The TCP_REPAIR_QUEUE values (include/uapi/linux/tcp.h).
const (
	tcpNoQueue   = 0
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// The TCPI_OPT_* bits of tcpi_options.
const (
	tcpiOptTimestamps = 1
	tcpiOptSack       = 2
	tcpiOptWscale     = 4
)

// dumpEstablished applies the policy to the established connection of o.
func dumpEstablished(d *Dumper, o *Object, p *inetPayload) error {
	switch d.Opts.TCPEstablished {
	case TCPRefuse:
		return fmt.Errorf("fd %d: %s is an established TCP connection, and --tcp-established=refuse", o.Num, p)
	case TCPReset:
		p.Reset = true
		d.Note("fd %d: %s is established: thaw gives the process a reset connection (ECONNRESET on its next read or write), as --tcp-established=reset asks", o.Num, p)
		return nil
	}
	err := dumpRepair(d, o, p)
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("fd %d: %s is an established TCP connection, and carrying it needs CAP_NET_ADMIN (TCP_REPAIR), which freeze lacks: freeze as root, or with --tcp-established=reset to give the process a reset connection it reconnects from",
			o.Num, p)
	}
	if err != nil {
		return fmt.Errorf("fd %d: %s: %w", o.Num, p, err)
	}
	d.Note("fd %d: %s is established: thaw restores the same connection (TCP_REPAIR; the thaw needs CAP_NET_ADMIN too), with %d bytes to read and %d unacknowledged",
		o.Num, p, p.Repair.RcvLen, p.Repair.SndLen)
	return nil
}

// dumpRepair reads the connection of o in repair mode, and leaves it
// there until the Dumper is released or closed.
func dumpRepair(d *Dumper, o *Object, p *inetPayload) (err error) {
	fd := int(o.Local.Fd())
	reuse, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR)
	if err != nil {
		return fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		return err
	}
	filtered := false
	d.undo = append(d.undo, func() error {
		var errs []error
		if filtered {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil {
				errs = append(errs, fmt.Errorf("SO_DETACH_FILTER: %w", err))
			}
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF_NO_WP); err != nil {
			errs = append(errs, fmt.Errorf("leave repair mode: %w", err))
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, reuse); err != nil {
			errs = append(errs, fmt.Errorf("SO_REUSEADDR: %w", err))
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("fd %d: %s: give the connection back: %w", o.Num, p, err)
		}
		return nil
	})
	// The lock: from here on nothing the peer sends is taken.
	if nf, err := filterLen(fd); err == nil && nf == 0 {
		if err := attachDropAll(fd); err != nil {
			return fmt.Errorf("attach a filter that holds the peer's packets: %w", err)
		}
		filtered = true
	}
	rp := &tcpRepair{}
	if rp.SndBuf, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF); err != nil {
		return fmt.Errorf("SO_SNDBUF: %w", err)
	}
	info, err := getsockoptBytesRetry(fd, unix.IPPROTO_TCP, unix.TCP_INFO, 8)
	if err != nil {
		return fmt.Errorf("TCP_INFO: %w", err)
	}
	// tcpi_options, then tcpi_snd_wscale:4, tcpi_rcv_wscale:4.
	rp.Options, rp.SndWscale, rp.RcvWscale = info[5], info[6]&0xf, info[6]>>4
	mss, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_MAXSEG)
	if err != nil {
		return fmt.Errorf("TCP_MAXSEG: %w", err)
	}
	rp.MSS = uint32(mss)
	if rp.Options&tcpiOptTimestamps != 0 {
		ts, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP)
		if err != nil {
			return fmt.Errorf("TCP_TIMESTAMP: %w", err)
		}
		rp.Timestamp = uint32(ts)
	}
	if rp.RcvLen, err = unix.IoctlGetInt(fd, unix.SIOCINQ); err != nil {
		return fmt.Errorf("SIOCINQ: %w", err)
	}
	if rp.SndLen, err = unix.IoctlGetInt(fd, unix.SIOCOUTQ); err != nil {
		return fmt.Errorf("SIOCOUTQ: %w", err)
	}
	if rp.Unsent, err = unix.IoctlGetInt(fd, unix.SIOCOUTQNSD); err != nil {
		return fmt.Errorf("SIOCOUTQNSD: %w", err)
	}
	for _, q := range []struct {
		queue int
		seq   *uint32
		n     int
		blob  *uint64
	}{{tcpSendQueue, &rp.SndSeq, rp.SndLen, &rp.SndBlob}, {tcpRecvQueue, &rp.RcvSeq, rp.RcvLen, &rp.RcvBlob}} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q.queue); err != nil {
			return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
		}
		seq, err := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ)
		if err != nil {
			return fmt.Errorf("TCP_QUEUE_SEQ: %w", err)
		}
		*q.seq = uint32(seq)
		if q.n == 0 {
			continue
		}
		data, err := peekQueue(fd, q.n, q.queue == tcpRecvQueue)
		if err != nil {
			return err
		}
		*q.blob = d.addBlob(data)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	if rp.Window, err = getsockoptBytesRetry(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, 20); err != nil {
		return fmt.Errorf("TCP_REPAIR_WINDOW: %w", err)
	}
	p.Repair = rp
	return nil
}

// peekQueue copies the n bytes of the queue chosen with TCP_REPAIR_QUEUE
// without taking them. The receive queue is peeked from its start: a
// peek offset the process set (SO_PEEK_OFF) is moved to 0 for it, and
// put back.
func peekQueue(fd, n int, recvQueue bool) ([]byte, error) {
	if recvQueue {
		off, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF)
		if err == nil && off >= 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, 0); err != nil {
				return nil, fmt.Errorf("SO_PEEK_OFF: %w", err)
			}
			defer unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEEK_OFF, off)
		}
	}
	buf := make([]byte, n+1)
	got, _, err := unix.Recvfrom(fd, buf, unix.MSG_PEEK|unix.MSG_DONTWAIT)
	name := "send"
	if recvQueue {
		name = "receive"
	}
	if err != nil {
		return nil, fmt.Errorf("read the %s queue: %w", name, err)
	}
	if got != n {
		return nil, fmt.Errorf("read the %s queue: %d bytes, want %d", name, got, n)
	}
	return buf[:n], nil
}

// openRepair makes the connection of p again (see the top of this file).
// The queues are refilled once their blobs are read.
func openRepair(r *Restorer, f *image.File, p *inetPayload, n int) (*os.File, error) {
	rp := p.Repair
	// May this thaw repair at all? Asked first, so that this is what a
	// thaw without CAP_NET_ADMIN is told (and not that some option
	// needs it too).
	probe, err := unix.Socket(p.Family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, fmt.Errorf("fd %d: %s: socket: %w", n, p, err)
	}
	err = unix.SetsockoptInt(probe, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
	unix.Close(probe)
	if errors.Is(err, unix.EPERM) {
		return nil, fmt.Errorf("fd %d: %s is an established TCP connection, and restoring it needs CAP_NET_ADMIN (TCP_REPAIR): thaw as root, or freeze again with --tcp-established=reset", n, p)
	}
	lf, err := newInetSocket(p, n)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*os.File, error) {
		lf.Close()
		return nil, fmt.Errorf("fd %d: %s: %s: %w", n, p, what, err)
	}
	fd := int(lf.Fd())
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON); err != nil {
		if errors.Is(err, unix.EPERM) {
			lf.Close()
			return nil, fmt.Errorf("fd %d: %s is an established TCP connection, and restoring it needs CAP_NET_ADMIN (TCP_REPAIR): thaw as root, or freeze again with --tcp-established=reset", n, p)
		}
		return fail("TCP_REPAIR", err)
	}
	if p.Local == nil || p.Peer == nil {
		return fail("restore", errors.New("the image lacks its addresses"))
	}
	if err := unix.Bind(fd, p.Local.sockaddr(p.Family)); err != nil {
		return fail("bind "+p.Local.String(), err)
	}
	for _, q := range []struct {
		queue int
		seq   uint32
	}{{tcpSendQueue, rp.SndSeq - uint32(rp.SndLen)}, {tcpRecvQueue, rp.RcvSeq - uint32(rp.RcvLen)}} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, q.queue); err != nil {
			return fail("TCP_REPAIR_QUEUE", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ, int(q.seq)); err != nil {
			return fail("TCP_QUEUE_SEQ", err)
		}
	}
	if err := unix.Connect(fd, p.Peer.sockaddr(p.Family)); err != nil {
		hint := ""
		if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.EADDRINUSE) {
			hint = " (is the frozen process still running with it?)"
		}
		return fail("connect in repair mode"+hint, err)
	}
	opts := []unix.TCPRepairOpt{{Code: unix.TCPOPT_MAXSEG, Val: rp.MSS}}
	if rp.Options&tcpiOptWscale != 0 {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_WINDOW, Val: uint32(rp.SndWscale) | uint32(rp.RcvWscale)<<16})
	}
	if rp.Options&tcpiOptSack != 0 {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_SACK_PERMITTED})
	}
	if rp.Options&tcpiOptTimestamps != 0 {
		opts = append(opts, unix.TCPRepairOpt{Code: unix.TCPOPT_TIMESTAMP})
	}
	if err := unix.SetsockoptTCPRepairOpt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_OPTIONS, opts); err != nil {
		return fail("TCP_REPAIR_OPTIONS", err)
	}
	if rp.Options&tcpiOptTimestamps != 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_TIMESTAMP, int(rp.Timestamp)); err != nil {
			return fail("TCP_TIMESTAMP", err)
		}
	}
	var snd, rcv []byte
	collect := func(id uint64, dst *[]byte) {
		if id != 0 {
			r.sink(id, func(off uint64, data []byte) error {
				*dst = append(*dst, data...)
				return nil
			})
		}
	}
	collect(rp.SndBlob, &snd)
	collect(rp.RcvBlob, &rcv)
	r.after(func() error {
		if len(snd) != rp.SndLen || len(rcv) != rp.RcvLen {
			return fmt.Errorf("fd %d: %s: the image holds %d and %d bytes of its queues, want %d and %d", n, p, len(snd), len(rcv), rp.SndLen, rp.RcvLen)
		}
		if err := refill(fd, tcpRecvQueue, rcv); err != nil {
			return fmt.Errorf("fd %d: %s: refill the receive queue: %w", n, p, err)
		}
		// The send queue is written as the process never wrote it
		// (other skbs, other memory counted): room enough for it while
		// it is refilled, the original size after.
		if rp.SndLen > 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4*rp.SndLen+1<<20); err != nil {
				return fmt.Errorf("fd %d: %s: SO_SNDBUFFORCE: %w", n, p, err)
			}
		}
		sent := rp.SndLen - rp.Unsent
		if err := refill(fd, tcpSendQueue, snd[:sent]); err != nil {
			return fmt.Errorf("fd %d: %s: refill the send queue: %w", n, p, err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpNoQueue); err != nil {
			return fmt.Errorf("fd %d: %s: TCP_REPAIR_QUEUE: %w", n, p, err)
		}
		if len(rp.Window) > 0 {
			if err := setsockoptBytes(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_WINDOW, rp.Window); err != nil {
				return fmt.Errorf("fd %d: %s: TCP_REPAIR_WINDOW: %w", n, p, err)
			}
		}
		// Out of repair mode, with a window probe: the peer answers.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF); err != nil {
			return fmt.Errorf("fd %d: %s: leave repair mode: %w", n, p, err)
		}
		if err := setReuse(fd, p); err != nil {
			return fmt.Errorf("fd %d: %s: %w", n, p, err)
		}
		// What was never sent is sent now, as the process would have;
		// what the socket does not take at once (its memory is
		// counted otherwise than the original's) is queued in repair
		// mode as sent, and goes out as a retransmission.
		rest, err := sendSome(fd, snd[sent:])
		if err != nil {
			return fmt.Errorf("fd %d: %s: send what was not sent yet: %w", n, p, err)
		}
		if len(rest) > 0 {
			err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON)
			if err == nil {
				err = refill(fd, tcpSendQueue, rest)
			}
			if err == nil {
				err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF)
			}
			if err == nil {
				err = setReuse(fd, p)
			}
			if err != nil {
				return fmt.Errorf("fd %d: %s: queue what was not sent yet: %w", n, p, err)
			}
		}
		if rp.SndLen > 0 && rp.SndBuf > 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, rp.SndBuf/2); err != nil {
				return fmt.Errorf("fd %d: %s: SO_SNDBUFFORCE: %w", n, p, err)
			}
		}
		return setStatusFlags(lf, f.Flags)
	})
	return lf, nil
}

// refill writes b into queue (TCP_REPAIR_QUEUE) of fd, in repair mode.
func refill(fd, queue int, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, queue); err != nil {
		return fmt.Errorf("TCP_REPAIR_QUEUE: %w", err)
	}
	return sendAll(fd, b)
}

// setReuse gives fd back the SO_REUSEADDR of p, which leaving repair
// mode cleared.
func setReuse(fd int, p *inetPayload) error {
	if reuse, ok := p.opt(unix.SOL_SOCKET, unix.SO_REUSEADDR); ok {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, reuse); err != nil {
			return fmt.Errorf("SO_REUSEADDR: %w", err)
		}
	}
	return nil
}

// sendSome sends what of b the socket takes without waiting, and
// returns the rest.
func sendSome(fd int, b []byte) ([]byte, error) {
	for len(b) > 0 {
		n, err := unix.SendmsgN(fd, b, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EAGAIN) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		b = b[n:]
	}
	return nil, nil
}

func sendAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.SendmsgN(fd, b, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("%d bytes left: %w", len(b), err)
		}
		b = b[n:]
	}
	return nil
}

// openReset makes a TCP connection that was reset by its peer: a
// loopback connection to a listener of the helper's own whose accepted
// end is closed with SO_LINGER 0 (a RST). The process's next read or
// write fails with ECONNRESET.
func openReset(r *Restorer, f *image.File, p *inetPayload, n int) (*os.File, error) {
	fail := func(what string, err error) (*os.File, error) {
		return nil, fmt.Errorf("fd %d: %s: make a reset connection: %s: %w", n, p, what, err)
	}
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail("socket", err)
	}
	defer unix.Close(ln)
	lo := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if err := unix.Bind(ln, lo); err != nil {
		return fail("bind 127.0.0.1", err)
	}
	if err := unix.Listen(ln, 1); err != nil {
		return fail("listen", err)
	}
	sa, err := unix.Getsockname(ln)
	if err != nil {
		return fail("getsockname", err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	c, err := unix.Socket(p.Family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return fail("socket", err)
	}
	lf := os.NewFile(uintptr(c), "socket")
	to := unix.Sockaddr(&unix.SockaddrInet4{Addr: lo.Addr, Port: port})
	if p.Family == unix.AF_INET6 {
		// An IPv6 socket reaches the IPv4 loopback as ::ffff:127.0.0.1.
		unix.SetsockoptInt(c, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
		to = &unix.SockaddrInet6{Addr: netipMapped(lo.Addr), Port: port}
	}
	if err := unix.Connect(c, to); err != nil {
		lf.Close()
		return fail("connect", err)
	}
	a, _, err := unix.Accept4(ln, unix.SOCK_CLOEXEC)
	if err != nil {
		lf.Close()
		return fail("accept", err)
	}
	unix.SetsockoptLinger(a, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(a)
	// Wait until the RST is in: the socket is closed, with its error.
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := getsockoptBytesRetry(c, unix.IPPROTO_TCP, unix.TCP_INFO, 8)
		if err != nil {
			lf.Close()
			return fail("TCP_INFO", err)
		}
		if info[0] == unix.BPF_TCP_CLOSE {
			break
		}
		if time.Now().After(deadline) {
			lf.Close()
			return fail("wait for the reset", unix.ETIMEDOUT)
		}
		pfd := []unix.PollFd{{Fd: int32(c), Events: unix.POLLIN}}
		unix.Poll(pfd, 10)
	}
	// The options as the process had them, where they still apply: the
	// connection is gone anyway.
	_ = setOpts(c, p, n)
	r.after(func() error { return setStatusFlags(lf, f.Flags) })
	return lf, nil
}

func netipMapped(v4 [4]byte) [16]byte {
	var b [16]byte
	b[10], b[11] = 0xff, 0xff
	copy(b[12:], v4[:])
	return b
}
