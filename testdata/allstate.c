/*
 * allstate: sets, at start, every piece of process state a thaw is meant
 * to restore, all at once, and proves each one from inside after thaw.
 *
 * The items, by the name they have in the state line (what is set):
 *
 *   umask        umask(027)
 *   nofile       soft RLIMIT_NOFILE 512     (hard limits are left alone)
 *   core         soft RLIMIT_CORE 0
 *   stack        soft RLIMIT_STACK 4 MiB
 *   fsize        soft RLIMIT_FSIZE 1 GiB
 *   msgqueue     soft RLIMIT_MSGQUEUE 4096
 *   groups       setgroups {1,2,3}          (uid 0 only)
 *   securebits   SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP (uid 0 only)
 *   capbnd       CAP_SYS_BOOT dropped from the bounding set (uid 0 only)
 *   loginuid     1234 written to /proc/self/loginuid (uid 0 only; the
 *                kernel gives the process a new audit session id)
 *   cwd          the directory it was started in
 *   itreal       ITIMER_REAL 1000 s, interval 500 s, with a SIGALRM handler
 *   itvirt       ITIMER_VIRTUAL 1000 s
 *   itprof       ITIMER_PROF 1000 s
 *   timers       three timer_create: t1 CLOCK_MONOTONIC SIGEV_SIGNAL
 *                SIGRTMIN+1 sigval 0x1234 armed 1000 s interval 7 s, t2
 *                CLOCK_REALTIME SIGEV_NONE disarmed, t3 CLOCK_BOOTTIME
 *                SIGEV_SIGNAL SIGRTMIN+2 armed 2000 s; then t2 is deleted,
 *                so the ids have a gap: "timers" says which of the three
 *                ids are valid (t2's must not be)
 *   t1, t3       timer_gettime of each: remaining/interval in ms (a thaw
 *                must give values close to, just under, the frozen ones)
 *   flock        flock(LOCK_EX) on allstate.flock
 *   posix        F_SETLK write lock on bytes 10-19 of allstate.posix
 *   ofd          F_OFD_SETLK read lock on allstate.ofd
 *   lease        F_SETLEASE F_RDLCK on allstate.lease, opened O_RDONLY
 *   append       allstate.append O_WRONLY|O_APPEND, not close-on-exec, at
 *                fd 30, 5 bytes written; fd 31 a dup of it (one open file
 *                description: kcmp says so), fd 32 a second open of the
 *                file, O_RDONLY, close-on-exec, at offset 2
 *   dirfd        fd 33: the current directory, O_DIRECTORY
 *   devnull      fd 34: /dev/null, O_RDWR
 *   dontfork     an anonymous region with MADV_DONTFORK   (VmFlags "dc")
 *   wipeonfork   ... MADV_WIPEONFORK                       ("wf")
 *   dontdump     ... MADV_DONTDUMP                         ("dd")
 *   hugepage     ... MADV_HUGEPAGE                         ("hg")
 *   nohugepage   ... MADV_NOHUGEPAGE                       ("nh")
 *   mlock        ... 4 pages mlock'd                       ("lo"), all resident
 *   onfault      ... mlock2(MLOCK_ONFAULT)                 ("lo lf")
 *   noreserve    MAP_NORESERVE PROT_NONE 64 GiB            ("nr")
 *   emptyguard   a page made writable, written, emptied (MADV_DONTNEED)
 *                and made PROT_NONE: charged ("ac") with no page in it,
 *                as a thread stack's guard page can be
 *   anonname     ... named with PR_SET_VMA_ANON_NAME "cryo-test"
 *   guard        ... MADV_GUARD_INSTALL on its second page: touching it
 *                raises SIGSEGV (caught with sigsetjmp)
 *   sealed       ... mseal'd: mprotect (and, in verify, munmap) fail EPERM
 *   shared       MAP_SHARED PROT_READ of allstate.shared opened O_RDWR
 *                (the fd closed): verify mprotects it PROT_READ|PROT_WRITE
 *   shanon       MAP_SHARED|MAP_ANONYMOUS region
 *   mergeable    ... MADV_MERGEABLE                        ("mg")
 *   growsdown    ... MAP_GROWSDOWN                         ("gd")
 *   privfile     MAP_PRIVATE read-write of allstate.shared, page 1 changed
 *   lockfuture   mlockall(MCL_FUTURE | MCL_ONFAULT): a page mapped now is
 *                locked on fault ("lo lf"; set after every other mapping)
 *   data         every region above that holds data holds its pattern
 *   subreaper    PR_SET_CHILD_SUBREAPER 1
 *   timerslack   PR_SET_TIMERSLACK 123456
 *   thpdisable   PR_SET_THP_DISABLE 1
 *   pdeathsig    PR_SET_PDEATHSIG SIGUSR2 (a handler counts it: a
 *                parent's death must not kill the test's victim)
 *   keepcaps     PR_SET_KEEPCAPS 1         (uid 0 only)
 *   mce          PR_MCE_KILL PR_MCE_KILL_SET PR_MCE_KILL_EARLY
 *   nnp          PR_SET_NO_NEW_PRIVS 1
 *   comm         PR_SET_NAME "allstate-x"
 *   mdwe         PR_SET_MDWE PR_MDWE_REFUSE_EXEC_GAIN
 *   tsc          PR_SET_TSC PR_TSC_SIGSEGV (x86; nothing here reads the
 *                TSC: no clock_gettime)
 *   specssb      PR_SET_SPECULATION_CTRL store bypass disabled
 *   ksm          PR_SET_MEMORY_MERGE 1 (KSM on every mapping: "mg" on all)
 *   ioflusher    PR_SET_IO_FLUSHER 1 (needs CAP_SYS_RESOURCE)
 *   nice         setpriority 5
 *   affinity     sched_setaffinity to CPU 0 only
 *   personality  PER_LINUX | ADDR_NO_RANDOMIZE
 *   ioprio       ioprio_set IOPRIO_CLASS_BE level 6
 *   policy       sched_setattr: SCHED_BATCH, nice 5, reset-on-fork, and
 *                (schedattr) utilization clamps 100-900
 *   oom          500 written to /proc/self/oom_score_adj
 *   coredump     0x7b written to /proc/self/coredump_filter
 *   membarrier   MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: then
 *                MEMBARRIER_CMD_PRIVATE_EXPEDITED succeeds
 *   rseq         glibc's rseq area registered again (thread pointer +
 *                __rseq_offset, the registered length, RSEQ_SIG) fails
 *                with EBUSY: the same area, length and signature are
 *                registered (EINVAL: another area or length; EPERM:
 *                another signature; 0: none was)
 *   altstack     a 64 KiB sigaltstack
 *   pending      SIGRTMIN+5 blocked, and queued with sigval 0x77: verify
 *                takes it (its value must be there) and queues it again
 *   robust       glibc's robust futex list head (get_robust_list)
 *   tidaddr      glibc's clear_child_tid address (PR_GET_TID_ADDRESS)
 *   dumpable     PR_SET_DUMPABLE 0 (last: it makes /proc/PID root-only)
 *   sigs         SIGALRM and SIGUSR2 never arrived
 *
 * A call this kernel refuses (mseal, MADV_GUARD_INSTALL on an old kernel)
 * is reported as "unsupported <item> <error>" before "ready", and the
 * item is left out, not faked.
 *
 * Files (allstate.*) are made in the current directory. Commands:
 *   check    -> "state k=v k=v ..." every item read again from inside
 *   verify   -> "ok", or "bad <item> want X got Y ..." against the values
 *               read back right after they were set (timers: the
 *               remaining time may only have gone down, the interval
 *               must be the same); verify also munmaps the sealed region
 *               (must fail EPERM), mprotects the shared one writable, and
 *               takes the pending signal (and queues it again)
 *   wait     -> "wait ret=<waitpid(-1, WNOHANG)> errno=<name> status=<hex>"
 *   out N    -> N lines "out <i>" written alternately to fd 1 and fd 2
 *               (one write each), then "out done <N>" on fd 1
 *   pid      -> "pid <getpid()>"
 *   exit [N]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <grp.h>
#include <linux/kcmp.h>
#include <linux/sched.h>
#include <linux/securebits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

#include "lineio.h"

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef SYS_mseal
#define SYS_mseal 462
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#define PR_SET_VMA_ANON_NAME 0
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef PR_SET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#define PR_MDWE_REFUSE_EXEC_GAIN 1
#endif
#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#define PR_GET_MEMORY_MERGE 68
#endif
#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#define PR_GET_IO_FLUSHER 58
#endif
#define MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)
#define IOPRIO_WHO_PROCESS 1
#define IOPRIO_CLASS_BE 2
#define IOPRIO_CLASS_SHIFT 13

#define NOWHERE ((void *)-1)
#define CAP_SYS_BOOT_NR 22 /* linux/capability.h */

static size_t pagesz;

/* ---- output: lines longer than lineio's putf allows ---- */

static char obuf[8192];
static size_t olen;

__attribute__((format(printf, 1, 2))) static void add(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(obuf + olen, sizeof obuf - olen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof obuf - olen)
		_exit(5);
	olen += (size_t)n;
}

static void flush(void)
{
	write_all(1, obuf, olen);
	olen = 0;
}

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case EINVAL: return "EINVAL";
	case EBUSY: return "EBUSY";
	case ENOSYS: return "ENOSYS";
	case EAGAIN: return "EAGAIN";
	case EACCES: return "EACCES";
	case ECHILD: return "ECHILD";
	case ENOMEM: return "ENOMEM";
	case EBADF: return "EBADF";
	default: {
		static char b[16];
		snprintf(b, sizeof b, "E%d", e);
		return b;
	}
	}
}

/* ---- the state ---- */

static timer_t t1, t2, t3;
static int flock_fd, posix_fd, posix_probe, ofd_fd, lease_fd;
static unsigned rseq_len;
static volatile sig_atomic_t alrm, usr2;

enum { R_DONTFORK, R_WIPEONFORK, R_DONTDUMP, R_HUGEPAGE, R_NOHUGEPAGE, R_MLOCK, R_ONFAULT,
       R_NORESERVE, R_ANONNAME, R_GUARD, R_SEALED, R_SHARED, R_SHANON, R_MERGEABLE, R_GROWSDOWN,
       R_PRIVFILE, R_EMPTYGUARD, NREGION };
static const char *const region_name[NREGION] = {
	"dontfork", "wipeonfork", "dontdump", "hugepage", "nohugepage", "mlock", "onfault",
	"noreserve", "anonname", "guard", "sealed", "shared", "shanon", "mergeable", "growsdown",
	"privfile", "emptyguard",
};
static unsigned char *region[NREGION];
static size_t region_len[NREGION];

/* pattern: the bytes of region r, on the pages that hold data (not the
 * guard page, nor the never-touched reserve); the private file mapping
 * has the file's in its first page and its own in the second. */
static unsigned char pattern(int r, size_t i) { return (unsigned char)(r * 37 + i * 7 + (i >> 12)); }
static int has_data(int r, size_t page)
{
	return r != R_NORESERVE && r != R_EMPTYGUARD && !(r == R_GUARD && page == 1);
}
static unsigned char expected(int r, size_t off)
{
	return r == R_PRIVFILE && off < pagesz ? pattern(R_SHARED, off) : pattern(r, off);
}

static void fill(int r)
{
	for (size_t off = 0; off < region_len[r]; off++)
		if (has_data(r, off / pagesz))
			region[r][off] = expected(r, off);
}

static void on_alrm(int sig) { (void)sig; alrm++; }
static void on_usr2(int sig) { (void)sig; usr2++; }

/* The items: each is set once (set returns 0 or an errno) and read back
 * (get writes its value). */
struct item {
	const char *name;
	int (*set)(void);
	void (*get)(char *buf, size_t n);
	int timer;      /* value is "remaining/interval" in ms */
	int supported;
	char want[256]; /* the value read back right after set */
};

static int openfile(const char *name, int flags)
{
	int fd = open(name, flags | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		_exit(6);
	return fd;
}

static int set_umask(void) { umask(027); return 0; }
static void get_umask(char *b, size_t n)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	snprintf(b, n, "?");
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "Umask:", 6) == 0)
			snprintf(b, n, "%s", line + 6 + strspn(line + 6, " \t")), b[strcspn(b, "\n")] = 0;
	if (f)
		fclose(f);
}

static int setsoft(int res, rlim_t v)
{
	struct rlimit rl;
	if (getrlimit(res, &rl) != 0)
		return errno;
	rl.rlim_cur = v;
	return setrlimit(res, &rl) == 0 ? 0 : errno;
}
static void getlim(int res, char *b, size_t n)
{
	struct rlimit rl;
	if (getrlimit(res, &rl) != 0) {
		snprintf(b, n, "%s", errname(errno));
		return;
	}
	char h[32];
	if (rl.rlim_max == RLIM_INFINITY)
		snprintf(h, sizeof h, "inf");
	else
		snprintf(h, sizeof h, "%llu", (unsigned long long)rl.rlim_max);
	snprintf(b, n, "%llu/%s", (unsigned long long)rl.rlim_cur, h);
}
static int set_nofile(void) { return setsoft(RLIMIT_NOFILE, 512); }
static void get_nofile(char *b, size_t n) { getlim(RLIMIT_NOFILE, b, n); }
static int set_core(void) { return setsoft(RLIMIT_CORE, 0); }
static void get_core(char *b, size_t n) { getlim(RLIMIT_CORE, b, n); }
static int set_stack(void) { return setsoft(RLIMIT_STACK, 4 << 20); }
static void get_stack(char *b, size_t n) { getlim(RLIMIT_STACK, b, n); }
static int set_fsize(void) { return setsoft(RLIMIT_FSIZE, 1 << 30); }
static void get_fsize(char *b, size_t n) { getlim(RLIMIT_FSIZE, b, n); }
static int set_msgqueue(void) { return setsoft(RLIMIT_MSGQUEUE, 4096); }
static void get_msgqueue(char *b, size_t n) { getlim(RLIMIT_MSGQUEUE, b, n); }

static int set_securebits(void)
{
	return prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP, 0, 0, 0) == 0 ? 0 : errno;
}
static void get_securebits(char *b, size_t n) { snprintf(b, n, "%#x", prctl(PR_GET_SECUREBITS, 0, 0, 0, 0)); }
static int set_capbnd(void) { return prctl(PR_CAPBSET_DROP, CAP_SYS_BOOT_NR, 0, 0, 0) == 0 ? 0 : errno; }
static void get_capbnd(char *b, size_t n) { snprintf(b, n, "sys_boot:%d", prctl(PR_CAPBSET_READ, CAP_SYS_BOOT_NR, 0, 0, 0)); }
static int writefile(const char *path, const char *s);
static void readfile(const char *path, char *b, size_t n);
static int set_loginuid(void) { return writefile("/proc/self/loginuid", "1234"); }
static void get_loginuid(char *b, size_t n) { readfile("/proc/self/loginuid", b, n); }
static void get_cwd(char *b, size_t n)
{
	if (getcwd(b, n) == NULL)
		snprintf(b, n, "%s", errname(errno));
}

static int set_groups(void)
{
	gid_t g[] = {1, 2, 3};
	return setgroups(3, g) == 0 ? 0 : errno;
}
static void get_groups(char *b, size_t n)
{
	gid_t g[64];
	int k = getgroups(64, g);
	size_t o = 0;
	b[0] = 0;
	for (int i = 0; i < k && o < n; i++)
		o += (size_t)snprintf(b + o, n - o, i ? ",%u" : "%u", (unsigned)g[i]);
	if (k <= 0)
		snprintf(b, n, "none");
}

static long long ms(const struct timespec *t) { return (long long)t->tv_sec * 1000 + t->tv_nsec / 1000000; }
static long long tvms(const struct timeval *t) { return (long long)t->tv_sec * 1000 + t->tv_usec / 1000; }

static int set_itreal(void)
{
	struct sigaction sa = {.sa_handler = on_alrm, .sa_flags = SA_RESTART};
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {.it_value = {1000, 0}, .it_interval = {500, 0}};
	return setitimer(ITIMER_REAL, &it, NULL) == 0 ? 0 : errno;
}
static int set_itvirt(void)
{
	struct itimerval it = {.it_value = {1000, 0}};
	return setitimer(ITIMER_VIRTUAL, &it, NULL) == 0 ? 0 : errno;
}
static int set_itprof(void)
{
	struct itimerval it = {.it_value = {1000, 0}};
	return setitimer(ITIMER_PROF, &it, NULL) == 0 ? 0 : errno;
}
static void getit(int which, char *b, size_t n)
{
	struct itimerval it;
	if (getitimer(which, &it) != 0)
		snprintf(b, n, "%s", errname(errno));
	else
		snprintf(b, n, "%lld/%lld", tvms(&it.it_value), tvms(&it.it_interval));
}
static void get_itreal(char *b, size_t n) { getit(ITIMER_REAL, b, n); }
static void get_itvirt(char *b, size_t n) { getit(ITIMER_VIRTUAL, b, n); }
static void get_itprof(char *b, size_t n) { getit(ITIMER_PROF, b, n); }

static int set_timers(void)
{
	struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1};
	ev.sigev_value.sival_ptr = (void *)0x1234;
	if (timer_create(CLOCK_MONOTONIC, &ev, &t1) != 0)
		return errno;
	struct itimerspec its = {.it_value = {1000, 0}, .it_interval = {7, 0}};
	if (timer_settime(t1, 0, &its, NULL) != 0)
		return errno;
	struct sigevent none = {.sigev_notify = SIGEV_NONE};
	if (timer_create(CLOCK_REALTIME, &none, &t2) != 0)
		return errno;
	struct sigevent ev3 = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 2};
	ev3.sigev_value.sival_int = 3;
	if (timer_create(CLOCK_BOOTTIME, &ev3, &t3) != 0)
		return errno;
	struct itimerspec its3 = {.it_value = {2000, 0}};
	if (timer_settime(t3, 0, &its3, NULL) != 0)
		return errno;
	return timer_delete(t2) == 0 ? 0 : errno;
}
static void get_timers(char *b, size_t n)
{
	timer_t ts[3] = {t1, t2, t3};
	size_t o = 0;
	for (int i = 0; i < 3; i++) {
		struct itimerspec its;
		int r = timer_gettime(ts[i], &its);
		o += (size_t)snprintf(b + o, n - o, "%s%ld:%s", i ? "," : "", (long)(intptr_t)ts[i],
				      r == 0 ? "ok" : errname(errno));
	}
}
static void gettimer(timer_t t, char *b, size_t n)
{
	struct itimerspec its;
	if (timer_gettime(t, &its) != 0)
		snprintf(b, n, "%s", errname(errno));
	else
		snprintf(b, n, "%lld/%lld", ms(&its.it_value), ms(&its.it_interval));
}
static void get_t1(char *b, size_t n) { gettimer(t1, b, n); }
static void get_t3(char *b, size_t n) { gettimer(t3, b, n); }
static int set_none(void) { return 0; }

static int set_flock(void)
{
	flock_fd = openfile("allstate.flock", O_RDWR);
	return flock(flock_fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno;
}
static void get_flock(char *b, size_t n)
{
	/* Another open file description of the same file conflicts with
	 * ours: flock locks belong to the description. */
	int fd = openfile("allstate.flock", O_RDONLY);
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		snprintf(b, n, "free");
		flock(fd, LOCK_UN);
	} else {
		snprintf(b, n, errno == EWOULDBLOCK ? "held" : "%s", errname(errno));
	}
	close(fd);
}

static int set_posix(void)
{
	posix_fd = openfile("allstate.posix", O_RDWR);
	/* The probe stays open for good: closing any descriptor of the file
	 * would drop this process's POSIX locks on it. */
	posix_probe = openfile("allstate.posix", O_RDONLY);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10};
	return fcntl(posix_fd, F_SETLK, &fl) == 0 ? 0 : errno;
}
static void showlock(struct flock *fl, char *b, size_t n)
{
	const char *t = fl->l_type == F_RDLCK ? "r" : fl->l_type == F_WRLCK ? "w" : "none";
	if (fl->l_type == F_UNLCK)
		snprintf(b, n, "none");
	else if (fl->l_pid == getpid())
		snprintf(b, n, "%s:%lld+%lld:self", t, (long long)fl->l_start, (long long)fl->l_len);
	else
		snprintf(b, n, "%s:%lld+%lld:%ld", t, (long long)fl->l_start, (long long)fl->l_len, (long)fl->l_pid);
}
static void get_posix(char *b, size_t n)
{
	/* An OFD lock's owner is its description, not this process: our
	 * own POSIX lock conflicts with it and is reported. */
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
	if (fcntl(posix_probe, F_OFD_GETLK, &fl) != 0)
		snprintf(b, n, "%s", errname(errno));
	else
		showlock(&fl, b, n);
}

static int set_ofd(void)
{
	ofd_fd = openfile("allstate.ofd", O_RDWR);
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
	return fcntl(ofd_fd, F_OFD_SETLK, &fl) == 0 ? 0 : errno;
}
static void get_ofd(char *b, size_t n)
{
	int fd = openfile("allstate.ofd", O_RDONLY);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
		snprintf(b, n, "%s", errname(errno));
	else
		showlock(&fl, b, n);
	close(fd);
}

static int set_lease(void)
{
	lease_fd = openfile("allstate.lease", O_RDONLY);
	return fcntl(lease_fd, F_SETLEASE, F_RDLCK) == 0 ? 0 : errno;
}
static void get_lease(char *b, size_t n)
{
	int r = fcntl(lease_fd, F_GETLEASE);
	snprintf(b, n, "%s", r == F_RDLCK ? "r" : r == F_WRLCK ? "w" : r == F_UNLCK ? "none" : errname(errno));
}

static int movefd(int fd, int to)
{
	int r = fcntl(fd, F_DUPFD, to);
	close(fd);
	return r == to ? 0 : EBADF;
}
static int set_append(void)
{
	int fd = open("allstate.append", O_WRONLY | O_APPEND | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "hello", 5) != 5)
		return errno;
	int e = movefd(fd, 30);
	if (e == 0 && dup2(30, 31) != 31)
		e = errno;
	int fd2 = open("allstate.append", O_RDONLY | O_CLOEXEC);
	if (e == 0 && (fd2 < 0 || lseek(fd2, 2, SEEK_SET) != 2))
		e = errno;
	if (e == 0)
		e = movefd(fd2, 32);
	if (e == 0 && fcntl(32, F_SETFD, FD_CLOEXEC) != 0) /* F_DUPFD clears it */
		e = errno;
	return e;
}
static void get_append(char *b, size_t n)
{
	size_t o = 0;
	for (int fd = 30; fd <= 32; fd++) {
		int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
		off_t pos = lseek(fd, 0, SEEK_CUR);
		o += (size_t)snprintf(b + o, n - o, "%s%d:%o:%d:%lld", fd == 30 ? "" : ",", fd, fl, fdfl, (long long)pos);
	}
	/* kcmp: 0 is the same description; 1 and 2 order two others. */
	pid_t me = getpid();
	long k31 = syscall(SYS_kcmp, me, me, KCMP_FILE, 30, 31), k32 = syscall(SYS_kcmp, me, me, KCMP_FILE, 30, 32);
	snprintf(b + o, n - o, ",30=31:%s,30=32:%s", k31 == 0 ? "same" : k31 > 0 ? "other" : errname(errno),
		 k32 == 0 ? "same" : k32 > 0 ? "other" : errname(errno));
}
static int set_dirfd(void)
{
	int fd = open(".", O_RDONLY | O_DIRECTORY);
	return fd < 0 ? errno : movefd(fd, 33);
}
static void get_dirfd(char *b, size_t n)
{
	struct stat a, d;
	if (fstat(33, &a) != 0 || stat(".", &d) != 0) {
		snprintf(b, n, "%s", errname(errno));
		return;
	}
	snprintf(b, n, "dir:%d,cwd:%d,flags:%o", S_ISDIR(a.st_mode), a.st_ino == d.st_ino && a.st_dev == d.st_dev,
		 fcntl(33, F_GETFL));
}
static int set_devnull(void)
{
	int fd = open("/dev/null", O_RDWR);
	return fd < 0 ? errno : movefd(fd, 34);
}
static void get_devnull(char *b, size_t n)
{
	struct stat a;
	if (fstat(34, &a) != 0) {
		snprintf(b, n, "%s", errname(errno));
		return;
	}
	snprintf(b, n, "chr:%d,%u:%u,flags:%o", S_ISCHR(a.st_mode), major(a.st_rdev), minor(a.st_rdev), fcntl(34, F_GETFL));
}

/* ---- memory ---- */

/* The regions live in one PROT_NONE arena, a page of it left between
 * any two, so that no two regions merge into one mapping (a guard
 * region's "gu" would spread to its neighbour). */
static unsigned char *arena;
static size_t arena_len, arena_used;

static unsigned char *place(size_t len)
{
	if (arena == NULL) {
		arena_len = 128 * pagesz;
		arena = mmap(NULL, arena_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (arena == MAP_FAILED)
			_exit(7);
	}
	arena_used += pagesz; /* the gap */
	if (arena_used + len + pagesz > arena_len)
		_exit(8);
	unsigned char *p = arena + arena_used;
	arena_used += len;
	return p;
}

static void vmflags(const void *addr, char *path, size_t pn, char *flags, size_t fn);

static unsigned char *anon(size_t len, int prot, int flags)
{
	unsigned char *p = mmap(place(len), len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | flags, -1, 0);
	return p == MAP_FAILED ? NOWHERE : p;
}

static int madv_region(int r, int advice)
{
	region_len[r] = 4 * pagesz;
	region[r] = anon(region_len[r], PROT_READ | PROT_WRITE, 0);
	if (region[r] == NOWHERE)
		return errno;
	fill(r);
	return madvise(region[r], region_len[r], advice) == 0 ? 0 : errno;
}
static int set_dontfork(void) { return madv_region(R_DONTFORK, MADV_DONTFORK); }
static int set_mergeable(void) { return madv_region(R_MERGEABLE, MADV_MERGEABLE); }
static int set_wipeonfork(void) { return madv_region(R_WIPEONFORK, MADV_WIPEONFORK); }
static int set_dontdump(void) { return madv_region(R_DONTDUMP, MADV_DONTDUMP); }
static int set_hugepage(void) { return madv_region(R_HUGEPAGE, MADV_HUGEPAGE); }
static int set_nohugepage(void) { return madv_region(R_NOHUGEPAGE, MADV_NOHUGEPAGE); }

static int set_mlock(void)
{
	region_len[R_MLOCK] = 4 * pagesz;
	region[R_MLOCK] = anon(region_len[R_MLOCK], PROT_READ | PROT_WRITE, 0);
	if (region[R_MLOCK] == NOWHERE)
		return errno;
	fill(R_MLOCK);
	return mlock(region[R_MLOCK], region_len[R_MLOCK]) == 0 ? 0 : errno;
}
static int set_onfault(void)
{
	region_len[R_ONFAULT] = 4 * pagesz;
	region[R_ONFAULT] = anon(region_len[R_ONFAULT], PROT_READ | PROT_WRITE, 0);
	if (region[R_ONFAULT] == NOWHERE)
		return errno;
	fill(R_ONFAULT);
	return syscall(SYS_mlock2, region[R_ONFAULT], region_len[R_ONFAULT], MLOCK_ONFAULT) == 0 ? 0 : errno;
}
static int set_noreserve(void)
{
	region_len[R_NORESERVE] = 64ul << 30;
	void *p = mmap(NULL, region_len[R_NORESERVE], PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return errno;
	region[R_NORESERVE] = p;
	return 0;
}
static int set_emptyguard(void)
{
	region_len[R_EMPTYGUARD] = pagesz;
	region[R_EMPTYGUARD] = anon(pagesz, PROT_READ | PROT_WRITE, 0);
	if (region[R_EMPTYGUARD] == NOWHERE)
		return errno;
	region[R_EMPTYGUARD][0] = 1; /* an anon_vma: the charge outlives PROT_NONE */
	if (madvise(region[R_EMPTYGUARD], pagesz, MADV_DONTNEED) != 0)
		return errno;
	return mprotect(region[R_EMPTYGUARD], pagesz, PROT_NONE) == 0 ? 0 : errno;
}
static int set_anonname(void)
{
	region_len[R_ANONNAME] = 4 * pagesz;
	region[R_ANONNAME] = anon(region_len[R_ANONNAME], PROT_READ | PROT_WRITE, 0);
	if (region[R_ANONNAME] == NOWHERE)
		return errno;
	fill(R_ANONNAME);
	return prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, region[R_ANONNAME], region_len[R_ANONNAME],
		     "cryo-test") == 0 ? 0 : errno;
}
static int set_guard(void)
{
	region_len[R_GUARD] = 4 * pagesz;
	region[R_GUARD] = anon(region_len[R_GUARD], PROT_READ | PROT_WRITE, 0);
	if (region[R_GUARD] == NOWHERE)
		return errno;
	fill(R_GUARD);
	return madvise(region[R_GUARD] + pagesz, pagesz, MADV_GUARD_INSTALL) == 0 ? 0 : errno;
}
static int set_sealed(void)
{
	region_len[R_SEALED] = 4 * pagesz;
	region[R_SEALED] = anon(region_len[R_SEALED], PROT_READ | PROT_WRITE, 0);
	if (region[R_SEALED] == NOWHERE)
		return errno;
	fill(R_SEALED);
	return syscall(SYS_mseal, region[R_SEALED], region_len[R_SEALED], 0) == 0 ? 0 : errno;
}
static int set_shared(void)
{
	int fd = openfile("allstate.shared", O_RDWR | O_TRUNC);
	region_len[R_SHARED] = 2 * pagesz;
	unsigned char *buf = malloc(region_len[R_SHARED]);
	for (size_t i = 0; i < region_len[R_SHARED]; i++)
		buf[i] = pattern(R_SHARED, i);
	ssize_t w = write(fd, buf, region_len[R_SHARED]);
	free(buf);
	if (w != (ssize_t)region_len[R_SHARED])
		return EIO;
	void *p = mmap(place(region_len[R_SHARED]), region_len[R_SHARED], PROT_READ, MAP_SHARED | MAP_FIXED, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED)
		return e;
	region[R_SHARED] = p;
	return 0;
}
static int set_growsdown(void)
{
	region_len[R_GROWSDOWN] = 4 * pagesz;
	region[R_GROWSDOWN] = anon(region_len[R_GROWSDOWN], PROT_READ | PROT_WRITE, MAP_GROWSDOWN);
	if (region[R_GROWSDOWN] == NOWHERE)
		return errno;
	fill(R_GROWSDOWN);
	return 0;
}
static int set_privfile(void)
{
	/* After set_shared: the file holds its pattern. */
	int fd = openfile("allstate.shared", O_RDONLY);
	region_len[R_PRIVFILE] = 2 * pagesz;
	void *p = mmap(place(region_len[R_PRIVFILE]), region_len[R_PRIVFILE], PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_FIXED, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED)
		return e;
	region[R_PRIVFILE] = p;
	fill(R_PRIVFILE); /* the first page is written with what it holds */
	return 0;
}
static int set_lockfuture(void) { return mlockall(MCL_FUTURE | MCL_ONFAULT) == 0 ? 0 : errno; }
static void get_lockfuture(char *b, size_t n)
{
	void *p = mmap(NULL, pagesz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		snprintf(b, n, "%s", errname(errno));
		return;
	}
	char path[256], flags[160];
	vmflags(p, path, sizeof path, flags, sizeof flags);
	munmap(p, pagesz);
	snprintf(b, n, "%s", flags);
}
static int set_shanon(void)
{
	region_len[R_SHANON] = 4 * pagesz;
	void *p = mmap(place(region_len[R_SHANON]), region_len[R_SHANON], PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (p == MAP_FAILED)
		return errno;
	region[R_SHANON] = p;
	fill(R_SHANON);
	return 0;
}

/* vmflags finds the /proc/self/smaps entry holding addr: its path (or
 * "-") and its VmFlags, spaces turned into dots. */
static void vmflags(const void *addr, char *path, size_t pn, char *flags, size_t fn)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0;
	snprintf(path, pn, "gone");
	snprintf(flags, fn, "gone");
	while (f && fgets(line, sizeof line, f)) {
		unsigned long lo, hi;
		int off = 0;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %*s%n", &lo, &hi, &off) == 2 && off > 0) {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			if (in) {
				char *p = line + off;
				p += strspn(p, " ");
				p[strcspn(p, "\n")] = 0;
				snprintf(path, pn, "%s", *p ? p : "-");
			}
		} else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			char *p = line + 8;
			p += strspn(p, " ");
			size_t o = 0;
			flags[0] = 0;
			for (char *tok = strtok(p, " \n"); tok; tok = strtok(NULL, " \n"))
				o += (size_t)snprintf(flags + o, fn - o, o ? ".%s" : "%s", tok);
			break;
		}
	}
	if (f)
		fclose(f);
}

static int cur_region; /* the region get_region reports */
static void get_region(char *b, size_t n)
{
	char path[256], flags[160];
	vmflags(region[cur_region], path, sizeof path, flags, sizeof flags);
	if (cur_region == R_ANONNAME || cur_region == R_SHARED)
		snprintf(b, n, "%s|%s", strrchr(path, '/') ? strrchr(path, '/') + 1 : path, flags);
	else
		snprintf(b, n, "%s", flags);
}

static void get_mlockres(char *b, size_t n)
{
	unsigned char vec[4];
	if (mincore(region[R_MLOCK], region_len[R_MLOCK], vec) != 0) {
		snprintf(b, n, "%s", errname(errno));
		return;
	}
	int res = 0;
	for (int i = 0; i < 4; i++)
		res += vec[i] & 1;
	snprintf(b, n, "%d/4", res);
}

static sigjmp_buf segv_jmp;
static void on_segv(int sig) { (void)sig; siglongjmp(segv_jmp, 1); }

/* touch reads one byte at p: 1 if that raised SIGSEGV. */
static int touch(volatile unsigned char *p)
{
	struct sigaction sa = {.sa_handler = on_segv}, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old);
	int faulted = 1;
	if (sigsetjmp(segv_jmp, 1) == 0) {
		(void)*p;
		faulted = 0;
	}
	sigaction(SIGSEGV, &old, NULL);
	return faulted;
}
static void get_guard(char *b, size_t n)
{
	snprintf(b, n, "%d%d%d%d", touch(region[R_GUARD]), touch(region[R_GUARD] + pagesz),
		 touch(region[R_GUARD] + 2 * pagesz), touch(region[R_GUARD] + 3 * pagesz));
}
static void get_seal(char *b, size_t n)
{
	/* Harmless if not sealed: the protection it already has. */
	int r = mprotect(region[R_SEALED], region_len[R_SEALED], PROT_READ | PROT_WRITE);
	snprintf(b, n, "%s", r == 0 ? "ok" : errname(errno));
}
static void get_data(char *b, size_t n)
{
	size_t o = 0;
	b[0] = 0;
	for (int r = 0; r < NREGION; r++) {
		if (region[r] == NULL || region[r] == NOWHERE || r == R_NORESERVE)
			continue;
		size_t bad = 0;
		for (size_t off = 0; off < region_len[r]; off++)
			if (has_data(r, off / pagesz) && region[r][off] != expected(r, off))
				bad++;
		if (bad)
			o += (size_t)snprintf(b + o, n - o, "%s%s:%zu", o ? "," : "", region_name[r], bad);
	}
	if (o == 0)
		snprintf(b, n, "ok");
}

/* ---- prctls and scheduling ---- */

static int set_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? 0 : errno; }
static void get_subreaper(char *b, size_t n)
{
	int v = -1;
	prctl(PR_GET_CHILD_SUBREAPER, &v, 0, 0, 0);
	snprintf(b, n, "%d", v);
}
static int set_timerslack(void) { return prctl(PR_SET_TIMERSLACK, 123456, 0, 0, 0) == 0 ? 0 : errno; }
static void get_timerslack(char *b, size_t n) { snprintf(b, n, "%d", prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0)); }
static int set_thp(void) { return prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 ? 0 : errno; }
static void get_thp(char *b, size_t n) { snprintf(b, n, "%d", prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)); }
static int set_pdeathsig(void)
{
	struct sigaction sa = {.sa_handler = on_usr2, .sa_flags = SA_RESTART};
	sigaction(SIGUSR2, &sa, NULL);
	return prctl(PR_SET_PDEATHSIG, SIGUSR2, 0, 0, 0) == 0 ? 0 : errno;
}
static void get_pdeathsig(char *b, size_t n)
{
	int v = -1;
	prctl(PR_GET_PDEATHSIG, &v, 0, 0, 0);
	snprintf(b, n, "%d", v);
}
static int set_dumpable(void) { return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : errno; }
static void get_dumpable(char *b, size_t n) { snprintf(b, n, "%d", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)); }
static int set_keepcaps(void) { return prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0 ? 0 : errno; }
static void get_keepcaps(char *b, size_t n) { snprintf(b, n, "%d", prctl(PR_GET_KEEPCAPS, 0, 0, 0, 0)); }
static int set_mce(void) { return prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0) == 0 ? 0 : errno; }
static void get_mce(char *b, size_t n)
{
	int v = prctl(PR_MCE_KILL_GET, 0, 0, 0, 0);
	snprintf(b, n, "%s", v == PR_MCE_KILL_EARLY ? "early" : v == PR_MCE_KILL_LATE ? "late" : v == PR_MCE_KILL_DEFAULT ? "default" : "?");
}
static int set_nnp(void) { return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : errno; }
static void get_nnp(char *b, size_t n) { snprintf(b, n, "%d", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)); }
static int set_comm(void) { return prctl(PR_SET_NAME, "allstate-x", 0, 0, 0) == 0 ? 0 : errno; }
static void get_comm(char *b, size_t n)
{
	char name[17] = {0};
	prctl(PR_GET_NAME, name, 0, 0, 0);
	snprintf(b, n, "%s", name);
}
static int set_mdwe(void) { return prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) == 0 ? 0 : errno; }
static void get_mdwe(char *b, size_t n) { snprintf(b, n, "%d", prctl(PR_GET_MDWE, 0, 0, 0, 0)); }
static int set_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0) == 0 ? 0 : errno;
#else
	return ENOSYS; /* an x86 prctl */
#endif
}
static void get_tsc(char *b, size_t n)
{
	int v = -1;
	prctl(PR_GET_TSC, &v, 0, 0, 0);
	snprintf(b, n, "%s", v == PR_TSC_SIGSEGV ? "sigsegv" : v == PR_TSC_ENABLE ? "enable" : "?");
}
static int set_specssb(void)
{
	return prctl(PR_SET_SPECULATION_CTRL, PR_SPEC_STORE_BYPASS, PR_SPEC_DISABLE, 0, 0) == 0 ? 0 : errno;
}
static void get_specssb(char *b, size_t n)
{
	snprintf(b, n, "%#x", prctl(PR_GET_SPECULATION_CTRL, PR_SPEC_STORE_BYPASS, 0, 0, 0));
}
static int set_ksm(void) { return prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) == 0 ? 0 : errno; }
static void get_ksm(char *b, size_t n) { snprintf(b, n, "%d", prctl(PR_GET_MEMORY_MERGE, 0, 0, 0, 0)); }
static int set_ioflusher(void) { return prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) == 0 ? 0 : errno; }
static void get_ioflusher(char *b, size_t n) { snprintf(b, n, "%d", prctl(PR_GET_IO_FLUSHER, 0, 0, 0, 0)); }
static int set_nice(void) { return setpriority(PRIO_PROCESS, 0, 5) == 0 ? 0 : errno; }
static void get_nice(char *b, size_t n)
{
	errno = 0;
	int v = getpriority(PRIO_PROCESS, 0);
	snprintf(b, n, "%d", errno ? -100 : v);
}
static int set_affinity(void)
{
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(0, &s);
	return sched_setaffinity(0, sizeof s, &s) == 0 ? 0 : errno;
}
static void get_affinity(char *b, size_t n)
{
	cpu_set_t s;
	size_t o = 0;
	b[0] = 0;
	if (sched_getaffinity(0, sizeof s, &s) != 0) {
		snprintf(b, n, "%s", errname(errno));
		return;
	}
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &s))
			o += (size_t)snprintf(b + o, n - o, o ? ",%d" : "%d", c);
}
static int set_personality(void)
{
	return personality(PER_LINUX | ADDR_NO_RANDOMIZE) == -1 ? errno : 0;
}
static void get_personality(char *b, size_t n) { snprintf(b, n, "%#x", personality(0xffffffff)); }
static int set_ioprio(void)
{
	return syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, (IOPRIO_CLASS_BE << IOPRIO_CLASS_SHIFT) | 6) == 0 ? 0 : errno;
}
static void get_ioprio(char *b, size_t n)
{
	long v = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	if (v < 0)
		snprintf(b, n, "%s", errname(errno));
	else
		snprintf(b, n, "%ld/%ld", v >> IOPRIO_CLASS_SHIFT, v & ((1 << IOPRIO_CLASS_SHIFT) - 1));
}
/* struct sched_attr (linux/sched/types.h, which glibc 2.36 lacks). */
struct sattr {
	uint32_t size, policy;
	uint64_t flags;
	int32_t nice;
	uint32_t priority;
	uint64_t runtime, deadline, period;
	uint32_t util_min, util_max;
};
static int set_policy(void)
{
	struct sattr a = {.size = sizeof a, .policy = SCHED_BATCH, .flags = SCHED_FLAG_RESET_ON_FORK, .nice = 5};
	return syscall(SYS_sched_setattr, 0, &a, 0) == 0 ? 0 : errno;
}
static void get_policy(char *b, size_t n)
{
	int p = sched_getscheduler(0);
	int base = p & ~SCHED_RESET_ON_FORK;
	snprintf(b, n, "%s%s", base == SCHED_BATCH ? "batch" : base == SCHED_OTHER ? "other" : base == SCHED_IDLE ? "idle" : "?",
		 p & SCHED_RESET_ON_FORK ? "+resetonfork" : "");
}
static int set_schedattr(void)
{
	/* The clamps alone (SCHED_FLAG_KEEP_ALL keeps policy and nice). */
	struct sattr a = {.size = sizeof a, .policy = SCHED_BATCH, .nice = 5,
			  .flags = SCHED_FLAG_RESET_ON_FORK | SCHED_FLAG_UTIL_CLAMP, .util_min = 100, .util_max = 900};
	return syscall(SYS_sched_setattr, 0, &a, 0) == 0 ? 0 : errno;
}
static void get_schedattr(char *b, size_t n)
{
	struct sattr a = {0};
	if (syscall(SYS_sched_getattr, 0, &a, sizeof a, 0) != 0) {
		snprintf(b, n, "%s", errname(errno));
		return;
	}
	snprintf(b, n, "policy:%u,flags:%#llx,nice:%d,util:%u-%u", a.policy, (unsigned long long)a.flags, a.nice,
		 a.util_min, a.util_max);
}
static int writefile(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	int e = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : errno;
	close(fd);
	return e;
}
static void readfile(const char *path, char *b, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(b, n, "%s", errname(errno));
		return;
	}
	ssize_t r = read(fd, b, n - 1);
	close(fd);
	b[r > 0 ? r : 0] = 0;
	b[strcspn(b, "\n")] = 0;
}
static int set_oom(void) { return writefile("/proc/self/oom_score_adj", "500"); }
static void get_oom(char *b, size_t n) { readfile("/proc/self/oom_score_adj", b, n); }
static int set_coredump(void) { return writefile("/proc/self/coredump_filter", "0x7b"); }
static void get_coredump(char *b, size_t n) { readfile("/proc/self/coredump_filter", b, n); }
static int set_membarrier(void)
{
	return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : errno;
}
static void get_membarrier(char *b, size_t n)
{
	long r = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	snprintf(b, n, "%s", r == 0 ? "ok" : errname(errno));
}
static long rseq_again(unsigned len)
{
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;
	return syscall(SYS_rseq, area, len, 0, RSEQ_SIG);
}
static int set_rseq(void)
{
	/* glibc registered it: find the length it used. glibc up to 2.39
	 * registers __rseq_size (32) bytes; later ones may report a smaller
	 * feature size in __rseq_size and register 32. */
	if (__rseq_size == 0)
		return ENOSYS; /* glibc did not register (tunable, old kernel) */
	unsigned lens[2] = {__rseq_size, 32};
	for (int i = 0; i < 2; i++) {
		if (rseq_again(lens[i]) != 0 && errno == EBUSY) {
			rseq_len = lens[i];
			return 0;
		}
	}
	return errno;
}
static void get_rseq(char *b, size_t n)
{
	long r = rseq_again(rseq_len);
	snprintf(b, n, "%s", r == 0 ? "registered-now" : errname(errno));
	if (r == 0) /* it was not registered: undo ours */
		syscall(SYS_rseq, (char *)__builtin_thread_pointer() + __rseq_offset, rseq_len, 1, RSEQ_SIG);
}
static char altstack[64 * 1024];
static int set_altstack(void)
{
	stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
	return sigaltstack(&ss, NULL) == 0 ? 0 : errno;
}
static void get_altstack(char *b, size_t n)
{
	stack_t ss;
	if (sigaltstack(NULL, &ss) != 0)
		snprintf(b, n, "%s", errname(errno));
	else
		snprintf(b, n, "ours:%d,size:%zu,flags:%d", ss.ss_sp == altstack, ss.ss_size, ss.ss_flags);
}
static int pending_sig(void) { return SIGRTMIN + 5; }
static int set_pending(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, pending_sig());
	if (sigprocmask(SIG_BLOCK, &m, NULL) != 0)
		return errno;
	union sigval v = {.sival_int = 0x77};
	return sigqueue(getpid(), pending_sig(), v) == 0 ? 0 : errno;
}
static void get_pending(char *b, size_t n)
{
	sigset_t p, cur;
	sigpending(&p);
	sigprocmask(SIG_BLOCK, NULL, &cur);
	snprintf(b, n, "pending:%d,blocked:%d", sigismember(&p, pending_sig()), sigismember(&cur, pending_sig()));
}
static int set_robust(void) { return 0; /* glibc's, set at start */ }
static void get_robust(char *b, size_t n)
{
	void *head = NULL;
	size_t len = 0;
	if (syscall(SYS_get_robust_list, 0, &head, &len) != 0)
		snprintf(b, n, "%s", errname(errno));
	else
		snprintf(b, n, "%p/%zu", head, len);
}
static int set_tidaddr(void)
{
	int *p = NULL;
	return prctl(PR_GET_TID_ADDRESS, &p, 0, 0, 0) == 0 ? 0 : errno; /* glibc's; this kernel may not say */
}
static void get_tidaddr(char *b, size_t n)
{
	int *p = NULL;
	if (prctl(PR_GET_TID_ADDRESS, &p, 0, 0, 0) != 0)
		snprintf(b, n, "%s", errname(errno));
	else
		snprintf(b, n, "%p", (void *)p);
}
static void get_sigs(char *b, size_t n) { snprintf(b, n, "alrm:%d,usr2:%d", (int)alrm, (int)usr2); }

static struct item items[] = {
	{"umask", set_umask, get_umask, 0, 0, {0}},
	{"nofile", set_nofile, get_nofile, 0, 0, {0}},
	{"core", set_core, get_core, 0, 0, {0}},
	{"stack", set_stack, get_stack, 0, 0, {0}},
	{"fsize", set_fsize, get_fsize, 0, 0, {0}},
	{"msgqueue", set_msgqueue, get_msgqueue, 0, 0, {0}},
	{"groups", set_groups, get_groups, 0, 0, {0}},
	{"securebits", set_securebits, get_securebits, 0, 0, {0}},
	{"capbnd", set_capbnd, get_capbnd, 0, 0, {0}},
	{"loginuid", set_loginuid, get_loginuid, 0, 0, {0}},
	{"cwd", set_none, get_cwd, 0, 0, {0}},
	{"itreal", set_itreal, get_itreal, 1, 0, {0}},
	{"itvirt", set_itvirt, get_itvirt, 1, 0, {0}},
	{"itprof", set_itprof, get_itprof, 1, 0, {0}},
	{"timers", set_timers, get_timers, 0, 0, {0}},
	{"t1", set_none, get_t1, 1, 0, {0}},
	{"t3", set_none, get_t3, 1, 0, {0}},
	{"flock", set_flock, get_flock, 0, 0, {0}},
	{"posix", set_posix, get_posix, 0, 0, {0}},
	{"ofd", set_ofd, get_ofd, 0, 0, {0}},
	{"lease", set_lease, get_lease, 0, 0, {0}},
	{"append", set_append, get_append, 0, 0, {0}},
	{"dirfd", set_dirfd, get_dirfd, 0, 0, {0}},
	{"devnull", set_devnull, get_devnull, 0, 0, {0}},
	{"dontfork", set_dontfork, get_region, 0, 0, {0}},
	{"wipeonfork", set_wipeonfork, get_region, 0, 0, {0}},
	{"dontdump", set_dontdump, get_region, 0, 0, {0}},
	{"hugepage", set_hugepage, get_region, 0, 0, {0}},
	{"nohugepage", set_nohugepage, get_region, 0, 0, {0}},
	{"mlock", set_mlock, get_region, 0, 0, {0}},
	{"mlockres", set_none, get_mlockres, 0, 0, {0}},
	{"onfault", set_onfault, get_region, 0, 0, {0}},
	{"noreserve", set_noreserve, get_region, 0, 0, {0}},
	{"emptyguard", set_emptyguard, get_region, 0, 0, {0}},
	{"anonname", set_anonname, get_region, 0, 0, {0}},
	{"guardmap", set_guard, get_region, 0, 0, {0}},
	{"guard", set_none, get_guard, 0, 0, {0}},
	{"sealmap", set_sealed, get_region, 0, 0, {0}},
	{"sealed", set_none, get_seal, 0, 0, {0}},
	{"shared", set_shared, get_region, 0, 0, {0}},
	{"shanon", set_shanon, get_region, 0, 0, {0}},
	{"mergeable", set_mergeable, get_region, 0, 0, {0}},
	{"growsdown", set_growsdown, get_region, 0, 0, {0}},
	{"privfile", set_privfile, get_region, 0, 0, {0}},
	{"data", set_none, get_data, 0, 0, {0}},
	{"subreaper", set_subreaper, get_subreaper, 0, 0, {0}},
	{"timerslack", set_timerslack, get_timerslack, 0, 0, {0}},
	{"thpdisable", set_thp, get_thp, 0, 0, {0}},
	{"pdeathsig", set_pdeathsig, get_pdeathsig, 0, 0, {0}},
	{"keepcaps", set_keepcaps, get_keepcaps, 0, 0, {0}},
	{"mce", set_mce, get_mce, 0, 0, {0}},
	{"nnp", set_nnp, get_nnp, 0, 0, {0}},
	{"comm", set_comm, get_comm, 0, 0, {0}},
	{"tsc", set_tsc, get_tsc, 0, 0, {0}},
	{"specssb", set_specssb, get_specssb, 0, 0, {0}},
	{"ksm", set_ksm, get_ksm, 0, 0, {0}},
	{"ioflusher", set_ioflusher, get_ioflusher, 0, 0, {0}},
	{"nice", set_nice, get_nice, 0, 0, {0}},
	{"affinity", set_affinity, get_affinity, 0, 0, {0}},
	{"personality", set_personality, get_personality, 0, 0, {0}},
	{"ioprio", set_ioprio, get_ioprio, 0, 0, {0}},
	{"policy", set_policy, get_policy, 0, 0, {0}},
	{"schedattr", set_schedattr, get_schedattr, 0, 0, {0}},
	{"oom", set_oom, get_oom, 0, 0, {0}},
	{"coredump", set_coredump, get_coredump, 0, 0, {0}},
	{"membarrier", set_membarrier, get_membarrier, 0, 0, {0}},
	{"rseq", set_rseq, get_rseq, 0, 0, {0}},
	{"altstack", set_altstack, get_altstack, 0, 0, {0}},
	{"pending", set_pending, get_pending, 0, 0, {0}},
	{"robust", set_robust, get_robust, 0, 0, {0}},
	{"tidaddr", set_tidaddr, get_tidaddr, 0, 0, {0}},
	{"lockfuture", set_lockfuture, get_lockfuture, 0, 0, {0}},
	{"mdwe", set_mdwe, get_mdwe, 0, 0, {0}},
	{"dumpable", set_dumpable, get_dumpable, 0, 0, {0}},
	{"sigs", set_none, get_sigs, 0, 0, {0}},
};
#define NITEM (sizeof items / sizeof items[0])

/* The region an item reports, for get_region. */
static int region_of(const char *name)
{
	static const char *const alias[][2] = {{"guardmap", "guard"}, {"sealmap", "sealed"}};
	for (size_t a = 0; a < sizeof alias / sizeof alias[0]; a++)
		if (strcmp(name, alias[a][0]) == 0)
			name = alias[a][1];
	for (int r = 0; r < NREGION; r++)
		if (strcmp(name, region_name[r]) == 0)
			return r;
	return -1;
}

/* Items that depend on another one being supported. */
static const char *depends(const char *name)
{
	static const char *const dep[][2] = {
		{"t1", "timers"}, {"t3", "timers"}, {"mlockres", "mlock"}, {"guard", "guardmap"}, {"sealed", "sealmap"},
	};
	for (size_t i = 0; i < sizeof dep / sizeof dep[0]; i++)
		if (strcmp(name, dep[i][0]) == 0)
			return dep[i][1];
	return NULL;
}

static struct item *find(const char *name)
{
	for (size_t i = 0; i < NITEM; i++)
		if (strcmp(items[i].name, name) == 0)
			return &items[i];
	return NULL;
}

static void value(struct item *it, char *b, size_t n)
{
	int r = region_of(it->name);
	if (r >= 0 && it->get == get_region)
		cur_region = r;
	it->get(b, n);
}

static int root_only(const char *name)
{
	static const char *const r[] = {"groups", "keepcaps", "securebits", "capbnd", "loginuid"};
	for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
		if (strcmp(name, r[i]) == 0)
			return 1;
	return 0;
}

static void setup(void)
{
	for (size_t i = 0; i < NITEM; i++) {
		struct item *it = &items[i];
		if (root_only(it->name) && geteuid() != 0)
			continue;
		const char *dep = depends(it->name);
		if (dep != NULL && !find(dep)->supported)
			continue;
		int e = it->set();
		if (e != 0) {
			putf("unsupported %s %s\n", it->name, errname(e));
			continue;
		}
		it->supported = 1;
	}
	/* Read everything back once all is set (a later item may change an
	 * earlier one's value: SCHED_BATCH must keep the nice). */
	for (size_t i = 0; i < NITEM; i++)
		if (items[i].supported)
			value(&items[i], items[i].want, sizeof items[i].want);
}

/* Values that must hold right after setup; a kernel that took the call
 * but did not do it makes the item unsupported, reported, not faked. */
static void expect_set(const char *name, const char *want)
{
	struct item *it = find(name);
	if (it && it->supported && strcmp(it->want, want) != 0) {
		putf("unsupported %s set-but-reads %s\n", name, it->want);
		it->supported = 0;
	}
}

/* The same for the limits, whose hard half is whatever it was. */
static void expect_prefix(const char *name, const char *prefix)
{
	struct item *it = find(name);
	if (it && it->supported && strncmp(it->want, prefix, strlen(prefix)) != 0) {
		putf("unsupported %s set-but-reads %s\n", name, it->want);
		it->supported = 0;
	}
}

static void check(void)
{
	add("state");
	for (size_t i = 0; i < NITEM; i++) {
		if (!items[i].supported)
			continue;
		char v[256];
		value(&items[i], v, sizeof v);
		add(" %s=%s", items[i].name, v);
	}
	add("\n");
	flush();
}

/* timer_ok: got may only have run down from want, not past zero, and the
 * interval is the same. The CPU-time timers (VIRTUAL, PROF) count in
 * ticks: setting one rounds it up to the next tick (up to 10 ms at
 * HZ=100), so a value set again may read a tick more. */
static int timer_ok(const char *name, const char *want, const char *got)
{
	long long wv, wi, gv, gi;
	if (sscanf(want, "%lld/%lld", &wv, &wi) != 2 || sscanf(got, "%lld/%lld", &gv, &gi) != 2)
		return 0;
	long long tick = strcmp(name, "itvirt") == 0 || strcmp(name, "itprof") == 0 ? 10 : 0;
	return gi == wi && gv > 0 && gv <= wv + tick;
}

static void verify(void)
{
	int bad = 0;
	for (size_t i = 0; i < NITEM; i++) {
		struct item *it = &items[i];
		if (!it->supported)
			continue;
		char v[256];
		value(it, v, sizeof v);
		if (it->timer ? timer_ok(it->name, it->want, v) : strcmp(it->want, v) == 0)
			continue;
		add("%s %s want %s got %s", bad++ ? "" : "bad", it->name, it->want, v);
	}
	if (find("sealmap")->supported) {
		if (munmap(region[R_SEALED], region_len[R_SEALED]) == 0) {
			add("%s sealed-munmap want EPERM got 0", bad++ ? "" : "bad");
			region[R_SEALED] = NOWHERE;
			find("sealmap")->supported = find("sealed")->supported = 0;
		} else if (errno != EPERM) {
			add("%s sealed-munmap want EPERM got %s", bad++ ? "" : "bad", errname(errno));
		}
	}
	if (find("pending")->supported) {
		sigset_t m;
		sigemptyset(&m);
		sigaddset(&m, pending_sig());
		siginfo_t si;
		struct timespec zero = {0, 0};
		int sig = sigtimedwait(&m, &si, &zero);
		if (sig != pending_sig())
			add("%s pending-take want %d got %d %s", bad++ ? "" : "bad", pending_sig(), sig, errname(errno));
		else if (si.si_code != SI_QUEUE || si.si_value.sival_int != 0x77)
			add("%s pending-siginfo want code %d value 0x77 got code %d value %#x", bad++ ? "" : "bad", SI_QUEUE,
			    si.si_code, si.si_value.sival_int);
		union sigval v = {.sival_int = 0x77};
		sigqueue(getpid(), pending_sig(), v); /* as it was, for the next freeze */
	}
	if (find("shared")->supported) {
		if (mprotect(region[R_SHARED], region_len[R_SHARED], PROT_READ | PROT_WRITE) != 0)
			add("%s shared-mprotect want 0 got %s", bad++ ? "" : "bad", errname(errno));
		else
			mprotect(region[R_SHARED], region_len[R_SHARED], PROT_READ);
	}
	add(bad ? "\n" : "ok\n");
	flush();
}

int main(void)
{
	pagesz = (size_t)sysconf(_SC_PAGESIZE);
	setup();
	expect_set("umask", "0027");
	expect_prefix("nofile", "512/");
	expect_prefix("core", "0/");
	expect_prefix("stack", "4194304/");
	expect_set("groups", "1,2,3");
	expect_set("timerslack", "123456");
	expect_set("thpdisable", "1");
	expect_set("pdeathsig", "12");
	expect_set("dumpable", "0");
	expect_set("keepcaps", "1");
	expect_set("mce", "early");
	expect_set("nnp", "1");
	expect_set("comm", "allstate-x");
	expect_set("nice", "5");
	expect_set("affinity", "0");
	expect_set("personality", "0x40000");
	expect_set("ioprio", "2/6");
	expect_set("oom", "500");
	expect_set("coredump", "0000007b");
	expect_set("membarrier", "ok");
	expect_set("rseq", "EBUSY");
	expect_set("flock", "held");
	expect_set("posix", "w:10+10:self");
	expect_set("ofd", "r:0+0:-1");
	expect_set("lease", "r");
	expect_set("guard", "0100");
	expect_set("sealed", "EPERM");
	expect_set("mlockres", "4/4");
	expect_set("data", "ok");
	expect_set("sigs", "alrm:0,usr2:0");
	expect_prefix("fsize", "1073741824/");
	expect_prefix("msgqueue", "4096/");
	expect_set("securebits", "0x14");
	expect_set("capbnd", "sys_boot:0");
	expect_set("loginuid", "1234");
	expect_set("append", "30:102001:0:5,31:102001:0:5,32:100000:1:2,30=31:same,30=32:other");
	expect_set("dirfd", "dir:1,cwd:1,flags:300000");
	expect_set("devnull", "chr:1,1:3,flags:100002");
	expect_set("mdwe", "1");
	expect_set("tsc", "sigsegv");
	expect_set("ksm", "1");
	expect_set("ioflusher", "1");
	expect_set("policy", "batch+resetonfork");
	expect_set("schedattr", "policy:3,flags:0x61,nice:5,util:100-900");
	expect_set("altstack", "ours:1,size:65536,flags:0");
	expect_set("pending", "pending:1,blocked:1");
	put("ready\n");

	char line[256];
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "check") == 0) {
			check();
		} else if (strcmp(line, "verify") == 0) {
			verify();
		} else if (strcmp(line, "wait") == 0) {
			int st = 0;
			errno = 0;
			pid_t r = waitpid(-1, &st, WNOHANG);
			putf("wait ret=%ld errno=%s status=%#x\n", (long)r, r < 0 ? errname(errno) : "0", st);
		} else if (strncmp(line, "out ", 4) == 0) {
			int n = atoi(line + 4);
			for (int i = 1; i <= n; i++) {
				char b[64];
				int k = snprintf(b, sizeof b, "out %d\n", i);
				write_all(i % 2 ? 1 : 2, b, (size_t)k);
			}
			putf("out done %d\n", n);
		} else if (strcmp(line, "pid") == 0) {
			putf("pid %ld\n", (long)getpid());
		} else if (strncmp(line, "exit", 4) == 0) {
			cmd_exit(line);
		} else {
			putf("unknown %s\n", line);
		}
	}
	return 0;
}
