package restore

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/cpu"
	"github.com/cryo-project/cryo/image"
)

// What thaw --info shows: docs/info.md documents every field of Info,
// the --json schema. The schema is its own, not image.Process: the image
// format may change its metadata, the names here stay. A field may be
// added; none is renamed or removed without raising InfoVersion.

// InfoVersion is the version of the --json schema.
const InfoVersion = 1

// Info is what an image holds, as thaw --info --json prints it.
type Info struct {
	InfoVersion int    `json:"info_version"`
	File        string `json:"file"`
	FileBytes   int64  `json:"file_bytes"`
	Format      uint32 `json:"format"`
	ImageBytes  int64  `json:"image_bytes"`

	Pid       int       `json:"pid"`
	Comm      string    `json:"comm"`
	Exe       string    `json:"exe"`
	Argv      []string  `json:"argv"`
	Cwd       string    `json:"cwd"`
	UID       uint32    `json:"uid"`
	GID       uint32    `json:"gid"`
	Stopped   bool      `json:"stopped"`
	FrozenAt  time.Time `json:"frozen_at"`
	Host      string    `json:"host"`
	Kernel    string    `json:"kernel"`
	Arch      string    `json:"arch"`
	PageSize  int       `json:"page_size"`
	CPU       []string  `json:"cpu_features"`
	XSaveMask string    `json:"xsave_mask"`
	FPUBytes  int       `json:"xsave_bytes"`

	Threads  []InfoThread  `json:"threads"`
	Mappings []InfoMapping `json:"mappings"`
	FDs      []InfoFD      `json:"fds"`
	Peers    []string      `json:"external_peers"`
	Pending  []InfoSignal  `json:"pending_signals"`
	Zombies  []InfoZombie  `json:"zombies"`

	MappedBytes uint64 `json:"mapped_bytes"`
	PageRecords uint64 `json:"page_records"`
	Pages       uint64 `json:"pages"`
	PageBytes   uint64 `json:"page_bytes"`
	StoredBytes uint64 `json:"stored_page_bytes"`
	Blobs       uint64 `json:"blobs"`
	BlobBytes   uint64 `json:"blob_bytes"`
	SignalsHeld int    `json:"signal_handlers"`
	TimersArmed int    `json:"timers"`
	LocksHeld   int    `json:"locks"`
}

// InfoThread is one thread.
type InfoThread struct {
	Tid  int    `json:"tid"`
	Name string `json:"name"`
}

// InfoMapping is one mapping of the address space.
type InfoMapping struct {
	Start string `json:"start"` // hex, 0x...
	End   string `json:"end"`
	Bytes uint64 `json:"bytes"`
	Prot  string `json:"prot"` // "r-xp": read, write, exec, private or shared
	Kind  string `json:"kind"`
	Path  string `json:"path"`
}

// InfoFD is one file descriptor.
type InfoFD struct {
	FD      int    `json:"fd"`
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	File    int    `json:"file"` // the open file description; fds sharing one share it
	Cloexec bool   `json:"cloexec"`
}

// InfoSignal is a pending signal.
type InfoSignal struct {
	Signo  int    `json:"signo"`
	Name   string `json:"name"`
	Thread int    `json:"thread"` // 0: pending for the process
}

// InfoZombie is a child that had exited, not yet waited for.
type InfoZombie struct {
	Pid    int `json:"pid"`
	Status int `json:"status"`
}

var vmaKindNames = map[image.VMAKind]string{
	image.VMAAnon:         "anon",
	image.VMAFilePrivate:  "file",
	image.VMAFileShared:   "file-shared",
	image.VMASharedAnon:   "shared-anon",
	image.VMAVDSO:         "vdso",
	image.VMAVVAR:         "vvar",
	image.VMASharedObject: "shared-object",
}

// ReadInfo reads what the self-restoring executable (or cryo binary
// carrying an image) at path holds, without running any of it: the
// trailer, the metadata, and every record, checked, with no page
// decompressed.
func ReadInfo(path string) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	sec, err := image.OpenEmbedded(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r, err := image.NewReader(sec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := r.Meta()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, err := r.Summarize()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	in := &Info{
		InfoVersion: InfoVersion, File: path, FileBytes: st.Size(), Format: r.Version(), ImageBytes: sec.Size(),
		Pid: p.Pid, Comm: p.Comm, Exe: p.Exe, Argv: p.Argv, Cwd: p.Cwd,
		UID: p.Creds.Uid[1], GID: p.Creds.Gid[1], Stopped: p.Stopped,
		FrozenAt: time.Unix(0, p.FrozenAt).UTC(), Host: p.Machine, Kernel: p.Kernel,
		Arch: p.Arch.String(), PageSize: p.PageSize, CPU: requiredCPU(p),
		XSaveMask: "0x" + strconv.FormatUint(p.XSaveMask, 16),
		Threads:   []InfoThread{}, Mappings: []InfoMapping{}, FDs: []InfoFD{},
		Peers: p.Notes, Pending: []InfoSignal{}, Zombies: []InfoZombie{},
		PageRecords: s.PagesRecords, Pages: s.Pages, PageBytes: s.PageBytes, StoredBytes: s.StoredBytes,
		Blobs: s.Blobs, BlobBytes: s.BlobBytes,
		SignalsHeld: len(p.SigActions), TimersArmed: len(p.ITimers) + len(p.Timers), LocksHeld: len(p.Locks),
	}
	if in.Argv == nil {
		in.Argv = []string{}
	}
	if in.Peers == nil {
		in.Peers = []string{}
	}
	if len(p.Threads) > 0 {
		in.FPUBytes = len(p.Threads[0].FPU)
	}
	for _, th := range p.Threads {
		in.Threads = append(in.Threads, InfoThread{Tid: th.Tid, Name: th.Comm})
	}
	for _, v := range p.VMAs {
		in.Mappings = append(in.Mappings, InfoMapping{
			Start: "0x" + strconv.FormatUint(v.Start, 16), End: "0x" + strconv.FormatUint(v.End, 16),
			Bytes: v.End - v.Start, Prot: protString(v), Kind: vmaKindNames[v.Kind], Path: v.Path,
		})
		in.MappedBytes += v.End - v.Start
	}
	for _, fd := range p.FDs {
		i := InfoFD{FD: fd.Num, File: fd.File, Cloexec: fd.Cloexec}
		if f := p.File(fd.File); f != nil {
			i.Kind, i.Path = string(f.Kind), f.Path
		}
		in.FDs = append(in.FDs, i)
	}
	if s.Tail != nil {
		for _, si := range s.Tail.Pending {
			n := int(int32(le.Uint32(si.Raw[:])))
			in.Pending = append(in.Pending, InfoSignal{Signo: n, Name: signalName(n), Thread: si.Tid})
		}
	}
	for _, z := range p.Zombies {
		in.Zombies = append(in.Zombies, InfoZombie{Pid: z.Pid, Status: z.Status})
	}
	return in, nil
}

// requiredCPU lists the CPU features a thaw checks (checkCPU).
func requiredCPU(p *image.Process) []string {
	return cpu.Required(archName(p.Arch), p.CPUFeatures, p.CPURuntimes == nil)
}

func protString(v image.VMA) string {
	b := []byte("---p")
	for i, c := range []struct {
		bit uint32
		ch  byte
	}{{unix.PROT_READ, 'r'}, {unix.PROT_WRITE, 'w'}, {unix.PROT_EXEC, 'x'}} {
		if v.Prot&c.bit != 0 {
			b[i] = c.ch
		}
	}
	if v.Kind == image.VMAFileShared || v.Kind == image.VMASharedAnon || v.Kind == image.VMASharedObject {
		b[3] = 's'
	}
	return string(b)
}

func signalName(n int) string {
	if name := unix.SignalName(unix.Signal(n)); name != "" {
		return name
	}
	if n >= 34 && n <= 64 {
		return "SIGRTMIN+" + strconv.Itoa(n-34)
	}
	return "signal " + strconv.Itoa(n)
}

// humanBytes formats n as 1.5 KiB, 12 MiB...
func humanBytes[T int | int64 | uint64](v T) string {
	n := float64(v)
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%d B", uint64(v))
	case n < 10 && n != float64(int64(n)):
		return fmt.Sprintf("%.1f %s", n, units[i])
	}
	return fmt.Sprintf("%.0f %s", n, units[i])
}

// WriteJSON writes in as one indented JSON document.
func (in *Info) WriteJSON(w io.Writer) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(in)
}

// WriteText writes in for a reader: a few lines of summary, then the
// threads, mappings, fds and peers one a line.
func (in *Info) WriteText(w io.Writer) error {
	var b strings.Builder
	pf := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	pf("%s: frozen process, %s (image %s, format %d)\n", in.File, humanBytes(in.FileBytes), humanBytes(in.ImageBytes), in.Format)
	pf("program   %s (%s)\n", orDash(in.Exe), in.Comm)
	if len(in.Argv) > 0 {
		pf("argv      %s\n", quoteArgs(in.Argv))
	}
	pf("cwd       %s\n", in.Cwd)
	state := ""
	if in.Stopped {
		state = ", stopped (job control)"
	}
	pf("pid       %d, uid %d, gid %d, %d thread%s%s\n", in.Pid, in.UID, in.GID, len(in.Threads), plural(len(in.Threads)), state)
	pf("frozen    %s on %s, kernel %s, %s, %s pages\n", in.FrozenAt.Local().Format("2006-01-02 15:04:05 MST"), orDash(in.Host), orDash(in.Kernel), in.Arch, humanBytes(in.PageSize))
	pf("cpu       xsave %d bytes (XCR0 %s); needs %d features: %s\n", in.FPUBytes, in.XSaveMask, len(in.CPU), strings.Join(in.CPU, " "))
	pf("memory    %d mappings, %s mapped; %d pages (%s) stored in %s",
		len(in.Mappings), humanBytes(in.MappedBytes), in.Pages, humanBytes(in.PageBytes), humanBytes(in.StoredBytes))
	if in.PageBytes > 0 {
		pf(" (%.0f%%)", 100*float64(in.StoredBytes)/float64(in.PageBytes))
	}
	pf("\n")
	if in.Blobs > 0 {
		pf("blobs     %d (file and pipe contents), %s\n", in.Blobs, humanBytes(in.BlobBytes))
	}
	pf("kernel    %d signal handlers, %d timers armed, %d locks held\n", in.SignalsHeld, in.TimersArmed, in.LocksHeld)
	if len(in.Pending) > 0 {
		var s []string
		for _, p := range in.Pending {
			if p.Thread == 0 {
				s = append(s, p.Name)
			} else {
				s = append(s, fmt.Sprintf("%s (thread %d)", p.Name, p.Thread))
			}
		}
		pf("pending   %s\n", strings.Join(s, ", "))
	}
	for _, z := range in.Zombies {
		pf("zombie    child %d, wait status %#x\n", z.Pid, z.Status)
	}
	pf("threads\n")
	for _, t := range in.Threads {
		pf("  %-8d %s\n", t.Tid, t.Name)
	}
	pf("mappings\n")
	for _, m := range in.Mappings {
		pf("  %12s-%-12s %s %9s  %-13s %s\n", strings.TrimPrefix(m.Start, "0x"), strings.TrimPrefix(m.End, "0x"), m.Prot, humanBytes(m.Bytes), m.Kind, m.Path)
	}
	pf("fds\n")
	for _, f := range in.FDs {
		shared := ""
		for _, g := range in.FDs {
			if g.File == f.File && g.FD != f.FD {
				shared += " " + strconv.Itoa(g.FD)
			}
		}
		if shared != "" {
			shared = "  (shared with fd" + shared + ")"
		}
		pf("  %-4d %-9s %s%s\n", f.FD, f.Kind, f.Path, shared)
	}
	if len(in.Peers) > 0 {
		pf("external peers\n")
		for _, n := range in.Peers {
			pf("  %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// quoteArgs joins argv as a shell would read it back.
func quoteArgs(argv []string) string {
	var out []string
	for _, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
		}) < 0 {
			out = append(out, a)
			continue
		}
		out = append(out, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return strings.Join(out, " ")
}

// PrintInfo prints what the image at path holds, as text or JSON.
func PrintInfo(w io.Writer, path string, asJSON bool) error {
	in, err := ReadInfo(path)
	if err != nil {
		return err
	}
	if asJSON {
		return in.WriteJSON(w)
	}
	return in.WriteText(w)
}
