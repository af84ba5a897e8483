package files

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileNS: a namespace descriptor, opened from /proc/PID/ns/TYPE (for
// setns(2), or to keep a namespace alive). Its link says "net:[4026531840]":
// the type and the namespace's inode on nsfs.
//
// No path leads back to a namespace other than a process's own, so
//   - freeze refuses a descriptor of a namespace that is not one of the
//     process's own (/proc/PID/ns/TYPE or TYPE_for_children): a
//     namespace of a child, or one bind-mounted somewhere, could never be
//     thawed. The process's own are freeze's own (freeze refuses a
//     process in other namespaces).
//   - thaw opens /proc/self/ns/TYPE (or TYPE_for_children) of its own,
//     with the descriptor's flags (O_PATH too), when that is the
//     namespace frozen: the same inode, so the same namespace, which
//     holds on the machine of the freeze. Elsewhere (another machine, a
//     container) the thaw refuses, naming both namespaces.
const FileNS image.FileKind = "ns"

// nsTypes are the namespace types /proc/PID/ns shows.
var nsTypes = []string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"}

// nsType returns the namespace type of a descriptor's link
// ("net:[4026531840]" → "net"), or "".
func nsType(link string) string {
	typ, rest, ok := strings.Cut(link, ":[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return ""
	}
	for _, t := range nsTypes {
		if t == typ {
			return t
		}
	}
	return ""
}

type nsPayload struct {
	Type string `json:"type"`
}

var nsKind = kind{
	name: FileNS,
	match: func(d *Dumper, o *Object) bool {
		return o.Stat.Mode&unix.S_IFMT == unix.S_IFREG && nsType(o.Link) != ""
	},
	dump: dumpNS,
	open: openNS,
}

func dumpNS(d *Dumper, o *Object, f *image.File) error {
	typ := nsType(o.Link)
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(o.Local.Fd()), &fs); err != nil {
		return fmt.Errorf("fd %d (%s): statfs: %w", o.Num, o.Link, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("fd %d is %s, which looks like a namespace but is not on nsfs: unsupported", o.Num, o.Link)
	}
	var own []string
	for _, name := range []string{typ, typ + "_for_children"} {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/%s", d.Pid, name), &st); err != nil {
			continue // no such entry (uts_for_children), or a zombie's
		}
		if st.Ino == o.Stat.Ino && st.Dev == o.Stat.Dev {
			f.Pos = 0
			return setPayload(f, &nsPayload{Type: typ})
		}
		own = append(own, fmt.Sprintf("%s:[%d]", typ, st.Ino))
	}
	return fmt.Errorf("fd %d is the %s namespace %s, not the process's own (%s): thaw could not open it again: unsupported",
		o.Num, typ, o.Link, strings.Join(own, ", "))
}

func openNS(r *Restorer, f *image.File) (*os.File, error) {
	var p nsPayload
	if err := getPayload(f, &p); err != nil {
		return nil, err
	}
	n := r.firstFD(f.ID)
	if nsType(p.Type+":[0]") == "" {
		return nil, fmt.Errorf("fd %d: unknown namespace type %q", n, p.Type)
	}
	flags := int(f.Flags)&(unix.O_ACCMODE|unix.O_PATH) | unix.O_CLOEXEC
	var here []string
	for _, name := range []string{p.Type, p.Type + "_for_children"} {
		path := "/proc/self/ns/" + name
		fd, err := unix.Open(path, flags, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("fd %d: open %s: %w", n, path, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("fd %d: stat %s: %w", n, path, err)
		}
		if st.Ino == f.Ino {
			return os.NewFile(uintptr(fd), f.Path), nil
		}
		unix.Close(fd)
		here = append(here, fmt.Sprintf("%s:[%d]", p.Type, st.Ino))
	}
	return nil, fmt.Errorf("fd %d is the %s namespace %s, and this thaw runs in %s: a namespace descriptor is reopened only in the namespace it names (thaw where the freeze ran)",
		n, p.Type, f.Path, strings.Join(here, ", "))
}
