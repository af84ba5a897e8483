/*
 * creds: a root-started process that changes its identity the way a
 * daemon dropping privilege does, then answers "creds" with what the
 * kernel says of it, read from inside:
 *
 *   groups 1 2 3, gids 100/100/100, the bounding set without
 *   CAP_SYS_MODULE, CAP_NET_RAW out of the effective set,
 *   CAP_NET_BIND_SERVICE inheritable and ambient, keep-caps on, uids
 *   1000/1000/0 (saved root: it can come back), mlockall(MCL_FUTURE).
 *
 * Prints "ready" once set up. "creds" -> "creds uid=r/e/s gid=r/e/s
 * groups=a,b,c eff=X prm=X inh=X amb=X bnd=X keepcaps=N"; "newmap" maps a
 * page and answers "newmap locked=N" with what its smaps VmFlags say
 * (1: MCL_FUTURE is in force). "exit [N]".
 */
#define _GNU_SOURCE
#include <grp.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "lineio.h"

static unsigned long long capset_of(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long v = ~0ULL;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			v = strtoull(line + n + 1, NULL, 16);
	if (f)
		fclose(f);
	return v;
}

static void report(void)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;
	gid_t g[16];
	char groups[128] = "";
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	int n = getgroups(16, g);
	for (int i = 0; i < n; i++) {
		char one[16];
		snprintf(one, sizeof one, "%s%u", i ? "," : "", (unsigned)g[i]);
		strcat(groups, one);
	}
	putf("creds uid=%u/%u/%u gid=%u/%u/%u groups=%s eff=%llx prm=%llx inh=%llx amb=%llx bnd=%llx keepcaps=%d\n",
	     r, e, s, gr, ge, gs, groups, capset_of("CapEff"), capset_of("CapPrm"), capset_of("CapInh"),
	     capset_of("CapAmb"), capset_of("CapBnd"), prctl(PR_GET_KEEPCAPS));
}

static void newmap(void)
{
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char want[32], line[256];
	int locked = -1, in = 0;
	if (p == MAP_FAILED) {
		putf("newmap failed %d\n", errno);
		return;
	}
	snprintf(want, sizeof want, "%lx-", (unsigned long)p);
	FILE *f = fopen("/proc/self/smaps", "r");
	while (f && fgets(line, sizeof line, f)) {
		if (strncmp(line, want, strlen(want)) == 0)
			in = 1;
		else if (in && strncmp(line, "VmFlags:", 8) == 0) {
			locked = strstr(line, " lo") != NULL;
			break;
		}
	}
	if (f)
		fclose(f);
	munmap(p, 4096);
	putf("newmap locked=%d\n", locked);
}

int main(void)
{
	gid_t g[3] = {1, 2, 3};
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2];
	if (setgroups(3, g) || prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE) || syscall(SYS_capget, &h, d))
		return 10;
	d[0].effective &= ~(1u << CAP_NET_RAW);
	d[0].inheritable |= 1u << CAP_NET_BIND_SERVICE;
	if (syscall(SYS_capset, &h, d) || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) ||
	    setresgid(100, 100, 100) || prctl(PR_SET_KEEPCAPS, 1) || setresuid(1000, 1000, 0) ||
	    mlockall(MCL_FUTURE))
		return 11;
	put("ready\n");
	char line[256];
	for (;;) {
		if (read_line(line, sizeof line) <= 0)
			return 0;
		if (strcmp(line, "creds") == 0)
			report();
		else if (strcmp(line, "newmap") == 0)
			newmap();
		else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
		else
			putf("unknown %s\n", line);
	}
}
