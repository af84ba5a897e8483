// Package image defines the cryo image: the stream that records a frozen
// process, and the self-restoring executable that carries it.
//
// # The executable
//
// cryo's output is one file that runs the process it holds: a tiny
// loader, the restorer (cmd/restorer, packed), the image, and a
// fixed-size trailer at the very end (NewExecutable, OpenEmbedded).
//
//	offset 0
//	+--------------------------------+
//	| loader ELF    about 1.4 KiB    |  code from arch/*/loader.go; its program
//	|   ELF header, code,            |  headers come last: cut anywhere in it,
//	|   program headers              |  the file fails to exec (ENOEXEC, EIO)
//	| zeros up to 4096               |
//	+--------------------------------+  <- restorer offset (4096)
//	| restorer size        uint64    |  the packed restorer (PackRestorer),
//	| lz4 block size       uint64    |  padded with zeros to a multiple
//	| lz4 block                      |  of 4096 (restorer length)
//	| zeros up to a multiple of 4096 |
//	+--------------------------------+  <- image offset
//	| image header         28 bytes  |  \
//	| PROCESS record                 |   |
//	| THREAD record ...              |   |
//	| BLOB record ...                |   |  the image stream
//	| PAGES record ...               |   |  (image length bytes)
//	| TAIL record (optional)         |   |
//	| END record                     |  /
//	+--------------------------------+  <- file size - 64
//	| trailer              64 bytes  |
//	+--------------------------------+
//
//	trailer:
//	 0  restorer offset        uint64
//	 8  restorer length        uint64  a multiple of 8
//	16  restorer sum           uint64  see below
//	24  image offset           uint64
//	32  image length           uint64
//	40  file size              uint64  the whole file, trailer included
//	48  crc32c of bytes 0-47   uint32
//	52  zero                   uint32
//	56  magic "CRYOEXE3"       8 bytes
//
// The restorer sum is FNV-1a-64 over the restorer's little-endian 8-byte
// words: h = 0xcbf29ce484222325, then h = (h ^ w) * 0x100000001b3 for
// each word w.
//
// Run as ./app.bin, the kernel starts the loader. It opens /proc/self/exe
// (this file) and checks the trailer's magic and that the file has the
// size the trailer records, so that a file cut short anywhere, or grown,
// is refused; reads the packed restorer, checking its sum; unpacks its
// lz4 block into a memfd, checking every length and offset (a block that
// does not unpack is refused as damaged); and execs the memfd (execveat, AT_EMPTY_PATH) with the same argv and
// CRYO_IMAGE_FD=<the fd of this file> put first in the environment (the
// restorer takes the fd and removes the variable, EnvImageFD). Any failure
// is one line on stderr and exit status 1: nothing of a damaged file runs
// but the loader. thaw app.bin (OpenEmbedded) checks the same and more:
// the trailer's crc32c, that the parts lie in this order, the restorer's
// sum. The trailer sits at a fixed place from the end so that nothing
// before it has to be patched once written: the file can be streamed.
//
// A stream (freeze -o - | thaw -) is read front to back instead
// (SkipToImage, StreamHead.NewReader): the loader page, which must look
// like one; the restorer's pages, summed, up to the first page that
// starts with a valid image header (magic and checksum; a newer
// version's magic is reported as such); the image; then the trailer,
// which must describe what was read (restorer length and sum, image
// length, file size) and be the stream's last byte. Nothing of a stream
// can be trusted before its end: the reader returns io.EOF from Next only
// once the END record and the trailer have been checked. The packed
// restorer of a stream is summed, never unpacked: the thawing side's own
// thaw restores.
//
// # The restorer
//
// The restorer is cmd/restorer: the thaw and nothing else (no command
// line, no freeze, no instruction decoder), built stripped (-s -w,
// -trimpath). On amd64 it is 3.48 MB and packs with lz4's HC mode to
// 1.77 MB; the whole freeze binary, which images carried before, took
// 8.9 MB (a 100 KB counter made a 10.3 MB file, now 3.1 MB). lz4,
// because cryo already uses it for the pages and its block format
// unpacks with a few dozen hand-written instructions per arch: the
// loader does it, and a stronger format (xz packs the restorer to 1.3 MB)
// would need a decoder too big to write and check by hand. Unpacking
// costs the loader about 4 ms of CPU. make packs the restorer once and
// attaches it to bin/freeze (AttachRestorer: the packed restorer and a
// 24-byte footer after the ELF), where freeze finds it
// (AttachedRestorer); a freeze built without make (go build, go
// install) has none and carries itself, packed at each freeze with lz4's
// fast mode: larger (5.9 MB), but the image still thaws alone. Attaching
// after the link, rather than go:embed, keeps the source tree free of
// build products and a freeze from carrying a restorer older than itself.
//
// Files written before the restorer was packed end with "CRYOEXE2" and
// carry the restorer as it is; their own loaders run them, and thaw
// reads them.
//
// A file without the magic is no executable of cryo's (the plain
// restorer: ErrNoImage), or one cut short if it starts with a loader
// (ErrTruncated), or one written by a cryo from before the loader, which
// ended with a 32-byte trailer and the magic "CRYOEXE\x00" (ErrOldFormat).
//
// # The image stream
//
// All integers are little-endian; checksums are CRC-32C (Castagnoli).
//
//	header (28 bytes):
//	 0  magic "CRYOIMG\x00"    8 bytes
//	 8  format version         uint32  (Version)
//	12  architecture           uint32  (Arch)
//	16  page size              uint32  power of two, 4096 to 65536
//	20  flags                  uint32  none defined, must be 0
//	24  crc32c of bytes 0-23   uint32
//
//	record:
//	 0  type                   uint32  1 PROCESS, 2 PAGES, 3 END, 4 TAIL,
//	                                   5 THREAD, 6 BLOB
//	 4  payload length         uint32
//	 8  crc32c of the payload  uint32
//	12  payload
//
//	PROCESS payload: the Process, encoded as JSON (at most 64 MiB): the
//	per-process state (memory map, file table, signal handlers, creds,
//	limits, timers...). Its "threads" says how many THREAD records follow.
//
//	THREAD payload: one Thread, JSON: registers, FPU/xsave, TLS, signal
//	mask, sigaltstack, tid address, robust list, rseq, scheduling.
//
//	BLOB payload: bulk bytes that are not pages (pipe buffers, contents of
//	unlinked files), referenced by id from the metadata:
//	 0  blob id                uint64  > 0
//	 8  offset in the blob     uint64  the blob's bytes so far
//	16  data                           at most MaxPagesChunk bytes
//	A blob's records are consecutive and in order; a blob id named in the
//	metadata must have its records.
//
//	TAIL payload: the Tail, JSON: state read after the pages were written
//	(the signals pending when the freeze ended). At most one, after the
//	last PAGES record.
//
//	PAGES payload:
//	 0  address of first page  uint64  page-aligned
//	 8  page count             uint32  > 0
//	12  raw length             uint32  page count * page size, at most MaxPagesChunk
//	16  compression            uint32  0 none, 1 lz4 block
//	20  data                           raw length bytes, or the lz4 block
//
//	END payload:
//	 0  number of PAGES records  uint64
//	 8  total number of pages    uint64
//	16  number of BLOB records   uint64
//	24  total blob bytes         uint64
//
// An image is the header, exactly one PROCESS record, the THREAD records
// it announces, any number of BLOB records, any number of PAGES records,
// at most one TAIL record and one END record, and nothing after it. The
// pages of a PAGES record lie inside one VMA of the metadata. Records are
// numbered from 0 (PROCESS) in error messages.
//
// # Version 2
//
// Version 1 had one META record with a single thread and a flat list of
// fds, and carried the vdso as its first page records. Version 2 splits
// the process from its threads, holds open file descriptions apart from
// the fds pointing at them (so that fds sharing one share it again after
// thaw), adds blobs, and carries the vdso in the metadata. Every field of
// the metadata has an explicit JSON name (TestJSONNamesExplicit), and
// testdata/format-v2.json pins them (TestJSONGolden): renaming a Go field
// cannot silently drop it from older images. A version 1 image is refused
// with a one-line error naming both versions.
//
// # Design
//
// The metadata is JSON: it is small next to the pages (kilobytes against
// megabytes), so its encoding costs nothing that matters; fields can be
// added without breaking older images; it can be read with any tool when
// debugging a failed thaw; and encoding/json is robust against hostile
// input, which keeps the reader safe to fuzz. Only the bulk data, the
// pages, has a binary layout.
//
// Every record carries its own checksum, and the header its own, so that
// damage is found before the restorer acts on it and reported precisely
// ("record #12 (PAGES) is corrupt") rather than as a failed thaw. The END
// record repeats how many records and pages came before it, so an image
// cut exactly at a record boundary is still found to be truncated.
//
// Pages travel in chunks of at most 16 MiB so that neither side needs
// memory in proportion to the process: the writer streams, holding a
// few chunks at a time, and the reader allocates at most one chunk,
// whatever lengths a damaged image claims. The Writer makes 1 MiB chunks
// (lz4 only looks back 64 KiB, so larger chunks would not compress
// better), compressing them concurrently. A chunk is stored lz4-compressed
// only when that makes it smaller, so incompressible data costs only the
// time of the attempt.
//
// Every length and count is checked against these limits before the
// reader allocates anything for it, and the version is checked first:
// an image from a newer cryo is reported as such, not as corrupt.
package image
