/*
 * lowmap: occupies the lowest addresses a process may map (from
 * /proc/sys/vm/mmap_min_addr up, 4 MiB), where a restorer looking for
 * room would go first, and fills them with a pattern.
 * Prints "ready <addr>". "sum" -> "sum <fnv1a of the region>", "exit N".
 */
#include <stdint.h>
#include <sys/mman.h>
#include "lineio.h"

#define LEN (4u << 20)

int main(void)
{
	unsigned long lo = 65536;
	FILE *f = fopen("/proc/sys/vm/mmap_min_addr", "r");
	if (f) {
		if (fscanf(f, "%lu", &lo) != 1)
			lo = 65536;
		fclose(f);
	}
	lo = (lo + 4095) & ~4095ul;
	unsigned char *p = mmap((void *)lo, LEN, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p == MAP_FAILED)
		return 10;
	for (size_t i = 0; i < LEN; i++)
		p[i] = (unsigned char)(i * 7 + (i >> 12));
	putf("ready %p\n", (void *)p);
	char line[64];
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "sum") == 0) {
			uint64_t h = 1469598103934665603ull;
			for (size_t i = 0; i < LEN; i++)
				h = (h ^ p[i]) * 1099511628211ull;
			putf("sum %016llx\n", (unsigned long long)h);
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		}
	}
	return 0;
}
