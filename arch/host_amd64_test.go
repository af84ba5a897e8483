package arch

import "testing"

func TestFindSyscallRespectsBoundaries(t *testing.T) {
	for _, tc := range []struct {
		name string
		code []byte
		at   int
		ok   bool
	}{
		{"plain", []byte{0x90, 0x0f, 0x05, 0xc3}, 1, true},
		// mov eax, 0x050f: the bytes 0f 05 sit inside the immediate.
		{"inside an immediate", []byte{0xb8, 0x0f, 0x05, 0x00, 0x00, 0xc3}, 0, false},
		{"after an immediate", []byte{0xb8, 0x0f, 0x05, 0x00, 0x00, 0x0f, 0x05}, 5, true},
		{"none", []byte{0xc3, 0xc3}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at, ok := findSyscallAMD64(tc.code)
			if ok != tc.ok || (ok && at != tc.at) {
				t.Errorf("found=%v at %d; want found=%v at %d", ok, at, tc.ok, tc.at)
			}
		})
	}
}
