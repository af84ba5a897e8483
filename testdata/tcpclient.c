/*
 * tcpclient: a client holding one established TCP connection (fd 3) to a
 * server that is not frozen.
 *
 *   tcpclient PORT [6]   connects to 127.0.0.1:PORT ([::1]:PORT with 6)
 *
 * Prints "ready", then serves:
 *   conn       -> "conn LOCAL PEER" (getsockname, getpeername)
 *   inq        -> "inq N": bytes waiting to be read (SIOCINQ)
 *   fill       -> writes a known byte stream without blocking until the
 *                 socket takes no more: "filled N" (N bytes so far, in all)
 *   send TEXT  -> writes TEXT and a newline: "sent"
 *   readline   -> reads one line from the server: "line TEXT", or
 *                 "error ERRNO" / "eof"
 *   exit [N]
 *
 * The byte stream of fill: byte i (counted from the first fill) is
 * (i * 7 + i / 251) & 0xff.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "lineio.h"

static long filled;

static unsigned char stream_byte(long i) { return (unsigned char)((i * 7 + i / 251) & 0xff); }

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

int main(int argc, char **argv)
{
	if (argc < 2) {
		put("usage: tcpclient PORT [6]\n");
		return 2;
	}
	int port = atoi(argv[1]);
	int v6 = argc > 2 && strcmp(argv[2], "6") == 0;
	int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (s < 0 || (s != 3 && (dup2(s, 3) != 3 || close(s) != 0))) {
		putf("socket failed %d\n", errno);
		return 20;
	}
	s = 3;
	int small = 32768;
	setsockopt(s, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	int one = 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	int r;
	if (v6) {
		struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT, .sin6_port = htons((unsigned short)port)};
		r = connect(s, (struct sockaddr *)&a, sizeof a);
	} else {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons((unsigned short)port)};
		r = connect(s, (struct sockaddr *)&a, sizeof a);
	}
	if (r != 0) {
		putf("connect failed %d\n", errno);
		return 21;
	}

	put("ready\n");
	char line[256], rbuf[4096];
	size_t rlen = 0;
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "conn") == 0) {
			char a[96], b[96];
			putf("conn %s %s\n", name(s, 0, a, sizeof a), name(s, 1, b, sizeof b));
		} else if (strcmp(line, "inq") == 0) {
			int n = -1;
			ioctl(s, FIONREAD, &n);
			putf("inq %d\n", n + (int)rlen);
		} else if (strcmp(line, "fill") == 0) {
			unsigned char buf[4096];
			for (;;) {
				for (size_t i = 0; i < sizeof buf; i++)
					buf[i] = stream_byte(filled + (long)i);
				ssize_t n = send(s, buf, sizeof buf, MSG_DONTWAIT | MSG_NOSIGNAL);
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0)
					break;
				filled += n;
			}
			putf("filled %ld\n", filled);
		} else if (strncmp(line, "send ", 5) == 0) {
			char out[300];
			int n = snprintf(out, sizeof out, "%s\n", line + 5);
			ssize_t w = send(s, out, (size_t)n, MSG_NOSIGNAL);
			if (w != n)
				putf("error %d\n", errno);
			else
				put("sent\n");
		} else if (strcmp(line, "readline") == 0) {
			char *nl;
			int done = 0;
			while ((nl = memchr(rbuf, '\n', rlen)) == NULL) {
				ssize_t n = read(s, rbuf + rlen, sizeof rbuf - 1 - rlen);
				if (n < 0 && errno == EINTR)
					continue;
				if (n < 0) {
					putf("error %d\n", errno);
					done = 1;
					break;
				}
				if (n == 0) {
					put("eof\n");
					done = 1;
					break;
				}
				rlen += (size_t)n;
			}
			if (done)
				continue;
			*nl = 0;
			putf("line %s\n", rbuf);
			size_t used = (size_t)(nl - rbuf) + 1;
			memmove(rbuf, nl + 1, rlen - used);
			rlen -= used;
		} else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
		else
			putf("unknown %s\n", line);
	}
	return 0;
}
