/*
 * vdsoclock: reads the clocks through the vdso in a tight loop and checks
 * that time moves forward sanely, across a freeze and a thaw on another
 * kernel.
 *
 * Each round calls glibc's clock_gettime (CLOCK_MONOTONIC and
 * CLOCK_REALTIME) and gettimeofday, which glibc sends to the vdso through
 * the pointers it cached at start, and the vdso's clock_gettime through a
 * pointer this program looked up once at start in the vdso's dynamic
 * symbol table (AT_SYSINFO_EHDR), as the Go runtime does. A thaw must keep
 * those pointers working.
 *
 * Every 100 ms of CLOCK_MONOTONIC it prints
 *
 *	tick N calls C back B real SEC.NSEC
 *
 * N counts the ticks, C the rounds so far, B the rounds in which a
 * monotonic clock went backwards (glibc's or the cached vdso pointer's:
 * as when thawed on a machine up for less long; a jump forward is
 * fine), SEC.NSEC the
 * CLOCK_REALTIME of the tick. A realtime clock and gettimeofday more than
 * a second apart in two rounds in a row print "BAD ..." and exit 1.
 */
#include <elf.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <time.h>

#include "lineio.h"

#if defined(__x86_64__)
#define VDSO_CLOCK_GETTIME "__vdso_clock_gettime"
#elif defined(__aarch64__)
#define VDSO_CLOCK_GETTIME "__kernel_clock_gettime"
#endif

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

/* vdso_sym finds name in the vdso's dynamic symbol table (its section
 * headers are mapped with it). */
static void *vdso_sym(const char *name)
{
	uintptr_t base = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
	if (base == 0)
		return NULL;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)base;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(base + eh->e_phoff);
	uintptr_t bias = base;
	for (int i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type == PT_LOAD) {
			bias = base + ph[i].p_offset - ph[i].p_vaddr;
			break;
		}
	}
	const Elf64_Shdr *sh = (const Elf64_Shdr *)(base + eh->e_shoff);
	for (int i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != SHT_DYNSYM)
			continue;
		const Elf64_Sym *sym = (const Elf64_Sym *)(base + sh[i].sh_offset);
		const char *str = (const char *)(base + sh[sh[i].sh_link].sh_offset);
		size_t n = sh[i].sh_size / sizeof *sym;
		for (size_t j = 0; j < n; j++) {
			if (sym[j].st_shndx != SHN_UNDEF && strcmp(str + sym[j].st_name, name) == 0)
				return (void *)(bias + sym[j].st_value);
		}
	}
	return NULL;
}

static int64_t ns(const struct timespec *ts) { return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec; }

int main(void)
{
	clock_gettime_fn vdso = (clock_gettime_fn)vdso_sym(VDSO_CLOCK_GETTIME);
	if (vdso == NULL) {
		const char msg[] = "BAD no " VDSO_CLOCK_GETTIME " in the vdso\n";
		write_all(1, msg, sizeof msg - 1);
		return 1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	int64_t last = ns(&ts), lastv = last, next = last;
	unsigned long tick = 0, calls = 0, back = 0, strikes = 0;
	char buf[128];
	for (;;) {
		struct timespec m, mv, r;
		struct timeval tv;
		clock_gettime(CLOCK_MONOTONIC, &m);
		vdso(CLOCK_MONOTONIC, &mv);
		clock_gettime(CLOCK_REALTIME, &r);
		gettimeofday(&tv, NULL);
		calls++;
		if (ns(&m) < last || ns(&mv) < lastv) {
			/* Counted; the ticks go on from the new clock. */
			back++;
			next = ns(&m);
		}
		last = ns(&m);
		lastv = ns(&mv);
		int64_t d = ns(&r) - ((int64_t)tv.tv_sec * 1000000000 + (int64_t)tv.tv_usec * 1000);
		/* One round may straddle a freeze and a thaw on a machine whose
		 * clock differs: only two in a row are wrong. */
		if ((d > 1000000000 || d < -1000000000) && ++strikes < 2)
			continue;
		strikes = 0;
		if (d > 1000000000 || d < -1000000000) {
			int len = snprintf(buf, sizeof buf, "BAD realtime %lld.%09ld gettimeofday %lld.%06ld\n",
					   (long long)r.tv_sec, r.tv_nsec, (long long)tv.tv_sec, (long)tv.tv_usec);
			write_all(1, buf, (size_t)len);
			return 1;
		}
		if (last >= next) {
			next = last + 100000000;
			int len = snprintf(buf, sizeof buf, "tick %lu calls %lu back %lu real %lld.%09ld\n",
					   ++tick, calls, back, (long long)r.tv_sec, r.tv_nsec);
			write_all(1, buf, (size_t)len);
		}
	}
}
