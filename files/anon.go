package files

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileAnon: the anonymous-inode files no kind above carries, refused by
// name (never thawed: open is never reached). It comes last in the
// table: the event kinds match their own anon_inode links first. A
// memfd_secret area is refused under the same name, early (secretmemKind).
const FileAnon image.FileKind = "anon"

// anonKinds names, by the name the kernel gives the anon inode, what
// the file is and why it cannot be carried.
var anonKinds = map[string]struct{ what, why string }{
	"[fanotify]":         {"a fanotify instance", "its marks and the permission events it holds cannot be read back"},
	"[io_uring]":         {"an io_uring instance", "its rings, requests in flight and registered files and buffers cannot be carried"},
	"[userfaultfd]":      {"a userfaultfd", "its registered ranges and the faults it holds live in the kernel"},
	"[perf_event]":       {"a perf event", "its counters and buffers belong to the kernel"},
	"bpf-map":            {"a BPF map", "BPF objects cannot be carried"},
	"bpf-prog":           {"a BPF program", "BPF objects cannot be carried"},
	"bpf_link":           {"a BPF link", "BPF objects cannot be carried"},
	"[bpf_link]":         {"a BPF link", "BPF objects cannot be carried"},
	"bpf_iter":           {"a BPF iterator", "BPF objects cannot be carried"},
	"[bpf_iter]":         {"a BPF iterator", "BPF objects cannot be carried"},
	"btf":                {"BTF data", "BPF objects cannot be carried"},
	"kvm-vm":             {"a KVM virtual machine", "its state lives in the kernel"},
	"kvm-vcpu":           {"a KVM virtual CPU", "its state lives in the kernel"},
	"[dmabuf]":           {"a DMA buffer", "device memory cannot be carried"},
	"sync_file":          {"a sync file", "a device fence cannot be carried"},
	"[landlock-ruleset]": {"a Landlock ruleset", "its rules cannot be read back"},
}

var anonKind = kind{
	name:  FileAnon,
	match: func(d *Dumper, o *Object) bool { return strings.HasPrefix(o.Link, "anon_inode:") },
	dump: func(d *Dumper, o *Object, f *image.File) error {
		if o.Link == "anon_inode:[pidfd]" {
			return pidfdRefusal(d, o)
		}
		return anonRefusal(o.Num, o.Link)
	},
	open: func(r *Restorer, f *image.File) (*os.File, error) {
		return nil, fmt.Errorf("fd %d is %s, which no thaw can restore", r.firstFD(f.ID), f.Path)
	},
}

// secretmemKind: a memfd_secret(2) area, refused. /proc names it like an
// unlinked file ("/secretmem (deleted)"), so it comes before the kinds
// that carry those; its memory cannot be read, by freeze or anyone.
var secretmemKind = kind{
	name:  FileAnon,
	match: func(d *Dumper, o *Object) bool { return isSecretmem(o) },
	dump: func(d *Dumper, o *Object, f *image.File) error {
		return fmt.Errorf("fd %d is a memfd_secret area (%s): unsupported: its memory is hidden from everyone, freeze included", o.Num, o.Link)
	},
	open: anonKind.open,
}

// anonRefusal is the one line freeze fails with for an anon-inode fd.
func anonRefusal(fd int, link string) error {
	k, ok := anonKinds[strings.TrimPrefix(link, "anon_inode:")]
	if !ok {
		return fmt.Errorf("fd %d is an anonymous-inode file of a kind cryo does not know (%s): unsupported", fd, link)
	}
	return fmt.Errorf("fd %d is %s (%s): unsupported: %s", fd, k.what, link, k.why)
}

// isSecretmem tells a memfd_secret(2) file, which /proc names
// "/secretmem (deleted)", by its filesystem.
func isSecretmem(o *Object) bool {
	if o.Local == nil || o.Stat.Mode&unix.S_IFMT != unix.S_IFREG || strings.HasPrefix(o.Link, "anon_inode:") {
		return false
	}
	var fs unix.Statfs_t
	return unix.Fstatfs(int(o.Local.Fd()), &fs) == nil && fs.Type == unix.SECRETMEM_MAGIC
}

// pidfdRefusal: a pidfd names a process (fdinfo "Pid:"); that process
// is not thawed with this one, and even the process itself comes back
// under another pid.
func pidfdRefusal(d *Dumper, o *Object) error {
	pid := infoFields(o.Info.Raw)["Pid"]
	switch pid {
	case "", "-1", "0":
		return fmt.Errorf("fd %d is a pidfd of a process that has exited (%s): unsupported", o.Num, o.Link)
	case fmt.Sprint(d.Pid):
		return fmt.Errorf("fd %d is a pidfd of the process itself (%s): unsupported: the thawed process has another pid", o.Num, o.Link)
	}
	return fmt.Errorf("fd %d is a pidfd of process %s (%s): unsupported: that process is not thawed with this one", o.Num, pid, o.Link)
}
