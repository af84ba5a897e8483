/*
 * allfds: one process holding every kind of fd cryo carries at once, with
 * state in each, so that their order and interplay at thaw is proven (an
 * epoll set over most of them, fds shared and spread with gaps). Each
 * kind has its own, more thorough victim; this one checks that they
 * coexist.
 *
 * Prints "ready". Commands:
 *   check  -> "check ok <summary>" or "check bad <what>": every fd's state,
 *             read and put back, so that the next freeze sees the same
 *   live   -> "live ok" or "live bad <what>": uses each object once more
 *             (a connection to each listener, a timer tick, an inotify
 *             event), leaving the state as check reads it
 *   exit N -> exit(N)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <termios.h>
#include "lineio.h"

/* The fds, spread with gaps. */
enum {
	PIPE_R = 20, PIPE_W = 21, FIFO = 23, UNL = 25, MEMFD = 26, OPATH = 27,
	PTM = 30, PTS = 31, TCPL = 33, TCPC = 34, TCPA = 35, UDP = 36,
	USP0 = 40, USP1 = 41, EVFD = 43, TFD = 44, SFD = 45, INO = 46, EPFD = 48,
	PIPE_R2 = 50 /* a dup of PIPE_R */
};

static char *shared;  /* MAP_SHARED of the memfd */
static char dir[256]; /* the cwd */
static int port;

static void die(const char *what)
{
	putf("setup failed: %s: %s\n", what, strerror(errno));
	_exit(2);
}

static void place(int fd, int want)
{
	if (fd < 0)
		die("open");
	if (fd == want)
		return;
	if (dup2(fd, want) < 0)
		die("dup2");
	close(fd);
}

static void setup(void)
{
	int p[2];
	if (!getcwd(dir, sizeof dir))
		die("getcwd");

	if (pipe(p) < 0)
		die("pipe");
	place(p[0], PIPE_R);
	place(p[1], PIPE_W);
	write_all(PIPE_W, "in the pipe", 11);
	if (dup2(PIPE_R, PIPE_R2) < 0)
		die("dup");

	unlink("fifo");
	if (mkfifo("fifo", 0600) < 0)
		die("mkfifo");
	place(open("fifo", O_RDWR | O_NONBLOCK), FIFO);
	write_all(FIFO, "fifo", 4);

	place(open("unlinked", O_RDWR | O_CREAT | O_TRUNC, 0640), UNL);
	write_all(UNL, "gone but kept", 13);
	unlink("unlinked");

	place(memfd_create("allfds", MFD_ALLOW_SEALING), MEMFD);
	if (ftruncate(MEMFD, 4096) < 0)
		die("ftruncate");
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, MEMFD, 0);
	if (shared == MAP_FAILED)
		die("mmap");
	strcpy(shared, "memfd page");
	if (fcntl(MEMFD, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		die("seal");

	place(open(".", O_PATH | O_DIRECTORY), OPATH);

	place(posix_openpt(O_RDWR | O_NOCTTY), PTM);
	if (grantpt(PTM) < 0 || unlockpt(PTM) < 0)
		die("pty");
	place(open(ptsname(PTM), O_RDWR | O_NOCTTY), PTS);
	struct termios t;
	tcgetattr(PTS, &t);
	cfmakeraw(&t);
	tcsetattr(PTS, TCSANOW, &t);
	struct winsize ws = {.ws_row = 42, .ws_col = 99};
	ioctl(PTM, TIOCSWINSZ, &ws);

	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sin;
	place(socket(AF_INET, SOCK_STREAM, 0), TCPL);
	int one = 1;
	setsockopt(TCPL, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(TCPL, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(TCPL, 8) < 0)
		die("listen");
	getsockname(TCPL, (struct sockaddr *)&sin, &sl);
	port = ntohs(sin.sin_port);
	place(socket(AF_INET, SOCK_STREAM, 0), TCPC);
	if (connect(TCPC, (struct sockaddr *)&sin, sizeof sin) < 0)
		die("connect");
	place(accept(TCPL, NULL, NULL), TCPA);
	setsockopt(TCPC, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	write_all(TCPC, "to server", 9);
	write_all(TCPA, "to client", 9);

	struct sockaddr_in uin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	place(socket(AF_INET, SOCK_DGRAM, 0), UDP);
	if (bind(UDP, (struct sockaddr *)&uin, sizeof uin) < 0)
		die("udp bind");

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, p) < 0)
		die("socketpair");
	place(p[0], USP0);
	place(p[1], USP1);
	write_all(USP0, "unix a", 6);
	write_all(USP1, "unix b", 6);

	place(eventfd(5, EFD_NONBLOCK), EVFD);
	place(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), TFD);
	struct itimerspec its = {.it_value = {3600, 0}, .it_interval = {7200, 0}};
	timerfd_settime(TFD, 0, &its, NULL);
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGUSR2);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	place(signalfd(-1, &ss, SFD_NONBLOCK), SFD);
	place(inotify_init1(IN_NONBLOCK), INO);
	/* A directory of its own: the test writes images next to us. */
	mkdir("watched", 0700);
	if (inotify_add_watch(INO, "watched", IN_CREATE | IN_DELETE) < 0)
		die("inotify");

	place(epoll_create1(0), EPFD);
	int watch[] = {PIPE_R, FIFO, TCPL, TCPA, USP1, EVFD, TFD, SFD, INO};
	for (unsigned i = 0; i < sizeof watch / sizeof watch[0]; i++) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1000 + (uint64_t)watch[i]};
		if (epoll_ctl(EPFD, EPOLL_CTL_ADD, watch[i], &ev) < 0)
			die("epoll_ctl");
	}
}

static char bad[256];

/* take reads what fd holds (without blocking) and writes it back through
 * back, so that the state stays; it checks it equals want. */
static int take(int fd, int back, const char *want, const char *name)
{
	char buf[256];
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	ssize_t n = read(fd, buf, sizeof buf);
	fcntl(fd, F_SETFL, fl);
	if (n < 0)
		n = 0;
	if (n > 0)
		write_all(back, buf, (size_t)n);
	if ((size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0) {
		snprintf(bad, sizeof bad, "%s: %.*s, want %s", name, (int)n, buf, want);
		return 0;
	}
	return 1;
}

/* ready is the sorted epoll data of what epoll_wait finds ready. */
static void ready(char *out, size_t cap)
{
	struct epoll_event evs[16];
	int n = epoll_wait(EPFD, evs, 16, 0);
	unsigned long d[16];
	for (int i = 0; i < n; i++)
		d[i] = (unsigned long)evs[i].data.u64;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (d[j] < d[i]) {
				unsigned long x = d[i];
				d[i] = d[j];
				d[j] = x;
			}
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < n && o < cap; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%lu", i ? "," : "", d[i]);
}

static void check(void)
{
	char rdy[128], un[64] = {0};
	bad[0] = 0;
	if (!take(PIPE_R2, PIPE_W, "in the pipe", "pipe") || !take(FIFO, FIFO, "fifo", "fifo") ||
	    !take(TCPA, TCPC, "to server", "tcp server side") || !take(TCPC, TCPA, "to client", "tcp client side") ||
	    !take(USP1, USP0, "unix a", "unix b side") || !take(USP0, USP1, "unix b", "unix a side")) {
		putf("check bad %s\n", bad);
		return;
	}
	if (pread(UNL, un, sizeof un - 1, 0) != 13) {
		putf("check bad unlinked: %s\n", un);
		return;
	}
	char mem[32];
	pread(MEMFD, mem, 10, 0);
	mem[10] = 0;
	uint64_t ev = 0;
	read(EVFD, &ev, sizeof ev);
	if (ev)
		write(EVFD, &ev, sizeof ev);
	struct itimerspec its;
	timerfd_gettime(TFD, &its);
	struct winsize ws;
	ioctl(PTM, TIOCGWINSZ, &ws);
	struct termios t;
	tcgetattr(PTS, &t);
	struct stat st;
	int opath = fstatat(OPATH, "fifo", &st, 0) == 0 && S_ISFIFO(st.st_mode);
	int shared_pipe = fcntl(PIPE_R, F_GETFL) == fcntl(PIPE_R2, F_GETFL);
	int seals = fcntl(MEMFD, F_GET_SEALS);
	ready(rdy, sizeof rdy);
	putf("check ok unl=%s mem=%s/%s seals=%d ev=%llu interval=%ld ws=%dx%d raw=%d opath=%d shared=%d port=%d "
	     "ready=%s\n",
	     un, mem, shared, seals, (unsigned long long)ev, (long)its.it_interval.tv_sec, ws.ws_row, ws.ws_col,
	     !(t.c_lflag & ICANON), opath, shared_pipe, port, rdy);
}

static void live(void)
{
	/* A new connection to the listener, accepted and closed. */
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&sin, sizeof sin) < 0) {
		putf("live bad connect: %s\n", strerror(errno));
		return;
	}
	int a = accept(TCPL, NULL, NULL);
	if (a < 0) {
		putf("live bad accept: %s\n", strerror(errno));
		return;
	}
	close(a);
	close(c);
	/* The pty pair talks. */
	write_all(PTM, "x", 1);
	char b;
	struct pollfd pf = {.fd = PTS, .events = POLLIN};
	if (poll(&pf, 1, 2000) != 1 || read(PTS, &b, 1) != 1 || b != 'x') {
		putf("live bad pty\n");
		return;
	}
	/* The shared mapping and the memfd are one object. */
	shared[100] = 'S';
	char m = 0;
	pread(MEMFD, &m, 1, 100);
	shared[100] = 0;
	if (m != 'S') {
		putf("live bad memfd mapping\n");
		return;
	}
	/* The signalfd takes a blocked SIGUSR2. */
	kill(getpid(), SIGUSR2);
	struct signalfd_siginfo si;
	if (read(SFD, &si, sizeof si) != sizeof si || si.ssi_signo != SIGUSR2) {
		putf("live bad signalfd\n");
		return;
	}
	/* inotify sees a file made in its directory. */
	int f = open("watched/touched", O_CREAT | O_WRONLY, 0600);
	close(f);
	unlink("watched/touched");
	char ib[512];
	if (read(INO, ib, sizeof ib) <= 0) {
		putf("live bad inotify\n");
		return;
	}
	while (read(INO, ib, sizeof ib) > 0)
		;
	putf("live ok\n");
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
		else if (strcmp(line, "live") == 0)
			live();
		else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
		else
			putf("unknown %s\n", line);
	}
	return 0;
}
