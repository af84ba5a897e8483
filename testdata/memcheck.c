/*
 * memcheck: fills memory of every kind with a known pseudo-random pattern
 * and reports FNV-1a 64 hashes of it, so a test can compare the memory of
 * a process before freezing and after thawing.
 *
 *   heap   8 MiB malloc (glibc mmaps it) + 256 x 4 KiB mallocs (brk heap)
 *   data   a 1 MiB initialized .data array (first half left as linked,
 *          second half overwritten at start)
 *   bss    a 1 MiB .bss array, filled at start
 *   stack  a 64 KiB array in main's frame
 *   mmap   64 MiB anonymous mapping, only every 16th page touched
 *   plus a 1 GiB MAP_NORESERVE PROT_NONE reserve whose first 256 MiB are
 *   made read-write; none of it is ever touched: it must cost nothing in
 *   an image.
 *
 * Prints "ready", then serves commands on stdin:
 *   sum      -> "sum <heap> <data> <bss> <stack> <mmap>" (16 hex digits each)
 *   inc      -> increments a .data counter, "inc <value>"
 *   pid      -> "pid <getpid()>"
 *   exit [N] -> exit(N)
 */
#include <stdint.h>
#include <sys/mman.h>

#include "lineio.h"

#define HEAP_BIG (8u << 20)
#define HEAP_SMALL_N 256
#define HEAP_SMALL 4096
#define DATA_SIZE (1u << 20)
#define BSS_SIZE (1u << 20)
#define STACK_SIZE (64u << 10)
#define MMAP_SIZE (64u << 20)
#define MMAP_STRIDE 16 /* pages */
#define RESERVE_SIZE (1ul << 30)
#define RESERVE_RW (256ul << 20)

static unsigned char data_arr[DATA_SIZE] = {'c', 'r', 'y', 'o', 1, 2, 3, 4};
static unsigned char bss_arr[BSS_SIZE];
static volatile long counter = 41; /* in .data: first "inc" prints 42 */

static uint64_t xs = 1;
static uint64_t xorshift(void)
{
	xs ^= xs << 13;
	xs ^= xs >> 7;
	xs ^= xs << 17;
	return xs;
}

__attribute__((noinline)) static void fill(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i += 8) {
		uint64_t v = xorshift();
		memcpy(p + i, &v, n - i < 8 ? n - i : 8);
	}
}

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

__attribute__((noinline)) static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

static unsigned char *heap_big;
static unsigned char *heap_small[HEAP_SMALL_N];
static unsigned char *mm;
static size_t pagesz;

__attribute__((noinline)) static void serve(unsigned char *stk)
{
	char line[256];
	put("ready\n");
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "sum") == 0) {
			uint64_t h = fnv(FNV_OFFSET, heap_big, HEAP_BIG);
			for (int i = 0; i < HEAP_SMALL_N; i++)
				h = fnv(h, heap_small[i], HEAP_SMALL);
			uint64_t d = fnv(FNV_OFFSET, data_arr, DATA_SIZE);
			uint64_t b = fnv(FNV_OFFSET, bss_arr, BSS_SIZE);
			uint64_t s = fnv(FNV_OFFSET, stk, STACK_SIZE);
			/* Only the touched pages: reading the others would map the
			 * zero page into them. */
			uint64_t m = FNV_OFFSET;
			for (size_t off = 0; off < MMAP_SIZE; off += MMAP_STRIDE * pagesz)
				m = fnv(m, mm + off, pagesz);
			putf("sum %016llx %016llx %016llx %016llx %016llx\n",
			     (unsigned long long)h, (unsigned long long)d,
			     (unsigned long long)b, (unsigned long long)s,
			     (unsigned long long)m);
		} else if (strcmp(line, "inc") == 0) {
			counter++;
			putf("inc %ld\n", (long)counter);
		} else if (strcmp(line, "pid") == 0) {
			putf("pid %ld\n", (long)getpid());
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		} else {
			putf("unknown %s\n", line);
		}
	}
}

int main(void)
{
	unsigned char stk[STACK_SIZE];

	pagesz = (size_t)sysconf(_SC_PAGESIZE);

	heap_big = malloc(HEAP_BIG);
	if (heap_big == NULL)
		return 10;
	fill(heap_big, HEAP_BIG);
	for (int i = 0; i < HEAP_SMALL_N; i++) {
		heap_small[i] = malloc(HEAP_SMALL);
		if (heap_small[i] == NULL)
			return 11;
		fill(heap_small[i], HEAP_SMALL);
	}

	fill(data_arr + DATA_SIZE / 2, DATA_SIZE / 2);
	fill(bss_arr, BSS_SIZE);
	fill(stk, STACK_SIZE);

	mm = mmap(NULL, MMAP_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mm == MAP_FAILED)
		return 12;
	for (size_t off = 0; off < MMAP_SIZE; off += MMAP_STRIDE * pagesz)
		fill(mm + off, pagesz);

	void *reserve = mmap(NULL, RESERVE_SIZE, PROT_NONE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (reserve == MAP_FAILED)
		return 13;
	if (mprotect(reserve, RESERVE_RW, PROT_READ | PROT_WRITE) != 0)
		return 14;

	serve(stk);
	return 0;
}
