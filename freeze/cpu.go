package freeze

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cryo-project/cryo/arch/amd64"
	"github.com/cryo-project/cryo/cpu"
	"github.com/cryo-project/cryo/image"
)

// recordCPU records the CPU features the process may rely on: this CPU's,
// less what its start-up environment switched off (package cpu).
func (f *freezer) recordCPU(p *image.Process) error {
	host, err := cpu.HostFeatures()
	if err != nil {
		return fmt.Errorf("read CPU features: %w", err)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", f.pid))
	if err != nil {
		return fmt.Errorf("read the environment of pid %d: %w", f.pid, err)
	}
	var environ []string
	for _, kv := range bytes.Split(env, []byte{0}) {
		if len(kv) > 0 {
			environ = append(environ, string(kv))
		}
	}
	rt := runtimesOf(f.pid, p.VMAs)
	rec, err := cpu.Relied(archName(p.Arch), host, environ, rt)
	if err != nil {
		return fmt.Errorf("pid %d: %w", f.pid, err)
	}
	p.CPUFeatures, p.CPUFeaturesOff, p.CPURuntimes = rec.Features, rec.Off, rt.Names()
	f.logf("CPU: %d features recorded, %d switched off (glibc %v, Go %v)", len(rec.Features), len(rec.Off), rt.Glibc, rt.Go)
	return nil
}

func archName(a image.Arch) string {
	if a == image.ArchARM64 {
		return "arm64"
	}
	return "amd64"
}

// runtimesOf finds the runtimes that chose CPU features in the process:
// glibc if libc.so.6 is mapped or, in a static program, its tunables'
// names are in the program; Go if the program has Go build info.
func runtimesOf(pid int, vmas []image.VMA) cpu.Runtimes {
	var rt cpu.Runtimes
	dynamic := false
	for _, v := range vmas {
		b := filepath.Base(v.Path)
		if strings.HasPrefix(b, "ld-linux") || strings.HasPrefix(b, "ld64.so") {
			dynamic = true
		}
		if strings.HasPrefix(b, "libc.so.") || strings.HasPrefix(b, "libc-2.") {
			rt.Glibc = true
		}
	}
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	if _, err := buildinfo.ReadFile(exe); err == nil {
		rt.Go = true
	} else if !rt.Glibc && !dynamic {
		rt.Glibc = holds(exe, []byte("glibc.cpu.hwcaps"))
	}
	return rt
}

// holds tells whether the file at path contains needle (false if it
// cannot be read): a static program links glibc's tunables table in.
func holds(path string, needle []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	keep := 0 // the previous chunk's tail, where a match may begin
	for {
		n, err := f.Read(buf[keep:])
		end := keep + n
		if bytes.Contains(buf[:end], needle) {
			return true
		}
		if err != nil {
			return false
		}
		keep = min(len(needle)-1, end)
		copy(buf, buf[end-keep:end])
	}
}

// recordXSave (amd64) records the layout the threads' XSAVE areas are
// in, this CPU's, and the components they hold in use. A layout CPUID
// describes differently from the kernel's areas is not recorded: the
// image then thaws only where the area has the same size.
func (f *freezer) recordXSave(p *image.Process) error {
	p.XSaveMask = amd64.AreaXCR0(p.Threads[0].FPU)
	l, err := cpu.HostXSave()
	if err != nil || l == nil {
		return err
	}
	for _, th := range p.Threads {
		if len(th.FPU) != l.Size || amd64.AreaXCR0(th.FPU) != l.XCR0 {
			f.logf("xsave: thread %d's area is %d bytes with XCR0 %#x, CPUID says %d and %#x: layout not recorded",
				th.Tid, len(th.FPU), amd64.AreaXCR0(th.FPU), l.Size, l.XCR0)
			return nil
		}
		p.XSaveInUse |= amd64.XSaveInUse(th.FPU, l)
	}
	p.XSave = &image.XSaveLayout{Size: l.Size, XCR0: l.XCR0}
	for _, c := range l.Components {
		p.XSave.Components = append(p.XSave.Components, image.XSaveComponent{Feature: c.Feature, Offset: c.Offset, Size: c.Size})
	}
	f.logf("xsave: %d bytes, XCR0 %#x, in use: %s", l.Size, l.XCR0, amd64.XFeatureNames(p.XSaveInUse|amd64.XStateBV(p.Threads[0].FPU)&3))
	return nil
}
