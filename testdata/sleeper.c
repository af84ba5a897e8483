/*
 * sleeper: sleeps 3 s in one system call, then serves pings.
 *
 *   sleeper [clock|sleep|nanosleep] [seconds]
 *     clock      clock_nanosleep(CLOCK_MONOTONIC, 0, ...) (libc)
 *     sleep      sleep(3) (libc; clock_nanosleep(CLOCK_REALTIME) on glibc)
 *     nanosleep  the nanosleep system call itself, via syscall(2)
 *
 * Prints "sleeping <mode>", then after the sleep returns, either way,
 * "woke <ret> <errno>" (errno is 0 if the call did not fail), then serves
 * "ping" -> "pong <count>" and "exit [N]".
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <time.h>

#include "lineio.h"

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "clock";
	int secs = argc > 2 ? atoi(argv[2]) : 3;
	long ret;
	int err = 0;

	putf("sleeping %s\n", mode);
	errno = 0;
	if (strcmp(mode, "clock") == 0) {
		struct timespec ts = {secs, 0};
		ret = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
		err = (int)ret; /* clock_nanosleep returns the error number */
	} else if (strcmp(mode, "sleep") == 0) {
		ret = sleep((unsigned)secs);
		if (ret != 0)
			err = errno;
	} else if (strcmp(mode, "nanosleep") == 0) {
		struct timespec ts = {secs, 0}, rem;
		ret = syscall(SYS_nanosleep, &ts, &rem);
		if (ret != 0)
			err = errno;
	} else {
		putf("bad mode %s\n", mode);
		return 2;
	}
	putf("woke %ld %d\n", ret, err);

	char line[256];
	long count = 0;
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "ping") == 0)
			putf("pong %ld\n", ++count);
		else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
		else
			putf("unknown %s\n", line);
	}
	return 0;
}
