/*
 * churn: never holds still. In a loop it forks a child that exits at
 * once (and reaps it), creates and joins a thread, and every 2000 rounds
 * execs itself (/proc/self/exe) into the next generation. It polls stdin
 * between rounds: "ping" -> "pong <generation> <round>", "exit N".
 * Prints "ready" once, in generation 0.
 */
#include <poll.h>
#include <pthread.h>
#include <sys/wait.h>
#include "lineio.h"

static void *thread_main(void *arg) { return arg; }

int main(int argc, char **argv)
{
	long gen = argc > 1 ? atol(argv[1]) : 0;
	if (gen == 0)
		put("ready\n");
	for (long n = 1;; n++) {
		pid_t c = fork();
		if (c == 0)
			_exit(0);
		if (c < 0 || waitpid(c, NULL, 0) != c)
			return 20;
		pthread_t t;
		if (pthread_create(&t, NULL, thread_main, NULL) != 0 || pthread_join(t, NULL) != 0)
			return 21;
		if (n % 2000 == 0) {
			char next[32];
			snprintf(next, sizeof next, "%ld", gen + 1);
			execl("/proc/self/exe", argv[0], next, (char *)NULL);
			return 22;
		}
		struct pollfd pfd = {.fd = 0, .events = POLLIN};
		if (poll(&pfd, 1, 0) > 0) {
			char line[64];
			if (read_line(line, sizeof line) < 0)
				return 0;
			if (strcmp(line, "ping") == 0)
				putf("pong %ld %ld\n", gen, n);
			else if (strncmp(line, "exit", 4) == 0)
				cmd_exit(line);
		}
	}
}
