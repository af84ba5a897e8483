/*
 * counter-demo: the demo's variant of counter: writes "tick N\n" once
 * every 200 ms, forever, even ticks to stdout and odd ones to stderr (the
 * demo starts it with >log 2>&1: both fds share one offset, before and
 * after the thaw).
 */
#include <errno.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "lineio.h"

int main(void)
{
	char buf[64];
	for (unsigned long n = 0;; n++) {
		int len = snprintf(buf, sizeof buf, "tick %lu\n", n);
		write_all(n % 2 ? 2 : 1, buf, (size_t)len);

		struct timespec ts = {0, 200 * 1000 * 1000}, rem;
		while (nanosleep(&ts, &rem) == -1 && errno == EINTR)
			ts = rem;
	}
}
