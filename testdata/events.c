/*
 * events: holds every kind of event fd, and checks after a thaw that each
 * is as it was: counts, flags, timers, masks, watches, interest lists.
 *
 *   fd 10  eventfd, count 0x100000005 (more than eventfd2's 32-bit start)
 *   fd 11  eventfd EFD_SEMAPHORE|EFD_NONBLOCK, count 3
 *   fd 12  eventfd EFD_NONBLOCK, close-on-exec, count 0
 *   fd 13  timerfd CLOCK_MONOTONIC, relative, 50 s then every 100 s
 *   fd 14  timerfd CLOCK_REALTIME, TFD_TIMER_ABSTIME|TFD_TIMER_CANCEL_ON_SET,
 *          one shot at a whole second an hour from the start, O_NONBLOCK
 *   fd 15  timerfd CLOCK_BOOTTIME, disarmed, its interval 7 s
 *   fd 16  timerfd CLOCK_MONOTONIC, one shot of 1 ms, expired, not read
 *          (1 tick waiting), O_NONBLOCK
 *   fd 17  timerfd CLOCK_MONOTONIC, every 1 ms, never read for long
 *   fd 18  timerfd CLOCK_REALTIME, absolute, every second since 100.5 s
 *          before the start: 101 ticks waiting at the start, read only
 *          by every second check, so that a freeze finds a hundred
 *   fd 19  signalfd of SIGUSR1 and SIGRTMIN+3 (both blocked),
 *          SFD_NONBLOCK, close-on-exec
 *   fd 20  inotify (IN_NONBLOCK): wd 1 on ./events.d (IN_CREATE|IN_DELETE|
 *          IN_EXCL_UNLINK), wd 2 added and removed, wd 3 on
 *          ./events.d/watched (IN_MODIFY|IN_CLOSE_WRITE)
 *   fd 21, 22  a pipe (21 the read end, O_NONBLOCK), "abc" in it
 *   fd 23  epoll (made first) watching fd 24 (EPOLLIN, data 0x9999) and
 *          fd 11 (EPOLLIN, data 0xaaaa)
 *   fd 24  epoll watching 10 (IN, 0x1111), 12 (IN|ET, 0x3333), 13 (IN,
 *          0x1313), 14 (IN|ET, 0x2222), 16 (IN|ONESHOT, 0x4444, fired
 *          once at the start: disarmed), 19 (IN, 0x5555), 20 (IN,
 *          0x6666), 21 (IN|RDHUP, 0x7777), 22 (OUT, 0x8888000000000000),
 *          0 (IN, 0xf0: stdin, the thaw's own after a thaw)
 *
 * Prints "ready". Commands:
 *   check -> "check ok <summary>" or "check bad <what>": checks every fd
 *            (its own fdinfo, flags, what reads and epoll_wait return,
 *            the timers against the time), and leaves each as it was,
 *            so that the next freeze finds the same state
 *   exit N -> exit(N)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include "lineio.h"

#define BIGCOUNT 0x100000005ULL
#define DATA22 0x8888000000000000ULL /* fd 22's epoll data: the high half counts */

static int64_t abs_deadline; /* fd 14, CLOCK_REALTIME ns */
static int64_t past_start;   /* fd 18's first expiry, CLOCK_REALTIME ns */
static uint64_t past_read;   /* fd 18's ticks read so far */
static int64_t mark_mono;    /* CLOCK_MONOTONIC at the last check */
static int64_t mark_rem13;   /* fd 13's time left then */
static int64_t read17;       /* CLOCK_MONOTONIC when fd 17 was read */
static int checks;

static void die(const char *what)
{
	putf("setup failed: %s: %s\n", what, strerror(errno));
	_exit(2);
}

static void place(int fd, int want)
{
	if (fd < 0)
		die("create");
	if (fd == want)
		return;
	if (dup3(fd, want, fcntl(fd, F_GETFD) & FD_CLOEXEC ? O_CLOEXEC : 0) < 0)
		die("dup3");
	close(fd);
}

static int64_t now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static struct timespec ts(int64_t ns)
{
	struct timespec t = {ns / 1000000000LL, ns % 1000000000LL};
	return t;
}

static int64_t ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

static void arm(int fd, int flags, int64_t value, int64_t interval)
{
	struct itimerspec its = {ts(interval), ts(value)};
	if (timerfd_settime(fd, flags, &its, NULL) < 0)
		die("timerfd_settime");
}

static void add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = {.events = events, .data.u64 = data};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl");
}

static void wait_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (poll(&p, 1, 5000) < 0 && errno == EINTR)
		;
}

static void setup(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGRTMIN + 3);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("sigprocmask");

	/* fd 23 first: an epoll watching one made after it. */
	place(epoll_create1(0), 23);

	place(eventfd(0, 0), 10);
	uint64_t big = BIGCOUNT;
	if (write(10, &big, 8) != 8)
		die("write eventfd");
	place(eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK), 11);
	place(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), 12);

	place(timerfd_create(CLOCK_MONOTONIC, 0), 13);
	arm(13, 0, 50000000000LL, 100000000000LL);
	place(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK), 14);
	abs_deadline = (now(CLOCK_REALTIME) / 1000000000LL + 3600) * 1000000000LL;
	arm(14, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, abs_deadline, 0);
	place(timerfd_create(CLOCK_BOOTTIME, 0), 15);
	arm(15, 0, 0, 7000000000LL);
	place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 16);
	arm(16, 0, 1000000, 0);
	wait_readable(16);
	place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 17);
	read17 = now(CLOCK_MONOTONIC);
	arm(17, 0, 1000000, 1000000);
	place(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK), 18);
	past_start = now(CLOCK_REALTIME) - 100500000000LL;
	arm(18, TFD_TIMER_ABSTIME, past_start, 1000000000LL);

	place(signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC), 19);

	if (mkdir("events.d", 0700) < 0 && errno != EEXIST)
		die("mkdir events.d");
	int f = open("events.d/watched", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (f < 0)
		die("events.d/watched");
	close(f);
	if ((f = open("events.d/gone", O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		die("events.d/gone");
	close(f);
	place(inotify_init1(IN_NONBLOCK), 20);
	if (inotify_add_watch(20, "events.d", IN_CREATE | IN_DELETE | IN_EXCL_UNLINK) != 1)
		die("watch 1");
	int gone = inotify_add_watch(20, "events.d/gone", IN_ATTRIB);
	if (gone != 2 || inotify_rm_watch(20, gone) < 0)
		die("watch 2");
	unlink("events.d/gone");
	if (inotify_add_watch(20, "events.d/watched", IN_MODIFY | IN_CLOSE_WRITE) != 3)
		die("watch 3");
	char ev[4096];
	while (read(20, ev, sizeof ev) > 0) /* IN_IGNORED of wd 2, IN_DELETE of gone */
		;

	int p[2];
	if (pipe2(p, 0) < 0)
		die("pipe");
	place(p[0], 21);
	place(p[1], 22);
	fcntl(21, F_SETFL, O_NONBLOCK);
	if (write(22, "abc", 3) != 3)
		die("write pipe");

	place(epoll_create1(0), 24);
	add(24, 10, EPOLLIN, 0x1111);
	add(24, 12, EPOLLIN | EPOLLET, 0x3333);
	add(24, 13, EPOLLIN, 0x1313);
	add(24, 14, EPOLLIN | EPOLLET, 0x2222);
	add(24, 16, EPOLLIN | EPOLLONESHOT, 0x4444);
	add(24, 19, EPOLLIN, 0x5555);
	add(24, 20, EPOLLIN, 0x6666);
	add(24, 21, EPOLLIN | EPOLLRDHUP, 0x7777);
	add(24, 22, EPOLLOUT, DATA22);
	add(24, 0, EPOLLIN, 0xf0); /* stdin: the thaw's own after a thaw */
	add(23, 24, EPOLLIN, 0x9999);
	add(23, 11, EPOLLIN, 0xaaaa);
	/* The one-shot item fires once, and is disarmed. */
	struct epoll_event out[16];
	int n = epoll_wait(24, out, 16, 0), fired = 0;
	for (int i = 0; i < n; i++)
		fired |= out[i].data.u64 == 0x4444;
	if (!fired)
		die("one-shot item did not fire");

	struct itimerspec g;
	timerfd_gettime(13, &g);
	mark_mono = now(CLOCK_MONOTONIC);
	mark_rem13 = ns(g.it_value);
}

/* The check's failure: the first thing found wrong. */
static char bad[400];

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	if (bad[0])
		return 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(bad, sizeof bad, fmt, ap);
	va_end(ap);
	return 0;
}

/* fdinfo returns the text of /proc/self/fdinfo/fd. */
static const char *fdinfo(int fd)
{
	static char buf[8192];
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	int f = open(path, O_RDONLY);
	ssize_t n = f < 0 ? -1 : read(f, buf, sizeof buf - 1);
	if (f >= 0)
		close(f);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

/* has says whether fd's fdinfo has a line starting with want (spaces
 * squeezed to one). */
static int has(int fd, const char *want)
{
	const char *s = fdinfo(fd);
	char line[512];
	while (*s) {
		size_t n = 0;
		int sp = 0;
		for (; *s && *s != '\n'; s++) {
			int blank = *s == ' ' || *s == '\t';
			if (blank && (sp || n == 0))
				continue;
			if (n < sizeof line - 1)
				line[n++] = blank ? ' ' : *s;
			sp = blank;
		}
		line[n] = 0;
		if (*s)
			s++;
		if (strncmp(line, want, strlen(want)) == 0)
			return 1;
	}
	char *info = (char *)fdinfo(fd);
	for (char *c = info; *c; c++)
		if (*c == '\n' || *c == '\t')
			*c = ' ';
	return fail("fd %d: no fdinfo line \"%s\" in: %s", fd, want, info);
}

static int flags_are(int fd, int nonblock, int cloexec)
{
	int fl = fcntl(fd, F_GETFL), fdf = fcntl(fd, F_GETFD);
	if (fl < 0 || fdf < 0)
		return fail("fd %d: %s", fd, strerror(errno));
	if (!!(fl & O_NONBLOCK) != nonblock || !!(fdf & FD_CLOEXEC) != cloexec)
		return fail("fd %d: O_NONBLOCK %d FD_CLOEXEC %d, want %d %d", fd, !!(fl & O_NONBLOCK), !!(fdf & FD_CLOEXEC),
			    nonblock, cloexec);
	return 1;
}

static int read_u64(int fd, uint64_t *v)
{
	ssize_t n = read(fd, v, 8);
	return n == 8 ? 0 : n < 0 ? -errno : -EIO;
}

/* ready lists the data of what epoll_wait(ep) returns now, sorted. */
static const char *ready(int ep)
{
	static char buf[256];
	struct epoll_event out[16];
	int n = epoll_wait(ep, out, 16, 0);
	uint64_t d[16];
	for (int i = 0; i < n; i++)
		d[i] = out[i].data.u64;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (d[j] < d[i]) {
				uint64_t x = d[i];
				d[i] = d[j];
				d[j] = x;
			}
	size_t len = 0;
	buf[0] = 0;
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%" PRIx64, i ? "," : "", d[i]);
	return buf;
}

static int check_eventfds(void)
{
	uint64_t v;
	char want[64];
	snprintf(want, sizeof want, "eventfd-count: %" PRIx64, (uint64_t)BIGCOUNT);
	if (!(has(10, want) && has(10, "eventfd-semaphore: 0") && has(11, "eventfd-count: 3") &&
		has(11, "eventfd-semaphore: 1") && has(12, "eventfd-count: 0")))
		return 0;
	if (!(flags_are(10, 0, 0) && flags_are(11, 1, 0) && flags_are(12, 1, 1)))
		return 0;
	if (read_u64(10, &v) < 0 || v != BIGCOUNT)
		return fail("fd 10 read %" PRIx64 ", want %llx", v, BIGCOUNT);
	if (write(10, &v, 8) != 8)
		return fail("fd 10: write back: %s", strerror(errno));
	if (read_u64(11, &v) < 0 || v != 1) /* a semaphore gives 1 at a time */
		return fail("fd 11 (semaphore) read %" PRIu64 ", want 1", v);
	v = 1;
	if (write(11, &v, 8) != 8)
		return fail("fd 11: write back: %s", strerror(errno));
	int r = read_u64(12, &v);
	if (r != -EAGAIN)
		return fail("fd 12 (empty, nonblocking): read says %d, want EAGAIN", r);
	return 1;
}

static int check_epoll(void)
{
	/* fd 24 lists what it was given, the one-shot item disarmed. */
	if (!(has(24, "tfd: 10 events: 19 data: 1111 ") && has(24, "tfd: 12 events: 80000019 data: 3333 ") &&
		has(24, "tfd: 13 events: 19 data: 1313 ") && has(24, "tfd: 14 events: 80000019 data: 2222 ") &&
		has(24, "tfd: 16 events: 40000000 data: 4444 ") && has(24, "tfd: 19 events: 19 data: 5555 ") &&
		has(24, "tfd: 20 events: 19 data: 6666 ") && has(24, "tfd: 21 events: 2019 data: 7777 ") &&
		has(24, "tfd: 22 events: 1c data: 8888000000000000 ") && has(24, "tfd: 0 events: 19 data: f0 ") && has(23, "tfd: 24 events: 19 data: 9999 ") &&
		has(23, "tfd: 11 events: 19 data: aaaa ")))
		return 0;
	if (!(flags_are(23, 0, 0) && flags_are(24, 0, 0)))
		return 0;
	const char *r = ready(24);
	if (strcmp(r, "1111,7777,8888000000000000") != 0)
		return fail("epoll fd 24 has ready %s, want 1111,7777,8888000000000000", r);
	r = ready(23);
	if (strcmp(r, "9999,aaaa") != 0)
		return fail("epoll fd 23 has ready %s, want 9999,aaaa", r);
	/* Edge-triggered: fd 12 made readable is reported once. */
	uint64_t one = 1;
	if (write(12, &one, 8) != 8)
		return fail("write fd 12: %s", strerror(errno));
	r = ready(24);
	if (strcmp(r, "1111,3333,7777,8888000000000000") != 0)
		return fail("epoll fd 24 after fd 12 got a count: ready %s, want 1111,3333,7777,8888000000000000", r);
	r = ready(24);
	if (strcmp(r, "1111,7777,8888000000000000") != 0)
		return fail("epoll fd 24 reported the edge-triggered fd 12 twice: ready %s", r);
	if (read_u64(12, &one) < 0)
		return fail("read fd 12: %s", strerror(errno));
	return 1;
}

static int check_timers(void)
{
	struct itimerspec g;
	int64_t mono = now(CLOCK_MONOTONIC);

	if (!(has(13, "clockid: 1") && has(13, "settime flags: 00") && has(14, "clockid: 0") &&
		has(14, "settime flags: 03") && has(15, "clockid: 7") && has(15, "it_value: (0, 0)") &&
		has(15, "it_interval: (7, 0)") && has(16, "ticks: 1") && has(18, "clockid: 0")))
		return 0;
	if (!(flags_are(13, 0, 0) && flags_are(14, 1, 0) && flags_are(15, 0, 0) && flags_are(16, 1, 0) &&
		flags_are(17, 1, 0) && flags_are(18, 1, 0)))
		return 0;

	/* 13: relative; the time frozen does not count, so the time left
	 * is at most what it was at the last check, and no less than that
	 * minus the time gone by since. */
	timerfd_gettime(13, &g);
	int64_t rem = ns(g.it_value), gone = mono - mark_mono;
	if (ns(g.it_interval) != 100000000000LL)
		return fail("fd 13: interval %" PRId64 " ns, want 100 s", ns(g.it_interval));
	if (rem > mark_rem13 + 5000000 || rem < mark_rem13 - gone - 100000000)
		return fail("fd 13: %" PRId64 " ns left, %" PRId64 " ns left %" PRId64 " ns before", rem, mark_rem13, gone);
	mark_mono = mono;
	mark_rem13 = rem;

	/* 14: absolute, on the wall clock: the same deadline. */
	timerfd_gettime(14, &g);
	int64_t at = now(CLOCK_REALTIME) + ns(g.it_value);
	if (ns(g.it_interval) != 0 || at < abs_deadline - 100000000 || at > abs_deadline + 100000000)
		return fail("fd 14: deadline %" PRId64 ", want %" PRId64, at, abs_deadline);

	/* 15: disarmed, its interval kept. */
	timerfd_gettime(15, &g);
	if (ns(g.it_value) != 0 || ns(g.it_interval) != 7000000000LL)
		return fail("fd 15: %" PRId64 " ns left, every %" PRId64 ", want disarmed, every 7 s", ns(g.it_value),
			    ns(g.it_interval));

	/* 16: one expiry waiting; then armed again to have one again. */
	uint64_t v = 0;
	if (read_u64(16, &v) < 0 || v != 1)
		return fail("fd 16: read %" PRIu64 " (%s), want 1 expiry", v, strerror(errno));
	int r = read_u64(16, &v);
	if (r != -EAGAIN)
		return fail("fd 16 read again: %d, want EAGAIN", r);
	arm(16, 0, 1000000, 0);
	wait_readable(16);

	/* 17: every 1 ms, relative: at least one expiry since the last
	 * read, no more than the time gone by since (frozen or not). */
	int64_t since = now(CLOCK_MONOTONIC) - read17;
	if (read_u64(17, &v) < 0 || v < 1 || (int64_t)v > since / 1000000 + 2)
		return fail("fd 17: read %" PRIu64 " expiries in %" PRId64 " ns", v, since);
	read17 = now(CLOCK_MONOTONIC);

	/* 18: absolute, every second since past_start, on the wall clock:
	 * every second check reads it, and all it gave adds up to the
	 * seconds since past_start, frozen or not. */
	if (checks % 2 == 1) {
		int64_t lo = now(CLOCK_REALTIME);
		r = read_u64(18, &v);
		int64_t hi = now(CLOCK_REALTIME);
		if (r == -EAGAIN) /* none since the last read */
			r = 0, v = 0;
		if (r == 0)
			past_read += v;
		uint64_t want_lo = (uint64_t)((lo - past_start) / 1000000000LL) + 1;
		uint64_t want_hi = (uint64_t)((hi - past_start) / 1000000000LL) + 1;
		if (r < 0 || past_read < want_lo || past_read > want_hi)
			return fail("fd 18: %" PRIu64 " expiries read in all (the last read %d: %" PRIu64 "), want %" PRIu64,
				    past_read, r, v, want_lo);
	}
	return 1;
}

static int check_signalfd(void)
{
	char want[64];
	snprintf(want, sizeof want, "sigmask: %016llx", 1ULL << (SIGUSR1 - 1) | 1ULL << (SIGRTMIN + 3 - 1));
	has(19, want);
	flags_are(19, 1, 1);
	struct signalfd_siginfo si;
	if (read(19, &si, sizeof si) != -1 || errno != EAGAIN)
		return fail("fd 19: a signal before any was sent");
	union sigval val = {.sival_int = 42};
	if (kill(getpid(), SIGUSR1) < 0 || sigqueue(getpid(), SIGRTMIN + 3, val) < 0)
		return fail("send signals: %s", strerror(errno));
	if (read(19, &si, sizeof si) != sizeof si || si.ssi_signo != SIGUSR1)
		return fail("fd 19: read signal %u (%s), want SIGUSR1", si.ssi_signo, strerror(errno));
	if (read(19, &si, sizeof si) != sizeof si || si.ssi_signo != (uint32_t)SIGRTMIN + 3 || si.ssi_int != 42)
		return fail("fd 19: read signal %u value %d, want SIGRTMIN+3 with 42", si.ssi_signo, si.ssi_int);
	return 1;
}

static int check_inotify(void)
{
	has(20, "inotify wd:1 ");
	has(20, "inotify wd:3 ");
	flags_are(20, 1, 0);
	/* the masks, as fdinfo prints them */
	const char *info = fdinfo(20);
	char m1[64], m3[64];
	snprintf(m1, sizeof m1, "mask:%x ", IN_CREATE | IN_DELETE | IN_EXCL_UNLINK);
	snprintf(m3, sizeof m3, "mask:%x ", IN_MODIFY | IN_CLOSE_WRITE);
	if (!strstr(info, m1) || !strstr(info, m3))
		return fail("fd 20: masks %s and %s not in\n%s", m1, m3, info);

	int f = open("events.d/watched", O_WRONLY | O_APPEND);
	if (f < 0 || write(f, "x", 1) != 1)
		return fail("write events.d/watched: %s", strerror(errno));
	close(f);
	f = open("events.d/new", O_WRONLY | O_CREAT, 0600);
	if (f < 0)
		return fail("create events.d/new: %s", strerror(errno));
	close(f);
	unlink("events.d/new");
	struct {
		int wd;
		uint32_t mask;
		const char *name;
	} exp[] = {{3, IN_MODIFY, ""}, {3, IN_CLOSE_WRITE, ""}, {1, IN_CREATE, "new"}, {1, IN_DELETE, "new"}};
	char buf[4096];
	size_t have = 0, i = 0;
	while (i < 4) {
		if (have == 0) {
			wait_readable(20);
			ssize_t n = read(20, buf, sizeof buf);
			if (n <= 0)
				return fail("fd 20: read: %s, %zu events of 4", strerror(errno), i);
			have = (size_t)n;
		}
		size_t off = 0;
		while (off < have && i < 4) {
			struct inotify_event *e = (struct inotify_event *)(buf + off);
			const char *name = e->len ? e->name : "";
			if (e->wd != exp[i].wd || e->mask != exp[i].mask || strcmp(name, exp[i].name) != 0)
				return fail("fd 20: event %zu is wd %d mask %#x %s, want wd %d mask %#x %s", i, e->wd,
					    e->mask, name, exp[i].wd, exp[i].mask, exp[i].name);
			off += sizeof *e + e->len;
			i++;
		}
		have = 0;
	}
	if (read(20, buf, sizeof buf) != -1 || errno != EAGAIN)
		return fail("fd 20: more events than 4");
	return 1;
}

static int check_pipe(void)
{
	char b[8];
	ssize_t n = read(21, b, sizeof b);
	if (n != 3 || memcmp(b, "abc", 3) != 0)
		return fail("fd 21: read %zd bytes, want abc", n);
	if (write(22, "abc", 3) != 3)
		return fail("fd 22: write: %s", strerror(errno));
	return 1;
}

static void check(void)
{
	bad[0] = 0;
	check_eventfds();
	check_epoll();
	check_timers();
	check_signalfd();
	check_inotify();
	check_pipe();
	checks++;
	if (bad[0]) {
		putf("check bad %s\n", bad);
		return;
	}
	putf("check ok eventfd=%llx,3,0 timers=13,14,15,16,17,18 signalfd=USR1,RTMIN+3 inotify=1,3 epoll=24:10,23:2\n",
	     BIGCOUNT);
}

int main(void)
{
	char line[256];
	setup();
	put("ready\n");
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "check") == 0)
			check();
		else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
		else
			putf("unknown %s\n", line);
	}
	return 0;
}
