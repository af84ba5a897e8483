/*
 * pipes: holds pipes and FIFOs with bytes in flight, and checks after a
 * thaw that every byte, buffer size, flag and sharing is as it was.
 *
 *   fd 10, 11  one pipe: 10 the read end (O_NONBLOCK), 11 the write end;
 *              a 128 KiB buffer holding 70000 bytes of a pattern (more
 *              than the default 64 KiB buffer could)
 *   fd 12 = 13 one read end of a second pipe, dup'ed (one description),
 *              its write end fd 14 close-on-exec; "hello" in it
 *   fd 15      an empty pipe's write end whose read end is fd 16
 *   fd 17      the FIFO ./fifo opened read-write, "fifo bytes" in it
 *   fd 18, 19  the FIFO ./fifo2 opened read-only (O_NONBLOCK) and
 *              write-only, "second" in it
 *
 * Prints "ready". Commands:
 *   check  -> "check ok <summary>" or "check bad <what>": reads every
 *             pipe's bytes, compares, and writes them back, so that the
 *             state is the same for the next freeze
 *   read N  -> "read N <bytes>" / "read N eof" / "read N eagain": what fd N
 *             holds now (without blocking)
 *   write N TEXT -> "write N ok" / "write N EPIPE": TEXT to fd N
 *             (SIGPIPE is ignored, as servers do)
 *   exit N -> exit(N)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include "lineio.h"

#define BIG 70000

static char big[BIG];

static void die(const char *what)
{
	putf("setup failed: %s: %s\n", what, strerror(errno));
	_exit(2);
}

static void place(int fd, int want)
{
	if (fd == want)
		return;
	if (dup2(fd, want) < 0)
		die("dup2");
	close(fd);
}

static void setup(void)
{
	int p[2];
	for (int i = 0; i < BIG; i++)
		big[i] = (char)('a' + (i * 7 + i / 251) % 26);

	if (pipe(p) < 0)
		die("pipe");
	place(p[0], 10);
	place(p[1], 11);
	if (fcntl(11, F_SETPIPE_SZ, 128 * 1024) < 0)
		die("F_SETPIPE_SZ");
	for (size_t off = 0; off < BIG;) {
		ssize_t n = write(11, big + off, BIG - off);
		if (n <= 0)
			die("fill");
		off += (size_t)n;
	}
	if (fcntl(10, F_SETFL, O_NONBLOCK) < 0)
		die("O_NONBLOCK");

	if (pipe2(p, 0) < 0)
		die("pipe 2");
	place(p[0], 12);
	place(p[1], 14);
	if (dup2(12, 13) < 0)
		die("dup 13");
	if (fcntl(14, F_SETFD, FD_CLOEXEC) < 0)
		die("cloexec");
	write_all(14, "hello", 5);

	if (pipe(p) < 0)
		die("pipe 3");
	place(p[1], 15);
	place(p[0], 16);

	unlink("fifo");
	unlink("fifo2");
	if (mkfifo("fifo", 0600) < 0 || mkfifo("fifo2", 0600) < 0)
		die("mkfifo");
	place(open("fifo", O_RDWR), 17);
	write_all(17, "fifo bytes", 10);
	place(open("fifo2", O_RDONLY | O_NONBLOCK), 18);
	place(open("fifo2", O_WRONLY), 19);
	write_all(19, "second", 6);
}

/* drain reads exactly n bytes (or what there is, if fewer) from fd,
 * which must not block. */
static ssize_t drain(int fd, char *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static char bad[256];

static int expect(int rfd, int wfd, const char *want, size_t n, const char *name)
{
	static char buf[BIG + 16];
	int fl = fcntl(rfd, F_GETFL);
	if (!(fl & O_NONBLOCK))
		fcntl(rfd, F_SETFL, fl | O_NONBLOCK);
	ssize_t got = drain(rfd, buf, sizeof buf);
	if (!(fl & O_NONBLOCK))
		fcntl(rfd, F_SETFL, fl);
	int ok = got == (ssize_t)n && memcmp(buf, want, n) == 0;
	if (!ok)
		snprintf(bad, sizeof bad, "%s: %zd bytes, want %zu", name, got, n);
	if (got > 0)
		write_all(wfd, buf, (size_t)got); /* as it was */
	return ok;
}

static void check(void)
{
	bad[0] = 0;
	int ok = expect(10, 11, big, BIG, "pipe 10") && expect(12, 14, "hello", 5, "pipe 12") &&
		 expect(16, 15, "", 0, "pipe 16") && expect(17, 17, "fifo bytes", 10, "fifo") &&
		 expect(18, 19, "second", 6, "fifo2");
	if (!ok) {
		putf("check bad %s\n", bad);
		return;
	}
	int sz = fcntl(11, F_GETPIPE_SZ);
	int fl10 = fcntl(10, F_GETFL), fl18 = fcntl(18, F_GETFL), fl19 = fcntl(19, F_GETFL);
	int cl14 = fcntl(14, F_GETFD), cl12 = fcntl(12, F_GETFD);
	/* 12 and 13 are one description: a flag set through one shows
	 * through the other. */
	fcntl(12, F_SETFL, O_NONBLOCK);
	int shared = (fcntl(13, F_GETFL) & O_NONBLOCK) != 0;
	fcntl(12, F_SETFL, 0);
	struct stat a, b, c;
	int same = fstat(10, &a) == 0 && fstat(11, &b) == 0 && a.st_ino == b.st_ino && fstat(12, &c) == 0 &&
		   c.st_ino != a.st_ino;
	putf("check ok size=%d fl10=%o fl18=%o fl19=%o cloexec14=%d cloexec12=%d shared=%d onepipe=%d\n", sz,
	     fl10, fl18, fl19, cl14, cl12, shared, same);
}

static void readfd(const char *arg)
{
	int fd = atoi(arg);
	char buf[256];
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int e = errno;
	fcntl(fd, F_SETFL, fl);
	if (n > 0) {
		buf[n] = 0;
		putf("read %d %s\n", fd, buf);
	} else if (n == 0)
		putf("read %d eof\n", fd);
	else
		putf("read %d %s\n", fd, e == EAGAIN ? "eagain" : strerror(e));
}

static void writefd(char *arg)
{
	int fd = atoi(arg);
	char *text = strchr(arg, ' ');
	text = text ? text + 1 : "";
	ssize_t n = write(fd, text, strlen(text));
	if (n < 0)
		putf("write %d %s\n", fd, errno == EPIPE ? "EPIPE" : strerror(errno));
	else
		putf("write %d ok\n", fd);
}

int main(void)
{
	char line[256];
	signal(SIGPIPE, SIG_IGN);
	setup();
	put("ready\n");
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "check") == 0)
			check();
		else if (strncmp(line, "read ", 5) == 0)
			readfd(line + 5);
		else if (strncmp(line, "write ", 6) == 0)
			writefd(line + 6);
		else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
		else
			putf("unknown %s\n", line);
	}
	return 0;
}
