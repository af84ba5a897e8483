/*
 * rawtty: puts its terminal (stdin) in raw mode, as an editor does, and
 * dups it to fd 255, as bash does. It reads single bytes from stdin:
 * 'q' -> "icanon=<0|1> echo=<0|1> fd255=<0|1>\n" (the terminal's modes
 * and whether fd 255 is still that terminal), 'x' -> exit 0.
 * Prints "ready" once raw.
 */
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
		putf("icanon=%d echo=%d fd255=%d\n", !!(now.c_lflag & ICANON), !!(now.c_lflag & ECHO), same);
	}
}
