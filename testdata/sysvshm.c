/*
 * sysvshm: attaches a System V shared memory segment (which cryo cannot
 * restore yet) and answers "ping" -> "pong". Prints "ready".
 */
#include <sys/ipc.h>
#include <sys/shm.h>
#include "lineio.h"

int main(void)
{
	int id = shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0600);
	if (id < 0)
		return 10;
	char *p = shmat(id, NULL, 0);
	shmctl(id, IPC_RMID, NULL); /* gone when we detach or exit */
	if (p == (void *)-1)
		return 11;
	p[0] = 1;
	put("ready\n");
	char line[64];
	while (read_line(line, sizeof line) >= 0) {
		if (strcmp(line, "ping") == 0)
			put("pong\n");
		else if (strncmp(line, "exit", 4) == 0)
			cmd_exit(line);
	}
	return 0;
}
