/*
 * regs-arm64: proves that an arm64 process's registers survive a freeze
 * and thaw while it is blocked in a system call (the arm64 twin of regs.c,
 * built only for arm64).
 *
 * An assembly function loads known values into x1-x30, the NZCV flags,
 * v0-v31 (all 128 bits), FPCR, FPSR and TPIDR_EL0 (the TLS register, not
 * part of NT_PRSTATUS), then issues a raw read(0, buf, 1) that blocks (the
 * freeze happens here), and after it returns stores every register back
 * to memory, all without the compiler getting a chance to touch them. The
 * C code then compares. x7 matters in particular: the kernel clobbers it
 * at syscall stops.
 *
 * Prints "ready" before the probe. After the byte arrives it prints
 * "regs ok" and exits 0, or "regs bad <reg> ..." and exits 1.
 */
#include <stddef.h>
#include <stdint.h>

#include "lineio.h"

struct regs {
	uint64_t x[31];    /* 0 */
	uint64_t nzcv;     /* 248 */
	uint64_t fpcr;     /* 256 */
	uint64_t fpsr;     /* 264 */
	uint64_t tls;      /* 272 */
	uint64_t pad;      /* 280 */
	uint8_t v[32][16]; /* 288 */
};
_Static_assert(offsetof(struct regs, nzcv) == 248, "layout");
_Static_assert(offsetof(struct regs, tls) == 272, "layout");
_Static_assert(offsetof(struct regs, v) == 288, "layout");

void regs_probe(struct regs *want, struct regs *got);

__asm__(
	".text\n"
	".globl regs_probe\n"
	".type regs_probe, %function\n"
	"regs_probe:\n"
	/* x0 = want, x1 = got. Frame: callee-saved registers, got, the
	 * caller's TPIDR_EL0 and FPCR, a slot for x0 after the call. */
	"	sub sp, sp, #192\n"
	"	stp x19, x20, [sp, #0]\n"
	"	stp x21, x22, [sp, #16]\n"
	"	stp x23, x24, [sp, #32]\n"
	"	stp x25, x26, [sp, #48]\n"
	"	stp x27, x28, [sp, #64]\n"
	"	stp x29, x30, [sp, #80]\n"
	"	stp d8, d9, [sp, #96]\n"
	"	stp d10, d11, [sp, #112]\n"
	"	stp d12, d13, [sp, #128]\n"
	"	stp d14, d15, [sp, #144]\n"
	"	str x1, [sp, #160]\n"
	"	mrs x9, tpidr_el0\n"
	"	str x9, [sp, #168]\n"
	"	mrs x9, fpcr\n"
	"	str x9, [sp, #176]\n"
	/* vector and special registers */
	"	add x9, x0, #288\n"
	"	ld1 {v0.16b-v3.16b}, [x9], #64\n"
	"	ld1 {v4.16b-v7.16b}, [x9], #64\n"
	"	ld1 {v8.16b-v11.16b}, [x9], #64\n"
	"	ld1 {v12.16b-v15.16b}, [x9], #64\n"
	"	ld1 {v16.16b-v19.16b}, [x9], #64\n"
	"	ld1 {v20.16b-v23.16b}, [x9], #64\n"
	"	ld1 {v24.16b-v27.16b}, [x9], #64\n"
	"	ld1 {v28.16b-v31.16b}, [x9], #64\n"
	"	ldr x9, [x0, #256]\n"
	"	msr fpcr, x9\n"
	"	ldr x9, [x0, #264]\n"
	"	msr fpsr, x9\n"
	"	ldr x9, [x0, #272]\n"
	"	msr tpidr_el0, x9\n"
	"	ldr x9, [x0, #248]\n"
	"	msr nzcv, x9\n"
	/* general registers, x0 last: x0 = 0, x1 = buf, x2 = 1, x8 = 63 */
	"	ldp x2, x3, [x0, #16]\n"
	"	ldp x4, x5, [x0, #32]\n"
	"	ldp x6, x7, [x0, #48]\n"
	"	ldp x8, x9, [x0, #64]\n"
	"	ldp x10, x11, [x0, #80]\n"
	"	ldp x12, x13, [x0, #96]\n"
	"	ldp x14, x15, [x0, #112]\n"
	"	ldp x16, x17, [x0, #128]\n"
	"	ldp x18, x19, [x0, #144]\n"
	"	ldp x20, x21, [x0, #160]\n"
	"	ldp x22, x23, [x0, #176]\n"
	"	ldp x24, x25, [x0, #192]\n"
	"	ldp x26, x27, [x0, #208]\n"
	"	ldp x28, x29, [x0, #224]\n"
	"	ldr x30, [x0, #240]\n"
	"	ldr x1, [x0, #8]\n"
	"	ldr x0, [x0]\n"
	"	svc #0\n"
	/* store everything; loads and stores leave NZCV alone */
	"	str x0, [sp, #184]\n"
	"	ldr x0, [sp, #160]\n"
	"	str x1, [x0, #8]\n"
	"	stp x2, x3, [x0, #16]\n"
	"	stp x4, x5, [x0, #32]\n"
	"	stp x6, x7, [x0, #48]\n"
	"	stp x8, x9, [x0, #64]\n"
	"	stp x10, x11, [x0, #80]\n"
	"	stp x12, x13, [x0, #96]\n"
	"	stp x14, x15, [x0, #112]\n"
	"	stp x16, x17, [x0, #128]\n"
	"	stp x18, x19, [x0, #144]\n"
	"	stp x20, x21, [x0, #160]\n"
	"	stp x22, x23, [x0, #176]\n"
	"	stp x24, x25, [x0, #192]\n"
	"	stp x26, x27, [x0, #208]\n"
	"	stp x28, x29, [x0, #224]\n"
	"	str x30, [x0, #240]\n"
	"	ldr x9, [sp, #184]\n"
	"	str x9, [x0]\n"
	"	mrs x9, nzcv\n"
	"	str x9, [x0, #248]\n"
	"	mrs x9, fpcr\n"
	"	str x9, [x0, #256]\n"
	"	mrs x9, fpsr\n"
	"	str x9, [x0, #264]\n"
	"	mrs x9, tpidr_el0\n"
	"	str x9, [x0, #272]\n"
	"	add x9, x0, #288\n"
	"	st1 {v0.16b-v3.16b}, [x9], #64\n"
	"	st1 {v4.16b-v7.16b}, [x9], #64\n"
	"	st1 {v8.16b-v11.16b}, [x9], #64\n"
	"	st1 {v12.16b-v15.16b}, [x9], #64\n"
	"	st1 {v16.16b-v19.16b}, [x9], #64\n"
	"	st1 {v20.16b-v23.16b}, [x9], #64\n"
	"	st1 {v24.16b-v27.16b}, [x9], #64\n"
	"	st1 {v28.16b-v31.16b}, [x9], #64\n"
	/* give the caller back its TLS, FPCR and callee-saved registers */
	"	ldr x9, [sp, #168]\n"
	"	msr tpidr_el0, x9\n"
	"	ldr x9, [sp, #176]\n"
	"	msr fpcr, x9\n"
	"	msr fpsr, xzr\n"
	"	ldp x19, x20, [sp, #0]\n"
	"	ldp x21, x22, [sp, #16]\n"
	"	ldp x23, x24, [sp, #32]\n"
	"	ldp x25, x26, [sp, #48]\n"
	"	ldp x27, x28, [sp, #64]\n"
	"	ldp x29, x30, [sp, #80]\n"
	"	ldp d8, d9, [sp, #96]\n"
	"	ldp d10, d11, [sp, #112]\n"
	"	ldp d12, d13, [sp, #128]\n"
	"	ldp d14, d15, [sp, #144]\n"
	"	add sp, sp, #192\n"
	"	ret\n"
	".size regs_probe, .-regs_probe\n");

static struct regs want, got;
static char buf[16];

int main(void)
{
	for (int i = 0; i < 31; i++)
		want.x[i] = 0x0101010101010101ull * (uint64_t)(i + 1) ^ 0x8000000000000000ull;
	want.x[0] = 0;               /* fd */
	want.x[1] = (uint64_t)buf;   /* buf */
	want.x[2] = 1;               /* count */
	want.x[8] = 63;              /* read */
	want.nzcv = 0x90000000;      /* N, V */
	want.fpcr = 0x07c00000;      /* AHP, DN, FZ, round toward zero */
	want.fpsr = 0x0800009f;      /* QC and every cumulative exception */
	want.tls = 0x5eed0000f00d7157ull;
	for (int i = 0; i < 32; i++)
		for (int j = 0; j < 16; j++)
			want.v[i][j] = (uint8_t)(i * 16 + j) ^ 0xa5;

	put("ready\n");
	regs_probe(&want, &got);

	if (buf[0] != 'x') {
		putf("regs bad data=%c\n", buf[0]);
		return 1;
	}
	int bad = 0;
	if (got.x[0] != 1) {
		putf("regs bad x0 %#llx, want 1 (bytes read)\n", (unsigned long long)got.x[0]);
		bad = 1;
	}
	for (int i = 1; i < 31; i++)
		if (got.x[i] != want.x[i]) {
			putf("regs bad x%d %#llx, want %#llx\n", i, (unsigned long long)got.x[i],
			     (unsigned long long)want.x[i]);
			bad = 1;
		}
	static const char *const special[] = {"nzcv", "fpcr", "fpsr", "tpidr_el0"};
	const uint64_t *g = &got.nzcv, *w = &want.nzcv;
	for (int i = 0; i < 4; i++)
		if (g[i] != w[i]) {
			putf("regs bad %s %#llx, want %#llx\n", special[i], (unsigned long long)g[i],
			     (unsigned long long)w[i]);
			bad = 1;
		}
	for (int i = 0; i < 32; i++)
		if (memcmp(got.v[i], want.v[i], 16) != 0) {
			putf("regs bad v%d\n", i);
			bad = 1;
		}
	if (bad)
		return 1;
	put("regs ok\n");
	return 0;
}
