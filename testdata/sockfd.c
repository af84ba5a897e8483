/*
 * sockfd: a process with sockets at fd 3 and up.
 *
 *   sockfd [unix|inet|netlink]
 *     unix     one end of a socketpair(AF_UNIX, SOCK_STREAM) (the other end
 *              is kept open at fd 4 so the connection stays up): carried
 *     inet     fds 3 and 4 the two ends of a TCP connection over loopback,
 *              fd 5 their listener with a second connection (fd 6) waiting
 *              to be accepted: freeze refuses fd 5, and must give back the
 *              connection it had put in repair mode; "talk" -> "talk ab"
 *              passes a byte each way on it
 *     netlink  fd 3 a socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE): refused
 *
 * Prints "ready", then serves "ping" -> "pong <count>" and "exit [N]".
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
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
		/* fd 3 and fd 4 are the two ends of a TCP connection over
		 * loopback, accepted from the listener at fd 5, which has a
		 * second connection (fd 6's) waiting to be accepted. */
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t al = sizeof a;
		int l = socket(AF_INET, SOCK_STREAM, 0);
		if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) != 0 || listen(l, 4) != 0 ||
		    getsockname(l, (struct sockaddr *)&a, &al) != 0)
			return 22;
		int c = socket(AF_INET, SOCK_STREAM, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof a) != 0)
			return 23;
		int s = accept(l, NULL, NULL);
		int w = socket(AF_INET, SOCK_STREAM, 0);
		if (s < 0 || w < 0 || connect(w, (struct sockaddr *)&a, sizeof a) != 0)
			return 24;
		int fds[4] = {fcntl(c, F_DUPFD, 100), fcntl(s, F_DUPFD, 100), fcntl(l, F_DUPFD, 100), fcntl(w, F_DUPFD, 100)};
		close(c);
		close(s);
		close(l);
		close(w);
		for (int i = 0; i < 4; i++)
			move_fd(fds[i], 3 + i);
	} else if (strcmp(mode, "netlink") == 0) {
		int s = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
		if (s < 0)
			return 25;
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
		else if (strcmp(line, "talk") == 0) {
			/* inet: fd 3 -> fd 4 and back. */
			char b[8] = {0};
			if (write(3, "a", 1) != 1 || read(4, b, 1) != 1 || write(4, "b", 1) != 1 || read(3, b + 1, 1) != 1)
				putf("talk failed %d\n", errno);
			else
				putf("talk %s\n", b);
		} else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
		else
			putf("unknown %s\n", line);
	}
	return 0;
}
