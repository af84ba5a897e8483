package restore

import (
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

	"github.com/cryo-project/cryo/arch"
	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
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
)

// Main runs the restore roles. Call it first in main: if this process is
// a spawn or helper of a thaw, or an executable with an image appended
// (./app.bin), it never returns. Otherwise it returns and the command
// runs as usual.
func Main() {
	switch os.Getenv(envRole) {
	case "spawn":
		os.Exit(runSpawn())
	case "helper":
		os.Exit(runHelper())
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open(self)
	if err != nil {
		return
	}
	_, err = image.OpenEmbedded(f)
	f.Close()
	if errors.Is(err, image.ErrNoImage) {
		return
	}
	name := filepath.Base(os.Args[0])
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "%s: a frozen process; run it without arguments to thaw it (environment: %s=1 thaws on a CPU that lacks features the process may use)\n", name, envNoCPU)
		os.Exit(2)
	}
	if err == nil {
		err = Thaw(self, Options{IgnoreCPU: os.Getenv(envNoCPU) == "1", Verbose: os.Getenv(envVerbose) == "1"})
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}

// Options tune a thaw.
type Options struct {
	// IgnoreCPU thaws even where the CPU lacks features the process
	// may use (it may then die of SIGILL).
	IgnoreCPU bool
	Verbose   bool
}

// Thaw turns the calling process into the process frozen in path. It
// returns only on failure, before anything irreversible happened.
func Thaw(path string, opts Options) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	sec, err := image.OpenEmbedded(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	r, err := image.NewReader(sec)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
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
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"cryo-thaw-spawn"}
	cmd.Env = append(os.Environ(), envRole+"=spawn", envPid+"="+strconv.Itoa(os.Getpid()),
		envStub+"="+strconv.FormatUint(stub, 16))
	cmd.ExtraFiles = []*os.File{f, wr}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, os.Stderr
	if err := cmd.Run(); err != nil {
		wr.Close()
		rd.Close()
		return fmt.Errorf("start the restore helper: %w", err)
	}
	wr.Close()
	var ok [1]byte
	if n, _ := io.ReadFull(rd, ok[:]); n != 1 || ok[0] != 'S' {
		// The helper said why on stderr.
		return errors.New("the restore helper could not take this process")
	}
	argv := []string{p.Comm}
	// From here on the helper owns this process: it waits for the exec
	// and rebuilds the frozen process around the stub.
	err = syscall.Exec(stubPath, argv, nil)
	return fmt.Errorf("exec the restore stub: %w", err)
}

func checkThreads(p *image.Process) error {
	if len(p.Threads) != 1 {
		return fmt.Errorf("image has %d threads: only single-threaded processes can be thawed yet", len(p.Threads))
	}
	return nil
}

// cpuRelevant tells whether a /proc/cpuinfo flag names an instruction set
// extension that compiled code or a libc's ifunc may select at startup.
func cpuRelevant(a image.Arch, flag string) bool {
	if a == image.ArchARM64 {
		return true // every arm64 "Features" entry is an ISA feature
	}
	for _, p := range []string{"sse", "ssse3", "avx", "fma", "f16c", "bmi", "adx", "aes", "vaes",
		"pclmulqdq", "vpclmulqdq", "sha", "popcnt", "abm", "movbe", "erms", "fsrm", "rdrand",
		"rdseed", "amx", "gfni", "xsave", "cx16", "lahf_lm", "clflushopt", "clwb", "rdpid",
		"movdir", "serialize", "mmx", "cmov", "cx8", "fxsr", "lzcnt", "pku", "ospke", "vpopcnt", "avx512"} {
		if strings.HasPrefix(flag, p) {
			return true
		}
	}
	return false
}

func checkCPU(p *image.Process) error {
	host, err := proc.CPUFlags()
	if err != nil {
		return fmt.Errorf("read this CPU's features: %w", err)
	}
	have := map[string]bool{}
	for _, f := range host {
		have[f] = true
	}
	var missing []string
	for _, f := range p.CPUFeatures {
		if !have[f] && cpuRelevant(p.Arch, f) {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("this CPU lacks features the frozen process may use: %s (set %s=1 to thaw anyway)", strings.Join(missing, " "), envNoCPU)
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
	cmd.ExtraFiles = []*os.File{os.NewFile(fdImage, "image"), os.NewFile(fdReady, "ready")}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "thaw: start the restore helper: %v\n", err)
		return 1
	}
	return 0
}
