/*
 * threads: a pthreads program with state in its threads' stacks and TLS,
 * threads blocked in condition variables, a robust mutex, pthread_join
 * and a spinning loop, all of which must go on after a thaw.
 *
 *   - NW workers each wait on a condition variable for a tick; on one
 *     they add 1 to a TLS counter and to a counter on their stack, keep
 *     a malloc'd block per tick (their own malloc arena), check that
 *     gettid() is the tid glibc caches (the __owner an ERRORCHECK mutex
 *     records when the thread locks it), and report;
 *   - the main thread holds a robust ERRORCHECK mutex that a waiter
 *     thread is blocked on (a futex wait on a word holding the main
 *     thread's tid);
 *   - a joiner thread is blocked in pthread_join on a sleeper thread;
 *   - a spinner counts in a loop.
 *
 * Commands on stdin, one answer line each on stdout:
 *   tick     -> "tick w0=T/S w1=... tids=ok malloc=ok" (TLS/stack counts)
 *   spin     -> "spin ok" when the spinner advances
 *   kill     -> "kill ok": pthread_kill(SIGUSR1) reaches every worker
 *   pend     -> "pend ok": SIGUSR2 queued for worker 1 alone
 *               (pthread_kill; every thread blocks it) and SIGRTMIN+1
 *               with value 77 for the process (sigqueue)
 *   take     -> "take w1=12/0 others=none main=35/77": worker 1 takes
 *               its SIGUSR2 (signo/si_code as glibc's pthread_kill
 *               queued it), no other worker sees one, the main thread
 *               takes the process's signal (signo/value)
 *   release  -> "release unlock=0 waiter=0": main unlocks the robust
 *               mutex, the waiter gets it
 *   join     -> "join ok": the sleeper ends, the joiner returns
 *   timer    -> "timer ok": the POSIX timer made at start, which signals
 *               worker 2 alone (SIGEV_THREAD_ID, SIGRTMIN+2), armed an
 *               hour ahead, is set to fire in 5 ms: its signal reaches
 *               worker 2 and no other thread ("timer lost", "timer
 *               wrong wN" otherwise), then it is armed an hour ahead again
 *   exit N
 * Prints "ready" once every thread is in place. An argument N adds N idle
 * threads, each blocked in a condition variable, and leaves the spinner
 * out (the benchmarks' many-threaded process, which must not eat a CPU).
 * With "exitmain" the main thread says "ready" and exits (the exit
 * syscall: that thread alone), and the others run on without it.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include "lineio.h"

#define NW 4

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER, done_cv = PTHREAD_COND_INITIALIZER;
static long req[NW], ack[NW];
static int task; /* what a request asks: 0 a tick, 1 take signals */
static char took[NW][32];
static long rep_tls[NW], rep_stack[NW];
static int rep_tidok[NW], rep_mallocok[NW];
static pthread_t workers[NW];
static volatile pid_t sig_seen[NW];
static __thread long tls_n;
static __thread int my_index = -1;

static pthread_mutex_t robust;
static volatile int waiter_rc = -1, waiter_done;

static pthread_mutex_t sleeper_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sleeper_cv = PTHREAD_COND_INITIALIZER;
static int sleeper_go;
static volatile int joined;

static volatile unsigned long spin;

static timer_t w2timer;
static volatile int timer_hits, timer_wrong = -1;
static pid_t w2tid;
static volatile int w2ready;

static pid_t gettid_sys(void) { return (pid_t)syscall(SYS_gettid); }

/* cached_tid: the tid glibc records as a mutex owner, its cached one. */
static pid_t cached_tid(void)
{
	pthread_mutexattr_t a;
	pthread_mutex_t x;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&x, &a);
	pthread_mutex_lock(&x);
	pid_t t = x.__data.__owner;
	pthread_mutex_unlock(&x);
	return t;
}

static void on_usr1(int sig)
{
	(void)sig;
	if (my_index >= 0)
		sig_seen[my_index] = gettid_sys();
}

static void on_timer(int sig)
{
	(void)sig;
	if (my_index == 2)
		timer_hits++;
	else
		timer_wrong = my_index >= 0 ? my_index : 99; /* 99: not a worker */
}

/* arm_w2timer sets the timer to fire once, ms milliseconds from now. */
static int arm_w2timer(long ms)
{
	struct itimerspec its = {.it_value = {ms / 1000, (ms % 1000) * 1000000}};
	return timer_settime(w2timer, 0, &its, NULL);
}

struct block {
	struct block *next;
	long n;
	char pad[200];
};

static void *worker(void *arg)
{
	int i = (int)(long)arg;
	long stack_n = 1000 * (i + 1);
	struct block *blocks = NULL;
	my_index = i;
	if (i == 2) {
		w2tid = gettid_sys();
		w2ready = 1;
	}
	pthread_mutex_lock(&m);
	for (;;) {
		while (req[i] == ack[i])
			pthread_cond_wait(&cv, &m);
		if (task == 1) {
			sigset_t u2, pend;
			sigemptyset(&u2);
			sigaddset(&u2, SIGUSR2);
			struct timespec zero = {0, 0};
			siginfo_t si;
			if (sigtimedwait(&u2, &si, &zero) == SIGUSR2)
				snprintf(took[i], sizeof took[i], "%d/%d", si.si_signo, si.si_code);
			else if (sigpending(&pend) == 0 && sigismember(&pend, SIGUSR2))
				snprintf(took[i], sizeof took[i], "pending");
			else
				snprintf(took[i], sizeof took[i], "none");
			ack[i] = req[i];
			pthread_cond_broadcast(&done_cv);
			continue;
		}
		tls_n++;
		stack_n++;
		struct block *b = malloc(sizeof *b);
		b->n = tls_n;
		b->next = blocks;
		blocks = b;
		long want = tls_n, ok = 1;
		for (struct block *p = blocks; p; p = p->next, want--)
			if (p->n != want)
				ok = 0;
		rep_tls[i] = tls_n;
		rep_stack[i] = stack_n;
		rep_tidok[i] = cached_tid() == gettid_sys();
		rep_mallocok[i] = ok && want == 0;
		ack[i] = req[i];
		pthread_cond_broadcast(&done_cv);
	}
	return NULL;
}

static void *waiter(void *arg)
{
	(void)arg;
	waiter_rc = pthread_mutex_lock(&robust);
	if (waiter_rc == 0)
		pthread_mutex_unlock(&robust);
	waiter_done = 1;
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&sleeper_m);
	while (!sleeper_go)
		pthread_cond_wait(&sleeper_cv, &sleeper_m);
	pthread_mutex_unlock(&sleeper_m);
	return (void *)42;
}

static void *joiner(void *arg)
{
	void *ret = NULL;
	if (pthread_join(*(pthread_t *)arg, &ret) == 0 && ret == (void *)42)
		joined = 1;
	return NULL;
}

static void *spinner(void *arg)
{
	(void)arg;
	for (;;)
		spin++;
	return NULL;
}

static pthread_mutex_t idle_m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t idle_cv = PTHREAD_COND_INITIALIZER;

static void *idle(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&idle_m);
	for (;;)
		pthread_cond_wait(&idle_cv, &idle_m);
	return NULL;
}

static void msleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ask sends every worker a request of kind t and waits for all. */
static void ask_workers(int t)
{
	pthread_mutex_lock(&m);
	task = t;
	for (int i = 0; i < NW; i++)
		req[i]++;
	pthread_cond_broadcast(&cv);
	for (int i = 0; i < NW; i++)
		while (ack[i] != req[i])
			pthread_cond_wait(&done_cv, &m);
	pthread_mutex_unlock(&m);
}

int main(int argc, char **argv)
{
	int extra = argc > 1 ? atoi(argv[1]) : 0;
	sigset_t block;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN + 1);
	pthread_sigmask(SIG_BLOCK, &block, NULL); /* every thread inherits it */
	struct sigaction sa = {.sa_handler = on_usr1};
	sigaction(SIGUSR1, &sa, NULL);
	struct sigaction st = {.sa_handler = on_timer, .sa_flags = SA_RESTART};
	sigaction(SIGRTMIN + 2, &st, NULL);
	pthread_mutexattr_t a;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&robust, &a);
	if (pthread_mutex_lock(&robust) != 0)
		return 10;
	for (long i = 0; i < NW; i++)
		if (pthread_create(&workers[i], NULL, worker, (void *)i) != 0)
			return 11;
	pthread_t w, s, j, sp;
	static pthread_t sleeper_t;
	if (pthread_create(&w, NULL, waiter, NULL) || pthread_create(&sleeper_t, NULL, sleeper, NULL) ||
	    pthread_create(&j, NULL, joiner, &sleeper_t) || (extra == 0 && pthread_create(&sp, NULL, spinner, NULL)))
		return 12;
	(void)s;
	while (!w2ready)
		msleep(1);
	struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGRTMIN + 2};
	sev._sigev_un._tid = w2tid;
	if (timer_create(CLOCK_MONOTONIC, &sev, &w2timer) != 0 || arm_w2timer(3600 * 1000L) != 0)
		return 14;
	for (int i = 0; i < extra; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, idle, NULL) != 0)
			return 13;
	}
	put("ready\n");
	if (argc > 1 && strcmp(argv[1], "exitmain") == 0)
		syscall(SYS_exit, 0); /* this thread alone; pthread_exit would need libgcc_s to unwind */
	char line[64];
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "tick") == 0) {
			ask_workers(0);
			pthread_mutex_lock(&m);
			char buf[400];
			int n = snprintf(buf, sizeof buf, "tick");
			int tids = 1, mal = 1;
			for (int i = 0; i < NW; i++) {
				n += snprintf(buf + n, sizeof buf - n, " w%d=%ld/%ld", i, rep_tls[i], rep_stack[i]);
				tids &= rep_tidok[i];
				mal &= rep_mallocok[i];
			}
			pthread_mutex_unlock(&m);
			tids &= cached_tid() == gettid_sys();
			putf("%s tids=%s malloc=%s\n", buf, tids ? "ok" : "bad", mal ? "ok" : "bad");
		} else if (strcmp(line, "pend") == 0) {
			union sigval v = {.sival_int = 77};
			if (pthread_kill(workers[1], SIGUSR2) != 0 || sigqueue(getpid(), SIGRTMIN + 1, v) != 0)
				put("pend failed\n");
			else
				put("pend ok\n");
		} else if (strcmp(line, "take") == 0) {
			ask_workers(1);
			int others = 1;
			for (int i = 0; i < NW; i++)
				if (i != 1 && strcmp(took[i], "none") != 0)
					others = 0;
			sigset_t rt;
			sigemptyset(&rt);
			sigaddset(&rt, SIGRTMIN + 1);
			struct timespec zero = {0, 0};
			siginfo_t si;
			char mainbuf[32] = "none";
			if (sigtimedwait(&rt, &si, &zero) == SIGRTMIN + 1)
				snprintf(mainbuf, sizeof mainbuf, "%d/%d", si.si_signo, si.si_value.sival_int);
			putf("take w1=%s others=%s main=%s\n", took[1], others ? "none" : "some", mainbuf);
		} else if (strcmp(line, "spin") == 0) {
			unsigned long a0 = spin;
			msleep(20);
			putf("spin %s\n", spin != a0 ? "ok" : "stuck");
		} else if (strcmp(line, "kill") == 0) {
			for (int i = 0; i < NW; i++) {
				sig_seen[i] = 0;
				pthread_kill(workers[i], SIGUSR1);
			}
			int lost = -1;
			for (int k = 0; k < 500; k++) {
				lost = -1;
				for (int i = 0; i < NW; i++)
					if (sig_seen[i] == 0)
						lost = i;
				if (lost < 0)
					break;
				msleep(2);
			}
			if (lost >= 0)
				putf("kill lost w%d\n", lost);
			else
				put("kill ok\n");
		} else if (strcmp(line, "release") == 0) {
			int rc = pthread_mutex_unlock(&robust);
			for (int k = 0; k < 500 && !waiter_done; k++)
				msleep(2);
			putf("release unlock=%d waiter=%d\n", rc, waiter_rc);
		} else if (strcmp(line, "join") == 0) {
			pthread_mutex_lock(&sleeper_m);
			sleeper_go = 1;
			pthread_cond_signal(&sleeper_cv);
			pthread_mutex_unlock(&sleeper_m);
			for (int k = 0; k < 500 && !joined; k++)
				msleep(2);
			putf("join %s\n", joined ? "ok" : "stuck");
		} else if (strcmp(line, "timer") == 0) {
			int before = timer_hits;
			timer_wrong = -1;
			if (arm_w2timer(5) != 0) {
				put("timer settime failed\n");
				continue;
			}
			for (int k = 0; k < 500 && timer_hits == before && timer_wrong < 0; k++)
				msleep(2);
			if (timer_wrong >= 0)
				putf("timer wrong w%d\n", timer_wrong);
			else if (timer_hits == before)
				put("timer lost\n");
			else
				put(arm_w2timer(3600 * 1000L) == 0 ? "timer ok\n" : "timer settime failed\n");
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		}
	}
	return 0;
}
