/*
 * sockfd: a process with a socket at fd 3, which cryo does not support yet.
 *
 *   sockfd [unix|inet]
 *     unix  one end of a socketpair(AF_UNIX, SOCK_STREAM) (the other end is
 *           kept open at fd 4 so the connection stays up)
 *     inet  an unconnected socket(AF_INET, SOCK_STREAM)
 *
 * Prints "ready", then serves "ping" -> "pong <count>" and "exit [N]".
 */
#include <fcntl.h>
#include <sys/socket.h>

#include "lineio.h"

static void move_fd(int from, int to)
{
	if (from == to)
		return;
	if (dup2(from, to) != to)
		_exit(20);
	close(from);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "unix";

	if (strcmp(mode, "unix") == 0) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
			return 21;
		/* Park both ends high first so the moves cannot collide. */
		int a = fcntl(sv[0], F_DUPFD, 100), b = fcntl(sv[1], F_DUPFD, 100);
		close(sv[0]);
		close(sv[1]);
		move_fd(a, 3);
		move_fd(b, 4);
	} else if (strcmp(mode, "inet") == 0) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0)
			return 22;
		move_fd(s, 3);
	} else {
		putf("bad mode %s\n", mode);
		return 2;
	}

	put("ready\n");
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
