/*
 * rawtty: puts its terminal (stdin) in raw mode, as an editor does, opens
 * it again read-only on fd 0 (a terminal keeps its access mode) and dups
 * that to fd 255, as bash does. It reads single bytes from stdin:
 * 'q' -> "icanon=<0|1> echo=<0|1> fd255=<0|1> ro=<0|1>\n" (the
 * terminal's modes, whether fd 255 is still that terminal and whether fd
 * 0 is still read-only), 'x' -> exit 0.
 * Prints "ready" once raw.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include "lineio.h"

int main(void)
{
	struct termios t;
	if (tcgetattr(0, &t) != 0)
		return 10;
	cfmakeraw(&t);
	if (tcsetattr(0, TCSANOW, &t) != 0)
		return 11;
	int ro = open("/proc/self/fd/0", O_RDONLY | O_NOCTTY);
	if (ro < 0 || dup2(ro, 0) != 0 || close(ro) != 0)
		return 14;
	if (dup2(0, 255) != 255)
		return 12;
	put("ready\n");
	for (;;) {
		char c;
		ssize_t n = read(0, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		if (c == 'x')
			return 0;
		if (c != 'q')
			continue;
		struct termios now;
		struct stat a, b;
		int same = fstat(0, &a) == 0 && fstat(255, &b) == 0 && a.st_rdev == b.st_rdev && S_ISCHR(b.st_mode);
		if (tcgetattr(255, &now) != 0)
			return 13;
		int fl = fcntl(0, F_GETFL);
		int rdonly = fl >= 0 && (fl & O_ACCMODE) == O_RDONLY && write(0, "", 1) < 0 && errno == EBADF;
		putf("icanon=%d echo=%d fd255=%d ro=%d\n", !!(now.c_lflag & ICANON), !!(now.c_lflag & ECHO), same, rdonly);
	}
}
