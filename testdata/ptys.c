/*
 * ptys: terminals on fds beyond 0-2. Two modes (argv[1]):
 *
 * "pair": pseudo-terminal pairs the process holds both sides of, as
 * script(1) or a terminal emulator does:
 *   A: master fd 3, slave fd 4 (raw modes, 33x101), the slave opened
 *      again read-only on fd 6, then made exclusive (TIOCEXCL);
 *   B: master fd 5 alone, still locked, in packet mode, 24x80;
 *   C: master fd 7 whose slave was opened and closed (reads: EIO).
 *
 * "ctty": fd 3 is its controlling terminal (the starter makes it so) and
 * 0-2 are not; it opens /dev/tty read-only on fd 5, as a program that
 * asks for a password does, and turns echo off.
 *
 * Commands on stdin, one answer line on stdout:
 *   check  -> "check k=v ..." (pair: a.slave a.raw a.ws a.talk a.ro a.excl b.lock
 *             b.pkt b.ws c.hup; ctty: tty5.ro tty5.dev tty5.pgrp tty5.sid
 *             fd3.sid echo), each 1 when it holds
 *   names  -> "names <ptsname of fd 3> <ptsname of fd 5>" (pair)
 *   queue  -> writes "abc" into master A, unread by slave A: "queued"
 *   outq   -> writes "xyz" into slave A, unread by master A: "outq"
 *   drain  -> reads what queue/outq left: "drained <bytes>"
 *   read5  -> reads a line from /dev/tty (fd 5): "tty5 <line>" (ctty)
 *   exit N
 * Prints "ready" once set up.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include "lineio.h"

static void fail(int code, const char *what)
{
	putf("error %s: %s\n", what, strerror(errno));
	exit(code);
}

/* to moves fd onto number n. */
static void to(int fd, int n)
{
	if (fd < 0)
		fail(10, "open");
	if (fd != n) {
		if (dup2(fd, n) != n)
			fail(11, "dup2");
		close(fd);
	}
}

static int newpt(int n, int unlock)
{
	to(posix_openpt(O_RDWR | O_NOCTTY), n);
	if (unlock && (grantpt(n) != 0 || unlockpt(n) != 0))
		fail(12, "unlockpt");
	return n;
}

static void setws(int fd, int rows, int cols)
{
	struct winsize ws = {.ws_row = rows, .ws_col = cols};
	if (ioctl(fd, TIOCSWINSZ, &ws) != 0)
		fail(13, "TIOCSWINSZ");
}

static int isws(int fd, int rows, int cols)
{
	struct winsize ws;
	return ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row == rows && ws.ws_col == cols;
}

static int readn(int fd, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void setup_pair(void)
{
	/* A */
	newpt(3, 1);
	to(open(ptsname(3), O_RDWR | O_NOCTTY), 4);
	to(open(ptsname(3), O_RDONLY | O_NOCTTY), 6);
	struct termios t;
	if (tcgetattr(4, &t) != 0)
		fail(14, "tcgetattr");
	cfmakeraw(&t);
	if (tcsetattr(4, TCSANOW, &t) != 0)
		fail(15, "tcsetattr");
	setws(4, 33, 101);
	if (ioctl(4, TIOCEXCL) != 0)
		fail(17, "TIOCEXCL");
	/* B */
	newpt(5, 0);
	int on = 1;
	if (ioctl(5, TIOCPKT, &on) != 0)
		fail(16, "TIOCPKT");
	setws(5, 24, 80);
	/* C */
	newpt(7, 1);
	close(open(ptsname(7), O_RDWR | O_NOCTTY));
}

static void check_pair(void)
{
	struct stat m, s, ro;
	const char *name = ptsname(3);
	int slave = name && stat(name, &m) == 0 && fstat(4, &s) == 0 && fstat(6, &ro) == 0 &&
		    m.st_rdev == s.st_rdev && m.st_rdev == ro.st_rdev;
	struct termios t;
	int raw = tcgetattr(4, &t) == 0 && !(t.c_lflag & (ICANON | ECHO)) && !(t.c_oflag & OPOST);
	int ws = isws(3, 33, 101) && isws(4, 33, 101);
	char buf[5];
	int talk = write(3, "ping\n", 5) == 5 && readn(4, buf, 5) == 0 && memcmp(buf, "ping\n", 5) == 0 &&
		   write(4, "pong\n", 5) == 5 && readn(3, buf, 5) == 0 && memcmp(buf, "pong\n", 5) == 0;
	int rofl = fcntl(6, F_GETFL);
	int rdonly = rofl >= 0 && (rofl & O_ACCMODE) == O_RDONLY && write(6, "x", 1) < 0 && errno == EBADF;
	int excl = -1, mexcl = -1;
	ioctl(4, TIOCGEXCL, &excl);
	ioctl(3, TIOCGEXCL, &mexcl);
	int lck = -1, pkt = -1;
	ioctl(5, TIOCGPTLCK, &lck);
	ioctl(5, TIOCGPKT, &pkt);
	struct pollfd p = {.fd = 7, .events = POLLIN};
	int hup = poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
	putf("check a.slave=%d a.raw=%d a.ws=%d a.talk=%d a.ro=%d a.excl=%d b.lock=%d b.pkt=%d b.ws=%d c.hup=%d\n", slave,
	     raw, ws, talk, rdonly, excl == 1 && mexcl == 0, lck, pkt, isws(5, 24, 80), hup);
}

static void drain(void)
{
	char buf[64];
	size_t len = 0;
	for (int fd = 3; fd <= 4; fd++) {
		int fl = fcntl(fd, F_GETFL);
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		ssize_t r;
		while ((r = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
			len += (size_t)r;
		fcntl(fd, F_SETFL, fl);
	}
	buf[len] = 0;
	putf("drained %s\n", buf);
}

static void setup_ctty(void)
{
	if (tcgetsid(3) != getsid(0))
		fail(20, "fd 3 is not the controlling terminal");
	to(open("/dev/tty", O_RDONLY), 5);
	struct termios t;
	if (tcgetattr(3, &t) != 0)
		fail(21, "tcgetattr");
	t.c_lflag &= ~ECHO;
	if (tcsetattr(3, TCSANOW, &t) != 0)
		fail(22, "tcsetattr");
}

static void check_ctty(void)
{
	struct stat st;
	int fl = fcntl(5, F_GETFL);
	int ro = fl >= 0 && (fl & O_ACCMODE) == O_RDONLY && write(5, "x", 1) < 0 && errno == EBADF;
	int dev = fstat(5, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(5, 0);
	int pgrp = tcgetpgrp(5) == getpgrp();
	int sid = tcgetsid(5) == getsid(0);
	int fd3 = tcgetsid(3) == getsid(0);
	struct termios t;
	int echo = tcgetattr(5, &t) == 0 ? !!(t.c_lflag & ECHO) : -1;
	putf("check tty5.ro=%d tty5.dev=%d tty5.pgrp=%d tty5.sid=%d fd3.sid=%d echo=%d\n", ro, dev, pgrp, sid, fd3, echo);
}

int main(int argc, char **argv)
{
	int pair = argc > 1 && strcmp(argv[1], "pair") == 0;
	int ctty = argc > 1 && strcmp(argv[1], "ctty") == 0;
	if (!pair && !ctty) {
		put("usage: ptys pair|ctty\n");
		return 2;
	}
	if (pair)
		setup_pair();
	else
		setup_ctty();
	put("ready\n");
	char line[256];
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "check") == 0) {
			if (pair)
				check_pair();
			else
				check_ctty();
		} else if (strcmp(line, "names") == 0 && pair) {
			char a[64];
			snprintf(a, sizeof a, "%s", ptsname(3));
			putf("names %s %s\n", a, ptsname(5));
		} else if (strcmp(line, "queue") == 0 && pair) {
			write_all(3, "abc", 3);
			put("queued\n");
		} else if (strcmp(line, "outq") == 0 && pair) {
			write_all(4, "xyz", 3);
			put("outq\n");
		} else if (strcmp(line, "drain") == 0 && pair) {
			drain();
		} else if (strcmp(line, "read5") == 0 && ctty) {
			char buf[128];
			ssize_t n;
			do
				n = read(5, buf, sizeof buf - 1);
			while (n < 0 && errno == EINTR);
			if (n < 0)
				fail(23, "read /dev/tty");
			buf[n] = 0;
			char *nl = strchr(buf, '\n');
			if (nl)
				*nl = 0;
			putf("tty5 %s\n", buf);
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		} else {
			putf("unknown %s\n", line);
		}
	}
	return 0;
}
