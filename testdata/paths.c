/*
 * paths: holds descriptors that name files rather than read them, and
 * checks them itself after a thaw.
 *
 * In its working directory it makes p/ and holds, at numbers with gaps:
 *   3  O_PATH of p/file ("0123456789")
 *   5  O_PATH|O_NOFOLLOW of the symbolic link p/link -> file
 *   6  O_PATH|O_DIRECTORY of p/sub (FD_CLOEXEC), which holds p/sub/inner
 *   9  the directory p/many (120 entries e000..e119), read in part
 *  10  the directory p/gone, mode 0750, removed (rmdir) once open
 *  12  /proc/self/ns/net, 13 /proc/self/ns/uts (O_PATH)
 *  17  p/append.log O_WRONLY|O_APPEND
 *  18  p/file O_RDONLY|O_NONBLOCK at offset 3
 *  20  p/file O_RDONLY|O_NOATIME at offset 5
 *  21  p/direct O_RDWR|O_DIRECT
 *  30  /dev/null O_RDONLY, 31 /dev/zero O_WRONLY
 *  33  p/null, a character device 1:3 (mode 0640), unlinked once open
 * An fd it cannot have here (O_DIRECT on a filesystem without it, mknod
 * without CAP_MKNOD) is left closed and named in its ready line:
 * "ready" or "ready skipped direct(Invalid argument) ...".
 *
 * With the argument "node" it holds only fd 33, made as ./null (and says
 * "ready").
 *
 * Commands, one answer line each:
 *   state      "state ..." each fd's flags, fd flags and offset
 *   check      "check ok", or "check FAIL <what>..."
 *   readdir N  reads at least N more entries of fd 9: "readdir <seen>"
 *   rest       reads the rest: "rest ok <n>" when every entry came once
 *   append     writes a line to fd 17: "append ok" when it went at the end
 *   exit [N]
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>

#include "lineio.h"

#define NMANY 120

static int have[64];
static char skipped[512];
static int seen[NMANY], dots, nseen;
static char fails[2048];

static void fail(const char *what)
{
	size_t l = strlen(fails);
	snprintf(fails + l, sizeof fails - l, " %s(%s)", what, errno ? strerror(errno) : "");
}

static void skip(const char *what)
{
	size_t l = strlen(skipped);
	snprintf(skipped + l, sizeof skipped - l, " %s(%s)", what, strerror(errno));
}

static void must(int ok, const char *what)
{
	if (!ok) {
		putf("setup failed: %s: %s\n", what, strerror(errno));
		exit(2);
	}
}

/* place puts fd on number n. */
static void place(int fd, int n, const char *what)
{
	must(fd >= 0, what);
	if (fd != n) {
		must(dup2(fd, n) == n, what);
		close(fd);
	}
	have[n] = 1;
}

static void writefile(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	must(fd >= 0, path);
	write_all(fd, s, strlen(s));
	close(fd);
}

/* node holds a character device 1:3 made at path, unlinked, on fd 33. */
static void node(const char *path)
{
	if (mknod(path, S_IFCHR | 0640, makedev(1, 3)) < 0) {
		skip("node");
		return;
	}
	chmod(path, 0640);
	place(open(path, O_RDWR), 33, path);
	must(unlink(path) == 0, "unlink the node");
}

static void setup(void)
{
	char name[64];
	mkdir("p", 0755);
	writefile("p/file", "0123456789");
	writefile("p/direct", "");
	must(symlink("file", "p/link") == 0, "symlink");
	must(mkdir("p/sub", 0755) == 0, "mkdir p/sub");
	writefile("p/sub/inner", "in");
	must(mkdir("p/many", 0755) == 0, "mkdir p/many");
	for (int i = 0; i < NMANY; i++) {
		snprintf(name, sizeof name, "p/many/e%03d", i);
		writefile(name, "");
	}
	must(mkdir("p/gone", 0750) == 0, "mkdir p/gone");
	chmod("p/gone", 0750);

	place(open("p/file", O_PATH), 3, "O_PATH p/file");
	place(open("p/link", O_PATH | O_NOFOLLOW), 5, "O_PATH p/link");
	place(open("p/sub", O_PATH | O_DIRECTORY), 6, "O_PATH p/sub");
	must(fcntl(6, F_SETFD, FD_CLOEXEC) == 0, "FD_CLOEXEC");
	place(open("p/many", O_RDONLY | O_DIRECTORY), 9, "p/many");
	place(open("p/gone", O_RDONLY | O_DIRECTORY), 10, "p/gone");
	must(rmdir("p/gone") == 0, "rmdir p/gone");
	place(open("/proc/self/ns/net", O_RDONLY), 12, "ns/net");
	place(open("/proc/self/ns/uts", O_PATH), 13, "ns/uts");
	place(open("p/append.log", O_WRONLY | O_APPEND | O_CREAT, 0644), 17, "p/append.log");
	write_all(17, "first\n", 6);
	place(open("p/file", O_RDONLY | O_NONBLOCK), 18, "O_NONBLOCK p/file");
	lseek(18, 3, SEEK_SET);
	int fd = open("p/file", O_RDONLY | O_NOATIME);
	if (fd >= 0) {
		place(fd, 20, "O_NOATIME");
		lseek(20, 5, SEEK_SET);
	} else {
		skip("noatime");
	}
	fd = open("p/direct", O_RDWR | O_DIRECT);
	if (fd >= 0)
		place(fd, 21, "O_DIRECT");
	else
		skip("direct");
	place(open("/dev/null", O_RDONLY), 30, "/dev/null");
	place(open("/dev/zero", O_WRONLY), 31, "/dev/zero");
	node("p/null");
}

static void state(void)
{
	char buf[1024];
	size_t l = 0;
	l += (size_t)snprintf(buf, sizeof buf, "state");
	for (int n = 0; n < 64; n++) {
		if (!have[n])
			continue;
		int fl = fcntl(n, F_GETFL), fd = fcntl(n, F_GETFD);
		off_t pos = lseek(n, 0, SEEK_CUR);
		if (pos < 0)
			l += (size_t)snprintf(buf + l, sizeof buf - l, " %d:%#o:%d:-", n, fl, fd);
		else
			l += (size_t)snprintf(buf + l, sizeof buf - l, " %d:%#o:%d:%lld", n, fl, fd, (long long)pos);
	}
	putf("%s\n", buf);
}

static int flags(int fd, int mask, int want, const char *what)
{
	errno = 0;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & mask) != want) {
		fail(what);
		return 0;
	}
	return 1;
}

static void samens(int fd, const char *path)
{
	struct stat a, b;
	errno = 0;
	if (fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev)
		fail(path);
}

static void check(void)
{
	struct stat st;
	char buf[256];
	fails[0] = 0;

	/* O_PATH of a file: fstat works, reading does not. */
	errno = 0;
	if (fstatat(3, "", &st, AT_EMPTY_PATH) < 0 || !S_ISREG(st.st_mode) || st.st_size != 10)
		fail("fstat-opath-file");
	flags(3, O_PATH, O_PATH, "opath-flag");
	errno = 0;
	if (read(3, buf, 1) != -1 || errno != EBADF)
		fail("read-opath");
	/* O_PATH|O_NOFOLLOW of a symlink: the link itself. */
	errno = 0;
	ssize_t n = readlinkat(5, "", buf, sizeof buf - 1);
	if (n != 4 || memcmp(buf, "file", 4) != 0)
		fail("readlinkat");
	errno = 0;
	if (fstatat(5, "", &st, AT_EMPTY_PATH) < 0 || !S_ISLNK(st.st_mode))
		fail("fstat-symlink");
	flags(5, O_PATH | O_NOFOLLOW, O_PATH | O_NOFOLLOW, "symlink-flags");
	/* O_PATH of a directory: a base for *at calls. */
	errno = 0;
	if (fstatat(6, "inner", &st, 0) < 0 || !S_ISREG(st.st_mode) || st.st_size != 2)
		fail("fstatat-dir");
	int fd = openat(6, "inner", O_RDONLY);
	if (fd < 0)
		fail("openat-dir");
	else
		close(fd);
	errno = 0;
	if (fcntl(6, F_GETFD) != FD_CLOEXEC)
		fail("cloexec");
	/* The deleted directory: no links, empty, nothing in it. */
	errno = 0;
	if (fstat(10, &st) < 0 || st.st_nlink != 0 || st.st_mode != (S_IFDIR | 0750))
		fail("deleted-dir-stat");
	errno = 0;
	if (openat(10, "x", O_RDONLY) != -1 || errno != ENOENT)
		fail("deleted-dir-openat");
	errno = 0;
	if (openat(10, "x", O_RDWR | O_CREAT, 0600) != -1 || errno != ENOENT)
		fail("deleted-dir-create");
	errno = 0;
	if (syscall(SYS_getdents64, 10, buf, sizeof buf) != -1 || errno != ENOENT)
		fail("deleted-dir-getdents");
	/* The namespaces are the process's own. */
	samens(12, "/proc/self/ns/net");
	samens(13, "/proc/self/ns/uts");
	flags(13, O_PATH, O_PATH, "ns-opath");
	/* Status flags, access modes, offsets. */
	flags(17, O_ACCMODE | O_APPEND, O_WRONLY | O_APPEND, "append");
	flags(18, O_ACCMODE | O_NONBLOCK, O_RDONLY | O_NONBLOCK, "nonblock");
	errno = 0;
	if (lseek(18, 0, SEEK_CUR) != 3)
		fail("offset-18");
	if (have[20]) {
		flags(20, O_NOATIME, O_NOATIME, "noatime");
		errno = 0;
		if (lseek(20, 0, SEEK_CUR) != 5)
			fail("offset-20");
	}
	if (have[21])
		flags(21, O_ACCMODE | O_DIRECT, O_RDWR | O_DIRECT, "direct");
	flags(30, O_ACCMODE, O_RDONLY, "devnull-rdonly");
	errno = 0;
	if (write(30, "x", 1) != -1 || errno != EBADF)
		fail("devnull-write");
	flags(31, O_ACCMODE, O_WRONLY, "devzero-wronly");
	errno = 0;
	if (read(31, buf, 1) != -1 || errno != EBADF)
		fail("devzero-read");
	errno = 0;
	if (write(31, "x", 1) != 1)
		fail("devzero-write");
	if (have[33]) {
		errno = 0;
		if (fstat(33, &st) < 0 || st.st_nlink != 0 || st.st_rdev != makedev(1, 3) ||
		    st.st_mode != (S_IFCHR | 0640))
			fail("deleted-node-stat");
		flags(33, O_ACCMODE, O_RDWR, "deleted-node-rdwr");
		errno = 0;
		if (write(33, "x", 1) != 1 || read(33, buf, 1) != 0)
			fail("deleted-node-io");
	}
	if (fails[0])
		putf("check FAIL%s\n", fails);
	else
		put("check ok\n");
}

/* readmore reads fd 9 until at least want more entries came (or the
 * end); it returns how many. */
static int readmore(int want)
{
	char buf[512];
	int got = 0;
	while (got < want) {
		long n = syscall(SYS_getdents64, 9, buf, sizeof buf);
		if (n < 0) {
			putf("readdir error %s\n", strerror(errno));
			exit(5);
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			off += d->d_reclen;
			got++;
			if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) {
				dots++;
				continue;
			}
			int i = atoi(d->d_name + 1);
			if (d->d_name[0] != 'e' || i < 0 || i >= NMANY) {
				putf("readdir stray %s\n", d->d_name);
				exit(5);
			}
			seen[i]++;
			nseen++;
		}
	}
	return got;
}

int main(int argc, char **argv)
{
	char line[256];
	if (argc > 1 && strcmp(argv[1], "node") == 0) {
		node("null");
		if (skipped[0]) {
			putf("setup failed:%s\n", skipped);
			return 2;
		}
		put("ready\n");
	} else {
		setup();
		putf("ready%s%s\n", skipped[0] ? " skipped" : "", skipped);
	}
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "state") == 0) {
			state();
		} else if (strcmp(line, "check") == 0) {
			check();
		} else if (strncmp(line, "readdir ", 8) == 0) {
			readmore(atoi(line + 8));
			putf("readdir %d\n", nseen + dots);
		} else if (strcmp(line, "rest") == 0) {
			readmore(1 << 30);
			int ok = dots == 2 && nseen == NMANY;
			for (int i = 0; i < NMANY; i++)
				ok = ok && seen[i] == 1;
			putf("rest %s %d\n", ok ? "ok" : "FAIL", nseen + dots);
		} else if (strcmp(line, "append") == 0) {
			struct stat st;
			write_all(17, "more\n", 5);
			off_t pos = lseek(17, 0, SEEK_CUR);
			if (fstat(17, &st) == 0 && pos == st.st_size)
				put("append ok\n");
			else
				putf("append FAIL at %lld of %lld\n", (long long)pos, (long long)st.st_size);
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		} else {
			putf("unknown %s\n", line);
		}
	}
	return 0;
}
