package arm64

import (
	"encoding/binary"

	"github.com/cryo-project/cryo/arch/loaderdata"
)

// LoaderCode is the code of the loader, the first stage of every
// self-restoring executable: image.NewExecutable wraps it in a tiny static
// ELF at the start of the file (image/doc.go draws the layout), and the
// kernel runs it when the file is run as ./app.bin. It opens its own file
// (/proc/self/exe), checks the trailer at its end (the magic, and that
// the file has the size the trailer records: a file cut short anywhere
// fails here), reads the packed restorer into memory and checks its sum
// (image's FNV-1a over 8-byte words), unpacks its lz4 block into a memfd
// (checking every length and offset) and execs the memfd with
// CRYO_IMAGE_FD=<fd of the file> put first in the environment; argv is
// passed on as it is. On any failure it writes one line, "<last part of
// argv[0]>: <what failed>", to fd 2 and exits with status 1: a damaged
// file never runs any of its restorer.
//
// The code is position-independent (adr and ldr-literal references to its
// data, which follows the instructions, aligned to 8 bytes) and calls
// nothing but the kernel. It was assembled by hand; each word below is
// one instruction, labels and comments as in its source.
func LoaderCode() []byte {
	b := make([]byte, 0, 4*len(loaderText))
	for _, w := range loaderText {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	if len(b)%8 != 0 {
		b = binary.LittleEndian.AppendUint32(b, 0xd4200000) // brk #0
	}
	return append(b, loaderdata.Data()...)
}

// loaderText is the loader's instructions.
var loaderText = []uint32{
	// _start:
	// The kernel starts us with sp at argc, argv[], NULL, envp[], NULL.
	// Keep that pointer in x19; below it: 256 bytes of scratch (the
	// trailer at [sp], the writev iovecs at [sp+64], the environment
	// string at [sp+96]).
	0x910003f3, // mov x19, sp
	0xd10403ff, // sub sp, sp, #0x100
	// x20 = openat(AT_FDCWD, "/proc/self/exe", O_RDONLY): this file.
	// Not close-on-exec: the restorer reads its image through it.
	0x92800c60, // mov x0, #-100 (AT_FDCWD)
	0x10001fa1, // adr x1, path_exe
	0xd2800002, // mov x2, #0 (O_RDONLY)
	0xd2800708, // mov x8, #56 (openat)
	0xd4000001, // svc #0
	0xb7f819c0, // tbnz x0, #63, err_open
	0xaa0003f4, // mov x20, x0
	// x21 = lseek(x20, 0, SEEK_END): the file's size.
	0xd2800001, // mov x1, #0
	0xd2800042, // mov x2, #2 (SEEK_END)
	0xd28007c8, // mov x8, #62 (lseek)
	0xd4000001, // svc #0
	0xb7f81940, // tbnz x0, #63, err_read
	0xaa0003f5, // mov x21, x0
	0xf10102bf, // cmp x21, #64
	0x54001923, // b.lo err_trunc
	// pread64(x20, sp, 64, size-64): the trailer.
	0xaa1403e0, // mov x0, x20
	0x910003e1, // mov x1, sp
	0xd2800802, // mov x2, #64
	0xd10102a3, // sub x3, x21, #64
	0xd2800868, // mov x8, #67 (pread64)
	0xd4000001, // svc #0
	0xf101001f, // cmp x0, #64
	0x540017e1, // b.ne err_read
	// The magic, and the file size the trailer records: a file cut
	// short or grown fails here.
	0xf9401fe9, // ldr x9, [sp, #56]
	0x58001c0a, // ldr x10, magic
	0xeb0a013f, // cmp x9, x10
	0x540017a1, // b.ne err_trunc
	0xf94017e9, // ldr x9, [sp, #40]
	0xeb15013f, // cmp x9, x21
	0x54001741, // b.ne err_trunc
	// The restorer (x23 bytes at x26) lies before the trailer and the
	// image, and is a number of 8-byte words that holds at least its
	// 16-byte header.
	0xa9405ffa, // ldp x26, x23, [sp]
	0xd10102a9, // sub x9, x21, #64
	0xeb09035f, // cmp x26, x9
	0x540016c8, // b.hi err_trunc
	0xcb1a0129, // sub x9, x9, x26
	0xeb0902ff, // cmp x23, x9
	0x54001668, // b.hi err_trunc
	0xf10042ff, // cmp x23, #16
	0x54001623, // b.lo err_trunc
	0xf2400aff, // tst x23, #7
	0x540015e1, // b.ne err_trunc
	0x8b170349, // add x9, x26, x23
	0xf9400fea, // ldr x10, [sp, #24]
	0xeb0a013f, // cmp x9, x10
	0x54001568, // b.hi err_trunc
	// x27 = mmap(NULL, x23, PROT_READ|PROT_WRITE,
	// MAP_PRIVATE|MAP_ANONYMOUS, -1, 0), and the packed restorer read
	// into it with one pread64.
	0xd2800000, // mov x0, #0
	0xaa1703e1, // mov x1, x23
	0xd2800062, // mov x2, #3 (PROT_READ|PROT_WRITE)
	0xd2800443, // mov x3, #0x22 (MAP_PRIVATE|MAP_ANONYMOUS)
	0x92800004, // mov x4, #-1
	0xd2800005, // mov x5, #0
	0xd2801bc8, // mov x8, #222 (mmap)
	0xd4000001, // svc #0
	0xb13ffc1f, // cmn x0, #4095 (an error?)
	0x540014a2, // b.hs err_write
	0xaa0003fb, // mov x27, x0
	0xaa1403e0, // mov x0, x20
	0xaa1b03e1, // mov x1, x27
	0xaa1703e2, // mov x2, x23
	0xaa1a03e3, // mov x3, x26
	0xd2800868, // mov x8, #67 (pread64)
	0xd4000001, // svc #0
	0xeb17001f, // cmp x0, x23
	0x540012c1, // b.ne err_read
	// Its sum, over its 8-byte words (FNV-1a: h = (h ^ w) * prime):
	// x24 = sum, x25 = prime.
	0x58001758, // ldr x24, fnv_offset
	0x58001779, // ldr x25, fnv_prime
	0xd2800009, // mov x9, #0
	// sum:
	0xf8696b6a, // ldr x10, [x27, x9]
	0xca0a0318, // eor x24, x24, x10
	0x9b197f18, // mul x24, x24, x25
	0x91002129, // add x9, x9, #8
	0xeb17013f, // cmp x9, x23
	0x54ffff63, // b.lo sum
	0xf9400be9, // ldr x9, [sp, #16]
	0xeb09031f, // cmp x24, x9
	0x54001281, // b.ne err_sum
	// Its header: x28 = the restorer's size (not 0), x24 = the lz4
	// block's (within the rest).
	0xa940637c, // ldp x28, x24, [x27]
	0xb400121c, // cbz x28, err_pack
	0xd10042e9, // sub x9, x23, #16
	0xeb09031f, // cmp x24, x9
	0x540011a8, // b.hi err_pack
	// x22 = memfd_create("cryo-restorer", MFD_CLOEXEC|MFD_EXEC); a
	// kernel before 6.3 knows no MFD_EXEC (EINVAL): without it then.
	0x70001600, // adr x0, name_memfd
	0xd2800221, // mov x1, #0x11 (MFD_CLOEXEC|MFD_EXEC)
	0xd28022e8, // mov x8, #279 (memfd_create)
	0xd4000001, // svc #0
	0xb100581f, // cmn x0, #22 (-EINVAL?)
	0x54000081, // b.ne memfd_done
	0x70001540, // adr x0, name_memfd
	0xd2800021, // mov x1, #1 (MFD_CLOEXEC)
	0xd4000001, // svc #0
	// memfd_done:
	0xb7f80fe0, // tbnz x0, #63, err_memfd
	0xaa0003f6, // mov x22, x0
	// ftruncate(x22, x28), and x25 = mmap(NULL, x28,
	// PROT_READ|PROT_WRITE, MAP_SHARED, x22, 0): the memfd to unpack
	// the restorer into.
	0xaa1c03e1, // mov x1, x28
	0xd28005c8, // mov x8, #46 (ftruncate)
	0xd4000001, // svc #0
	0xb5000f80, // cbnz x0, err_write
	0xd2800000, // mov x0, #0
	0xaa1c03e1, // mov x1, x28
	0xd2800062, // mov x2, #3 (PROT_READ|PROT_WRITE)
	0xd2800023, // mov x3, #1 (MAP_SHARED)
	0xaa1603e4, // mov x4, x22
	0xd2800005, // mov x5, #0
	0xd2801bc8, // mov x8, #222 (mmap)
	0xd4000001, // svc #0
	0xb13ffc1f, // cmn x0, #4095 (an error?)
	0x54000e42, // b.hs err_write
	0xaa0003f9, // mov x25, x0
	// Unpack the lz4 block (x1 to x2) into the memfd (x3, from x25 to
	// x4), checking every length and offset against both ends.
	0x91004361, // add x1, x27, #16
	0x8b180022, // add x2, x1, x24
	0xaa1903e3, // mov x3, x25
	0x8b1c0324, // add x4, x25, x28
	// token: w5 = the next token; x6 = its literals' length.
	// token:
	0xeb02003f, // cmp x1, x2
	0x54000da2, // b.hs err_pack
	0x38401425, // ldrb w5, [x1], #1
	0xd344fca6, // lsr x6, x5, #4
	0xf1003cdf, // cmp x6, #15
	0x540000e1, // b.ne literals
	// lit_len:
	0xeb02003f, // cmp x1, x2
	0x54000ce2, // b.hs err_pack
	0x38401427, // ldrb w7, [x1], #1
	0x8b0700c6, // add x6, x6, x7
	0xf103fcff, // cmp x7, #255
	0x54ffff60, // b.eq lit_len
	// literals:
	0xcb010047, // sub x7, x2, x1
	0xeb0700df, // cmp x6, x7
	0x54000c08, // b.hi err_pack
	0xcb030087, // sub x7, x4, x3
	0xeb0700df, // cmp x6, x7
	0x54000ba8, // b.hi err_pack
	0xb40000a6, // cbz x6, literals_done
	// lit_copy:
	0x38401427, // ldrb w7, [x1], #1
	0x38001467, // strb w7, [x3], #1
	0xf10004c6, // subs x6, x6, #1
	0x54ffffa1, // b.ne lit_copy
	// The last sequence has literals only.
	// literals_done:
	0xeb02003f, // cmp x1, x2
	0x54000380, // b.eq unpacked
	// x7 = the match's offset back, not 0, within what is unpacked.
	0xcb010047, // sub x7, x2, x1
	0xf10008ff, // cmp x7, #2
	0x54000a63, // b.lo err_pack
	0x78402427, // ldrh w7, [x1], #2
	0xb4000a27, // cbz x7, err_pack
	0xcb190069, // sub x9, x3, x25
	0xeb0900ff, // cmp x7, x9
	0x540009c8, // b.hi err_pack
	// x6 = the match's length, 4 more than the token and its bytes say.
	0x92400ca6, // and x6, x5, #15
	0xf1003cdf, // cmp x6, #15
	0x540000e1, // b.ne match
	// match_len:
	0xeb02003f, // cmp x1, x2
	0x54000922, // b.hs err_pack
	0x38401429, // ldrb w9, [x1], #1
	0x8b0900c6, // add x6, x6, x9
	0xf103fd3f, // cmp x9, #255
	0x54ffff60, // b.eq match_len
	// match:
	0x910010c6, // add x6, x6, #4
	0xcb030089, // sub x9, x4, x3
	0xeb0900df, // cmp x6, x9
	0x54000828, // b.hi err_pack
	// Copy it forward a byte at a time: a match may overlap what it
	// copies.
	0xcb070069, // sub x9, x3, x7
	// match_copy:
	0x3840152a, // ldrb w10, [x9], #1
	0x3800146a, // strb w10, [x3], #1
	0xf10004c6, // subs x6, x6, #1
	0x54ffffa1, // b.ne match_copy
	0x17ffffcd, // b token
	// unpacked:
	0xeb04007f, // cmp x3, x4
	0x54000721, // b.ne err_pack
	// munmap(x25, x28): the memfd is exec'd with nothing mapping it.
	0xaa1903e0, // mov x0, x25
	0xaa1c03e1, // mov x1, x28
	0xd2801ae8, // mov x8, #215 (munmap)
	0xd4000001, // svc #0
	// x1 = "CRYO_IMAGE_FD=<x20 in decimal>", written backwards from its
	// NUL at [sp+127].
	0x9101ffe1, // add x1, sp, #127
	0x3900003f, // strb wzr, [x1]
	0xaa1403e0, // mov x0, x20
	0xd2800142, // mov x2, #10
	// itoa:
	0x9ac20803, // udiv x3, x0, x2
	0x9b028064, // msub x4, x3, x2, x0 (x4 = x0 % 10)
	0x9100c084, // add x4, x4, #0x30 ('0')
	0x381ffc24, // strb w4, [x1, #-1]!
	0xaa0303e0, // mov x0, x3
	0xb5ffff60, // cbnz x0, itoa
	0xd1003821, // sub x1, x1, #14
	0x70000a42, // adr x2, env_prefix
	0xf9400043, // ldr x3, [x2]
	0xf9000023, // str x3, [x1]
	0xf8406043, // ldur x3, [x2, #6]
	0xf8006023, // stur x3, [x1, #6]
	// x3 = envp, x4 = its length; the new environment, x1 then
	// envp[0..x4] (with its NULL), goes below sp.
	0xf9400262, // ldr x2, [x19]
	0x8b020e63, // add x3, x19, x2, lsl #3
	0x91004063, // add x3, x3, #16
	0xd2800004, // mov x4, #0
	// count_env:
	0xf8647865, // ldr x5, [x3, x4, lsl #3]
	0xb4000065, // cbz x5, count_done
	0x91000484, // add x4, x4, #1
	0x17fffffd, // b count_env
	// count_done:
	0x91000885, // add x5, x4, #2
	0xcb256fe5, // sub x5, sp, x5, lsl #3
	0x927cecbf, // and sp, x5, #~15
	0xf90003e1, // str x1, [sp]
	0x910023e6, // add x6, sp, #8
	// copy_env:
	0xf8647865, // ldr x5, [x3, x4, lsl #3]
	0xf82478c5, // str x5, [x6, x4, lsl #3]
	0xf1000484, // subs x4, x4, #1
	0x54ffffa5, // b.pl copy_env
	// execveat(x22, "", argv, sp, AT_EMPTY_PATH): returns only on failure.
	0xaa1603e0, // mov x0, x22
	0x50000761, // adr x1, empty
	0x91002262, // add x2, x19, #8
	0x910003e3, // mov x3, sp
	0xd2820004, // mov x4, #0x1000 (AT_EMPTY_PATH)
	0xd2802328, // mov x8, #281 (execveat)
	0xd4000001, // svc #0
	0x10001621, // adr x1, msg_exec
	0x1400000e, // b fail
	// err_open:
	0x300006e1, // adr x1, msg_open
	0x1400000c, // b fail
	// err_read:
	0x50000861, // adr x1, msg_read
	0x1400000a, // b fail
	// err_trunc:
	0x500009c1, // adr x1, msg_trunc
	0x14000008, // b fail
	// err_memfd:
	0x50000f61, // adr x1, msg_memfd
	0x14000006, // b fail
	// err_write:
	0x100010c1, // adr x1, msg_write
	0x14000004, // b fail
	// err_pack:
	0x10001241, // adr x1, msg_pack
	0x14000002, // b fail
	// err_sum:
	0x50000be1, // adr x1, msg_sum
	// fail:
	// x1: a message, its length byte first. Write "<name>: message" in
	// one writev to fd 2, name the last part of argv[0] ("cryo" if
	// there is none), and exit_group(1).
	0x38401422, // ldrb w2, [x1], #1
	0xa9050be1, // stp x1, x2, [sp, #80]
	0x30000460, // adr x0, name_cryo
	0xf9400263, // ldr x3, [x19]
	0xb4000043, // cbz x3, basename
	0xf9400660, // ldr x0, [x19, #8]
	// basename:
	0xaa0003e3, // mov x3, x0
	// scan:
	0x38401404, // ldrb w4, [x0], #1
	0x7100bc9f, // cmp w4, #0x2f ('/')
	0x9a830003, // csel x3, x0, x3, eq
	0x35ffffa4, // cbnz w4, scan
	0xd1000400, // sub x0, x0, #1
	0xcb030004, // sub x4, x0, x3
	0xa90413e3, // stp x3, x4, [sp, #64]
	0xd2800040, // mov x0, #2
	0x910103e1, // add x1, sp, #64
	0xd2800042, // mov x2, #2
	0xd2800848, // mov x8, #66 (writev)
	0xd4000001, // svc #0
	0xd2800020, // mov x0, #1
	0xd2800bc8, // mov x8, #94 (exit_group)
	0xd4000001, // svc #0
	0xd4200000, // brk #0
}
