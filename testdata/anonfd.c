/*
 * anonfd: a process holding at fd 5 one anonymous-inode file that cryo
 * cannot carry, so that freeze must refuse it and leave it running.
 *
 *   anonfd io_uring|userfaultfd|pidfd|fanotify|secretmem|inotify-queued
 *     io_uring        io_uring_setup(4) by raw syscall (no liburing)
 *     userfaultfd     userfaultfd(O_CLOEXEC)
 *     pidfd           pidfd_open of its parent
 *     fanotify        fanotify_init (needs CAP_SYS_ADMIN)
 *     secretmem       memfd_secret of one page (not mapped: a mapping of it
 *                     is refused by the mappings, before the fds)
 *     inotify-queued  an inotify watch on . with an event queued, unread
 *
 * Prints "ready", then serves "ping" -> "pong <count>" and "exit [N]".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/syscall.h>

#include "lineio.h"

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "io_uring";
	int fd = -1;

	if (strcmp(mode, "io_uring") == 0) {
		char params[120] = {0}; /* struct io_uring_params */
		fd = (int)syscall(__NR_io_uring_setup, 4, params);
	} else if (strcmp(mode, "userfaultfd") == 0) {
		fd = (int)syscall(__NR_userfaultfd, O_CLOEXEC);
	} else if (strcmp(mode, "pidfd") == 0) {
		fd = (int)syscall(__NR_pidfd_open, getppid(), 0);
	} else if (strcmp(mode, "fanotify") == 0) {
		fd = fanotify_init(FAN_CLASS_NOTIF, O_RDONLY);
	} else if (strcmp(mode, "secretmem") == 0) {
#ifndef __NR_memfd_secret
#define __NR_memfd_secret 447
#endif
		fd = (int)syscall(__NR_memfd_secret, 0);
		if (fd >= 0 && ftruncate(fd, 4096) < 0)
			fd = -1;
	} else if (strcmp(mode, "inotify-queued") == 0) {
		fd = inotify_init1(0);
		if (fd >= 0 && inotify_add_watch(fd, ".", IN_CREATE) < 0)
			fd = -1;
		int f = open("queued", O_WRONLY | O_CREAT, 0600);
		if (f < 0)
			fd = -1;
		close(f);
	}
	if (fd < 0) {
		putf("setup failed: %s: %s\n", mode, strerror(errno));
		return 2;
	}
	if (fd != 5) {
		if (dup2(fd, 5) != 5)
			return 20;
		close(fd);
	}
	put("ready\n");
	char line[256];
	int n = 0;
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "ping") == 0)
			putf("pong %d\n", ++n);
		else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
	}
	return 0;
}
