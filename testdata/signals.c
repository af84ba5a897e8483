/*
 * signals: holds signal state that only the kernel keeps and proves it
 * after thaw.
 *
 * At start: SIGALRM and SIGCHLD handlers that count, a SIGUSR1 handler (SA_RESTART|SA_ONSTACK, running on a
 * sigaltstack), SIGPIPE ignored, SIGUSR2 blocked with a handler, then
 * raise(SIGUSR2) so that one SIGUSR2 is pending. Prints "ready".
 * Commands:
 *   state  -> "state usr1=<n> usr2=<n> alrm=<n> chld=<n> onstack=<n> blocked=<0|1> pending=<0|1> pipe=<ign|dfl> alt=<0|1>"
 *   usr1   -> raise(SIGUSR1), then "state ..." (the handler ran?)
 *   unblock-> unblock SIGUSR2 (the pending one is delivered), then "state ..."
 *   exit N
 */
#include <signal.h>
#include "lineio.h"

static volatile sig_atomic_t usr1, usr2, alrm, chld, onstack;
static char altstack[64 * 1024];

static void on_usr1(int sig)
{
	(void)sig;
	stack_t ss;
	sigaltstack(NULL, &ss);
	if (ss.ss_flags & SS_ONSTACK)
		onstack++;
	usr1++;
}

static void on_usr2(int sig)
{
	(void)sig;
	usr2++;
}

static void on_other(int sig)
{
	if (sig == SIGALRM)
		alrm++;
	else if (sig == SIGCHLD)
		chld++;
}

static void state(void)
{
	sigset_t cur, pend;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	sigpending(&pend);
	struct sigaction sa;
	sigaction(SIGPIPE, NULL, &sa);
	stack_t ss;
	sigaltstack(NULL, &ss);
	int alt = !(ss.ss_flags & SS_DISABLE) && ss.ss_sp == altstack && ss.ss_size == sizeof altstack;
	putf("state usr1=%d usr2=%d alrm=%d chld=%d onstack=%d blocked=%d pending=%d pipe=%s alt=%d\n",
	     (int)usr1, (int)usr2, (int)alrm, (int)chld, (int)onstack, sigismember(&cur, SIGUSR2), sigismember(&pend, SIGUSR2),
	     sa.sa_handler == SIG_IGN ? "ign" : "dfl", alt);
}

int main(void)
{
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
	if (sigaltstack(&ss, NULL) != 0)
		return 10;
	struct sigaction sa = {0};
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART | SA_ONSTACK;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_other;
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	sigprocmask(SIG_BLOCK, &m, NULL);
	raise(SIGUSR2);

	put("ready\n");
	char line[256];
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "state") == 0) {
			state();
		} else if (strcmp(line, "usr1") == 0) {
			raise(SIGUSR1);
			state();
		} else if (strcmp(line, "unblock") == 0) {
			sigprocmask(SIG_UNBLOCK, &m, NULL);
			state();
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		} else {
			putf("unknown %s\n", line);
		}
	}
	return 0;
}
