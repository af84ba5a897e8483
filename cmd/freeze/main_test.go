package main

import "testing"

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // 0: an error
	}{
		{"100", 100},
		{"4k", 4 << 10},
		{"4K", 4 << 10},
		{"256M", 256 << 20},
		{"2MB", 2 << 20},
		{"1GiB", 1 << 30},
		{"3g", 3 << 30},
		{"", 0},
		{"x", 0},
		{"0", 0},
		{"-1", 0},
		{"5T", 0},
		{"1.5G", 0},
		{"M", 0},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSize(tc.in)
			if tc.want == 0 {
				if err == nil {
					t.Errorf("parseSize(%q) = %d, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}
