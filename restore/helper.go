package restore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/arch/amd64"
	"github.com/cryo-project/cryo/cpu"
	"github.com/cryo-project/cryo/files"
	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/inject"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/ptrace"
)

// runHelper is the restore helper: it seizes the thawing process before
// it execs the stub, then rebuilds the frozen process inside it with
// injected syscalls and process_vm_writev, and lets it go.
func runHelper() int {
	pid, perr := strconv.Atoi(os.Getenv(envPid))
	stub, serr := strconv.ParseUint(os.Getenv(envStub), 16, 64)
	if perr != nil || serr != nil || pid <= 0 {
		fmt.Fprintf(os.Stderr, "thaw: the restore helper was started without a valid %s/%s\n", envPid, envStub)
		return 1
	}
	ready := os.NewFile(fdReady, "ready")
	if os.Getenv(envRestorePid) != "" {
		// The thaw gives the terminal to the process's own group
		// early (restorepid.go): the terminal modes set on it from
		// this one, then in the background, must not stop it.
		signal.Ignore(unix.SIGTTOU)
	}
	h := &helper{pid: pid, stub: stub, host: arch.Current, ps: uint64(os.Getpagesize()),
		verbose: os.Getenv(envVerbose) == "1", start: time.Now()}
	h.site = stub + stubCodeOffset + h.host.StubSyscallOffset
	if err := h.open(os.NewFile(fdImage, "image")); err != nil {
		h.closeBar()
		fmt.Fprintf(os.Stderr, "thaw: %v\n", err)
		return 1
	}
	h.tr = ptrace.NewTracer()
	// PTRACE_O_EXITKILL: should this helper die, the half-built process
	// dies with it; a failed thaw leaves nothing half-alive.
	err := h.tr.Do(func() error {
		return ptrace.Seize(pid, ptrace.OptTraceSysGood|ptrace.OptTraceExec|ptrace.OptExitKill)
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "thaw: %v\n", err)
		return 1
	}
	ready.Write([]byte{'S'})
	ready.Close()
	if err := h.tr.Do(h.waitExec); err != nil {
		// The thawing process died or failed to exec; it reports.
		return 1
	}
	if err := h.tr.Do(h.restore); err != nil {
		h.closeBar()
		fmt.Fprintf(os.Stderr, "thaw: %v\n", err)
		if aerr := h.tr.Do(h.abort); aerr != nil {
			fmt.Fprintf(os.Stderr, "thaw: ending the half-built process: %v\n", aerr)
		}
		return 1
	}
	return 0
}

type helper struct {
	pid     int
	stub    uint64
	site    uint64 // the syscall instruction injected calls run through
	host    arch.Host
	ps      uint64
	tr      *ptrace.Tracer
	r       *image.Reader
	p       *image.Process
	s       *inject.Session
	scratch uint64
	verbose bool
	start   time.Time
	winch   bool // restored onto a terminal: send SIGWINCH once running
	files   *files.Restorer
	// tids maps each frozen thread id to the thread's id here; parked
	// are the threads other than the leader, made again and stopped.
	tids map[int]int
	// timersMade holds the ids of the POSIX timers made again.
	timersMade map[int32]bool
	parked     []parked
	// bar shows the image bytes read, on a terminal (closed before
	// the process runs); nil without NewProgress.
	bar  Progress
	vdso *vdsoPlan // how the frozen vdso's addresses stay valid
}

func (h *helper) logf(format string, args ...any) {
	if h.verbose {
		fmt.Fprintf(os.Stderr, "[helper %7.1fms] %s\n", float64(time.Since(h.start).Microseconds())/1000, fmt.Sprintf(format, args...))
	}
}

// open reads the image's metadata: from the executable f, or, thawing a
// stream, from the image bytes the launcher read (the memfd f) followed
// by the rest of the stream.
func (h *helper) open(f *os.File) error {
	var src io.Reader
	var head *image.StreamHead
	total := int64(-1) // a stream's length is known at its end
	if s := os.Getenv(envStream); s != "" {
		sh, err := image.ParseStreamHead(s)
		if err != nil {
			return err
		}
		head = &sh
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		// ReadAt: the launcher's memfd shares its offset with f.
		src = io.MultiReader(io.NewSectionReader(f, 0, fi.Size()), os.NewFile(fdStream, "image stream"))
	} else {
		sec, err := image.OpenEmbedded(f)
		if err != nil {
			return err
		}
		src, total = sec, sec.Size()
	}
	if !h.verbose && NewProgress != nil {
		h.bar = NewProgress(os.Stderr, "thaw", total)
		src = &barReader{src, h.bar}
	}
	var err error
	if head != nil {
		h.r, err = head.NewReader(src)
	} else {
		h.r, err = image.NewReader(src)
	}
	if err != nil {
		return err
	}
	h.p, err = h.r.Meta()
	return err
}

// Progress is a progress bar of bytes (package progress's Bar).
type Progress interface {
	Add(n int64)
	Close()
}

// NewProgress, when set, makes the bar of a thaw's image bytes on f
// (total -1: unknown), which shows nothing unless f is a terminal.
// cmd/thaw sets it to package progress's New before it calls Main; the
// restorer an image carries (cmd/restorer) leaves it nil, and ./app.bin
// shows no bar: the bar's library would add a third to its size.
var NewProgress func(f *os.File, what string, total int64) Progress

// closeBar erases the bar, if any, before the process may write to the
// terminal or the helper says why it failed.
func (h *helper) closeBar() {
	if h.bar != nil {
		h.bar.Close()
	}
}

// barReader counts what is read on a progress bar.
type barReader struct {
	r   io.Reader
	bar Progress
}

func (b *barReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.bar.Add(int64(n))
	return n, err
}

// waitExec lets the thawing process run until its exec of the stub,
// passing through the signals it receives on the way (a Go runtime gets
// SIGURG at any time).
// Precondition: called via Tracer.Do.
func (h *helper) waitExec() error {
	for {
		st, err := ptrace.Wait(h.pid)
		if err != nil {
			return err
		}
		switch {
		case st.Exited():
			return ptrace.ErrExited
		case st.Event() == ptrace.EventExec:
			// The exec event comes from inside execve: step to its
			// syscall-exit stop, so that the next resume starts the
			// injected calls from user mode.
			if err := ptrace.Syscall(h.pid, 0); err != nil {
				return err
			}
			st, err := ptrace.Wait(h.pid)
			if err != nil {
				return err
			}
			if !st.SyscallStop() {
				return fmt.Errorf("after exec: %s where the exit of execve was expected", st)
			}
			return nil
		case st.Signal() != 0:
			err = ptrace.Cont(h.pid, int(st.Signal()))
		default:
			err = ptrace.Cont(h.pid, 0)
		}
		if err != nil {
			return err
		}
	}
}

// abort makes the stub exit with status 1 (its code page is the last
// thing unmapped, so it is there whenever restore fails); failing that,
// it is killed.
// Precondition: called via Tracer.Do.
func (h *helper) abort() error {
	err := h.setExitGroup(h.pid, 1)
	if err == nil {
		err = ptrace.Detach(h.pid, 0)
	}
	if err != nil {
		if kerr := unix.Kill(h.pid, unix.SIGKILL); kerr != nil {
			return errors.Join(err, fmt.Errorf("SIGKILL: %w", kerr))
		}
	}
	return err
}

// setExitGroup makes tid, stopped, call exit_group(code) at the injection
// site when it runs on: the stub when a thaw fails, a zombie's child.
// Precondition: called via Tracer.Do.
func (h *helper) setExitGroup(tid int, code uint64) error {
	raw, err := ptrace.GetRegset(tid, h.host.RegsNT, 1024)
	if err != nil {
		return err
	}
	r, err := h.host.NewRegs(raw)
	if err != nil {
		return err
	}
	r.SetSyscall(h.site, h.host.Sys.ExitGroup, code)
	return ptrace.SetRegset(tid, h.host.RegsNT, r.Encode())
}

// sys runs one injected syscall and names it in the error.
func (h *helper) sys(name string, nr uint64, args ...uint64) (uint64, error) {
	ret, err := h.s.Syscall(nr, args...)
	if err != nil {
		return ret, fmt.Errorf("%s: %w", name, err)
	}
	return ret, nil
}

// poke writes b into the scratch area at off and returns its address.
func (h *helper) poke(off uint64, b []byte) (uint64, error) {
	if off+uint64(len(b)) > scratchPages*h.ps {
		return 0, fmt.Errorf("scratch overflow")
	}
	if err := writeFull(h.pid, h.scratch+off, b); err != nil {
		return 0, fmt.Errorf("write scratch: %w", err)
	}
	return h.scratch + off, nil
}

func writeFull(pid int, addr uint64, b []byte) error {
	for len(b) > 0 {
		n, err := ptrace.WriteMem(pid, addr, b)
		if err != nil {
			return fmt.Errorf("process_vm_writev at %#x: %w", addr, err)
		}
		if n == 0 {
			return fmt.Errorf("process_vm_writev at %#x: no progress", addr)
		}
		addr += uint64(n)
		b = b[n:]
	}
	return nil
}

// ssDisable is SS_DISABLE (include/uapi/linux/signal.h).
const ssDisable = 2

func cstring(s string) []byte { return append([]byte(s), 0) }

// restore rebuilds the process. Everything that can fail for a reason
// outside this image (missing files, another kernel or CPU) is checked
// before the stub's address space is touched.
// Precondition: called via Tracer.Do.
func (h *helper) restore() error {
	sys := h.host.Sys
	var err error
	if h.s, err = inject.Begin(h.pid, h.site); err != nil {
		return err
	}
	h.scratch = h.stub + h.ps
	if _, err := h.sys("mmap scratch", sys.Mmap, h.scratch, scratchPages*h.ps,
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED_NOREPLACE, ^uint64(0), 0); err != nil {
		return err
	}
	if err := h.leaveStubFile(); err != nil {
		return err
	}
	if err := h.dropInheritedSignals(); err != nil {
		return err
	}
	if want := os.Getenv(envRestorePid); want != "" {
		pid, err := strconv.Atoi(want)
		if err != nil {
			return fmt.Errorf("%s=%q: not a pid", envRestorePid, want)
		}
		if err := h.takePid(pid); err != nil {
			return err
		}
	}
	stubMaps, err := proc.Maps(h.pid)
	if err != nil {
		return err
	}
	th := &h.p.Threads[0]
	if err := h.checkFPU(th); err != nil {
		return err
	}
	if err := h.checkVDSO(stubMaps); err != nil {
		return err
	}
	if err := h.checkPending(); err != nil {
		return err
	}
	if err := h.checkCreds(); err != nil {
		return err
	}
	h.logf("checks passed")
	if err := h.restoreZombies(); err != nil {
		return err
	}
	if err := h.restoreCwd(); err != nil {
		return err
	}
	if err := h.restoreFDs(); err != nil {
		return err
	}
	h.logf("fds restored")
	if err := h.restoreEarly(); err != nil {
		return err
	}
	h.logf("process settings restored")
	if err := h.clearStub(stubMaps); err != nil {
		return err
	}
	if h.vdso.mode == vdsoProxy {
		err = h.proxyVDSO()
	} else {
		err = h.moveVDSO(stubMaps)
	}
	if err != nil {
		return err
	}
	as, err := h.mapVMAs()
	if err != nil {
		return err
	}
	h.logf("mappings created")
	err = h.fillPages(as)
	h.closeBar() // the terminal is the process's again
	if err != nil {
		return err
	}
	h.logf("pages written")
	if err := h.finishVMAs(as); err != nil {
		return err
	}
	if err := h.restoreMM(); err != nil {
		return err
	}
	if err := h.restoreSignals(); err != nil {
		return err
	}
	if err := h.restoreThread(th); err != nil {
		return err
	}
	if err := h.restoreLate(); err != nil {
		return err
	}
	h.logf("kernel state restored")
	if err := h.cloneThreads(); err != nil {
		return err
	}
	if err := h.createPosixTimers(true); err != nil {
		return err
	}
	if err := h.restorePending(th, h.pid, false); err != nil {
		return err
	}
	if err := h.restorePending(th, h.pid, true); err != nil {
		return err
	}
	if os.Getenv(envRestorePid) != "" {
		if err := h.awaitParent(); err != nil {
			return err
		}
	}
	return h.resume(th)
}

// leaveStubFile moves the injection site from the stub's page, which maps
// the stub's memfd, to a copy in the last scratch page (anonymous), and
// unmaps the stub page. Nothing then maps the stub file, so that
// PR_SET_MM_MAP may point /proc/PID/exe back at the frozen program
// (the kernel refuses while the old exe is mapped).
func (h *helper) leaveStubFile() error {
	code := make([]byte, h.ps)
	if _, err := ptrace.ReadMem(h.pid, h.stub, code); err != nil {
		return fmt.Errorf("read the stub: %w", err)
	}
	page := h.scratch + (scratchPages-1)*h.ps
	if err := writeFull(h.pid, page, code); err != nil {
		return err
	}
	if _, err := h.sys("mprotect stub copy", h.host.Sys.Mprotect, page, h.ps, unix.PROT_READ|unix.PROT_EXEC); err != nil {
		return err
	}
	h.site = page + (h.site - h.stub)
	h.s.SetSite(h.site)
	_, err := h.sys("munmap stub page", h.host.Sys.Munmap, h.stub, h.ps)
	return err
}

// checkFPU makes the threads' FPU/vector state fit this CPU: on amd64
// each XSAVE area is converted from the freezing CPU's layout to this
// one's (arch/amd64.ConvertXSave); a component in use that this CPU or
// kernel lacks refuses the thaw, or is dropped with a warning when the
// CPU check is overridden. Images without a recorded layout, and arm64,
// need an area of the same size.
func (h *helper) checkFPU(th *image.Thread) error {
	cur, err := ptrace.GetRegset(h.pid, h.host.FPUNT, h.host.FPUMax)
	if err != nil {
		return err
	}
	if h.host.Image == image.ArchAMD64 && h.p.XSave != nil {
		return h.convertXSave(cur)
	}
	if len(cur) != len(th.FPU) {
		return fmt.Errorf("the frozen FPU/vector state is %d bytes, this CPU's is %d: thaw it on a CPU of the same kind", len(th.FPU), len(cur))
	}
	if h.host.Image == image.ArchAMD64 {
		if missing := h.p.XSaveMask &^ amd64.AreaXCR0(cur); missing != 0 {
			return fmt.Errorf("this CPU or kernel lacks XSAVE state components %s the process used (XCR0 %#x there, %#x here)",
				amd64.XFeatureNames(missing), h.p.XSaveMask, amd64.AreaXCR0(cur))
		}
	}
	return nil
}

// convertXSave rebuilds every thread's XSAVE area for this CPU; cur is
// the stub's own area, as this kernel gives it.
func (h *helper) convertXSave(cur []byte) error {
	here, err := cpu.HostXSave()
	if err != nil {
		return err
	}
	if here == nil || here.Size != len(cur) || here.XCR0 != amd64.AreaXCR0(cur) {
		return fmt.Errorf("this CPU's XSAVE layout (CPUID leaf 0xD: %+v) does not match the kernel's %d-byte area with XCR0 %#x", here, len(cur), amd64.AreaXCR0(cur))
	}
	from := &amd64.XSaveLayout{Size: h.p.XSave.Size, XCR0: h.p.XSave.XCR0}
	for _, c := range h.p.XSave.Components {
		from.Components = append(from.Components, amd64.XComponent{Feature: c.Feature, Offset: c.Offset, Size: c.Size})
	}
	ignore := os.Getenv(envNoCPU) == "1"
	var dropped uint64
	for i := range h.p.Threads {
		th := &h.p.Threads[i]
		out, d, err := amd64.ConvertXSave(th.FPU, from, here, cur, ignore)
		if err != nil {
			return fmt.Errorf("thread %d: %w (%s=1 or thaw --ignore-cpu drops it)", th.Tid, err, envNoCPU)
		}
		th.FPU, dropped = out, dropped|d
	}
	if dropped != 0 {
		fmt.Fprintf(os.Stderr, "thaw: warning: this CPU lacks xsave state the process held, dropped: %s\n", amd64.XFeatureNames(dropped))
	}
	if from.Size != here.Size {
		h.logf("xsave areas converted from %d bytes (XCR0 %#x) to %d (XCR0 %#x)", from.Size, from.XCR0, here.Size, here.XCR0)
	}
	return nil
}

// checkVDSO compares the image's vdso and vvar layout and the vdso's
// bytes (in the metadata) with this kernel's, and chooses how to keep
// the process's vdso pointers valid (vdso.go).
func (h *helper) checkVDSO(stubMaps []proc.Mapping) error {
	for _, v := range h.p.VMAs {
		if v.Kind == image.VMAVDSO && uint64(len(h.p.VDSO)) != v.End-v.Start {
			return fmt.Errorf("image holds %d bytes of a %d-byte vdso", len(h.p.VDSO), v.End-v.Start)
		}
	}
	mine, err := h.readCurVDSO(stubMaps)
	if err != nil {
		return err
	}
	if h.vdso, err = planVDSO(h.host.Image, h.p.VMAs, h.p.VDSO, stubMaps, mine); err == nil && h.vdso.mode == vdsoProxy {
		err = h.placeProxy(stubMaps)
	}
	if err != nil {
		return fmt.Errorf("%w (frozen on %s)", err, p2s(h.p.Kernel))
	}
	h.logf("vdso: %v", h.vdso.mode)
	return nil
}

func p2s(k string) string {
	if k == "" {
		return "unknown"
	}
	return k
}

func (h *helper) restoreCwd() error {
	addr, err := h.poke(0, cstring(h.p.Cwd))
	if err != nil {
		return err
	}
	_, err = h.sys("chdir "+h.p.Cwd, h.host.Sys.Chdir, addr)
	return err
}

// restoreMM sets the mm fields (brk, arg/env bounds, auxv...) with one
// prctl(PR_SET_MM, PR_SET_MM_MAP): unlike the single-field forms it needs
// no CAP_SYS_RESOURCE (kernel/sys.c, prctl_set_mm_map).
func (h *helper) restoreMM() (err error) {
	mm := h.p.MM
	auxv := h.p.Auxv
	auxAddr, err := h.poke(512, auxv)
	if err != nil {
		return err
	}
	b := make([]byte, 104)
	le := binary.LittleEndian
	for i, v := range []uint64{mm.StartCode, mm.EndCode, mm.StartData, mm.EndData, mm.StartBrk, mm.Brk,
		mm.StartStack, mm.ArgStart, mm.ArgEnd, mm.EnvStart, mm.EnvEnd, auxAddr} {
		le.PutUint64(b[i*8:], v)
	}
	le.PutUint32(b[96:], uint32(len(auxv)))
	// /proc/PID/exe back to the frozen program when its file is here
	// and we may (CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN); else it
	// stays the stub's memfd: exe_fd = -1.
	exeFD := ^uint64(0)
	if h.p.Exe != "" && !strings.HasSuffix(h.p.Exe, " (deleted)") {
		if path, err := h.poke(0, cstring(h.p.Exe)); err == nil {
			atFDCWD := int64(unix.AT_FDCWD)
			if fd, err := h.s.Syscall(h.host.Sys.Openat, uint64(atFDCWD), path, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
				exeFD = fd
				defer func() {
					if _, cerr := h.sys("close the program file", h.host.Sys.Close, fd); cerr != nil {
						err = errors.Join(err, cerr)
					}
				}()
			}
		}
	}
	addr, err := h.poke(0, b)
	if err != nil {
		return err
	}
	set := func(fd uint64) error {
		le.PutUint32(b[100:], uint32(fd))
		if err := writeFull(h.pid, addr, b); err != nil {
			return err
		}
		_, err := h.sys("prctl(PR_SET_MM_MAP)", h.host.Sys.Prctl, unix.PR_SET_MM, unix.PR_SET_MM_MAP, addr, uint64(len(b)), 0)
		return err
	}
	if exeFD != ^uint64(0) {
		if err := set(exeFD); err == nil {
			return nil
		}
		h.logf("cannot point /proc/PID/exe at %s; it stays the stub", h.p.Exe)
	}
	return set(^uint64(0))
}

func (h *helper) restoreSignals() error {
	le := binary.LittleEndian
	for _, sa := range h.p.SigActions {
		b := make([]byte, 32)
		le.PutUint64(b, sa.Handler)
		le.PutUint64(b[8:], sa.Flags)
		le.PutUint64(b[16:], sa.Restorer)
		le.PutUint64(b[24:], sa.Mask)
		addr, err := h.poke(0, b)
		if err != nil {
			return err
		}
		if _, err := h.sys(fmt.Sprintf("rt_sigaction(%d)", sa.Signo), h.host.Sys.RtSigaction, uint64(sa.Signo), addr, 0, 8); err != nil {
			return err
		}
	}
	return nil
}

// restoreThread restores the per-thread kernel state and the name of
// the thread h.s runs in.
func (h *helper) restoreThread(th *image.Thread) error {
	sys := h.host.Sys
	le := binary.LittleEndian
	if th.AltStack.Flags&ssDisable == 0 && th.AltStack.Size > 0 {
		b := make([]byte, 24)
		le.PutUint64(b, th.AltStack.SP)
		// SS_ONSTACK is a state, not a flag one can set.
		le.PutUint32(b[8:], uint32(th.AltStack.Flags)&^1)
		le.PutUint64(b[16:], th.AltStack.Size)
		addr, err := h.poke(0, b)
		if err != nil {
			return err
		}
		if _, err := h.sys("sigaltstack", sys.Sigaltstack, addr, 0); err != nil {
			return err
		}
	}
	if th.ClearChildTid != 0 {
		if _, err := h.sys("set_tid_address", sys.SetTidAddress, th.ClearChildTid); err != nil {
			return err
		}
	}
	if th.RobustList != 0 {
		if _, err := h.sys("set_robust_list", sys.SetRobustList, th.RobustList, th.RobustLen); err != nil {
			return err
		}
	}
	if th.Rseq.Addr != 0 {
		if _, err := h.sys("rseq", sys.Rseq, th.Rseq.Addr, uint64(th.Rseq.Len), 0, uint64(th.Rseq.Sig)); err != nil {
			return err
		}
	}
	name := th.Comm
	if name == "" {
		name = h.p.Comm
	}
	if len(name) > 15 {
		name = name[:15]
	}
	addr, err := h.poke(0, cstring(name))
	if err != nil {
		return err
	}
	if _, err := h.sys("prctl(PR_SET_NAME)", sys.Prctl, unix.PR_SET_NAME, addr); err != nil {
		return err
	}
	return nil
}

// loadFrozen loads the frozen registers, FPU state, mask and TLS of th
// into tid, stopped at the exit of its last injected call.
func (h *helper) loadFrozen(tid int, th *image.Thread, regs arch.Regs) error {
	err := errors.Join(
		ptrace.SetRegset(tid, h.host.RegsNT, regs.Encode()),
		ptrace.SetRegset(tid, h.host.FPUNT, th.FPU),
		ptrace.SetSigMask(tid, th.SigMask))
	if h.host.TLSNT != 0 {
		err = errors.Join(err, ptrace.SetRegset(tid, h.host.TLSNT, binary.LittleEndian.AppendUint64(nil, th.TLS)))
	}
	if h.host.SyscallNoNT != 0 {
		// Syscall number -1, as orig_rax on x86-64: no restart logic
		// applies to the call this stop ends (in_syscall, arm64).
		err = errors.Join(err, ptrace.SetRegset(tid, h.host.SyscallNoNT, []byte{0xff, 0xff, 0xff, 0xff}))
	}
	return err
}

// resume unmaps the stub itself with the last injected call, stopped at
// its syscall exit, loads the frozen registers and FPU state in that stop
// and lets the process go: its next instruction is its own.
func (h *helper) resume(th *image.Thread) error {
	regs, err := h.host.NewRegs(th.Regs)
	if err != nil {
		return err
	}
	if what := regs.PrepareResume(); what != "" {
		h.logf("frozen inside a syscall: %s", what)
	}
	// The last call is built on the frozen registers, from an event
	// stop: arm64 gives x7 back its value at syscall entry when a syscall
	// stop ends, whatever the tracer wrote (report_syscall,
	// arch/arm64/kernel/ptrace.c), so the munmap must enter with it.
	if err := h.s.Settle(); err != nil {
		return err
	}
	h.s.SetBase(regs.Encode())
	if _, err := h.s.SyscallNoReturn(h.host.Sys.Munmap, h.stub, stubRegionSize(h.ps)); err != nil {
		return fmt.Errorf("unmap the restorer: %w", err)
	}
	h.logf("restorer unmapped")
	err = h.loadFrozen(h.pid, th, regs)
	if err != nil {
		// The stub is gone: nothing can run; kill rather than resume wrong.
		if kerr := unix.Kill(h.pid, unix.SIGKILL); kerr != nil {
			err = errors.Join(err, fmt.Errorf("SIGKILL: %w", kerr))
		}
		return err
	}
	// A process frozen in job-control stop comes back stopped: the
	// detach delivers SIGSTOP, and its parent sees it stop.
	h.logf("resuming")
	if err := h.releaseThreads(h.p.Stopped); err != nil {
		return err
	}
	if h.winch {
		// Another terminal, maybe of another size: tell the process to
		// look again, as a resize would (ignored by default). The
		// process runs already: a failure is only worth a word.
		if err := unix.Kill(h.pid, unix.SIGWINCH); err != nil {
			fmt.Fprintf(os.Stderr, "thaw: the process runs, but SIGWINCH did not reach it: %v\n", err)
		}
	}
	return nil
}
