/*
 * reserve: a process shaped like ASan, Go, the JVM or V8: a huge
 * PROT_NONE | MAP_NORESERVE reservation (64 GiB, or the GiB given as the
 * first argument: 1024 for 1 TiB) with a small read-write window, and
 * inside that window memory with each per-mapping setting a thaw must
 * give back. None of it is charged as committed memory.
 *
 *   R            the reservation, PROT_NONE, MAP_NORESERVE
 *   W = R+1GiB   32 MiB made read-write with mprotect, in 2 MiB pieces:
 *     0-8    plain: scattered pages of data, one page only read (the
 *            zero page), one written with zeros
 *     8      MADV_DONTFORK      10  MADV_WIPEONFORK   12  MADV_DONTDUMP
 *     14     MADV_HUGEPAGE      16  MADV_NOHUGEPAGE   18  MADV_MERGEABLE
 *     20     a guard region (MADV_GUARD_INSTALL, pages 4-7) with data
 *            on both sides
 *     22     data, then PROT_READ      24  mlock2(MLOCK_ONFAULT)
 *     26     mlock                     28  data, then PROT_NONE
 *     30     untouched, named "cryo-reserve" (PR_SET_VMA_ANON_NAME)
 *   S            4 pages of data, sealed with mseal, elsewhere
 *   SR           4 pages of shared anonymous memory with data, made
 *                read-only
 *   with a second argument FILE (created, 16 pages of a pattern):
 *     FP   MAP_PRIVATE read-write of all of it: page 1 changed, page 2
 *          zeroed, the rest as in the file
 *     FR   MAP_PRIVATE PROT_READ of pages 4-7, untouched
 *     FS   MAP_SHARED PROT_READ of an O_RDWR descriptor: it may be made
 *          writable later ("mw")
 *
 * A setting this kernel lacks (guard regions before 6.13, mseal before
 * 6.10, KSM, CONFIG_ANON_VMA_NAME) is left out and reported by
 * "features".
 *
 * Prints "ready", then serves commands on stdin:
 *   sum      -> "sum <hex>": FNV-1a 64 of every page holding data, read
 *               through /proc/self/mem (the PROT_NONE ones too)
 *   sums     -> "sums" and " NAME=<hex>" for each region holding data,
 *               the same hash of that region's pages alone: W0..W30 the
 *               2 MiB pieces of W (by their MiB), S, SR, FP, FR, FS
 *   features -> "features guard=G merge=M seal=S lock=L name=N file=F" (0/1)
 *   guard    -> "guard <n>": how many of the guard pages fault (4 if the
 *               region is there), then whether their neighbours read
 *   upgrade  -> mprotect FS read-write and write to it: "upgrade ok" or
 *               "upgrade <errno>"
 *   touch    -> writes a byte into each read-write piece: "touched"
 *   addr     -> "addr <R> <W> <S>" (hex)
 *   lockbig  -> maps and mlocks 16 MiB more (beyond a default
 *               RLIMIT_MEMLOCK: root may): "lockbig ok" or "lockbig <errno>"
 *   ping     -> "pong"
 *   exit [N] -> exit(N)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "lineio.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef SYS_mseal
#define SYS_mseal 462
#endif
#ifndef SYS_mlock2
#ifdef __x86_64__
#define SYS_mlock2 325
#else
#define SYS_mlock2 284
#endif
#endif

#define MIB (1ul << 20)
#define GIB (1ul << 30)
#define WSIZE (32 * MIB)
#define FILE_PAGES 16

static size_t ps;
static unsigned char *R, *W, *S, *SR, *FP, *FR, *FS;
static size_t rsize;
static int memfd = -1;
static int have_guard, have_merge, have_seal, have_lock, have_name, have_file;

/* The pages holding data, as offsets into W. */
static size_t datapages[128];
static int ndata;

static uint64_t xs = 0x9e3779b97f4a7c15ull;
static uint64_t xorshift(void)
{
	xs ^= xs << 13;
	xs ^= xs >> 7;
	xs ^= xs << 17;
	return xs;
}

static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i + 8 <= n; i += 8) {
		uint64_t v = xorshift();
		memcpy(p + i, &v, 8);
	}
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

/* data writes a page of data at W+off and remembers it. */
static void data(size_t off)
{
	fill(W + off, ps);
	datapages[ndata++] = off;
}

/* peek reads a page through /proc/self/mem (FOLL_FORCE: PROT_NONE pages
 * too) without changing any mapping; 0 on success. */
static int peek(const void *addr, unsigned char *buf)
{
	return pread(memfd, buf, ps, (off_t)(uintptr_t)addr) == (ssize_t)ps ? 0 : -1;
}

static uint64_t hash_page(uint64_t h, const void *addr)
{
	unsigned char buf[65536];
	if (peek(addr, buf) != 0) {
		putf("error peek %p: %s\n", addr, strerror(errno));
		exit(20);
	}
	return fnv(h, buf, ps);
}

static void open_mem(void)
{
	/* Opened for each command, not held: an open /proc/PID/mem does not
	 * survive a freeze. */
	memfd = open("/proc/self/mem", O_RDONLY);
	if (memfd < 0)
		exit(2);
}

static void close_mem(void)
{
	close(memfd);
	memfd = -1;
}

static uint64_t sum(void)
{
	uint64_t h = FNV_OFFSET;
	for (int i = 0; i < ndata; i++)
		h = hash_page(h, W + datapages[i]);
	for (int i = 0; i < 4; i++)
		h = hash_page(h, S + i * ps);
	for (int i = 0; i < 4; i++)
		h = hash_page(h, SR + i * ps);
	if (have_file) {
		for (int i = 0; i < FILE_PAGES; i++)
			h = hash_page(h, FP + i * ps);
		for (int i = 0; i < 4; i++)
			h = hash_page(h, FR + i * ps);
		for (int i = 0; i < FILE_PAGES; i++)
			h = hash_page(h, FS + i * ps);
	}
	return h;
}

/* sums: the hash of each region alone, to tell which one changed. */
static void sums(void)
{
	char out[1024];
	int n = snprintf(out, sizeof out, "sums");
	for (size_t piece = 0; piece < WSIZE; piece += 2 * MIB) {
		uint64_t h = FNV_OFFSET;
		int any = 0;
		for (int i = 0; i < ndata; i++) {
			if (datapages[i] >= piece && datapages[i] < piece + 2 * MIB) {
				h = hash_page(h, W + datapages[i]);
				any = 1;
			}
		}
		if (any)
			n += snprintf(out + n, sizeof out - n, " W%zu=%016llx", piece / MIB, (unsigned long long)h);
	}
	struct {
		const char *name;
		unsigned char *p;
		int pages;
	} regions[] = {
		{"S", S, 4}, {"SR", SR, 4},
		{"FP", FP, FILE_PAGES}, {"FR", FR, 4}, {"FS", FS, FILE_PAGES},
	};
	for (size_t r = 0; r < sizeof regions / sizeof regions[0]; r++) {
		if (regions[r].name[0] == 'F' && !have_file)
			continue;
		uint64_t h = FNV_OFFSET;
		for (int i = 0; i < regions[r].pages; i++)
			h = hash_page(h, regions[r].p + i * ps);
		n += snprintf(out + n, sizeof out - n, " %s=%016llx", regions[r].name, (unsigned long long)h);
	}
	snprintf(out + n, sizeof out - n, "\n");
	put(out);
}

static void setup_file(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		exit(30);
	unsigned char *buf = malloc(FILE_PAGES * ps);
	for (size_t i = 0; i < FILE_PAGES * ps; i++)
		buf[i] = (unsigned char)(i * 7 + i / ps + 1);
	if (write(fd, buf, FILE_PAGES * ps) != (ssize_t)(FILE_PAGES * ps))
		exit(31);
	free(buf);
	FP = mmap(NULL, FILE_PAGES * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	FR = mmap(NULL, 4 * ps, PROT_READ, MAP_PRIVATE, fd, 4 * ps);
	FS = mmap(NULL, FILE_PAGES * ps, PROT_READ, MAP_SHARED, fd, 0);
	if (FP == MAP_FAILED || FR == MAP_FAILED || FS == MAP_FAILED)
		exit(32);
	close(fd);
	fill(FP + ps, ps);
	memset(FP + 2 * ps, 0, ps);
	have_file = 1;
}

static void setup(void)
{
	R = mmap(NULL, rsize, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (R == MAP_FAILED)
		exit(10);
	W = R + GIB;
	if (mprotect(W, WSIZE, PROT_READ | PROT_WRITE) != 0)
		exit(11);
	/* Pieces first, so that each one's advice splits the window. */
	if (madvise(W + 8 * MIB, 2 * MIB, MADV_DONTFORK) != 0 ||
	    madvise(W + 10 * MIB, 2 * MIB, MADV_WIPEONFORK) != 0 ||
	    madvise(W + 12 * MIB, 2 * MIB, MADV_DONTDUMP) != 0 ||
	    madvise(W + 14 * MIB, 2 * MIB, MADV_HUGEPAGE) != 0 ||
	    madvise(W + 16 * MIB, 2 * MIB, MADV_NOHUGEPAGE) != 0)
		exit(12);
	have_merge = madvise(W + 18 * MIB, 2 * MIB, MADV_MERGEABLE) == 0;

	/* Data: scattered pages of the plain piece, two in each other one. */
	for (size_t off = 0; off < 8 * MIB; off += 37 * ps)
		data(off);
	volatile unsigned char z = W[5 * ps]; /* the zero page */
	(void)z;
	W[6 * ps] = 1;
	W[6 * ps] = 0; /* present, all zero */
	for (size_t piece = 8 * MIB; piece < 24 * MIB; piece += 2 * MIB) {
		data(piece);
		data(piece + 9 * ps);
	}
	data(20 * MIB + 3 * ps); /* next to the guard region */
	data(20 * MIB + 8 * ps);
	data(28 * MIB);
	data(28 * MIB + 3 * ps);

	if (mprotect(W + 22 * MIB, 2 * MIB, PROT_READ) != 0 ||
	    mprotect(W + 28 * MIB, 2 * MIB, PROT_NONE) != 0)
		exit(13);
	if (syscall(SYS_mlock2, W + 24 * MIB, 2 * MIB, MLOCK_ONFAULT) != 0)
		exit(14);
	data(24 * MIB);
	if (mlock(W + 26 * MIB, 2 * MIB) != 0)
		exit(15);
	data(26 * MIB + 5 * ps);
	have_lock = 1;
	/* Last, once the window is split: a guard region marks its whole
	 * mapping (gu, VM_MAYBE_GUARD in 6.18), and the pieces it would be
	 * split into afterwards would keep the mark, which the image does
	 * not hold. */
	have_guard = madvise(W + 20 * MIB + 4 * ps, 4 * ps, MADV_GUARD_INSTALL) == 0;

	S = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (S == MAP_FAILED)
		exit(16);
	fill(S, 4 * ps);
	have_seal = syscall(SYS_mseal, S, 4 * ps, 0) == 0;

	SR = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (SR == MAP_FAILED)
		exit(17);
	fill(SR, 4 * ps);
	if (mprotect(SR, 4 * ps, PROT_READ) != 0)
		exit(18);
	have_name = prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, W + 30 * MIB, 2 * MIB, "cryo-reserve") == 0;
}

static int probe_guard(void)
{
	unsigned char buf[65536];
	int faults = 0;
	for (int i = 4; i < 8; i++)
		faults += peek(W + 20 * MIB + i * ps, buf) != 0;
	if (peek(W + 20 * MIB + 3 * ps, buf) != 0 || peek(W + 20 * MIB + 8 * ps, buf) != 0)
		return -1;
	return faults;
}

int main(int argc, char **argv)
{
	ps = (size_t)sysconf(_SC_PAGESIZE);
	rsize = (argc > 1 ? strtoul(argv[1], NULL, 10) : 64) * GIB;
	setup();
	if (argc > 2)
		setup_file(argv[2]);

	char line[256];
	put("ready\n");
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "sum") == 0) {
			open_mem();
			putf("sum %016llx\n", (unsigned long long)sum());
			close_mem();
		} else if (strcmp(line, "sums") == 0) {
			open_mem();
			sums();
			close_mem();
		} else if (strcmp(line, "features") == 0) {
			putf("features guard=%d merge=%d seal=%d lock=%d name=%d file=%d\n",
			     have_guard, have_merge, have_seal, have_lock, have_name, have_file);
		} else if (strcmp(line, "guard") == 0) {
			open_mem();
			putf("guard %d\n", have_guard ? probe_guard() : 0);
			close_mem();
		} else if (strcmp(line, "upgrade") == 0) {
			if (!have_file) {
				put("upgrade nofile\n");
			} else if (mprotect(FS, FILE_PAGES * ps, PROT_READ | PROT_WRITE) != 0) {
				putf("upgrade %s\n", strerror(errno));
			} else {
				FS[0] ^= 0xff;
				FS[0] ^= 0xff;
				put("upgrade ok\n");
			}
		} else if (strcmp(line, "touch") == 0) {
			for (size_t off = 0; off < 22 * MIB; off += 2 * MIB) {
				if (off == 20 * MIB)
					off += 9 * ps; /* past the guard region */
				W[off + 1]++;
				W[off + 1]--;
			}
			W[30 * MIB + 5 * ps] = 0;
			put("touched\n");
		} else if (strcmp(line, "addr") == 0) {
			putf("addr %lx %lx %lx\n", (unsigned long)(uintptr_t)R,
			     (unsigned long)(uintptr_t)W, (unsigned long)(uintptr_t)S);
		} else if (strcmp(line, "lockbig") == 0) {
			void *big = mmap(NULL, 16 * MIB, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (big == MAP_FAILED || mlock(big, 16 * MIB) != 0)
				putf("lockbig %s\n", strerror(errno));
			else
				put("lockbig ok\n");
		} else if (strcmp(line, "ping") == 0) {
			put("pong\n");
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		} else {
			putf("unknown %s\n", line);
		}
	}
	return 0;
}
