/*
 * regs: proves that a process's registers survive a freeze and thaw while
 * it is blocked in a system call.
 *
 * An assembly function loads known values into every register a system
 * call leaves alone - rbx, rbp, r8-r10, r12-r15, MXCSR, the x87 control
 * word, xmm0-15, the upper halves of ymm0-15 (AVX), zmm0-31 and k0-k7
 * (AVX-512) - then issues a raw read(0, buf, 1) that blocks (the freeze
 * happens here), and after it returns stores every register back to
 * memory, all without the compiler getting a chance to touch them. The C
 * code then compares.
 *
 *   regs [max-mode]
 *
 * Prints "ready mode=<n> <name>" before the probe, where mode is
 * 0 (SSE only), 1 (AVX), 2 (AVX-512F, 16-bit mask registers) or
 * 3 (AVX-512F+BW, 64-bit mask registers): the most the CPU supports, or
 * at most max-mode if given. After the byte arrives it prints
 * "regs ok" and exits 0, or "regs bad <reg> ..." and exits 1.
 */
#include <stddef.h>
#include <stdint.h>

#include "lineio.h"

struct regs {
	uint64_t gpr[16]; /* rax rbx rbp rdi rsi rdx r8 r9 r10 r12 r13 r14 r15 rsp */
	uint32_t mxcsr;   /* 128 */
	uint16_t fcw;     /* 132 */
	uint8_t pad[58];
	uint8_t vec[32][64]; /* 192: xmm/ymm/zmm n at 192 + 64*n */
	uint64_t k[8];       /* 2240 */
};
_Static_assert(offsetof(struct regs, mxcsr) == 128, "layout");
_Static_assert(offsetof(struct regs, fcw) == 132, "layout");
_Static_assert(offsetof(struct regs, vec) == 192, "layout");
_Static_assert(offsetof(struct regs, k) == 2240, "layout");

static const char *const gpr_names[14] = {
	"rax", "rbx", "rbp", "rdi", "rsi", "rdx", "r8",
	"r9", "r10", "r12", "r13", "r14", "r15", "rsp",
};

long regs_probe(struct regs *want, struct regs *got, char *buf, long mode);

__asm__(
	".text\n"
	".globl regs_probe\n"
	".type regs_probe, @function\n"
	"regs_probe:\n"
	/* rdi = want, rsi = got, rdx = buf, rcx = mode */
	"	push %rbx\n"
	"	push %rbp\n"
	"	push %r12\n"
	"	push %r13\n"
	"	push %r14\n"
	"	push %r15\n"
	"	push %rcx\n"            /* 16(%rsp): mode */
	"	push %rsi\n"            /*  8(%rsp): got */
	"	push %rdx\n"            /*  0(%rsp): buf */
	"	mov %rdi, %r11\n"
	/* vector registers */
	"	cmp $1, %rcx\n"
	"	jae 1f\n"
	"	movdqu 192(%r11), %xmm0\n"
	"	movdqu 256(%r11), %xmm1\n"
	"	movdqu 320(%r11), %xmm2\n"
	"	movdqu 384(%r11), %xmm3\n"
	"	movdqu 448(%r11), %xmm4\n"
	"	movdqu 512(%r11), %xmm5\n"
	"	movdqu 576(%r11), %xmm6\n"
	"	movdqu 640(%r11), %xmm7\n"
	"	movdqu 704(%r11), %xmm8\n"
	"	movdqu 768(%r11), %xmm9\n"
	"	movdqu 832(%r11), %xmm10\n"
	"	movdqu 896(%r11), %xmm11\n"
	"	movdqu 960(%r11), %xmm12\n"
	"	movdqu 1024(%r11), %xmm13\n"
	"	movdqu 1088(%r11), %xmm14\n"
	"	movdqu 1152(%r11), %xmm15\n"
	"	jmp 9f\n"
	"1:	cmp $2, %rcx\n"
	"	jae 2f\n"
	"	vmovdqu 192(%r11), %ymm0\n"
	"	vmovdqu 256(%r11), %ymm1\n"
	"	vmovdqu 320(%r11), %ymm2\n"
	"	vmovdqu 384(%r11), %ymm3\n"
	"	vmovdqu 448(%r11), %ymm4\n"
	"	vmovdqu 512(%r11), %ymm5\n"
	"	vmovdqu 576(%r11), %ymm6\n"
	"	vmovdqu 640(%r11), %ymm7\n"
	"	vmovdqu 704(%r11), %ymm8\n"
	"	vmovdqu 768(%r11), %ymm9\n"
	"	vmovdqu 832(%r11), %ymm10\n"
	"	vmovdqu 896(%r11), %ymm11\n"
	"	vmovdqu 960(%r11), %ymm12\n"
	"	vmovdqu 1024(%r11), %ymm13\n"
	"	vmovdqu 1088(%r11), %ymm14\n"
	"	vmovdqu 1152(%r11), %ymm15\n"
	"	jmp 9f\n"
	"2:\n"
	"	vmovdqu64 192(%r11), %zmm0\n"
	"	vmovdqu64 256(%r11), %zmm1\n"
	"	vmovdqu64 320(%r11), %zmm2\n"
	"	vmovdqu64 384(%r11), %zmm3\n"
	"	vmovdqu64 448(%r11), %zmm4\n"
	"	vmovdqu64 512(%r11), %zmm5\n"
	"	vmovdqu64 576(%r11), %zmm6\n"
	"	vmovdqu64 640(%r11), %zmm7\n"
	"	vmovdqu64 704(%r11), %zmm8\n"
	"	vmovdqu64 768(%r11), %zmm9\n"
	"	vmovdqu64 832(%r11), %zmm10\n"
	"	vmovdqu64 896(%r11), %zmm11\n"
	"	vmovdqu64 960(%r11), %zmm12\n"
	"	vmovdqu64 1024(%r11), %zmm13\n"
	"	vmovdqu64 1088(%r11), %zmm14\n"
	"	vmovdqu64 1152(%r11), %zmm15\n"
	"	vmovdqu64 1216(%r11), %zmm16\n"
	"	vmovdqu64 1280(%r11), %zmm17\n"
	"	vmovdqu64 1344(%r11), %zmm18\n"
	"	vmovdqu64 1408(%r11), %zmm19\n"
	"	vmovdqu64 1472(%r11), %zmm20\n"
	"	vmovdqu64 1536(%r11), %zmm21\n"
	"	vmovdqu64 1600(%r11), %zmm22\n"
	"	vmovdqu64 1664(%r11), %zmm23\n"
	"	vmovdqu64 1728(%r11), %zmm24\n"
	"	vmovdqu64 1792(%r11), %zmm25\n"
	"	vmovdqu64 1856(%r11), %zmm26\n"
	"	vmovdqu64 1920(%r11), %zmm27\n"
	"	vmovdqu64 1984(%r11), %zmm28\n"
	"	vmovdqu64 2048(%r11), %zmm29\n"
	"	vmovdqu64 2112(%r11), %zmm30\n"
	"	vmovdqu64 2176(%r11), %zmm31\n"
	"	cmp $3, %rcx\n"
	"	jae 3f\n"
	"	kmovw 2240(%r11), %k0\n"
	"	kmovw 2248(%r11), %k1\n"
	"	kmovw 2256(%r11), %k2\n"
	"	kmovw 2264(%r11), %k3\n"
	"	kmovw 2272(%r11), %k4\n"
	"	kmovw 2280(%r11), %k5\n"
	"	kmovw 2288(%r11), %k6\n"
	"	kmovw 2296(%r11), %k7\n"
	"	jmp 9f\n"
	"3:\n"
	"	kmovq 2240(%r11), %k0\n"
	"	kmovq 2248(%r11), %k1\n"
	"	kmovq 2256(%r11), %k2\n"
	"	kmovq 2264(%r11), %k3\n"
	"	kmovq 2272(%r11), %k4\n"
	"	kmovq 2280(%r11), %k5\n"
	"	kmovq 2288(%r11), %k6\n"
	"	kmovq 2296(%r11), %k7\n"
	"9:\n"
	/* control registers, general purpose registers */
	"	ldmxcsr 128(%r11)\n"
	"	fldcw 132(%r11)\n"
	"	mov 8(%r11), %rbx\n"
	"	mov 16(%r11), %rbp\n"
	"	mov 48(%r11), %r8\n"
	"	mov 56(%r11), %r9\n"
	"	mov 64(%r11), %r10\n"
	"	mov 72(%r11), %r12\n"
	"	mov 80(%r11), %r13\n"
	"	mov 88(%r11), %r14\n"
	"	mov 96(%r11), %r15\n"
	"	mov %rsp, 104(%r11)\n"   /* want rsp: the same after the call */
	/* read(0, buf, 1): blocks until the test writes a byte */
	"	xor %eax, %eax\n"
	"	xor %edi, %edi\n"
	"	mov (%rsp), %rsi\n"
	"	mov $1, %edx\n"
	"	syscall\n"
	/* rcx and r11 are the only registers syscall may change (and rax) */
	"	mov 8(%rsp), %r11\n"
	"	mov %rax, 0(%r11)\n"
	"	mov %rbx, 8(%r11)\n"
	"	mov %rbp, 16(%r11)\n"
	"	mov %rdi, 24(%r11)\n"
	"	mov %rsi, 32(%r11)\n"
	"	mov %rdx, 40(%r11)\n"
	"	mov %r8, 48(%r11)\n"
	"	mov %r9, 56(%r11)\n"
	"	mov %r10, 64(%r11)\n"
	"	mov %r12, 72(%r11)\n"
	"	mov %r13, 80(%r11)\n"
	"	mov %r14, 88(%r11)\n"
	"	mov %r15, 96(%r11)\n"
	"	mov %rsp, 104(%r11)\n"
	"	stmxcsr 128(%r11)\n"
	"	fnstcw 132(%r11)\n"
	"	mov 16(%rsp), %rcx\n"
	"	cmp $1, %rcx\n"
	"	jae 1f\n"
	"	movdqu %xmm0, 192(%r11)\n"
	"	movdqu %xmm1, 256(%r11)\n"
	"	movdqu %xmm2, 320(%r11)\n"
	"	movdqu %xmm3, 384(%r11)\n"
	"	movdqu %xmm4, 448(%r11)\n"
	"	movdqu %xmm5, 512(%r11)\n"
	"	movdqu %xmm6, 576(%r11)\n"
	"	movdqu %xmm7, 640(%r11)\n"
	"	movdqu %xmm8, 704(%r11)\n"
	"	movdqu %xmm9, 768(%r11)\n"
	"	movdqu %xmm10, 832(%r11)\n"
	"	movdqu %xmm11, 896(%r11)\n"
	"	movdqu %xmm12, 960(%r11)\n"
	"	movdqu %xmm13, 1024(%r11)\n"
	"	movdqu %xmm14, 1088(%r11)\n"
	"	movdqu %xmm15, 1152(%r11)\n"
	"	jmp 9f\n"
	"1:	cmp $2, %rcx\n"
	"	jae 2f\n"
	"	vmovdqu %ymm0, 192(%r11)\n"
	"	vmovdqu %ymm1, 256(%r11)\n"
	"	vmovdqu %ymm2, 320(%r11)\n"
	"	vmovdqu %ymm3, 384(%r11)\n"
	"	vmovdqu %ymm4, 448(%r11)\n"
	"	vmovdqu %ymm5, 512(%r11)\n"
	"	vmovdqu %ymm6, 576(%r11)\n"
	"	vmovdqu %ymm7, 640(%r11)\n"
	"	vmovdqu %ymm8, 704(%r11)\n"
	"	vmovdqu %ymm9, 768(%r11)\n"
	"	vmovdqu %ymm10, 832(%r11)\n"
	"	vmovdqu %ymm11, 896(%r11)\n"
	"	vmovdqu %ymm12, 960(%r11)\n"
	"	vmovdqu %ymm13, 1024(%r11)\n"
	"	vmovdqu %ymm14, 1088(%r11)\n"
	"	vmovdqu %ymm15, 1152(%r11)\n"
	"	jmp 8f\n"
	"2:\n"
	"	vmovdqu64 %zmm0, 192(%r11)\n"
	"	vmovdqu64 %zmm1, 256(%r11)\n"
	"	vmovdqu64 %zmm2, 320(%r11)\n"
	"	vmovdqu64 %zmm3, 384(%r11)\n"
	"	vmovdqu64 %zmm4, 448(%r11)\n"
	"	vmovdqu64 %zmm5, 512(%r11)\n"
	"	vmovdqu64 %zmm6, 576(%r11)\n"
	"	vmovdqu64 %zmm7, 640(%r11)\n"
	"	vmovdqu64 %zmm8, 704(%r11)\n"
	"	vmovdqu64 %zmm9, 768(%r11)\n"
	"	vmovdqu64 %zmm10, 832(%r11)\n"
	"	vmovdqu64 %zmm11, 896(%r11)\n"
	"	vmovdqu64 %zmm12, 960(%r11)\n"
	"	vmovdqu64 %zmm13, 1024(%r11)\n"
	"	vmovdqu64 %zmm14, 1088(%r11)\n"
	"	vmovdqu64 %zmm15, 1152(%r11)\n"
	"	vmovdqu64 %zmm16, 1216(%r11)\n"
	"	vmovdqu64 %zmm17, 1280(%r11)\n"
	"	vmovdqu64 %zmm18, 1344(%r11)\n"
	"	vmovdqu64 %zmm19, 1408(%r11)\n"
	"	vmovdqu64 %zmm20, 1472(%r11)\n"
	"	vmovdqu64 %zmm21, 1536(%r11)\n"
	"	vmovdqu64 %zmm22, 1600(%r11)\n"
	"	vmovdqu64 %zmm23, 1664(%r11)\n"
	"	vmovdqu64 %zmm24, 1728(%r11)\n"
	"	vmovdqu64 %zmm25, 1792(%r11)\n"
	"	vmovdqu64 %zmm26, 1856(%r11)\n"
	"	vmovdqu64 %zmm27, 1920(%r11)\n"
	"	vmovdqu64 %zmm28, 1984(%r11)\n"
	"	vmovdqu64 %zmm29, 2048(%r11)\n"
	"	vmovdqu64 %zmm30, 2112(%r11)\n"
	"	vmovdqu64 %zmm31, 2176(%r11)\n"
	"	cmp $3, %rcx\n"
	"	jae 3f\n"
	"	kmovw %k0, %ecx\n"
	"	mov %rcx, 2240(%r11)\n"
	"	kmovw %k1, %ecx\n"
	"	mov %rcx, 2248(%r11)\n"
	"	kmovw %k2, %ecx\n"
	"	mov %rcx, 2256(%r11)\n"
	"	kmovw %k3, %ecx\n"
	"	mov %rcx, 2264(%r11)\n"
	"	kmovw %k4, %ecx\n"
	"	mov %rcx, 2272(%r11)\n"
	"	kmovw %k5, %ecx\n"
	"	mov %rcx, 2280(%r11)\n"
	"	kmovw %k6, %ecx\n"
	"	mov %rcx, 2288(%r11)\n"
	"	kmovw %k7, %ecx\n"
	"	mov %rcx, 2296(%r11)\n"
	"	jmp 8f\n"
	"3:\n"
	"	kmovq %k0, %rcx\n"
	"	mov %rcx, 2240(%r11)\n"
	"	kmovq %k1, %rcx\n"
	"	mov %rcx, 2248(%r11)\n"
	"	kmovq %k2, %rcx\n"
	"	mov %rcx, 2256(%r11)\n"
	"	kmovq %k3, %rcx\n"
	"	mov %rcx, 2264(%r11)\n"
	"	kmovq %k4, %rcx\n"
	"	mov %rcx, 2272(%r11)\n"
	"	kmovq %k5, %rcx\n"
	"	mov %rcx, 2280(%r11)\n"
	"	kmovq %k6, %rcx\n"
	"	mov %rcx, 2288(%r11)\n"
	"	kmovq %k7, %rcx\n"
	"	mov %rcx, 2296(%r11)\n"
	"8:	vzeroupper\n"
	"9:\n"
	/* back to the ABI defaults of the callee-saved control bits */
	"	push $0x1f80\n"
	"	ldmxcsr (%rsp)\n"
	"	movw $0x037f, (%rsp)\n"
	"	fldcw (%rsp)\n"
	"	add $32, %rsp\n"       /* the control word slot, buf, got, mode */
	"	pop %r15\n"
	"	pop %r14\n"
	"	pop %r13\n"
	"	pop %r12\n"
	"	pop %rbp\n"
	"	pop %rbx\n"
	"	ret\n"
	".size regs_probe, .-regs_probe\n"
);

static struct regs want __attribute__((aligned(64)));
static struct regs got __attribute__((aligned(64)));
static char buf[8];

static uint64_t xs = 0x9e3779b97f4a7c15ull;
static uint64_t xorshift(void)
{
	xs ^= xs << 13;
	xs ^= xs >> 7;
	xs ^= xs << 17;
	return xs;
}

static char report[4096];
static size_t report_len;
static int bad;

static void mismatch(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (report_len < sizeof report - 1) {
		int n = vsnprintf(report + report_len, sizeof report - report_len, fmt, ap);
		if (n > 0)
			report_len += (size_t)n;
		if (report_len > sizeof report - 1)
			report_len = sizeof report - 1;
	}
	va_end(ap);
	bad++;
}

int main(int argc, char **argv)
{
	long mode = 0;
	const char *name = "sse";

	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f")) {
		mode = __builtin_cpu_supports("avx512bw") ? 3 : 2;
		name = mode == 3 ? "avx512bw" : "avx512f";
	} else if (__builtin_cpu_supports("avx")) {
		mode = 1;
		name = "avx";
	}

	if (argc > 1 && atol(argv[1]) < mode) {
		static const char *const names[] = {"sse", "avx", "avx512f"};
		mode = atol(argv[1]) < 0 ? 0 : atol(argv[1]);
		name = names[mode];
	}

	for (int i = 0; i < 13; i++)
		want.gpr[i] = xorshift();
	want.gpr[0] = 1;              /* rax: read returns 1 byte */
	want.gpr[3] = 0;              /* rdi: fd */
	want.gpr[4] = (uint64_t)buf;  /* rsi: buffer */
	want.gpr[5] = 1;              /* rdx: count */
	want.mxcsr = 0x7f80;          /* all exceptions masked, round toward zero */
	want.fcw = 0x0f7f;            /* round toward zero, 64-bit precision */
	for (int i = 0; i < 32; i++)
		for (int j = 0; j < 64; j += 8) {
			uint64_t v = xorshift();
			memcpy(&want.vec[i][j], &v, 8);
		}
	for (int i = 0; i < 8; i++)
		want.k[i] = xorshift();
	if (mode == 2)
		for (int i = 0; i < 8; i++)
			want.k[i] &= 0xffff;

	putf("ready mode=%ld %s\n", mode, name);

	regs_probe(&want, &got, buf, mode);

	for (int i = 0; i < 14; i++)
		if (got.gpr[i] != want.gpr[i])
			mismatch(" %s=%#llx(want %#llx)", gpr_names[i],
				 (unsigned long long)got.gpr[i], (unsigned long long)want.gpr[i]);
	if (got.mxcsr != want.mxcsr)
		mismatch(" mxcsr=%#x(want %#x)", got.mxcsr, want.mxcsr);
	if (got.fcw != want.fcw)
		mismatch(" fcw=%#x(want %#x)", got.fcw, want.fcw);

	int nvec = mode >= 2 ? 32 : 16;
	int width = mode >= 2 ? 64 : mode == 1 ? 32 : 16;
	const char *vname = mode >= 2 ? "zmm" : mode == 1 ? "ymm" : "xmm";
	for (int i = 0; i < nvec; i++)
		for (int j = 0; j < width; j++)
			if (got.vec[i][j] != want.vec[i][j]) {
				mismatch(" %s%d[byte %d]=%#x(want %#x)", vname, i, j,
					 got.vec[i][j], want.vec[i][j]);
				break;
			}
	if (mode >= 2)
		for (int i = 0; i < 8; i++)
			if (got.k[i] != want.k[i])
				mismatch(" k%d=%#llx(want %#llx)", i,
					 (unsigned long long)got.k[i], (unsigned long long)want.k[i]);
	if (buf[0] != 'x')
		mismatch(" data=%#x(want 'x')", (unsigned char)buf[0]);

	if (bad) {
		putf("regs bad%s\n", report);
		return 1;
	}
	put("regs ok\n");
	return 0;
}
