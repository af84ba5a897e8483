package restore

import "testing"

func TestAnonName(t *testing.T) {
	for _, tc := range []struct {
		path, name string
		ok         bool
	}{
		{"[anon:arena 1]", "arena 1", true},
		{"[anon_shmem:ring]", "ring", true},
		{"[anon:]", "", true},
		{"", "", false},
		{"[heap]", "", false},
		{"[stack]", "", false},
		{"/usr/lib/libc.so.6", "", false},
		{"[anon:unterminated", "", false},
	} {
		name, ok := anonName(tc.path)
		if name != tc.name || ok != tc.ok {
			t.Errorf("anonName(%q) = %q, %v; want %q, %v", tc.path, name, ok, tc.name, tc.ok)
		}
	}
}
