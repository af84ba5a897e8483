/*
 * inet: TCP and UDP sockets, IPv4 and IPv6, with options, that a thaw must
 * give back as they were.
 *
 *   fd 3  TCP listener on 127.0.0.1:0, backlog 7: SO_REUSEADDR, TCP_NODELAY,
 *         keepalive with TCP_KEEPIDLE/INTVL/CNT, SO_RCVBUF, SO_SNDBUF,
 *         SO_LINGER, SO_RCVTIMEO, IP_TOS, IP_TTL, TCP_DEFER_ACCEPT
 *   fd 4  TCP listener on [::1]:0, O_NONBLOCK: IPV6_V6ONLY, SO_REUSEPORT,
 *         IPV6_UNICAST_HOPS, IPV6_TCLASS
 *   fd 5  UDP socket bound to 127.0.0.1:0: SO_BROADCAST, SO_RCVBUF, IP_PKTINFO
 *   fd 6  UDP socket connected to fd 5 (its own port picked by the kernel)
 *   fd 7  TCP socket, neither bound nor connected: TCP_NODELAY, SO_SNDTIMEO
 *
 * With the argument "pair", also an established connection inside the
 * process (carried with TCP_REPAIR), on the listener's port:
 *   fd 8  a client connected to fd 3, fd 9 the connection fd 3 accepted;
 *         each has sent the other a line the other has not read yet
 *         ("from 8", "from 9")
 *   talk -> each end reads its pending line and the two exchange one more:
 *           "talk <9 read> | <8 read> | <9 read> | <8 read>"
 *
 * Prints "ready", then serves:
 *   state    -> "state ..." every socket's address, peer, options, flags
 *   ports    -> "ports TCP4 TCP6 UDP"
 *   accept4 / accept6 -> accepts one connection on fd 3 / fd 4, reads a
 *               line, answers "ok <line>" on it: "accepted <line>"
 *   udp      -> fd 6 sends "hi" to fd 5, fd 5 receives it and answers the
 *               sender (fd 6) "ho": "udp hi ho"
 *   recvudp  -> receives one datagram on fd 5 and answers its sender
 *               "pong <it>": "udp <it>"
 *   exit [N]
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "lineio.h"

static void must(int ok, int code)
{
	if (!ok) {
		putf("error %d errno %d\n", code, errno);
		_exit(code);
	}
}

static void seti(int fd, int level, int name, int v)
{
	must(setsockopt(fd, level, name, &v, sizeof v) == 0, 30 + name);
}

static int place(int fd, int at)
{
	must(fd >= 0, 20);
	if (fd == at)
		return at;
	must(dup2(fd, at) == at, 21);
	close(fd);
	return at;
}

static int geti(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof v;
	if (getsockopt(fd, level, name, &v, &l) != 0)
		return -1000 - errno;
	return v;
}

static char *name(int fd, int peer, char *buf, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof ss;
	int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &l) : getsockname(fd, (struct sockaddr *)&ss, &l);
	if (r != 0) {
		snprintf(buf, cap, "none(%d)", errno);
		return buf;
	}
	char a[64];
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
		snprintf(buf, cap, "%s:%d", a, ntohs(s->sin_port));
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
		snprintf(buf, cap, "[%s]:%d", a, ntohs(s->sin6_port));
	}
	return buf;
}

static int port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &l);
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void state(void)
{
	char out[4096], a[96], b[96];
	int n = 0;
	for (int fd = 3; fd <= 7; fd++) {
		struct linger lg = {0};
		socklen_t ll = sizeof lg;
		getsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, &ll);
		struct timeval rt = {0}, st = {0};
		socklen_t tl = sizeof rt;
		getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rt, &tl);
		tl = sizeof st;
		getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &st, &tl);
		n += snprintf(out + n, sizeof out - (size_t)n,
			      " fd%d=%s peer=%s type=%d listen=%d reuse=%d reuseport=%d keep=%d rcvbuf=%d sndbuf=%d "
			      "linger=%d/%d rcvtimeo=%ld.%06ld sndtimeo=%ld.%06ld bcast=%d fl=%o",
			      fd, name(fd, 0, a, sizeof a), name(fd, 1, b, sizeof b), geti(fd, SOL_SOCKET, SO_TYPE),
			      geti(fd, SOL_SOCKET, SO_ACCEPTCONN), geti(fd, SOL_SOCKET, SO_REUSEADDR),
			      geti(fd, SOL_SOCKET, SO_REUSEPORT), geti(fd, SOL_SOCKET, SO_KEEPALIVE),
			      geti(fd, SOL_SOCKET, SO_RCVBUF), geti(fd, SOL_SOCKET, SO_SNDBUF), lg.l_onoff, lg.l_linger,
			      (long)rt.tv_sec, (long)rt.tv_usec, (long)st.tv_sec, (long)st.tv_usec,
			      geti(fd, SOL_SOCKET, SO_BROADCAST), fcntl(fd, F_GETFL));
		if (fd == 3 || fd == 4 || fd == 7)
			n += snprintf(out + n, sizeof out - (size_t)n, " nodelay=%d idle=%d intvl=%d cnt=%d defer=%d",
				      geti(fd, IPPROTO_TCP, TCP_NODELAY), geti(fd, IPPROTO_TCP, TCP_KEEPIDLE),
				      geti(fd, IPPROTO_TCP, TCP_KEEPINTVL), geti(fd, IPPROTO_TCP, TCP_KEEPCNT),
				      geti(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT));
		if (fd == 4)
			n += snprintf(out + n, sizeof out - (size_t)n, " v6only=%d hops=%d tclass=%d",
				      geti(fd, IPPROTO_IPV6, IPV6_V6ONLY), geti(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS),
				      geti(fd, IPPROTO_IPV6, IPV6_TCLASS));
		else
			n += snprintf(out + n, sizeof out - (size_t)n, " tos=%d ttl=%d pktinfo=%d",
				      geti(fd, IPPROTO_IP, IP_TOS), geti(fd, IPPROTO_IP, IP_TTL),
				      geti(fd, IPPROTO_IP, IP_PKTINFO));
	}
	n += snprintf(out + n, sizeof out - (size_t)n, "\n");
	put("state");
	write_all(1, out, (size_t)n);
}

static void serve_accept(int l)
{
	int fl = fcntl(l, F_GETFL);
	fcntl(l, F_SETFL, fl & ~O_NONBLOCK);
	int c = accept(l, NULL, NULL);
	fcntl(l, F_SETFL, fl);
	if (c < 0) {
		putf("accept failed %d\n", errno);
		return;
	}
	char buf[256];
	ssize_t r = read(c, buf, sizeof buf - 1);
	if (r <= 0) {
		putf("accepted nothing %zd %d\n", r, errno);
		close(c);
		return;
	}
	while (r > 0 && (buf[r - 1] == '\n' || buf[r - 1] == '\r'))
		r--;
	buf[r] = 0;
	char ans[300];
	int n = snprintf(ans, sizeof ans, "ok %s\n", buf);
	write_all(c, ans, (size_t)n);
	close(c);
	putf("accepted %s\n", buf);
}

static void recv_answer(int fd, const char *prefix)
{
	char buf[256];
	struct sockaddr_storage from;
	socklen_t fl = sizeof from;
	ssize_t r = recvfrom(fd, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
	if (r < 0) {
		putf("recv failed %d\n", errno);
		return;
	}
	buf[r] = 0;
	char ans[300];
	int n = snprintf(ans, sizeof ans, "%s%s", prefix, buf);
	if (sendto(fd, ans, (size_t)n, 0, (struct sockaddr *)&from, fl) != n)
		putf("send failed %d\n", errno);
}

/* readn reads one line (up to '\n') byte by byte from fd into buf. */
static void readln(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(buf, cap, "error(%zd,%d)", r, errno);
			return;
		}
		if (buf[n] == '\n')
			break;
		n++;
	}
	buf[n] = 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in lo4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct sockaddr_in6 lo6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};

	int t4 = place(socket(AF_INET, SOCK_STREAM, 0), 3);
	seti(t4, SOL_SOCKET, SO_REUSEADDR, 1);
	seti(t4, IPPROTO_TCP, TCP_NODELAY, 1);
	seti(t4, SOL_SOCKET, SO_KEEPALIVE, 1);
	seti(t4, IPPROTO_TCP, TCP_KEEPIDLE, 77);
	seti(t4, IPPROTO_TCP, TCP_KEEPINTVL, 11);
	seti(t4, IPPROTO_TCP, TCP_KEEPCNT, 5);
	seti(t4, SOL_SOCKET, SO_RCVBUF, 65536);
	seti(t4, SOL_SOCKET, SO_SNDBUF, 32768);
	seti(t4, IPPROTO_IP, IP_TOS, 0x10);
	seti(t4, IPPROTO_IP, IP_TTL, 33);
	seti(t4, IPPROTO_TCP, TCP_DEFER_ACCEPT, 3);
	struct linger lg = {1, 5};
	must(setsockopt(t4, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0, 22);
	struct timeval tv = {2, 500000};
	must(setsockopt(t4, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, 23);
	must(bind(t4, (struct sockaddr *)&lo4, sizeof lo4) == 0, 24);
	must(listen(t4, 7) == 0, 25);

	int t6 = place(socket(AF_INET6, SOCK_STREAM, 0), 4);
	seti(t6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	seti(t6, SOL_SOCKET, SO_REUSEPORT, 1);
	seti(t6, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 44);
	seti(t6, IPPROTO_IPV6, IPV6_TCLASS, 0x20);
	must(bind(t6, (struct sockaddr *)&lo6, sizeof lo6) == 0, 26);
	must(listen(t6, 16) == 0, 27);
	fcntl(t6, F_SETFL, O_NONBLOCK);

	int u = place(socket(AF_INET, SOCK_DGRAM, 0), 5);
	seti(u, SOL_SOCKET, SO_BROADCAST, 1);
	seti(u, SOL_SOCKET, SO_RCVBUF, 100000);
	seti(u, IPPROTO_IP, IP_PKTINFO, 1);
	must(bind(u, (struct sockaddr *)&lo4, sizeof lo4) == 0, 28);
	struct sockaddr_in ua;
	socklen_t ul = sizeof ua;
	getsockname(u, (struct sockaddr *)&ua, &ul);

	int uc = place(socket(AF_INET, SOCK_DGRAM, 0), 6);
	must(connect(uc, (struct sockaddr *)&ua, sizeof ua) == 0, 29);

	int fresh = place(socket(AF_INET, SOCK_STREAM, 0), 7);
	seti(fresh, IPPROTO_TCP, TCP_NODELAY, 1);
	tv.tv_sec = 7;
	tv.tv_usec = 0;
	must(setsockopt(fresh, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0, 30);

	if (argc > 1 && strcmp(argv[1], "pair") == 0) {
		struct sockaddr_in a;
		socklen_t al = sizeof a;
		getsockname(t4, (struct sockaddr *)&a, &al);
		int c = place(socket(AF_INET, SOCK_STREAM, 0), 8);
		must(connect(c, (struct sockaddr *)&a, sizeof a) == 0, 40);
		/* TCP_DEFER_ACCEPT: the connection is accepted once it
		 * has data. */
		write_all(c, "from 8\n", 7);
		int fl = fcntl(t4, F_GETFL);
		int s = place(accept(t4, NULL, NULL), 9);
		fcntl(t4, F_SETFL, fl);
		write_all(s, "from 9\n", 7);
	}

	put("ready\n");
	char line[256];
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "state") == 0)
			state();
		else if (strcmp(line, "ports") == 0)
			putf("ports %d %d %d\n", port(t4), port(t6), port(u));
		else if (strcmp(line, "talk") == 0) {
			char a[64], b[64], c[64], d[64];
			readln(9, a, sizeof a);
			readln(8, b, sizeof b);
			write_all(8, "again 8\n", 8);
			write_all(9, "again 9\n", 8);
			readln(9, c, sizeof c);
			readln(8, d, sizeof d);
			putf("talk %s | %s | %s | %s\n", a, b, c, d);
			write_all(8, "from 8\n", 7);
			write_all(9, "from 9\n", 7);
		} else if (strcmp(line, "accept4") == 0)
			serve_accept(t4);
		else if (strcmp(line, "accept6") == 0)
			serve_accept(t6);
		else if (strcmp(line, "udp") == 0) {
			char buf[64];
			if (send(uc, "hi", 2, 0) != 2) {
				putf("udp send failed %d\n", errno);
				continue;
			}
			recv_answer(u, "re:");
			ssize_t r = recv(uc, buf, sizeof buf - 1, 0);
			if (r < 0) {
				putf("udp recv failed %d\n", errno);
				continue;
			}
			buf[r] = 0;
			putf("udp hi %s\n", buf);
		} else if (strcmp(line, "recvudp") == 0) {
			char buf[64];
			struct sockaddr_storage from;
			socklen_t fl = sizeof from;
			ssize_t r = recvfrom(u, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl);
			if (r < 0) {
				putf("recv failed %d\n", errno);
				continue;
			}
			buf[r] = 0;
			char ans[100];
			int n = snprintf(ans, sizeof ans, "pong %s", buf);
			sendto(u, ans, (size_t)n, 0, (struct sockaddr *)&from, fl);
			putf("udp %s\n", buf);
		} else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
		else
			putf("unknown %s\n", line);
	}
	return 0;
}
