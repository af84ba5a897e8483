/*
 * shm: files that cannot be opened again by path, and shared memory,
 * each held the way programs hold them; "check" proves after thaw that
 * each is the object it was.
 *
 *   U   an unlinked file (shm.unlinked in the working directory, mode
 *       0640): "HEAD-unlinked" at 0, a hole, "TAIL-unlinked" past 1 MiB.
 *       fd UFD O_RDWR at offset 7; fd UFD2 another description of it,
 *       O_WRONLY|O_APPEND at offset 3; UMAP: MAP_SHARED read-write of
 *       its first 2 pages
 *   M   a memfd "cryo shm", MFD_CLOEXEC: 3 pages and 10 bytes, data at 0
 *       and in page 2, sealed F_SEAL_SHRINK|F_SEAL_GROW, fd MFD at offset
 *       5; MMAP: MAP_SHARED read-write of its 3 pages
 *   S   a memfd "sealed" (no MFD_CLOEXEC), sealed F_SEAL_WRITE|SHRINK|
 *       GROW|SEAL, fd SFD; SMAP: MAP_SHARED PROT_READ of it
 *       and MMAP2: MAP_SHARED PROT_READ of its page 1 alone
 *   O   a memfd "orphan" of 2 pages, MAP_SHARED read-write (OMAP), its
 *       fd closed: the mapping is its only reference
 *   V   shm.gone, a page, MAP_SHARED read-write (VMAP), its fd closed and
 *       its name removed: the mapping is its only reference
 *   A   MAP_SHARED|MAP_ANONYMOUS, 2 pages of data, its second page made
 *       read-only (two mappings), and AALIAS: a second view of both
 *       pages (mremap with old_size 0): one object
 *   F   shm.file (2 pages of a pattern), MAP_SHARED read-write, its fd
 *       closed: writes go to the file
 *
 * Prints "ready", then serves commands on stdin:
 *   check    -> "check ok", or "check bad <what>..." listing each
 *               difference from the above; it also writes through each
 *               mapping and reads through the fd and the other way round
 *               (then puts the bytes back): one object, not two
 *   ping     -> "pong"
 *   exit [N] -> exit(N)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "lineio.h"

#define MIB (1 << 20)

static long ps;
static int ufd, ufd2, mfd, sfd;
static char *umap, *mmap_m, *mmap_m2, *smap, *omap, *vmap, *amap, *aalias, *fmap;
static const char uhead[] = "HEAD-unlinked", utail[] = "TAIL-unlinked";
static const char mhead[] = "memfd-data", mtail[] = "memfd-page-2";
static const char shead[] = "sealed-data", ohead[] = "orphan-data", vhead[] = "gone-data";
static const char ahead[] = "shared-anon-data", fhead[] = "shared-file-data";
static const int mseals = F_SEAL_SHRINK | F_SEAL_GROW;
static const int sseals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

static char bad[2048];
static size_t badlen;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(bad + badlen, sizeof bad - badlen, fmt, ap);
	va_end(ap);
	if (n > 0 && badlen + (size_t)n < sizeof bad)
		badlen += (size_t)n;
}

static void die(const char *what)
{
	putf("setup %s: %s\n", what, strerror(errno));
	exit(10);
}

/* mapsInode returns the inode /proc/self/maps shows for the mapping at
 * addr, and its path in path. */
static unsigned long maps_inode(void *addr, char *path, size_t cap)
{
	char buf[16384];
	int fd = open("/proc/self/maps", O_RDONLY);
	if (fd < 0)
		return 0;
	ssize_t n = 0, r;
	while ((r = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
		n += r;
	close(fd);
	buf[n] = 0;
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		unsigned long lo, hi, ino;
		int off = 0;
		if (sscanf(l, "%lx-%lx %*s %*s %*s %lu %n", &lo, &hi, &ino, &off) < 3)
			continue;
		if ((uintptr_t)addr < lo || (uintptr_t)addr >= hi)
			continue;
		char *e = strchr(l + off, '\n');
		size_t len = e ? (size_t)(e - (l + off)) : strlen(l + off);
		if (len >= cap)
			len = cap - 1;
		memcpy(path, l + off, len);
		path[len] = 0;
		return ino;
	}
	return 0;
}

static ino_t fd_inode(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static void check_bytes(const char *what, int fd, off_t off, const char *want)
{
	char got[64] = {0};
	size_t n = strlen(want);
	if (pread(fd, got, n, off) != (ssize_t)n || memcmp(got, want, n) != 0)
		fail(" %s-content@%ld", what, (long)off);
}

/* coherent writes through the mapping and reads through fd, and the
 * other way round, at byte off of the mapping (file offset off too),
 * then puts the bytes back. */
static void coherent(const char *what, char *map, int fd, off_t off)
{
	char save[2], c;
	memcpy(save, map + off, 2);
	map[off] = 'X';
	if (pread(fd, &c, 1, off) != 1 || c != 'X')
		fail(" %s-map-to-fd", what);
	c = 'Y';
	if (pwrite(fd, &c, 1, off + 1) != 1 || map[off + 1] != 'Y')
		fail(" %s-fd-to-map", what);
	memcpy(map + off, save, 2);
}

/* same_object: the mapping at addr is the file of fd. */
static void same_object(const char *what, void *addr, int fd, const char *wantpath)
{
	char path[256];
	unsigned long ino = maps_inode(addr, path, sizeof path);
	if (ino == 0 || ino != (unsigned long)fd_inode(fd))
		fail(" %s-map-inode=%lu/fd-inode=%lu", what, ino, (unsigned long)fd_inode(fd));
	if (wantpath && strcmp(path, wantpath) != 0)
		fail(" %s-map-path=%s", what, path);
}

static void check_fd(const char *what, int fd, off_t pos, int flags, int cloexec, const char *link)
{
	if (lseek(fd, 0, SEEK_CUR) != pos)
		fail(" %s-pos=%ld", what, (long)lseek(fd, 0, SEEK_CUR));
	int fl = fcntl(fd, F_GETFL);
	if ((fl & (O_ACCMODE | O_APPEND | O_NONBLOCK)) != flags)
		fail(" %s-flags=%#o", what, fl);
	if (!!(fcntl(fd, F_GETFD) & FD_CLOEXEC) != cloexec)
		fail(" %s-cloexec", what);
	char p[64], got[256];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, got, sizeof got - 1);
	got[n > 0 ? n : 0] = 0;
	if (link && strcmp(got, link) != 0)
		fail(" %s-link=%s", what, got);
}

static void check(void)
{
	badlen = 0;
	bad[0] = 0;
	char cwd[512], upath[600];
	if (!getcwd(cwd, sizeof cwd))
		fail(" getcwd");
	snprintf(upath, sizeof upath, "%s/shm.unlinked (deleted)", cwd);

	/* U */
	struct stat st;
	if (fstat(ufd, &st) != 0 || st.st_nlink != 0 || (st.st_mode & 07777) != 0640 ||
	    st.st_size != MIB + 100 + (off_t)strlen(utail))
		fail(" unlinked-stat(nlink=%lu,mode=%o,size=%ld)", (unsigned long)st.st_nlink, st.st_mode & 07777, (long)st.st_size);
	if (fd_inode(ufd) != fd_inode(ufd2))
		fail(" unlinked-two-inodes");
	check_fd("unlinked-fd", ufd, 7, O_RDWR, 0, upath);
	check_fd("unlinked-fd2", ufd2, 3, O_WRONLY | O_APPEND, 1, upath);
	check_bytes("unlinked-head", ufd, 0, uhead);
	check_bytes("unlinked-tail", ufd, MIB + 100, utail);
	char p[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", ufd);
	int tfd = open(p, O_RDONLY);
	if (tfd < 0 || lseek(tfd, ps, SEEK_DATA) != MIB)
		fail(" unlinked-hole(data at %ld)", tfd < 0 ? -1L : (long)lseek(tfd, ps, SEEK_DATA));
	if (tfd >= 0)
		close(tfd);
	if (memcmp(umap, uhead, sizeof uhead - 1) != 0)
		fail(" unlinked-map-content");
	same_object("unlinked", umap, ufd, upath);
	coherent("unlinked", umap, ufd, 200);

	/* M */
	check_fd("memfd", mfd, 5, O_RDWR, 1, "/memfd:cryo shm (deleted)");
	if (fcntl(mfd, F_GET_SEALS) != mseals)
		fail(" memfd-seals=%#x", fcntl(mfd, F_GET_SEALS));
	if (fstat(mfd, &st) != 0 || st.st_size != 3 * ps + 10)
		fail(" memfd-size=%ld", (long)st.st_size);
	check_bytes("memfd-head", mfd, 0, mhead);
	check_bytes("memfd-tail", mfd, 2 * ps, mtail);
	if (memcmp(mmap_m + 2 * ps, mtail, sizeof mtail - 1) != 0)
		fail(" memfd-map-content");
	same_object("memfd", mmap_m, mfd, "/memfd:cryo shm (deleted)");
	coherent("memfd", mmap_m, mfd, 300);
	if (ftruncate(mfd, ps) == 0 || errno != EPERM)
		fail(" memfd-shrink-allowed");
	same_object("memfd2", mmap_m2, mfd, "/memfd:cryo shm (deleted)");
	mmap_m[ps + 9] = 'Q';
	if (mmap_m2[9] != 'Q')
		fail(" memfd-two-mappings");
	mmap_m[ps + 9] = 0;

	/* S */
	check_fd("sealed", sfd, 0, O_RDWR, 0, "/memfd:sealed (deleted)");
	if (fcntl(sfd, F_GET_SEALS) != sseals)
		fail(" sealed-seals=%#x", fcntl(sfd, F_GET_SEALS));
	check_bytes("sealed", sfd, 0, shead);
	if (memcmp(smap, shead, sizeof shead - 1) != 0)
		fail(" sealed-map-content");
	same_object("sealed", smap, sfd, "/memfd:sealed (deleted)");
	if (pwrite(sfd, "x", 1, 0) != -1 || errno != EPERM)
		fail(" sealed-write-allowed");
	if (fcntl(sfd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE) != -1 || errno != EPERM)
		fail(" sealed-seal-allowed");

	/* O */
	char path[256];
	maps_inode(omap, path, sizeof path);
	if (strcmp(path, "/memfd:orphan (deleted)") != 0)
		fail(" orphan-path=%s", path);
	if (memcmp(omap, ohead, sizeof ohead - 1) != 0 || memcmp(omap + ps, ohead, sizeof ohead - 1) != 0)
		fail(" orphan-content");

	/* V */
	char vpath[600];
	snprintf(vpath, sizeof vpath, "%s/shm.gone (deleted)", cwd);
	maps_inode(vmap, path, sizeof path);
	if (strcmp(path, vpath) != 0)
		fail(" gone-path=%s", path);
	if (memcmp(vmap, vhead, sizeof vhead - 1) != 0)
		fail(" gone-content");

	/* A */
	if (memcmp(amap, ahead, sizeof ahead - 1) != 0 || memcmp(amap + ps, ahead, sizeof ahead - 1) != 0)
		fail(" shanon-content");
	if (memcmp(aalias + ps, ahead, sizeof ahead - 1) != 0)
		fail(" shanon-alias-content");
	amap[100] = 'Q';
	if (aalias[100] != 'Q')
		fail(" shanon-alias");
	amap[100] = 0;
	char apath[256], bpath[256];
	if (maps_inode(amap, apath, sizeof apath) != maps_inode(aalias, bpath, sizeof bpath))
		fail(" shanon-alias-inode");

	/* F */
	int ffd = open("shm.file", O_RDONLY);
	if (ffd < 0) {
		fail(" file-open");
	} else {
		char save = fmap[ps + 5], c = 0;
		fmap[ps + 5] = 'Z';
		if (pread(ffd, &c, 1, ps + 5) != 1 || c != 'Z')
			fail(" file-map-to-file");
		fmap[ps + 5] = save;
		check_bytes("file", ffd, 0, fhead);
		same_object("file", fmap, ffd, NULL);
		close(ffd);
	}
	if (badlen == 0)
		put("check ok\n");
	else
		putf("check bad%s\n", bad);
}

static int new_memfd(const char *name, unsigned flags, size_t size)
{
	int fd = memfd_create(name, flags);
	if (fd < 0 || ftruncate(fd, (off_t)size) != 0)
		die(name);
	return fd;
}

int main(void)
{
	ps = sysconf(_SC_PAGESIZE);

	/* U */
	ufd = open("shm.unlinked", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (ufd < 0 || fchmod(ufd, 0640) != 0)
		die("unlinked");
	if (pwrite(ufd, uhead, sizeof uhead - 1, 0) < 0 || pwrite(ufd, utail, sizeof utail - 1, MIB + 100) < 0)
		die("unlinked write");
	char p[64];
	snprintf(p, sizeof p, "/proc/self/fd/%d", ufd);
	ufd2 = open(p, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (ufd2 < 0 || lseek(ufd, 7, SEEK_SET) != 7 || lseek(ufd2, 3, SEEK_SET) != 3)
		die("unlinked fds");
	umap = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, ufd, 0);
	if (umap == MAP_FAILED || unlink("shm.unlinked") != 0)
		die("unlinked map");

	/* M */
	mfd = new_memfd("cryo shm", MFD_CLOEXEC | MFD_ALLOW_SEALING, 3 * ps + 10);
	if (pwrite(mfd, mhead, sizeof mhead - 1, 0) < 0 || pwrite(mfd, mtail, sizeof mtail - 1, 2 * ps) < 0)
		die("memfd write");
	mmap_m = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (mmap_m == MAP_FAILED || fcntl(mfd, F_ADD_SEALS, mseals) != 0 || lseek(mfd, 5, SEEK_SET) != 5)
		die("memfd map");
	mmap_m2 = mmap(NULL, ps, PROT_READ, MAP_SHARED, mfd, ps);
	if (mmap_m2 == MAP_FAILED)
		die("memfd map 2");

	/* S */
	sfd = new_memfd("sealed", MFD_ALLOW_SEALING, ps);
	if (pwrite(sfd, shead, sizeof shead - 1, 0) < 0 || fcntl(sfd, F_ADD_SEALS, sseals) != 0)
		die("sealed");
	smap = mmap(NULL, ps, PROT_READ, MAP_SHARED, sfd, 0);
	if (smap == MAP_FAILED)
		die("sealed map");

	/* O */
	int ofd = new_memfd("orphan", MFD_CLOEXEC, 2 * ps);
	if (pwrite(ofd, ohead, sizeof ohead - 1, 0) < 0) /* through the fd only */
		die("orphan write");
	omap = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, ofd, 0);
	if (omap == MAP_FAILED)
		die("orphan map");
	memcpy(omap + ps, ohead, sizeof ohead - 1); /* through the mapping only */
	close(ofd);

	/* V */
	int vfd = open("shm.gone", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (vfd < 0 || ftruncate(vfd, ps) != 0)
		die("gone");
	vmap = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_SHARED, vfd, 0);
	if (vmap == MAP_FAILED || unlink("shm.gone") != 0)
		die("gone map");
	memcpy(vmap, vhead, sizeof vhead - 1);
	close(vfd);

	/* A */
	amap = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (amap == MAP_FAILED)
		die("shared anonymous");
	memcpy(amap, ahead, sizeof ahead - 1);
	memcpy(amap + ps, ahead, sizeof ahead - 1);
	if (mprotect(amap + ps, ps, PROT_READ) != 0) /* two mappings, one object */
		die("shared anonymous mprotect");
	aalias = mremap(amap, 0, 2 * ps, MREMAP_MAYMOVE);
	if (aalias == MAP_FAILED)
		die("shared anonymous alias");

	/* F */
	int ffd = open("shm.file", O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (ffd < 0 || ftruncate(ffd, 2 * ps) != 0 || pwrite(ffd, fhead, sizeof fhead - 1, 0) < 0)
		die("file");
	fmap = mmap(NULL, 2 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, ffd, 0);
	if (fmap == MAP_FAILED)
		die("file map");
	close(ffd);

	put("ready\n");
	char line[64];
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "check") == 0)
			check();
		else if (strcmp(line, "ping") == 0)
			put("pong\n");
		else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
	}
	return 0;
}
