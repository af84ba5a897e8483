//go:build linux && (amd64 || arm64)

package arch

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch/loaderdata"
	"github.com/cryo-project/cryo/image"
)

// envLoaderChild makes the test binary, started by the loader from its
// memfd, report what it was given (loaderChild) instead of testing.
const envLoaderChild = "CRYO_ARCH_LOADER_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(envLoaderChild) == "1" {
		os.Exit(loaderChild())
	}
	os.Exit(m.Run())
}

// childReport is what loaderChild prints.
type childReport struct {
	Exe     string   // readlink /proc/self/exe
	Args    []string // argv
	Env     []string // the environment as execve passed it
	FD      int      // CRYO_IMAGE_FD
	FDPath  string   // readlink /proc/self/fd/FD
	FDFlags int      // fcntl F_GETFD
}

func loaderChild() int {
	var r childReport
	r.Exe, _ = os.Readlink("/proc/self/exe")
	r.Args = os.Args
	r.Env = os.Environ()
	fmt.Sscan(os.Getenv(image.EnvImageFD), &r.FD)
	r.FDPath, _ = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", r.FD))
	r.FDFlags, _ = unix.FcntlInt(uintptr(r.FD), unix.F_GETFD, 0)
	if err := json.NewEncoder(os.Stdout).Encode(&r); err != nil {
		return 3
	}
	return 0
}

// loaderExecutable writes an executable with this host's loader, this
// test binary (packed) as its restorer and a few bytes standing in for the image
// (the loader does not read the image).
func loaderExecutable(t *testing.T) (path string, data []byte, loaderSize int, restorerEnd int64) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "app.bin")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	packed, err := image.PackRestorer(self, false)
	if err != nil {
		t.Fatal(err)
	}
	e, err := image.NewExecutable(f, Current.Loader, packed)
	if err != nil {
		t.Fatal(err)
	}
	img := []byte("an image stream would be here")
	if _, err := e.Write(img); err != nil {
		t.Fatal(err)
	}
	if err := e.Finish(int64(len(img))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The loader ELF ends with its program headers: e_phoff + 2 * 56.
	loaderSize = int(binary.LittleEndian.Uint64(data[32:])) + 2*56
	restorerEnd = int64(len(data)) - 64 - int64(len(img))
	return path, data, loaderSize, restorerEnd
}

// TestLoaderRuns: run as a program, the loader execs the restorer from a
// memfd with the same argv, the fd of its file first in the environment
// (not close-on-exec) and the rest of the environment as it was.
func TestLoaderRuns(t *testing.T) {
	path, _, _, _ := loaderExecutable(t)
	cmd := exec.Command(path)
	cmd.Args = []string{"/some/where/app.bin", "one", "two"}
	cmd.Env = []string{envLoaderChild + "=1", "A=b"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	var r childReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %q", err, out)
	}
	t.Logf("%+v", r)
	if !strings.HasPrefix(r.Exe, "/memfd:cryo-restorer") {
		t.Errorf("the restorer runs from %q, want the memfd cryo-restorer", r.Exe)
	}
	if strings.Join(r.Args, " ") != strings.Join(cmd.Args, " ") {
		t.Errorf("argv %q, want %q", r.Args, cmd.Args)
	}
	want := append([]string{fmt.Sprintf("%s=%d", image.EnvImageFD, r.FD)}, cmd.Env...)
	if strings.Join(r.Env, "\n") != strings.Join(want, "\n") {
		t.Errorf("environment %q, want %q", r.Env, want)
	}
	if r.FD < 3 || r.FDPath != path {
		t.Errorf("%s=%d names %q, want the file %s", image.EnvImageFD, r.FD, r.FDPath, path)
	}
	if r.FDFlags&unix.FD_CLOEXEC != 0 {
		t.Errorf("fd %d is close-on-exec: it would not have reached the restorer", r.FD)
	}
}

// runLoader runs the file at path as argv0 and returns its stderr; exec
// failing (ENOEXEC, EIO) is returned as err.
func runLoader(t *testing.T, path, argv0 string) (stderr string, st *os.ProcessState, err error) {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Args = []string{argv0}
	cmd.Env = []string{envLoaderChild + "=1"}
	var b strings.Builder
	cmd.Stderr = &b
	err = cmd.Run()
	if cmd.ProcessState == nil {
		return "", nil, err
	}
	return b.String(), cmd.ProcessState, nil
}

// TestLoaderRefuses: cut anywhere, grown or with its restorer changed,
// the file fails with one line on stderr and exit status 1, or (cut
// inside the loader) does not exec at all; never a signal.
func TestLoaderRefuses(t *testing.T) {
	path, data, loaderSize, restorerEnd := loaderExecutable(t)
	size := len(data)
	type tcase struct {
		name string
		file []byte
		msg  string
	}
	var cases []tcase
	for _, cut := range []int{1, 4, 20, 52, 63, 64, 65, loaderSize / 2, loaderSize - 56, loaderSize - 1,
		loaderSize, 4095, 4096, 4097, 4096 + 8*1000, int(restorerEnd) / 2, int(restorerEnd) - 1,
		int(restorerEnd), int(restorerEnd) + 1, size - 64, size - 60, size - 8, size - 1} {
		cases = append(cases, tcase{fmt.Sprintf("cut at %d", cut), data[:cut], "truncated or damaged"})
	}
	flip := func(off int) []byte {
		b := append([]byte(nil), data...)
		b[off] ^= 0x40
		return b
	}
	cases = append(cases,
		tcase{"grown", append(append([]byte(nil), data...), 0), "truncated or damaged"},
		tcase{"restorer changed at its start", flip(4096), "damaged (its restorer does not match"},
		tcase{"restorer changed", flip(int(restorerEnd) / 2), "damaged (its restorer does not match"},
		tcase{"restorer padding changed", flip(int(restorerEnd) - 1), "damaged (its restorer does not match"},
		tcase{"trailer's file size", flip(size - 64 + 40), "truncated or damaged"},
		// The restorer changed and its sum with it: what the loader
		// checks after the sum, as a cryo that packed it wrong would
		// make it.
		tcase{"restorer's size 0", resum(data, func(b []byte) { binary.LittleEndian.PutUint64(b[4096:], 0) }), "damaged (its restorer does not unpack"},
		tcase{"restorer's size one more", resum(data, func(b []byte) { binary.LittleEndian.PutUint64(b[4096:], binary.LittleEndian.Uint64(b[4096:])+1) }), "damaged (its restorer does not unpack"},
		tcase{"restorer's size one less", resum(data, func(b []byte) { binary.LittleEndian.PutUint64(b[4096:], binary.LittleEndian.Uint64(b[4096:])-1) }), "damaged (its restorer does not unpack"},
		tcase{"restorer's block past its end", resum(data, func(b []byte) { binary.LittleEndian.PutUint64(b[4096+8:], uint64(restorerEnd)) }), "damaged (its restorer does not unpack"},
		tcase{"restorer's block cut", resum(data, func(b []byte) { binary.LittleEndian.PutUint64(b[4096+8:], binary.LittleEndian.Uint64(b[4096+8:])-1) }), "damaged (its restorer does not unpack"},
		tcase{"restorer's block longer", resum(data, func(b []byte) { binary.LittleEndian.PutUint64(b[4096+8:], binary.LittleEndian.Uint64(b[4096+8:])+1) }), "damaged (its restorer does not unpack"},
		tcase{"restorer's match offset 0", resum(data, zeroFirstOffset), "damaged (its restorer does not unpack"},
		tcase{"trailer's magic", flip(size - 1), "truncated or damaged"},
	)
	bad := filepath.Join(filepath.Dir(path), "bad.bin")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(bad, tc.file, 0o700); err != nil {
				t.Fatal(err)
			}
			stderr, st, err := runLoader(t, bad, "/any/dir/name.bin")
			if st == nil {
				// The kernel refused the file: only a cut inside the
				// loader may get there.
				if len(tc.file) >= loaderSize || !(errors.Is(err, syscall.ENOEXEC) || errors.Is(err, syscall.EIO)) {
					t.Fatalf("exec: %v", err)
				}
				t.Logf("exec: %v", err)
				return
			}
			ws := st.Sys().(syscall.WaitStatus)
			if ws.Signaled() || ws.ExitStatus() != 1 {
				t.Fatalf("%v, want exit status 1; stderr %q", st, stderr)
			}
			want := "name.bin: this image file is "
			if !strings.HasPrefix(stderr, want) || !strings.Contains(stderr, tc.msg) || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
				t.Fatalf("stderr %q, want one line %q...%q", stderr, want, tc.msg)
			}
			t.Logf("%s", strings.TrimSpace(stderr))
		})
	}
}

// resum returns data changed by f in its restorer, with the restorer sum
// in the trailer made to match again (the loader checks no crc).
func resum(data []byte, f func(b []byte)) []byte {
	b := append([]byte(nil), data...)
	f(b)
	le := binary.LittleEndian
	tr := b[len(b)-64:]
	off, n := le.Uint64(tr), le.Uint64(tr[8:])
	h := uint64(loaderdata.SumOffset)
	for i := off; i < off+n; i += 8 {
		h = (h ^ le.Uint64(b[i:])) * loaderdata.SumPrime
	}
	le.PutUint64(tr[16:], h)
	return b
}

// zeroFirstOffset sets the offset of the lz4 block's first match to 0,
// which no block may hold.
func zeroFirstOffset(b []byte) {
	p := 4096 + 16
	tok := int(b[p])
	p++
	lit := tok >> 4
	if lit == 15 {
		for {
			c := int(b[p])
			p++
			lit += c
			if c != 255 {
				break
			}
		}
	}
	p += lit
	b[p], b[p+1] = 0, 0
}

// The loader names itself by the last part of argv[0].
func TestLoaderName(t *testing.T) {
	path, data, _, _ := loaderExecutable(t)
	if err := os.WriteFile(path, data[:len(data)-1], 0o700); err != nil {
		t.Fatal(err)
	}
	for argv0, want := range map[string]string{"plain": "plain: ", "./x/y.bin": "y.bin: ", "dir/": ": ", "": ": "} {
		stderr, st, err := runLoader(t, path, argv0)
		if err != nil || st.ExitCode() != 1 || !strings.HasPrefix(stderr, want+"this image") {
			t.Errorf("argv[0] %q: %v %v, stderr %q; want it to start with %q", argv0, err, st, stderr, want)
		}
	}
}
