/*
 * zombies: a process with two zombie children, one that exited with
 * status 42 and one killed by SIGTERM, neither reaped yet: the moment a
 * shell or a supervisor is in between a child's death and its wait().
 *
 * Prints "ready <pid A> <pid B>" once both have died. "reap" reaps every
 * child, one line each ("reaped <pid> exit <n>" or "reaped <pid> signal
 * <n>"), then "done <errno name>" (ECHILD when none is left).
 * "exit [N]" -> exit(N).
 */
#include <signal.h>
#include <sys/wait.h>

#include "lineio.h"

int main(void)
{
	pid_t a = fork();
	if (a == 0)
		_exit(42);
	pid_t b = fork();
	if (b == 0) {
		signal(SIGTERM, SIG_DFL);
		raise(SIGTERM);
		_exit(1);
	}
	if (a < 0 || b < 0)
		return 10;
	/* Both dead, not reaped: waitid with WNOWAIT leaves them zombies. */
	siginfo_t si;
	for (int i = 0; i < 2; i++)
		if (waitid(P_PID, i ? b : a, &si, WEXITED | WNOWAIT) != 0)
			return 11;
	putf("ready %ld %ld\n", (long)a, (long)b);
	char line[256];
	for (;;) {
		if (read_line(line, sizeof line) < 0)
			return 0;
		if (strcmp(line, "reap") == 0) {
			int st;
			pid_t p;
			while ((p = waitpid(-1, &st, 0)) > 0) {
				if (WIFEXITED(st))
					putf("reaped %ld exit %d\n", (long)p, WEXITSTATUS(st));
				else if (WIFSIGNALED(st))
					putf("reaped %ld signal %d\n", (long)p, WTERMSIG(st));
				else
					putf("reaped %ld status %#x\n", (long)p, st);
			}
			putf("done %s\n", errno == ECHILD ? "ECHILD" : strerror(errno));
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		} else {
			putf("unknown %s\n", line);
		}
	}
}
