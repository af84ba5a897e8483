/*
 * big: a process with 256 MiB of present anonymous memory, for the freeze
 * and thaw benchmarks ("big N": N MiB instead). The first half holds pseudo-random bytes, the second
 * half is all zero but every page of it was written (a non-zero byte, then
 * zero again) so all of it is present.
 *
 * Prints "ready", then serves "ping" -> "pong", "sum" -> "sum <fnv64>" and
 * "exit [N]".
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "lineio.h"

int main(int argc, char **argv)
{
	size_t SIZE = 256ul << 20;
	if (argc > 1)
		SIZE = strtoul(argv[1], NULL, 10) << 20;
	if (SIZE == 0 || SIZE % 16 != 0)
		return 11;
	size_t pagesz = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 10;

	uint64_t x = 1;
	for (size_t i = 0; i < SIZE / 2; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
	volatile unsigned char *z = p + SIZE / 2;
	for (size_t i = 0; i < SIZE / 2; i += pagesz) {
		z[i] = 0xff;
		z[i] = 0;
	}

	put("ready\n");
	char line[256];
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "ping") == 0) {
			put("pong\n");
		} else if (strcmp(line, "sum") == 0) {
			uint64_t h = 0xcbf29ce484222325ull;
			for (size_t i = 0; i < SIZE; i += 8) {
				uint64_t v;
				memcpy(&v, p + i, 8);
				h = (h ^ v) * 0x100000001b3ull;
			}
			putf("sum %016llx\n", (unsigned long long)h);
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		} else {
			putf("unknown %s\n", line);
		}
	}
	return 0;
}
