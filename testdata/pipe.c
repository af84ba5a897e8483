/*
 * pipe: a line echo server that spends its life blocked in read(2) on its
 * stdin pipe.
 *
 * Prints "ready". For each complete input line it answers "got <line>";
 * when a read(2) returns bytes but no complete line yet, it reports how
 * many bytes it holds with "buffered <n>" (so a test knows the bytes left
 * the pipe and live only in this process's memory).
 * Special lines: "pid" -> "pid <getpid()>", "exit [N]" -> exit(N).
 */
#include "lineio.h"

int main(void)
{
	char buf[4096];
	size_t len = 0;

	put("ready\n");
	for (;;) {
		ssize_t r = read(0, buf + len, sizeof buf - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return 0;
		len += (size_t)r;

		char *nl;
		while ((nl = memchr(buf, '\n', len)) != NULL) {
			*nl = 0;
			if (strcmp(buf, "pid") == 0)
				putf("pid %ld\n", (long)getpid());
			else if (strncmp(buf, "exit", 4) == 0)
				cmd_exit(buf);
			else
				putf("got %s\n", buf);
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, len - used);
			len -= used;
		}
		if (len > 0)
			putf("buffered %zu\n", len);
		if (len == sizeof buf - 1)
			len = 0;
	}
}
