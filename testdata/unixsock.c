/*
 * unixsock: a process holding unix sockets of every kind cryo carries,
 * with bytes queued in them.
 *
 *   unixsock DIR NAME [SERVER]
 *
 *   fd 3, 4    a SOCK_STREAM socketpair, bytes queued both ways; fd 3
 *              O_NONBLOCK, fd 4 with SO_RCVBUF set
 *   fd 5, 6    a SOCK_SEQPACKET socketpair, 2 messages queued for 6 (and
 *              SO_RCVTIMEO on 6)
 *   fd 7, 8    a SOCK_DGRAM socketpair, 2 datagrams queued for 7
 *   fd 9       a SOCK_STREAM listener at DIR/listen.sock
 *   fd 10      a SOCK_SEQPACKET listener at the abstract name NAME
 *   fd 11      a SOCK_DGRAM socket bound to DIR/dgram.sock (SO_PASSCRED)
 *   fd 12, 13  a SOCK_STREAM socketpair, "bye" queued for 13, then 12
 *              shut down for writing
 *   fd 14      with SERVER: a SOCK_STREAM socket connected to it
 *
 * DIR may be relative (".": the sockets are bound to relative paths).
 * Prints "ready", then serves:
 *   check   -> "check ok" when every queue holds exactly what was queued
 *              (read, then queued again as it was), every option, flag,
 *              shutdown state and name is as set; else "check FAIL <what>"
 *   accept  -> accepts one connection on fd 9 and one on fd 10, reads a
 *              line from each and answers it "echo <line>", closes them:
 *              "accepted <line9> <line10>"
 *   recvdg  -> "recvdg <datagram>" received on fd 11, or "recvdg none"
 *   ext     -> reads fd 14 until end of file or nothing more, then writes
 *              a byte: "ext <bytes read> eof=<0|1> write=<errno name|ok>"
 *   ping    -> "pong <count>"
 *   exit [N]
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lineio.h"

#define S_TO_4 "stream 3 to 4"
#define S_TO_3 "stream 4 to 3, and more"
#define SEQ1 "first"
#define SEQ2 "second message"
#define DG1 "dgram one"
#define DG2 "dgram two!"

static char dir[200], name[100];
static int have_server;

static void move_fd(int from, int to)
{
	if (from == to)
		return;
	if (dup2(from, to) != to)
		_exit(20);
	close(from);
}

/* pair makes a socketpair of type on fds a and b. */
static void pair(int type, int a, int b)
{
	int sv[2];
	if (socketpair(AF_UNIX, type, 0, sv) != 0)
		_exit(21);
	/* Both high first, so that the moves cannot collide. */
	int x = fcntl(sv[0], F_DUPFD, 100), y = fcntl(sv[1], F_DUPFD, 100);
	close(sv[0]);
	close(sv[1]);
	move_fd(x, a);
	move_fd(y, b);
}

static socklen_t addr(struct sockaddr_un *sa, const char *path, int abstract)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	size_t n = strlen(path);
	if (n + 2 > sizeof sa->sun_path)
		_exit(22);
	if (abstract) {
		memcpy(sa->sun_path + 1, path, n);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	}
	memcpy(sa->sun_path, path, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

/* bound makes a socket of type bound to path (or an abstract name) on
 * fd at, listening unless a datagram socket. */
static void bound(int type, int at, const char *path, int abstract)
{
	int s = socket(AF_UNIX, type, 0);
	struct sockaddr_un sa;
	socklen_t len = addr(&sa, path, abstract);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, len) != 0)
		_exit(23);
	if (type != SOCK_DGRAM && listen(s, 8) != 0)
		_exit(24);
	move_fd(s, at);
}

static void queue_all(void)
{
	if (send(3, S_TO_4, strlen(S_TO_4), 0) < 0 || send(4, S_TO_3, strlen(S_TO_3), 0) < 0 ||
	    send(5, SEQ1, strlen(SEQ1), 0) < 0 || send(5, SEQ2, strlen(SEQ2), 0) < 0 ||
	    send(8, DG1, strlen(DG1), 0) < 0 || send(8, DG2, strlen(DG2), 0) < 0)
		_exit(25);
}

static char fail[256];

static void failed(const char *what, const char *got)
{
	if (!fail[0])
		snprintf(fail, sizeof fail, "%s (got \"%s\", errno %d)", what, got, errno);
}

/* take reads every message queued on fd without waiting, into out
 * separated by '|'. */
static void take(int fd, char *out, size_t cap)
{
	out[0] = 0;
	for (int i = 0; i < 10; i++) {
		char buf[256];
		ssize_t n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT);
		if (n < 0)
			break;
		buf[n] = 0;
		if (i > 0)
			strncat(out, "|", cap - strlen(out) - 1);
		strncat(out, buf, cap - strlen(out) - 1);
		if (n == 0)
			break;
	}
}

static void expect_queue(int fd, const char *want, const char *what)
{
	char got[512];
	take(fd, got, sizeof got);
	if (strcmp(got, want) != 0)
		failed(what, got);
}

static void expect_int(int fd, int opt, int want, const char *what)
{
	int v = -1;
	socklen_t l = sizeof v;
	char got[32];
	if (getsockopt(fd, SOL_SOCKET, opt, &v, &l) != 0 || v != want) {
		snprintf(got, sizeof got, "%d", v);
		failed(what, got);
	}
}

static void expect_name(int fd, const char *path, int abstract, const char *what)
{
	struct sockaddr_un sa, want;
	socklen_t len = sizeof sa, wlen = addr(&want, path, abstract);
	memset(&sa, 0, sizeof sa);
	if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0 || len != wlen ||
	    memcmp(&sa, &want, wlen) != 0)
		failed(what, sa.sun_path[0] ? sa.sun_path : sa.sun_path + 1);
}

static void check(void)
{
	char path[256];
	fail[0] = 0;
	expect_queue(4, S_TO_4, "fd 4's queue");
	expect_queue(3, S_TO_3, "fd 3's queue");
	expect_queue(6, SEQ1 "|" SEQ2, "fd 6's messages");
	expect_queue(5, "", "fd 5's messages");
	expect_queue(7, DG1 "|" DG2, "fd 7's datagrams");
	expect_queue(11, "", "fd 11's datagrams");
	queue_all(); /* as it was */

	/* The shut down pair: "bye" then end of file for 13; 12 cannot
	 * write. */
	char buf[16];
	ssize_t n = recv(13, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
	if (n != 3 || memcmp(buf, "bye", 3) != 0)
		failed("fd 13's bytes", n > 0 ? "other bytes" : "none");
	struct pollfd pf = {.fd = 13, .events = POLLIN | POLLRDHUP};
	if (poll(&pf, 1, 0) != 1 || !(pf.revents & POLLRDHUP))
		failed("fd 13's peer shut down", "no POLLRDHUP");
	if (send(12, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != -1 || errno != EPIPE)
		failed("fd 12 shut down for writing", "it writes");

	if (!(fcntl(3, F_GETFL) & O_NONBLOCK))
		failed("fd 3 O_NONBLOCK", "blocking");
	if (fcntl(4, F_GETFL) & O_NONBLOCK)
		failed("fd 4 blocking", "O_NONBLOCK");
	expect_int(4, SO_RCVBUF, 2 * 65536, "fd 4 SO_RCVBUF");
	expect_int(11, SO_PASSCRED, 1, "fd 11 SO_PASSCRED");
	struct timeval tv;
	socklen_t l = sizeof tv;
	if (getsockopt(6, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) != 0 || tv.tv_sec != 2 || tv.tv_usec != 500000)
		failed("fd 6 SO_RCVTIMEO", "other");
	int type = 0;
	l = sizeof type;
	if (getsockopt(10, SOL_SOCKET, SO_TYPE, &type, &l) != 0 || type != SOCK_SEQPACKET)
		failed("fd 10 SOCK_SEQPACKET", "other type");

	snprintf(path, sizeof path, "%s/listen.sock", dir);
	expect_name(9, path, 0, "fd 9's name");
	expect_name(10, name, 1, "fd 10's name");
	snprintf(path, sizeof path, "%s/dgram.sock", dir);
	expect_name(11, path, 0, "fd 11's name");
	if (fail[0])
		putf("check FAIL %s\n", fail);
	else
		put("check ok\n");
}

/* serve accepts one connection on fd, reads one line, echoes it. */
static void serve(int fd, char *line, size_t cap)
{
	int c = accept(fd, NULL, NULL);
	line[0] = 0;
	if (c < 0) {
		snprintf(line, cap, "accept-errno-%d", errno);
		return;
	}
	ssize_t n = recv(c, line, cap - 1, 0);
	if (n < 0)
		n = 0;
	line[n] = 0;
	char *nl = strchr(line, '\n');
	if (nl)
		*nl = 0;
	char out[300];
	int m = snprintf(out, sizeof out, "echo %s\n", line);
	send(c, out, (size_t)m, MSG_NOSIGNAL);
	close(c);
}

static void ext(void)
{
	char got[256] = "";
	size_t len = 0;
	int eof = 0;
	for (;;) {
		ssize_t n = recv(14, got + len, sizeof got - 1 - len, MSG_DONTWAIT);
		if (n == 0)
			eof = 1;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	got[len] = 0;
	const char *w = "ok";
	if (send(14, "x", 1, MSG_NOSIGNAL) < 0)
		w = errno == EPIPE ? "EPIPE" : errno == ECONNRESET ? "ECONNRESET" : "other";
	putf("ext %s eof=%d write=%s\n", got, eof, w);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		put("usage: unixsock DIR NAME [SERVER]\n");
		return 2;
	}
	snprintf(dir, sizeof dir, "%s", argv[1]);
	snprintf(name, sizeof name, "%s", argv[2]);
	have_server = argc > 3;
	char path[256];

	pair(SOCK_STREAM, 3, 4);
	pair(SOCK_SEQPACKET, 5, 6);
	pair(SOCK_DGRAM, 7, 8);
	snprintf(path, sizeof path, "%s/listen.sock", dir);
	unlink(path);
	bound(SOCK_STREAM, 9, path, 0);
	bound(SOCK_SEQPACKET, 10, name, 1);
	snprintf(path, sizeof path, "%s/dgram.sock", dir);
	unlink(path);
	bound(SOCK_DGRAM, 11, path, 0);
	pair(SOCK_STREAM, 12, 13);
	if (send(12, "bye", 3, 0) != 3 || shutdown(12, SHUT_WR) != 0)
		return 26;
	if (have_server) {
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sa;
		socklen_t len = addr(&sa, argv[3], 0);
		if (s < 0 || connect(s, (struct sockaddr *)&sa, len) != 0)
			return 27;
		move_fd(s, 14);
	}

	fcntl(3, F_SETFL, fcntl(3, F_GETFL) | O_NONBLOCK);
	int v = 65536;
	setsockopt(4, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
	v = 1;
	setsockopt(11, SOL_SOCKET, SO_PASSCRED, &v, sizeof v);
	struct timeval tv = {.tv_sec = 2, .tv_usec = 500000};
	setsockopt(6, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	queue_all();

	put("ready\n");
	char line[256];
	long count = 0;
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "check") == 0) {
			check();
		} else if (strcmp(line, "accept") == 0) {
			char a[128], b[128];
			serve(9, a, sizeof a);
			serve(10, b, sizeof b);
			putf("accepted %s %s\n", a, b);
		} else if (strcmp(line, "recvdg") == 0) {
			char buf[256];
			ssize_t n = recv(11, buf, sizeof buf - 1, MSG_DONTWAIT);
			if (n < 0) {
				put("recvdg none\n");
			} else {
				buf[n] = 0;
				putf("recvdg %s\n", buf);
			}
		} else if (strcmp(line, "ext") == 0) {
			if (have_server)
				ext();
			else
				put("ext none\n");
		} else if (strcmp(line, "ping") == 0) {
			putf("pong %ld\n", ++count);
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		} else {
			putf("unknown %s\n", line);
		}
	}
	return 0;
}
