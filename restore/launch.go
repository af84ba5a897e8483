package restore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/cpu"
	"github.com/cryo-project/cryo/files"
	"github.com/cryo-project/cryo/image"
)

func init() {
	// The thawing process execs the stub from its main thread, the
	// thread group leader, so that the helper, which traces only the
	// leader, sees the exec (runtime.LockOSThread in init pins main).
	runtime.LockOSThread()
}

// Environment of the spawn and helper roles.
const (
	envRole    = "CRYO_ROLE"
	envPid     = "CRYO_PID"
	envStub    = "CRYO_STUB"
	envNoCPU   = "CRYO_IGNORE_CPU"
	envVerbose = "CRYO_VERBOSE"
	fdImage    = 3
	fdReady    = 4
	// Thawing a stream (thaw -): the image bytes the launcher read come
	// as fdImage (a memfd), the rest on fdStream, the launcher's stdin;
	// envStream holds the image.StreamHead the trailer must repeat.
	envStream = "CRYO_STREAM"
	fdStream  = 7
)

// Main runs the restore roles. Call it first in main: if this process is
// a spawn or helper of a thaw, or the restorer of a self-restoring
// executable (./app.bin), it never returns. Otherwise it returns and the
// command runs as usual.
//
// Run as ./app.bin, the restorer runs from a memfd the loader filled
// (/proc/self/exe is that memfd), and the loader hands it the file it
// was run from as the fd in CRYO_IMAGE_FD (image/doc.go).
func Main() {
	fd, fromLoader := os.LookupEnv(image.EnvImageFD)
	// Neither the spawn and helper nor anything else started from here
	// may see it.
	os.Unsetenv(image.EnvImageFD)
	switch os.Getenv(envRole) {
	case "spawn":
		os.Exit(runSpawn())
	case "helper":
		os.Exit(runHelper())
	case "pidlauncher":
		os.Exit(runPidLauncher())
	}
	name := filepath.Base(os.Args[0])
	var f *os.File
	var err error
	if fromLoader {
		f, err = loaderImage(fd)
	} else {
		// Not run by a loader: the plain cryo binary, whose command
		// runs, unless it carries an image (thaw checks it).
		if f, err = ownImage(); err != nil {
			return
		}
		if _, err = image.OpenEmbedded(f); errors.Is(err, image.ErrNoImage) {
			f.Close()
			return
		}
	}
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "%s: a frozen process; run it without arguments to thaw it (environment: %s=1 thaws on a CPU that lacks features the process may use)\n", name, envNoCPU)
		os.Exit(2)
	}
	if err == nil {
		err = thaw(f, f.Name(), Options{IgnoreCPU: os.Getenv(envNoCPU) == "1", Verbose: os.Getenv(envVerbose) == "1"})
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}

// ownImage opens the executable this process runs, which may carry an
// image: the plain cryo binary does not.
func ownImage() (*os.File, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return os.Open(self)
}

// loaderImage takes the file the loader passed as fd (the decimal value
// of CRYO_IMAGE_FD) and makes it close-on-exec, so that the restored
// process does not inherit it. It is named by its path, as the messages
// name the file.
func loaderImage(fd string) (*os.File, error) {
	n, err := strconv.Atoi(fd)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("%s=%q: not a file descriptor", image.EnvImageFD, fd)
	}
	var st unix.Stat_t
	if err := unix.Fstat(n, &st); err != nil {
		return nil, fmt.Errorf("%s=%d: %w", image.EnvImageFD, n, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("%s=%d: not a regular file", image.EnvImageFD, n)
	}
	unix.CloseOnExec(n)
	path, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", n))
	if err != nil {
		path = "image"
	}
	return os.NewFile(uintptr(n), path), nil
}

// Options tune a thaw.
type Options struct {
	// IgnoreCPU thaws even where the CPU lacks features the process
	// may use (it may then die of SIGILL).
	IgnoreCPU bool
	Verbose   bool
	// Files: --fd handoffs, --allow-changed.
	Files files.RestoreOptions
	// RestorePid gives the process its frozen pid and tids, this
	// process staying as its parent (restorepid.go).
	RestorePid bool
	// pidGo is set in the launcher of a RestorePid thaw: the pipe the
	// helper waits on before it lets the process go.
	pidGo *os.File
}

// Stdin is the path for which Thaw reads the image from standard input.
const Stdin = "-"

// Thaw turns the calling process into the process frozen in path, or
// streamed on standard input for path "-" (Stdin). It returns only on
// failure, before anything irreversible happened.
func Thaw(path string, opts Options) error {
	if path == Stdin {
		return thawStdin(opts)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return thaw(f, path, opts)
}

// thaw is Thaw of the open file f, named path. The spawn and the helper
// get f itself, not its path: run by the loader, this process may hold
// the only name the file has.
func thaw(f *os.File, path string, opts Options) error {
	sec, err := image.OpenEmbedded(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r, err := image.NewReader(sec)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return launch(r, path, opts, []*os.File{f}, nil)
}

// thawStdin thaws the self-restoring executable streamed on standard
// input (freeze PID -o - | thaw -). This process reads the loader and
// the restorer (skipped: this binary restores) and the metadata, for the
// checks; the helper gets what was read of the image in a memfd and
// standard input for the rest, which it reads as it rebuilds the process,
// the pages written as they arrive. The stream's trailer, last, is
// checked before the process runs (image.StreamHead.NewReader). The
// restored process gets /dev/null where it had the thaw's standard input:
// that is the image.
func thawStdin(opts Options) error {
	const name = "standard input"
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		return errors.New("standard input is a terminal: pipe an image in (freeze PID -o - | thaw -), or name its file")
	}
	// Best effort, as at freeze -o -: a larger pipe buffer.
	unix.FcntlInt(0, unix.F_SETPIPE_SZ, 1<<20)
	head, got, err := image.SkipToImage(os.Stdin)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fd, err := unix.MemfdCreate("cryo-image-head", unix.MFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	pre := os.NewFile(uintptr(fd), "image head")
	defer pre.Close()
	if _, err := pre.Write(got); err != nil {
		return fmt.Errorf("memfd: %w", err)
	}
	r, err := image.NewReader(io.MultiReader(bytes.NewReader(got), io.TeeReader(os.Stdin, pre)))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return launch(r, name, opts, []*os.File{pre, os.Stdin}, []string{envStream + "=" + head.String()})
}

// launch checks the image r (its metadata still to read) against this
// machine and hands the restore to a helper, the image as files (fdImage
// on, for the helper) and env. It returns only on failure.
func launch(r *image.Reader, path string, opts Options, imgFiles []*os.File, env []string) error {
	if err := image.CheckArch(r.Arch(), arch.Current.Image); err != nil {
		return err
	}
	p, err := r.Meta()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ps := uint64(os.Getpagesize())
	if p.PageSize != int(ps) {
		return fmt.Errorf("image has %d-byte pages, this kernel uses %d: it cannot be thawed here", p.PageSize, ps)
	}
	if !opts.IgnoreCPU {
		if err := checkCPU(p); err != nil {
			return err
		}
	}
	if err := checkThreads(p); err != nil {
		return err
	}
	if opts.RestorePid {
		if len(imgFiles) > 1 {
			return errors.New("--restore-pid cannot thaw a stream (thaw -): write the image to a file first")
		}
		return thawAsParent(imgFiles[0], path, p, opts)
	}
	stub, err := chooseStubAddr(p, ps)
	if err != nil {
		return err
	}
	elf, _ := stubELF(arch.Current, stub)
	stubPath, err := writeStub(elf)
	if err != nil {
		return err
	}

	// The helper must not be our child, or the restored program would
	// inherit an unknown child: a spawn process starts it and exits,
	// and the helper is reparented.
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	// The socket the helper moves the restored files over: this end
	// stays open across the exec of the stub, the other is the helper's.
	chans, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	stubChan, helperChan := os.NewFile(uintptr(chans[0]), "file channel"), os.NewFile(uintptr(chans[1]), "file channel")
	defer stubChan.Close()
	defer helperChan.Close()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"cryo-thaw-spawn"}
	cmd.Env = append(os.Environ(), envRole+"=spawn", envPid+"="+strconv.Itoa(os.Getpid()),
		envStub+"="+strconv.FormatUint(stub, 16), envChan+"="+strconv.Itoa(chans[0]))
	if opts.IgnoreCPU {
		cmd.Env = append(cmd.Env, envNoCPU+"=1") // the helper drops xsave state this CPU lacks
	}
	if opts.Files.AllowChanged {
		cmd.Env = append(cmd.Env, files.EnvAllowChanged+"=1")
	}
	if len(opts.Files.Handoffs) > 0 {
		var hs []string
		for _, h := range opts.Files.Handoffs {
			hs = append(hs, h.String())
		}
		cmd.Env = append(cmd.Env, EnvFDs+"="+strings.Join(hs, "\n"))
	}
	cmd.Env = append(cmd.Env, env...)
	// fds 3-5; 6 the "G" pipe of --restore-pid, 7 a stream (or none).
	cmd.ExtraFiles = []*os.File{imgFiles[0], wr, helperChan, nil}
	if opts.pidGo != nil {
		cmd.Env = append(cmd.Env, envRestorePid+"="+strconv.Itoa(p.Pid))
		cmd.ExtraFiles[fdGo-3] = opts.pidGo
	}
	if len(imgFiles) > 1 {
		cmd.ExtraFiles = append(cmd.ExtraFiles, imgFiles[1])
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, os.Stderr
	if err := cmd.Run(); err != nil {
		wr.Close()
		rd.Close()
		return fmt.Errorf("start the restore helper: %w", err)
	}
	wr.Close()
	helperChan.Close()
	if len(imgFiles) > 1 {
		// The helper reads the rest of the stream: the restored
		// process finds /dev/null where its stdin was the thaw's.
		null, err := unix.Open("/dev/null", unix.O_RDWR, 0)
		if err != nil {
			return fmt.Errorf("open /dev/null: %w", err)
		}
		if err := unix.Dup3(null, 0, 0); err != nil {
			return fmt.Errorf("dup /dev/null onto stdin: %w", err)
		}
		unix.Close(null)
	}
	var ok [1]byte
	if n, _ := io.ReadFull(rd, ok[:]); n != 1 || ok[0] != 'S' {
		// The helper said why on stderr.
		return errors.New("the restore helper could not take this process")
	}
	// The stub keeps its end of the file channel.
	if _, err := unix.FcntlInt(stubChan.Fd(), unix.F_SETFD, 0); err != nil {
		return fmt.Errorf("keep the file channel open: %w", err)
	}
	argv := []string{p.Comm}
	// From here on the helper owns this process: it waits for the exec
	// and rebuilds the frozen process around the stub.
	err = syscall.Exec(stubPath, argv, nil)
	return fmt.Errorf("exec the restore stub: %w", err)
}

func checkThreads(p *image.Process) error {
	if len(p.Threads) == 0 {
		return fmt.Errorf("image has no thread")
	}
	if p.Threads[0].Tid != p.Pid {
		return fmt.Errorf("image's first thread is %d, not the main thread %d", p.Threads[0].Tid, p.Pid)
	}
	return nil
}

// archName is a's name for package cpu.
func archName(a image.Arch) string {
	if a == image.ArchARM64 {
		return "arm64"
	}
	return "amd64"
}

// checkCPU refuses a CPU that lacks features the process may rely on,
// naming them and the switches that would have left them out.
func checkCPU(p *image.Process) error {
	host, err := cpu.HostFeatures()
	if err != nil {
		return fmt.Errorf("read this CPU's features: %w", err)
	}
	a := archName(p.Arch)
	if missing := cpu.Missing(cpu.Required(a, p.CPUFeatures, p.CPURuntimes == nil), host); len(missing) > 0 {
		return fmt.Errorf("this CPU lacks features the frozen process may use: %s (thaw --ignore-cpu or %s=1 thaws anyway; to freeze a process that can move here, %s)",
			strings.Join(missing, " "), envNoCPU, cpu.Advice(a, missing, cpu.RuntimesNamed(p.CPURuntimes)))
	}
	return nil
}

// runSpawn starts the helper and exits at once, so that the helper is
// nobody's child but init's (or a subreaper's).
func runSpawn() int {
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"cryo-thaw-helper"}
	env := []string{}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, envRole+"=") {
			env = append(env, e)
		}
	}
	cmd.Env = append(env, envRole+"=helper")
	cmd.ExtraFiles = []*os.File{os.NewFile(fdImage, "image"), os.NewFile(fdReady, "ready"), os.NewFile(fdChan, "file channel")}
	cmd.ExtraFiles = append(cmd.ExtraFiles, nil)
	if os.Getenv(envRestorePid) != "" {
		cmd.ExtraFiles[fdGo-3] = os.NewFile(fdGo, "go")
	}
	if os.Getenv(envStream) != "" {
		cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(fdStream, "image stream"))
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "thaw: start the restore helper: %v\n", err)
		return 1
	}
	return 0
}
