// Package loaderdata is what every arch's loader (arch/amd64, arch/arm64
// LoaderCode) refers to, and what package image, which writes and checks
// the trailer the loaders read, agrees with: one copy for all of them.
// It compiles on any host and imports nothing of cryo.
package loaderdata

import "encoding/binary"

const (
	// Magic ends the trailer of a self-restoring executable whose
	// restorer is packed (a header and an lz4 block: image/doc.go).
	Magic = "CRYOEXE3"
	// SumOffset and SumPrime are the FNV-1a-64 constants of the
	// restorer's sum: h = SumOffset; for each little-endian 8-byte word
	// w: h = (h ^ w) * SumPrime.
	SumOffset = 0xcbf29ce484222325
	SumPrime  = 0x100000001b3
	// Env names the environment variable that hands the restorer the fd
	// of its file.
	Env = "CRYO_IMAGE_FD"
)

// Messages are the loader's failures, each printed after the name it was
// run by, in the order the loaders' code indexes them.
var Messages = []string{
	": cannot start the restorer: cannot open /proc/self/exe\n",                                            // msg_open
	": cannot start the restorer: cannot read this file\n",                                                 // msg_read
	": this image file is truncated or damaged (its end is missing or its size is wrong): copy it again\n", // msg_trunc
	": this image file is damaged (its restorer does not match its checksum): copy it again\n",             // msg_sum
	": cannot start the restorer: memfd_create failed\n",                                                   // msg_memfd
	": cannot start the restorer: cannot write it to memory\n",                                             // msg_write
	": this image file is damaged (its restorer does not unpack): copy it again\n",                         // msg_pack
	": cannot start the restorer: execveat failed\n",                                                       // msg_exec
}

// Data is what the loaders' code refers to, in this order and byte for
// byte as their pc-relative offsets were computed for: magic, fnv_offset,
// fnv_prime, path_exe, name_memfd, name_cryo, empty, env_prefix, then the
// messages msg_open ... msg_exec, each after its length byte (each arch's
// TestLoaderReferences checks every reference).
func Data() []byte {
	le := binary.LittleEndian
	b := []byte(Magic)
	b = le.AppendUint64(b, SumOffset)
	b = le.AppendUint64(b, SumPrime)
	b = append(b, "/proc/self/exe\x00cryo-restorer\x00cryo\x00\x00"...)
	b = append(b, Env+"="...)
	for _, m := range Messages {
		b = append(b, byte(len(m)))
		b = append(b, m...)
	}
	return b
}

// Items names the offset in Data of each thing the loaders' code refers
// to, for each arch's test of its references.
func Items() map[int]string {
	items := map[int]string{}
	off := 0
	for _, it := range []struct {
		name string
		size int
	}{{"magic", 8}, {"fnv_offset", 8}, {"fnv_prime", 8}, {"path_exe", 15}, {"name_memfd", 14},
		{"name_cryo", 5}, {"empty", 1}, {"env_prefix", len(Env) + 1}} {
		items[off] = it.name
		off += it.size
	}
	for i, name := range []string{"msg_open", "msg_read", "msg_trunc", "msg_sum", "msg_memfd", "msg_write", "msg_pack", "msg_exec"} {
		items[off] = name
		off += 1 + len(Messages[i])
	}
	return items
}
