/*
 * counter: writes "0\n", "1\n", "2\n", ... to stdout, one write(2) per line,
 * sleeping 5 ms (nanosleep) between lines, forever.
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "lineio.h"

int main(void)
{
	char buf[32];
	for (unsigned long n = 0;; n++) {
		int len = snprintf(buf, sizeof buf, "%lu\n", n);
		write_all(1, buf, (size_t)len);

		struct timespec ts = {0, 5 * 1000 * 1000}, rem;
		while (nanosleep(&ts, &rem) == -1 && errno == EINTR)
			ts = rem;
	}
}
