package freeze

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/files"
	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/inject"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/progress"
	"github.com/cryo-project/cryo/ptrace"
)

// Options says what to freeze and where.
type Options struct {
	Pid    int
	Output string
	// LeaveRunning lets the target go on after the image is written
	// (a snapshot); otherwise it is killed once the image is on disk.
	LeaveRunning bool
	// Restorer is the program whose restorer the image carries: the
	// packed restorer attached to it (make attaches cmd/restorer's to
	// bin/freeze: image.AttachRestorer), else the program itself, packed
	// at each freeze (a freeze built without make: it holds the restore
	// code too). Default: the running binary.
	Restorer string
	// Log, if set, receives one line per step with its duration.
	Log io.Writer
	// Progress, a terminal, shows how far the pages are (package
	// progress: only for a freeze of more than a second). nil: none.
	Progress *os.File
	// Files tunes what is recorded of the open files.
	Files files.DumpOptions
}

// Result reports what a freeze wrote.
type Result struct {
	ImageBytes int64 // the whole output file
	Pages      int64 // pages stored
	ZeroPages  int64 // present pages skipped because they were zero
	Stopped    time.Duration
	// Notes are lines for the user: what thaw will do with each pipe or
	// socket whose peer is outside the process.
	Notes []string
}

// Freeze writes the process opts.Pid into opts.Output. Whatever fails, the
// target is let go exactly as it was and no output file remains.
func Freeze(ctx context.Context, opts Options) (*Result, error) {
	f := &freezer{opts: opts, pid: opts.Pid, host: arch.Current, pageSize: os.Getpagesize(), start: time.Now()}
	return f.run(ctx)
}

type freezer struct {
	opts     Options
	pid      int
	host     arch.Host
	pageSize int
	start    time.Time
	tr       *ptrace.Tracer
	stopped  bool
	zombies  []image.Zombie
	res      Result
	files    *files.Dumper
	group    *ptrace.Group // every thread, seized and stopped
}

func (f *freezer) logf(format string, args ...any) {
	if f.opts.Log != nil {
		fmt.Fprintf(f.opts.Log, "[%7.1fms] %s\n", float64(time.Since(f.start).Microseconds())/1000, fmt.Sprintf(format, args...))
	}
}

func (f *freezer) run(ctx context.Context) (res *Result, err error) {
	pid := f.pid
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: not a valid process id", pid)
	}
	if pid == os.Getpid() {
		return nil, fmt.Errorf("pid %d is freeze itself", pid)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		return nil, fmt.Errorf("pid %d: no such process", pid)
	}
	if ptrace.IsKernelThread(pid) {
		return nil, fmt.Errorf("pid %d is a kernel thread: kernel threads cannot be traced or frozen", pid)
	}
	st0, err := proc.ReadStat(pid)
	if err != nil {
		return nil, fmt.Errorf("pid %d: no such process", pid)
	}
	// A target in job-control stop is thawed stopped (state 'T'; once
	// seized it shows 't').
	f.stopped = st0.State == 'T'
	if err := checkPrivilege(pid); err != nil {
		return nil, err
	}
	// Before the seize: it scans every process. (A target that starts
	// tracing in the microseconds until the seize is not caught.)
	if err := tracesNobody(pid); err != nil {
		return nil, err
	}
	out, err := newOutput(f.opts.Output)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			out.abort()
		}
	}()

	f.tr = ptrace.NewTracer()
	defer f.tr.Close()
	if err := f.tr.Do(func() error {
		if err := f.seize(); err != nil {
			return err
		}
		if err := f.leaveVDSO(f.group.Tids); err != nil {
			return errors.Join(err, f.group.Release())
		}
		return nil
	}); err != nil {
		return nil, err
	}
	stopAt := time.Now()
	attached := true
	defer func() {
		if attached {
			// Let the target go exactly as it was.
			err = errors.Join(err, f.release())
		}
	}()
	f.logf("seized pid %d", pid)
	if err := fault(ctx, "seized"); err != nil {
		return nil, err
	}
	defer func() {
		if f.files != nil {
			err = errors.Join(err, f.files.Close())
		}
	}()
	p, err := f.collect(ctx)
	if err != nil {
		return nil, f.explain(err)
	}
	if err := fault(ctx, "collected"); err != nil {
		return nil, err
	}
	if err := f.write(ctx, out, p); err != nil {
		return nil, f.explain(err)
	}
	if err := fault(ctx, "written"); err != nil {
		return nil, err
	}
	if err := out.commit(fault(ctx, "fsync")); err != nil {
		return nil, err
	}
	f.logf("image committed: %s (%d bytes)", f.opts.Output, out.size)
	f.res.ImageBytes = out.size

	attached = false
	if f.opts.LeaveRunning {
		// Its files as they were (TCP connections out of repair
		// mode) before it runs.
		err := f.files.Release()
		if err = errors.Join(err, f.release()); err != nil {
			return nil, fmt.Errorf("image written, but letting pid %d go failed: %w", pid, err)
		}
	} else if err := f.end(); err != nil {
		// The image is complete, but the original may run on next to
		// it: say so, never report a plain success.
		return nil, fmt.Errorf("image %s written, but ending pid %d failed: %w (the original may still be running)", f.opts.Output, pid, err)
	} else {
		// The copy takes its connections over: closed in repair mode,
		// they send their peers nothing.
		f.files.TargetGone()
	}
	f.res.Stopped = time.Since(stopAt)
	f.logf("done, target stopped for %v", f.res.Stopped)
	return &f.res, nil
}

// end kills the original once its image is committed (the process now
// lives in the file) and waits until it is gone.
func (f *freezer) end() error {
	return f.tr.Do(func() error {
		if err := unix.Kill(f.pid, unix.SIGKILL); err != nil {
			return fmt.Errorf("SIGKILL: %w", err)
		}
		for {
			st, err := ptrace.Wait(f.pid)
			if err != nil {
				return fmt.Errorf("waiting for it to die: %w", err)
			}
			if st.Exited() {
				return nil
			}
		}
	})
}

// seize attaches to every thread with PTRACE_SEIZE and stops each with
// PTRACE_INTERRUPT: no SIGSTOP is ever sent (ptrace.SeizeGroup).
// Precondition: called via Tracer.Do.
func (f *freezer) seize() error {
	pid := f.pid
	g, err := ptrace.SeizeGroup(pid, ptrace.OptTraceSysGood)
	if err != nil {
		return err
	}
	f.group = g
	// Live children are not frozen with their parent: restored alone, it
	// would wait for children that do not exist. Refuse, rather than thaw
	// wrong. Zombies are only an exit status waiting to be reaped: they
	// do not block a freeze (see docs/state.md for what wait() sees).
	kids, err := proc.ChildrenStates(pid)
	if err != nil {
		return errors.Join(err, g.Release())
	}
	var live, zombies []string
	f.zombies = nil
	for _, k := range kids {
		if k.State == 'Z' || k.State == 'X' {
			zombies = append(zombies, strconv.Itoa(k.Pid))
			f.zombies = append(f.zombies, image.Zombie{Pid: k.Pid, Status: k.ExitCode})
			continue
		}
		live = append(live, strconv.Itoa(k.Pid))
	}
	if len(live) > 0 {
		if err := g.Release(); err != nil {
			return err
		}
		msg := fmt.Sprintf("pid %d has live child processes (%s)", pid, strings.Join(live, " "))
		if len(zombies) > 0 {
			msg += fmt.Sprintf(" and zombies (%s)", strings.Join(zombies, " "))
		}
		return errors.New(msg + ": process trees are unsupported yet (zombies alone are fine)")
	}
	return nil
}

// release detaches every thread. Signals that arrived while the target
// was stopped are pending and are delivered as it resumes.
func (f *freezer) release() error {
	return f.tr.Do(func() error { return f.group.Release() })
}

// collect gathers everything but the page contents.
func (f *freezer) collect(ctx context.Context) (*image.Process, error) {
	pid := f.pid
	st, err := proc.ReadStat(pid)
	if err != nil {
		return nil, err
	}
	maps, err := proc.Maps(pid)
	if err != nil {
		return nil, err
	}
	vmas, err := classify(maps, st)
	if err != nil {
		return nil, err
	}
	// Guard regions go in the metadata, written before the pages.
	if err := findGuards(pid, f.pageSize, vmas); err != nil {
		return nil, err
	}
	if f.files, err = files.Collect(pid, f.opts.Files); err != nil {
		return nil, err
	}
	// Shared mappings of memfds and deleted files map files of the table.
	if err := f.files.Mapped(vmas); err != nil {
		return nil, err
	}
	ft := f.files.Table()
	f.res.Notes = ft.Notes
	p := &image.Process{
		Arch:     f.host.Image,
		PageSize: f.pageSize,
		FrozenAt: time.Now().UnixNano(),
		Pid:      pid,
		VMAs:     vmas,
		Files:    ft.Files,
		FDs:      ft.FDs,
		Locks:    ft.Locks,
		Notes:    ft.Notes,
		Zombies:  f.zombies,
		Stopped:  f.stopped,
		MM: image.MM{
			StartCode: st.StartCode, EndCode: st.EndCode,
			StartData: st.StartData, EndData: st.EndData,
			StartBrk: st.StartBrk, StartStack: st.StartStack,
			ArgStart: st.ArgStart, ArgEnd: st.ArgEnd,
			EnvStart: st.EnvStart, EnvEnd: st.EnvEnd,
		},
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	p.Kernel = unix.ByteSliceToString(uts.Release[:])
	p.Machine = unix.ByteSliceToString(uts.Nodename[:])
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil {
		return nil, fmt.Errorf("read comm of pid %d: %w", pid, err)
	} else {
		p.Comm = strings.TrimSuffix(string(b), "\n")
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && len(b) > 0 {
		p.Argv = strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	}
	// exe may be unreadable (another user's binary, as root it is not):
	// it only serves to point /proc/PID/exe back at the program.
	p.Exe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if p.Cwd, err = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil {
		return nil, fmt.Errorf("read cwd of pid %d: %w", pid, err)
	}
	if strings.HasSuffix(p.Cwd, " (deleted)") {
		return nil, fmt.Errorf("pid %d: its working directory %s was deleted: unsupported", pid, p.Cwd)
	}
	if p.Auxv, err = os.ReadFile(fmt.Sprintf("/proc/%d/auxv", pid)); err != nil {
		return nil, fmt.Errorf("read auxv of pid %d: %w", pid, err)
	}
	status, err := proc.Status(pid)
	if err != nil {
		return nil, err
	}
	if err := collectProcess(pid, p, status); err != nil {
		return nil, err
	}
	if p.VDSO, err = readVDSO(pid, p.VMAs); err != nil {
		return nil, err
	}
	if err := f.recordCPU(p); err != nil {
		return nil, err
	}
	if err := f.tr.Do(func() error { return f.collectThreads(ctx, p, maps, status) }); err != nil {
		return nil, err
	}
	f.logf("collected %d mappings, %d files on %d fds, %d signal handlers", len(p.VMAs), len(p.Files), len(p.FDs), len(p.SigActions))
	return p, nil
}

// collectThreads reads each thread's registers and the state only the
// process itself can tell, by injecting syscalls: the per-process state
// once, through the leader, and each thread's own through an injection
// session on that thread (they share the leader's scratch page: one
// address space). Every session ends, whatever fails, with the thread's
// registers and mask as they were.
// Precondition: called via Tracer.Do.
func (f *freezer) collectThreads(ctx context.Context, p *image.Process, maps []proc.Mapping, status map[string]string) (err error) {
	pid := f.pid
	site, err := inject.FindSite(pid, maps)
	if err != nil {
		return err
	}
	s, err := inject.Begin(pid, site)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.End()) }()
	r, err := newRemote(s, f.host)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.close()) }()
	if err := fault(ctx, "injecting"); err != nil {
		return err
	}
	if err := r.processState(p, status); err != nil {
		return err
	}
	p.Threads = make([]image.Thread, 0, len(f.group.Tids))
	for i, tid := range f.group.Tids {
		last := i == len(f.group.Tids)-1
		var th image.Thread
		if tid == pid {
			th, err = f.collectThread(r)
			if err == nil && last {
				err = fault(ctx, "thread")
			}
		} else {
			th, err = f.collectOther(ctx, r, tid, site, last)
		}
		if err != nil {
			return err
		}
		p.Threads = append(p.Threads, th)
	}
	if f.host.Image == image.ArchAMD64 {
		return f.recordXSave(p)
	}
	// A timer signalling one thread (SIGEV_THREAD_ID) is made again
	// for that thread; the kernel keeps the target of one whose thread
	// has exited, and it signals no one.
	for _, t := range p.Timers {
		if t.Notify&sigevThreadID != 0 && !slices.ContainsFunc(p.Threads, func(th image.Thread) bool { return th.Tid == t.Tid }) {
			return fmt.Errorf("pid %d: POSIX timer %d signals thread %d, which has exited: unsupported", pid, t.ID, t.Tid)
		}
	}
	return nil
}

// collectOther reads thread tid (not the leader) through an injection
// session of its own, with the leader's scratch page.
// Precondition: called via Tracer.Do.
func (f *freezer) collectOther(ctx context.Context, lr *remote, tid int, site uint64, last bool) (th image.Thread, err error) {
	s, err := inject.Begin(tid, site)
	if err != nil {
		return th, err
	}
	defer func() { err = errors.Join(err, s.End()) }()
	r := *lr
	r.s, r.tid = s, tid
	if th, err = f.collectThread(&r); err == nil && last {
		err = fault(ctx, "thread") // with this thread's session open
	}
	return th, err
}

// collectThread reads the registers and per-thread state of r's thread.
// Precondition: called via Tracer.Do.
func (f *freezer) collectThread(r *remote) (image.Thread, error) {
	tid, s := r.tid, r.s
	var err error
	th := image.Thread{Tid: tid, Regs: s.SavedRegs(), SigMask: s.SavedMask()}
	if th.FPU, err = ptrace.GetRegset(tid, f.host.FPUNT, f.host.FPUMax); err != nil {
		return th, err
	}
	if f.host.TLSNT != 0 {
		tls, err := ptrace.GetRegset(tid, f.host.TLSNT, 16)
		if err != nil {
			return th, err
		}
		if len(tls) < 8 {
			return th, fmt.Errorf("TLS regset of thread %d is %d bytes, want at least 8", tid, len(tls))
		}
		th.TLS = binary.LittleEndian.Uint64(tls)
	}
	rs, err := ptrace.GetRseq(tid)
	if err != nil {
		return th, err
	}
	th.Rseq = image.Rseq{Addr: rs.Addr, Len: rs.Len, Flags: rs.Flags, Sig: rs.Sig}
	if err := r.threadState(&th); err != nil {
		return th, err
	}
	return th, nil
}

// pendingSignals reads each thread's signal queue and the process's.
// Precondition: called via Tracer.Do.
func pendingSignals(tids []int) ([]image.Siginfo, error) {
	var out []image.Siginfo
	for _, tid := range tids {
		infos, err := ptrace.PeekSiginfo(tid, false)
		if err != nil {
			return nil, err
		}
		for _, raw := range infos {
			out = append(out, image.Siginfo{Tid: tid, Raw: raw})
		}
	}
	infos, err := ptrace.PeekSiginfo(tids[0], true)
	if err != nil {
		return nil, err
	}
	for _, raw := range infos {
		out = append(out, image.Siginfo{Shared: true, Raw: raw})
	}
	return out, nil
}

// explain names the likely cause of a failure in the middle of a freeze:
// the target died (killed from outside, or it exited) while stopped.
//
// Whatever the error says (a /proc file that vanished, ESRCH, an exit
// seen by a wait), the target's own state decides: killed while held,
// it is a zombie (its threads traced, nobody reaped them yet) or gone.
func (f *freezer) explain(err error) error {
	if f.dead() {
		return fmt.Errorf("pid %d exited during the freeze: %w", f.pid, err)
	}
	return err
}

// dead tells whether the target has exited (a zombie) or is gone.
func (f *freezer) dead() bool {
	st, err := proc.ReadStat(f.pid)
	return err != nil || st.State == 'Z' || st.State == 'X'
}

// dumpPages writes the pages of every VMA (see dumper), in memory that
// does not grow with the address space: pagemap is scanned a bounded
// piece at a time, and not at all for mappings with nothing resident or
// swapped (smaps Rss and Swap 0).
func (f *freezer) dumpPages(ctx context.Context, w *image.Writer, p *image.Process) error {
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", f.pid))
	if err != nil {
		return fmt.Errorf("open pagemap of pid %d: %w", f.pid, err)
	}
	defer pm.Close()
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", f.pid))
	if err != nil {
		return fmt.Errorf("open memory of pid %d: %w", f.pid, err)
	}
	defer mem.Close()
	maps, err := proc.Maps(f.pid)
	if err != nil {
		return err
	}
	d := &dumper{ctx: ctx, pid: f.pid, w: w, scan: proc.NewScanner(pm, f.pageSize), mem: mem,
		ps: uint64(f.pageSize), buf: make([]byte, 1<<20), smaps: map[uint64]*proc.Mapping{}}
	var smapsRss uint64
	for i := range maps {
		d.smaps[maps[i].Start] = &maps[i]
		smapsRss += maps[i].Rss
	}
	if !d.scan.UsesIoctl() {
		// Resident memory smaps does not show (hiddenHuge): only then
		// are the mappings it calls empty probed.
		st, err := proc.Status(f.pid)
		if err != nil {
			return err
		}
		vmRSS, err := kB(st, "VmRSS")
		if err != nil {
			return err
		}
		huge := d.ps * d.ps / 8
		d.probeHuge = vmRSS*1024 >= smapsRss+huge/2
	}
	// The total is resident memory, which the pages written approach
	// (less the shared file pages their file holds).
	d.bar = progress.New(f.opts.Progress, "freeze", int64(smapsRss))
	defer d.bar.Close()
	for i := range p.VMAs {
		if err := d.vma(&p.VMAs[i]); err != nil {
			return err
		}
	}
	f.res.Pages, f.res.ZeroPages = d.pages, d.zero
	return nil
}
