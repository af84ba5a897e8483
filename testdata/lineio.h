/*
 * lineio.h - tiny raw-syscall line I/O shared by the cryo e2e victims.
 *
 * The victims are ordinary programs: they know nothing about cryo. They
 * talk over stdin/stdout with read(2)/write(2) only (no stdio buffering),
 * one command line in, one answer line out.
 */
#ifndef CRYO_LINEIO_H
#define CRYO_LINEIO_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* write_all writes all of buf to fd, retrying on EINTR and short writes.
 * It exits the program if the peer is gone. */
static void write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(3);
		}
		buf += n;
		len -= (size_t)n;
	}
}

__attribute__((unused)) static void put(const char *s) { write_all(1, s, strlen(s)); }

/* putf formats one line into a stack buffer and writes it with a single
 * write(2). */
__attribute__((format(printf, 1, 2), unused)) static void putf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		_exit(4);
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	write_all(1, buf, (size_t)n);
}

static char lineio_buf[4096];
static size_t lineio_len;

/* read_line reads one '\n'-terminated line from fd 0 into out (without the
 * newline, NUL-terminated). Returns its length, or -1 at end of input. A
 * read(2) interrupted by a signal is simply retried, as any program does. */
__attribute__((unused)) static int read_line(char *out, size_t cap)
{
	for (;;) {
		char *nl = memchr(lineio_buf, '\n', lineio_len);
		if (nl != NULL) {
			size_t n = (size_t)(nl - lineio_buf);
			size_t c = n < cap - 1 ? n : cap - 1;
			memcpy(out, lineio_buf, c);
			out[c] = 0;
			memmove(lineio_buf, nl + 1, lineio_len - n - 1);
			lineio_len -= n + 1;
			return (int)c;
		}
		if (lineio_len == sizeof lineio_buf)
			lineio_len = 0; /* overlong line: drop it */
		ssize_t r = read(0, lineio_buf + lineio_len, sizeof lineio_buf - lineio_len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		lineio_len += (size_t)r;
	}
}

/* cmd_exit handles "exit" and "exit N". */
__attribute__((unused)) static void cmd_exit(const char *line)
{
	int code = 0;
	if (line[4] == ' ')
		code = atoi(line + 5);
	exit(code);
}

#endif
