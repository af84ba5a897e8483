package freeze

import (
	"bytes"
	"math/rand"
	"testing"
)

// holdWriter passes on all but the last 64 bytes, whatever the pieces.
func TestHoldWriter(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, size := range []int{0, 1, 63, 64, 65, 200, 5000} {
		data := make([]byte, size)
		rng.Read(data)
		for _, maxPiece := range []int{1, 7, 64, 100, 6000} {
			var out bytes.Buffer
			h := &holdWriter{w: &out}
			for rest := data; len(rest) > 0; {
				n := min(len(rest), 1+rng.Intn(maxPiece))
				if k, err := h.Write(rest[:n]); k != n || err != nil {
					t.Fatalf("Write: %d, %v", k, err)
				}
				rest = rest[n:]
			}
			if want := data[:max(0, size-trailerSize)]; !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("size %d, pieces up to %d: %d bytes out before release, want %d", size, maxPiece, out.Len(), len(want))
			}
			if err := h.release(); err != nil || !bytes.Equal(out.Bytes(), data) {
				t.Fatalf("size %d, pieces up to %d: after release %d bytes, want all %d", size, maxPiece, out.Len(), size)
			}
		}
	}
}
