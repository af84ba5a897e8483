/*
 * tracer: an unrelated ptrace tracer, used to test that freezing an
 * already-traced process fails cleanly.
 *
 *   tracer PID
 *
 * PTRACE_SEIZEs PID (which does not stop it), prints "traced <my pid>",
 * then keeps the tracee running: any stop it reports is continued, with
 * its signal. It exits when the tracee does; kill it to detach.
 */
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "lineio.h"

int main(int argc, char **argv)
{
	if (argc != 2) {
		put("usage: tracer PID\n");
		return 2;
	}
	pid_t pid = (pid_t)atoi(argv[1]);
	if (ptrace(PTRACE_SEIZE, pid, NULL, NULL) != 0) {
		putf("seize failed: %s\n", strerror(errno));
		return 1;
	}
	putf("traced %ld\n", (long)getpid());

	for (;;) {
		int st;
		pid_t w = waitpid(pid, &st, __WALL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return 0;
		if (WIFSTOPPED(st)) {
			int sig = WSTOPSIG(st);
			if ((st >> 16) != 0) /* group-stop or event stop */
				sig = 0;
			ptrace(PTRACE_CONT, pid, NULL, (void *)(long)sig);
		}
	}
}
