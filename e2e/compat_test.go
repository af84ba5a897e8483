package e2e

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/image"
)

// rewriteImage copies the executable in to out with its image re-encoded
// through editMeta and editPages (either may be nil): a way to make an
// image from another machine without that machine.
func rewriteImage(t *testing.T, in, out string, editMeta func(*image.Process), editPages func(vaddr uint64, data []byte)) {
	t.Helper()
	r, p := openImage(t, in)
	o, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	// The same loader and restorer as freeze writes.
	exe, err := image.NewExecutable(o, arch.Current.Loader, freezeRestorer(t))
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(exe)
	w, err := image.NewWriter(bw, r.Arch(), r.PageSize())
	if err != nil {
		t.Fatal(err)
	}
	if editMeta != nil {
		editMeta(p)
	}
	if err := w.WriteMeta(p); err != nil {
		t.Fatal(err)
	}
	for {
		vaddr, data, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if editPages != nil {
			editPages(vaddr, data)
		}
		if err := w.WritePages(vaddr, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.CloseWithTail(r.Tail()); err != nil {
		t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := exe.Finish(w.Written()); err != nil {
		t.Fatal(err)
	}
}

// freezeRestorer returns the packed restorer freeze puts in its images:
// the one attached to it, else (built without one) freeze itself.
func freezeRestorer(t *testing.T) []byte {
	t.Helper()
	f, err := os.Open(freezeBin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	packed, err := image.AttachedRestorer(f)
	if errors.Is(err, image.ErrNoRestorer) {
		var prog []byte
		if prog, err = io.ReadAll(f); err == nil {
			packed, err = image.PackRestorer(prog, false)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return packed
}

// frozenPipe freezes a pipe victim and returns its image.
func frozenPipe(t *testing.T) string {
	t.Helper()
	p := startProc(t, "pipe", buildVictim(t, "pipe"), nil)
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	img := filepath.Join(t.TempDir(), "pipe.bin")
	freezeKill(t, p, img)
	return img
}

// TestThawOnAnotherMachine: images made as if on another machine. A CPU
// lacking a feature the process may use is refused unless overridden;
// another kernel's vdso, or another CPU's xsave layout, is refused before
// anything is changed; nothing is left running.
func TestThawOnAnotherMachine(t *testing.T) {
	setup(t)
	img := frozenPipe(t)
	dir := filepath.Dir(img)

	cpu := filepath.Join(dir, "cpu.bin")
	rewriteImage(t, img, cpu, func(p *image.Process) {
		p.CPUFeatures = append(p.CPUFeatures, "avx1024f")
	}, nil)
	requireToolError(t, runTool(t, cpu), 1, []string{"cpu.bin: "}, "lacks", "avx1024f")
	requireToolError(t, runTool(t, thawBin, cpu), 1, []string{"thaw: "}, "lacks", "avx1024f")
	th := startProc(t, "thaw --ignore-cpu", thawBin, []string{"--ignore-cpu", cpu})
	th.ask("forced", "got forced")

	// A vdso that is no ELF cannot be proxied (restore/vdso.go): refused
	// by name, before anything changes. (Another kernel's vdso thaws:
	// TestVDSOProxy here, make test-migrate across kernels.)
	kernel := filepath.Join(dir, "kernel.bin")
	rewriteImage(t, img, kernel, func(p *image.Process) {
		p.Kernel = "0.0.0-elsewhere"
		if len(p.VDSO) < 101 {
			t.Fatal("the image has no vdso")
		}
		p.VDSO[0] ^= 0xff
	}, nil)
	requireToolError(t, runTool(t, kernel), 1, []string{"thaw: "}, "frozen vdso", "0.0.0-elsewhere")

	xsave := filepath.Join(dir, "xsave.bin")
	rewriteImage(t, img, xsave, func(p *image.Process) {
		p.Threads[0].FPU = append(p.Threads[0].FPU, make([]byte, 64)...)
	}, nil)
	requireToolError(t, runTool(t, xsave), 1, []string{"thaw: "}, "xsave area", "bytes")
	// An image without a recorded layout needs an area of this size.
	xsaveOld := filepath.Join(dir, "xsave-old.bin")
	rewriteImage(t, img, xsaveOld, func(p *image.Process) {
		p.XSave = nil
		p.Threads[0].FPU = append(p.Threads[0].FPU, make([]byte, 64)...)
	}, nil)
	requireToolError(t, runTool(t, xsaveOld), 1, []string{"thaw: "}, "FPU", "bytes")

	// The untouched image still thaws.
	ok := thaw(t, img, false)
	ok.ask("still", "got still")
}

// TestUnsupportedMapping: System V shared memory is refused at freeze
// with a clear error; the target goes on.
func TestUnsupportedMapping(t *testing.T) {
	setup(t)
	p := startProc(t, "sysvshm", buildVictim(t, "sysvshm"), nil)
	p.expect("ready")
	waitInSyscall(t, p, sysRead)
	dir := t.TempDir()
	r := runTool(t, freezeBin, "-o", filepath.Join(dir, "shm.bin"), strconv.Itoa(p.pid()))
	requireToolError(t, r, 1, []string{"freeze: "}, "System V shared memory", "unsupported")
	requireNoOutput(t, dir)
	p.requireUndisturbed()
	p.ask("ping", "pong")
}

// TestThawXCR0: an image without a recorded XSAVE layout whose XCR0
// names a state component this CPU lacks (bit 62, never defined) is
// refused before anything changes.
func TestThawXCR0(t *testing.T) {
	requireAMD64(t)
	setup(t)
	img := frozenPipe(t)
	var xcr0 uint64
	bad := filepath.Join(filepath.Dir(img), "xcr0.bin")
	rewriteImage(t, img, bad, func(p *image.Process) {
		xcr0 = p.XSaveMask
		p.XSave = nil
		p.XSaveMask |= 1 << 62
	}, nil)
	if xcr0&0x3 != 0x3 {
		t.Errorf("recorded XCR0 %#x lacks x87 and SSE: not read from the right place", xcr0)
	}
	requireToolError(t, runTool(t, bad), 1, []string{"thaw: "}, "XSAVE", "component-62")
}
