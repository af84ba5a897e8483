package files

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
)

func TestKindOf(t *testing.T) {
	const (
		reg  = unix.S_IFREG | 0644
		dir  = unix.S_IFDIR | 0755
		fifo = unix.S_IFIFO | 0600
		sock = unix.S_IFSOCK | 0777
		chr  = unix.S_IFCHR | 0620
		blk  = unix.S_IFBLK | 0660
		lnk  = unix.S_IFLNK | 0777
		nsfs = unix.S_IFREG | 0444 // what stat says of /proc/self/ns/net
		anon = 0600                // anon_inode: no file type
	)
	var (
		pts0    = unix.Mkdev(136, 0)
		pts300  = unix.Mkdev(137, 44) // /dev/pts/300
		tty     = unix.Mkdev(5, 0)
		ptmx    = unix.Mkdev(5, 2)
		ttyS0   = unix.Mkdev(4, 64)
		devNull = unix.Mkdev(1, 3)
		sda     = unix.Mkdev(8, 0)
	)
	for _, tc := range []struct {
		name  string
		fd    int
		link  string
		mode  uint32
		rdev  uint64
		flags uint32
		std   bool   // the same inode is on a std fd already
		held  int    // the process holds the master of this pty (0: none)
		info  string // fdinfo beyond pos and flags
		// sock, when set, is the domain, type and protocol of a real
		// socket made for the row as its Local.
		sock []int
		kind image.FileKind
		err  string // in the error, when one is wanted
	}{
		// Terminals, pipes and sockets on 0-2 are the thaw's own.
		{name: "pipe on fd 0", fd: 0, link: "pipe:[94759]", mode: fifo, kind: image.FileStd},
		{name: "socket on fd 1", fd: 1, link: "socket:[113001]", mode: sock, kind: image.FileStd},
		{name: "pts on fd 2", fd: 2, link: "/dev/pts/0", mode: chr, rdev: pts0, flags: unix.O_RDWR, kind: image.FileStd},
		{name: "pts beyond 255 on fd 0", fd: 0, link: "/dev/pts/300", mode: chr, rdev: pts300, kind: image.FileStd},
		{name: "/dev/tty on fd 1", fd: 1, link: "/dev/tty", mode: chr, rdev: tty, kind: image.FileStd},
		// The same object opened again on a higher fd (bash's 255).
		{name: "terminal on fd 255, also on fd 0", fd: 255, link: "/dev/pts/0", mode: chr, rdev: pts0, std: true, kind: image.FileStd},
		{name: "pipe on fd 8, also on fd 1", fd: 8, link: "pipe:[113001]", mode: fifo, std: true, kind: image.FileStd},

		{name: "pipe not shared with 0-2", fd: 3, link: "pipe:[5]", mode: fifo, kind: FilePipe},
		{name: "FIFO", fd: 3, link: "/tmp/fifo", mode: fifo, kind: FilePipe},
		{name: "regular file", fd: 3, link: "/tmp/cf/file", mode: reg, flags: unix.O_WRONLY, kind: image.FileReg},
		{name: "regular file on fd 0", fd: 0, link: "/etc/passwd", mode: reg, kind: image.FileReg},
		{name: "directory", fd: 7, link: "/tmp/cf", mode: dir, kind: image.FileDir},
		{name: "device", fd: 6, link: "/dev/null", mode: chr, rdev: devNull, kind: image.FileDevice},
		{name: "device on fd 0", fd: 0, link: "/dev/null", mode: chr, rdev: devNull, kind: image.FileDevice},
		{name: "memfd", fd: 3, link: "/memfd:ring buffer (deleted)", mode: reg, flags: unix.O_RDWR, kind: FileMemfd},
		{name: "unlinked file", fd: 4, link: "/tmp/cf/scratch (deleted)", mode: reg, flags: unix.O_RDWR, kind: FileUnlinked},
		{name: "unlinked file on fd 0", fd: 0, link: "/tmp/cf/in (deleted)", mode: reg, kind: FileUnlinked},

		// O_PATH: a path, whatever is there.
		{name: "O_PATH of a file", fd: 4, link: "/tmp/cf/file", mode: reg, flags: unix.O_PATH, kind: FilePath},
		{name: "O_PATH|O_NOFOLLOW of a symlink", fd: 5, link: "/tmp/cf/link", mode: lnk, flags: unix.O_PATH | unix.O_NOFOLLOW, kind: FilePath},
		{name: "O_PATH of a directory", fd: 6, link: "/tmp/cf", mode: dir, flags: unix.O_PATH | unix.O_DIRECTORY, kind: FilePath},
		{name: "O_PATH of a FIFO", fd: 7, link: "/tmp/fifo", mode: fifo, flags: unix.O_PATH, kind: FilePath},
		{name: "O_PATH of a device", fd: 8, link: "/dev/null", mode: chr, rdev: devNull, flags: unix.O_PATH, kind: FilePath},
		{name: "net namespace", fd: 12, link: "net:[4026531840]", mode: nsfs, kind: FileNS},
		{name: "O_PATH of the uts namespace", fd: 13, link: "uts:[4026531838]", mode: nsfs, flags: unix.O_PATH, kind: FileNS},
		{name: "pid namespace for children", fd: 14, link: "pid:[4026531836]", mode: nsfs, kind: FileNS},
		{name: "deleted directory", fd: 10, link: "/tmp/cf/d (deleted)", mode: dir, kind: FileDeletedDir},
		{name: "O_PATH of a deleted directory", fd: 10, link: "/tmp/cf/d (deleted)", mode: dir, flags: unix.O_PATH, kind: FileDeletedDir},
		{name: "deleted device node", fd: 9, link: "/tmp/cf/null (deleted)", mode: chr, rdev: devNull, flags: unix.O_RDONLY, kind: FileDeletedDev},

		// Terminals beyond 0-2 (tty.go tells their roles apart at dump).
		{name: "/dev/tty on fd 5", fd: 5, link: "/dev/tty", mode: chr, rdev: tty, flags: unix.O_RDONLY, kind: FileTTY},
		{name: "pts on fd 3, not on 0-2", fd: 3, link: "/dev/pts/0", mode: chr, rdev: pts0, kind: FileTTY},
		{name: "pty master on fd 3", fd: 3, link: "/dev/ptmx", mode: chr, rdev: ptmx, kind: FileTTY},
		{name: "pty master of a container's devpts", fd: 4, link: "/dev/pts/ptmx", mode: chr, rdev: ptmx, kind: FileTTY},
		{name: "serial line on fd 4", fd: 4, link: "/dev/ttyS0", mode: chr, rdev: ttyS0, kind: FileTTY},
		{name: "O_PATH of /dev/tty", fd: 6, link: "/dev/tty", mode: chr, rdev: tty, flags: unix.O_PATH, kind: FilePath},
		{name: "pts whose master closed (its node is gone)", fd: 4, link: "/dev/pts/0 (deleted)", mode: chr, rdev: pts0, kind: FileTTY},
		// A pty master, or a slave whose master the process holds, is
		// the process's own pair even on 0-2.
		{name: "pty master on fd 0", fd: 0, link: "/dev/ptmx", mode: chr, rdev: ptmx, kind: FileTTY},
		{name: "pts on fd 1 whose master the process holds", fd: 1, link: "/dev/pts/300", mode: chr, rdev: pts300, held: 300, kind: FileTTY},
		{name: "pts on fd 1, another pair's master held", fd: 1, link: "/dev/pts/0", mode: chr, rdev: pts0, held: 300, kind: image.FileStd},

		{name: "TCP socket", fd: 3, link: "socket:[7]", mode: sock, sock: []int{unix.AF_INET, unix.SOCK_STREAM, 0}, kind: FileInet},
		{name: "UDP IPv6 socket", fd: 9, link: "socket:[7]", mode: sock, sock: []int{unix.AF_INET6, unix.SOCK_DGRAM, 0}, kind: FileInet},
		{name: "TCP socket on fd 1", fd: 1, link: "socket:[7]", mode: sock, sock: []int{unix.AF_INET, unix.SOCK_STREAM, 0}, kind: image.FileStd},

		{name: "block device", fd: 3, link: "/dev/sda", mode: blk, rdev: sda, err: "fd 3 is /dev/sda (a block device)"},
		{name: "deleted block device", fd: 3, link: "/tmp/sda (deleted)", mode: blk, rdev: sda, err: "fd 3 is /tmp/sda (deleted) (a block device)"},
		{name: "no namespace type", fd: 3, link: "foo:[4026531840]", mode: nsfs, err: "fd 3 is foo:[4026531840] (a regular file)"},

		// Anonymous inodes: no file type in their mode.
		{name: "eventfd", fd: 5, link: "anon_inode:[eventfd]", mode: anon, kind: FileEventfd},
		{name: "timerfd", fd: 5, link: "anon_inode:[timerfd]", mode: anon, kind: FileTimerfd},
		{name: "signalfd", fd: 5, link: "anon_inode:[signalfd]", mode: anon, kind: FileSignalfd},
		{name: "inotify", fd: 5, link: "anon_inode:inotify", mode: anon, kind: FileInotify},
		{name: "epoll", fd: 5, link: "anon_inode:[eventpoll]", mode: anon, kind: FileEpoll},
		{name: "eventfd on fd 0", fd: 0, link: "anon_inode:[eventfd]", mode: anon, kind: FileEventfd},
		// Refused by name, each in one line.
		{name: "io_uring", fd: 9, link: "anon_inode:[io_uring]", mode: anon,
			err: "fd 9 is an io_uring instance (anon_inode:[io_uring]): unsupported: "},
		{name: "userfaultfd", fd: 9, link: "anon_inode:[userfaultfd]", mode: anon,
			err: "fd 9 is a userfaultfd (anon_inode:[userfaultfd]): unsupported: "},
		{name: "fanotify", fd: 9, link: "anon_inode:[fanotify]", mode: anon,
			err: "fd 9 is a fanotify instance (anon_inode:[fanotify]): unsupported: "},
		{name: "perf event", fd: 9, link: "anon_inode:[perf_event]", mode: anon,
			err: "fd 9 is a perf event (anon_inode:[perf_event]): unsupported: "},
		{name: "bpf map", fd: 9, link: "anon_inode:bpf-map", mode: anon, err: "fd 9 is a BPF map (anon_inode:bpf-map): unsupported"},
		{name: "bpf program", fd: 9, link: "anon_inode:bpf-prog", mode: anon, err: "fd 9 is a BPF program (anon_inode:bpf-prog): unsupported"},
		{name: "bpf link", fd: 9, link: "anon_inode:bpf_link", mode: anon, err: "fd 9 is a BPF link (anon_inode:bpf_link): unsupported"},
		{name: "pidfd", fd: 9, link: "anon_inode:[pidfd]", mode: 0o700, info: "Pid:\t4242\n",
			err: "fd 9 is a pidfd of process 4242 (anon_inode:[pidfd]): unsupported: that process is not thawed with this one"},
		{name: "pidfd of a process gone", fd: 9, link: "anon_inode:[pidfd]", mode: 0o700, info: "Pid:\t-1\n",
			err: "fd 9 is a pidfd of a process that has exited"},
		{name: "pidfd on fd 0", fd: 0, link: "anon_inode:[pidfd]", mode: 0o700, info: "Pid:\t4242\n", err: "fd 0 is a pidfd"},
		{name: "kvm", fd: 9, link: "anon_inode:kvm-vm", mode: anon, err: "fd 9 is a KVM virtual machine (anon_inode:kvm-vm): unsupported"},
		{name: "an anon inode nobody knows", fd: 9, link: "anon_inode:[frobnicator]", mode: anon,
			err: "fd 9 is an anonymous-inode file of a kind cryo does not know (anon_inode:[frobnicator]): unsupported"},
		// Sockets of the families no kind carries.
		{name: "netlink socket", fd: 3, link: "socket:[123]", mode: sock, sock: []int{unix.AF_NETLINK, unix.SOCK_RAW, 0},
			err: "fd 3 is a netlink socket (socket:[123]): unsupported"},
		{name: "packet socket", fd: 4, link: "socket:[124]", mode: sock, sock: []int{unix.AF_PACKET, unix.SOCK_DGRAM, 0},
			err: "fd 4 is a packet socket (socket:[124]): unsupported"},
		{name: "alg socket", fd: 5, link: "socket:[125]", mode: sock, sock: []int{unix.AF_ALG, unix.SOCK_SEQPACKET, 0},
			err: "fd 5 is an alg (kernel crypto) socket (socket:[125]): unsupported"},
		{name: "vsock socket", fd: 6, link: "socket:[126]", mode: sock, sock: []int{unix.AF_VSOCK, unix.SOCK_STREAM, 0},
			err: "fd 6 is a vsock socket (socket:[126]): unsupported"},
		{name: "socket file opened O_PATH", fd: 7, link: "/run/x.sock", mode: sock, flags: unix.O_PATH, kind: FilePath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Dumper{state: map[image.FileKind]any{}}
			if tc.held != 0 {
				d.state[ttyScanKey] = &ttyScan{masters: map[int]bool{tc.held: true}}
			}
			st := unix.Stat_t{Mode: tc.mode, Rdev: tc.rdev, Dev: 9, Ino: 99}
			if tc.std {
				d.t.Files = append(d.t.Files, image.File{ID: 1, Kind: image.FileStd, Std: 1, Dev: 9, Ino: 99})
			}
			o := &Object{Num: tc.fd, Link: tc.link, Stat: st, Info: proc.FDInfo{Flags: tc.flags, Raw: tc.info}}
			if tc.sock != nil {
				o.Local = testSocket(t, tc.sock[0], tc.sock[1], tc.sock[2])
			}
			k, err := d.kindOf(o)
			if err == nil && tc.err != "" {
				// Refused by its kind, when it dumps it.
				err = k.dump(d, o, &image.File{ID: 1, Kind: k.name})
			}
			if tc.err != "" {
				if err == nil {
					t.Fatalf("no error; kind %q", k.name)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %q, want it to say %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.name != tc.kind {
				t.Errorf("kind %q, want %q", k.name, tc.kind)
			}
		})
	}
}

func TestStdOf(t *testing.T) {
	files := []image.File{
		{ID: 1, Kind: image.FileStd, Std: 0, Dev: 0x16, Ino: 3},
		{ID: 2, Kind: image.FileReg, Dev: 0xfe00, Ino: 99},
		{ID: 3, Kind: image.FileStd, Std: 2, Dev: 0xd, Ino: 113001},
	}
	for _, tc := range []struct {
		name     string
		dev, ino uint64
		want     int
	}{
		{"the terminal on fd 0", 0x16, 3, 0},
		{"the pipe on fd 2", 0xd, 113001, 2},
		{"a regular file's inode is no std file", 0xfe00, 99, -1},
		{"same inode, other device", 0x17, 3, -1},
		{"same device, other inode", 0xd, 113002, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Dumper{t: Table{Files: files}}
			if got := d.stdOf(&unix.Stat_t{Dev: tc.dev, Ino: tc.ino}); got != tc.want {
				t.Errorf("stdOf = %d, want %d", got, tc.want)
			}
		})
	}
	if got := (&Dumper{}).stdOf(&unix.Stat_t{Dev: 0x16, Ino: 3}); got != -1 {
		t.Errorf("stdOf(no files) = %d, want -1", got)
	}
}

func TestImageLock(t *testing.T) {
	lock := func(class, mode, typ string, start, end int64) proc.Lock {
		return proc.Lock{Class: class, Mode: mode, Type: typ, Pid: 411, Dev: "fe:00", Ino: 9986482, Start: start, End: end}
	}
	for _, tc := range []struct {
		name string
		lk   proc.Lock
		want image.Lock
		err  string
	}{
		{name: "POSIX write lock to EOF", lk: lock("POSIX", "ADVISORY", "WRITE", 0, -1),
			want: image.Lock{Kind: image.LockPOSIX, Write: true, Start: 0, Len: 0}},
		{name: "POSIX read lock from 5 to EOF", lk: lock("POSIX", "ADVISORY", "READ", 5, -1),
			want: image.Lock{Kind: image.LockPOSIX, Write: false, Start: 5, Len: 0}},
		{name: "POSIX lock of one byte", lk: lock("POSIX", "ADVISORY", "WRITE", 7, 7),
			want: image.Lock{Kind: image.LockPOSIX, Write: true, Start: 7, Len: 1}},
		{name: "FLOCK shared", lk: lock("FLOCK", "ADVISORY", "READ", 0, -1),
			want: image.Lock{Kind: image.LockFlock, Write: false, Start: 0, Len: 0}},
		{name: "FLOCK exclusive", lk: lock("FLOCK", "ADVISORY", "WRITE", 0, -1),
			want: image.Lock{Kind: image.LockFlock, Write: true, Start: 0, Len: 0}},
		{name: "OFD lock of bytes 10-19", lk: lock("OFDLCK", "ADVISORY", "WRITE", 10, 19),
			want: image.Lock{Kind: image.LockOFD, Write: true, Start: 10, Len: 10}},
		{name: "OFD read lock to EOF", lk: lock("OFDLCK", "ADVISORY", "READ", 4096, -1),
			want: image.Lock{Kind: image.LockOFD, Write: false, Start: 4096, Len: 0}},
		{name: "read lease", lk: lock("LEASE", "ACTIVE", "READ", 0, -1),
			want: image.Lock{Kind: image.LockLease, Write: false, Start: 0, Len: 0}},
		{name: "write lease", lk: lock("LEASE", "ACTIVE", "WRITE", 0, -1),
			want: image.Lock{Kind: image.LockLease, Write: true, Start: 0, Len: 0}},

		{name: "lease being broken", lk: lock("LEASE", "BREAKING", "UNLCK", 0, -1),
			err: "fd 7 holds a lease that is being broken (BREAKING)"},
		{name: "lease breaker", lk: lock("LEASE", "BREAKER", "READ", 0, -1),
			err: "being broken (BREAKER)"},
		{name: "mandatory lock", lk: lock("POSIX", "MANDATORY", "WRITE", 0, -1),
			err: "fd 7 holds a mandatory lock"},
		{name: "unlock type", lk: lock("POSIX", "ADVISORY", "UNLCK", 0, -1),
			err: "fd 7 holds a POSIX lock of type UNLCK"},
		{name: "delegation", lk: lock("DELEG", "ACTIVE", "READ", 0, -1),
			err: "fd 7 holds a DELEG lock: unsupported"},
		{name: "unknown class", lk: lock("FOO", "ADVISORY", "WRITE", 0, -1),
			err: "fd 7 holds a FOO lock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := imageLock(7, tc.lk)
			if tc.err != "" {
				if err == nil {
					t.Fatalf("no error; got %+v", got)
				}
				if !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %q, want it to say %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	for _, tc := range []struct {
		name         string
		major, minor uint32
		want         bool
	}{
		{"tty1", 4, 1, true},
		{"ttyS0", 4, 64, true},
		{"/dev/tty", 5, 0, true},
		{"/dev/console", 5, 1, true},
		{"/dev/ptmx", 5, 2, true},
		{"/dev/pts/0", 136, 0, true},
		{"/dev/pts/2047", 143, 255, true},
		{"/dev/null", 1, 3, false},
		{"/dev/zero", 1, 5, false},
		{"/dev/net/tun", 10, 200, false},
		{"before the pts majors", 135, 0, false},
		{"after the pts majors", 144, 0, false},
		{"no device", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isTerminal(unix.Mkdev(tc.major, tc.minor)); got != tc.want {
				t.Errorf("isTerminal(%d:%d) = %v, want %v", tc.major, tc.minor, got, tc.want)
			}
		})
	}
}

// sameFile asks the kernel (kcmp) about this very process: a dup is the
// same open file description, a second open of the same file is not.
func TestSameFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	a, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dup, err := unix.Dup(int(a.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	closed, err := unix.Dup(int(a.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(closed)

	pid := os.Getpid()
	for _, tc := range []struct {
		name string
		x, y int
		want bool
	}{
		{"a dup", int(a.Fd()), dup, true},
		{"a dup, the other way", dup, int(a.Fd()), true},
		{"itself", int(b.Fd()), int(b.Fd()), true},
		{"the same file opened twice", int(a.Fd()), int(b.Fd()), false},
		{"a dup and the other open", dup, int(b.Fd()), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sameFile(pid, tc.x, tc.y)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("sameFile(%d, %d) = %v, want %v", tc.x, tc.y, got, tc.want)
			}
		})
	}
	if got, err := sameFile(pid, int(a.Fd()), closed); !errors.Is(err, unix.EBADF) {
		t.Errorf("sameFile with a closed fd = %v, %v; want EBADF", got, err)
	}
}

// fdVictim starts a shell that opens, as its script says, and answers
// "ready" on its stdout. Its stdin is a pipe from the test, its stdout
// and stderr one pipe description to the test.
const envFDVictim = "CRYO_FD_VICTIM"

func TestMain(m *testing.M) {
	if script, ok := os.LookupEnv(envFDVictim); ok {
		os.Exit(fdVictimMain(script, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fdVictimMain runs script, a few shell-like commands separated by ";"
// ($1, $2 are args): exec N>P, exec N<P, exec N<>P, exec N>&M,
// echo WORD >&N, rm P, ln P Q, mkdir P, rmdir P, mkfifo P, mknod P (a char
// device 1:3), symlink T P, opath N P, opathl N P (O_PATH|O_NOFOLLOW),
// and the socket commands of socketCommand. Then it says "ready"
// and waits for a line on stdin. It uses raw syscalls only, so that the
// Go runtime opens no fd of its own (no poller).
func fdVictimMain(script string, args []string) int {
	fail := func(cmd string, err error) int {
		msg := fmt.Sprintf("fd victim: %s: %v\n", cmd, err)
		unix.Write(1, []byte(msg))
		return 1
	}
	for _, cmd := range strings.Split(script, ";") {
		cmd = strings.TrimSpace(cmd)
		for i, a := range args {
			cmd = strings.ReplaceAll(cmd, fmt.Sprintf("$%d", i+1), a)
		}
		cmd = strings.ReplaceAll(cmd, `"`, "")
		f := strings.Fields(cmd)
		if len(f) < 2 {
			return fail(cmd, errors.New("cannot parse"))
		}
		var err error
		switch f[0] {
		case "rm":
			err = unix.Unlink(f[1])
		case "ln":
			if len(f) != 3 {
				return fail(cmd, errors.New("cannot parse"))
			}
			err = unix.Link(f[1], f[2])
		case "mkdir":
			err = unix.Mkdir(f[1], 0o700)
		case "rmdir":
			err = unix.Rmdir(f[1])
		case "mkfifo":
			err = unix.Mkfifo(f[1], 0o600)
		case "mknod": // a /dev/null of our own
			err = unix.Mknod(f[1], unix.S_IFCHR|0o640, int(unix.Mkdev(1, 3)))
		case "symlink":
			if len(f) != 3 {
				return fail(cmd, errors.New("cannot parse"))
			}
			err = unix.Symlink(f[1], f[2])
		case "opath", "opathl": // opath N P: P opened O_PATH on fd N (opathl: the link itself)
			if len(f) != 3 {
				return fail(cmd, errors.New("cannot parse"))
			}
			flags := unix.O_PATH
			if f[0] == "opathl" {
				flags |= unix.O_NOFOLLOW
			}
			var n, fd int
			if n, err = strconv.Atoi(f[1]); err == nil {
				if fd, err = unix.Open(f[2], flags, 0); err == nil && fd != n {
					if err = unix.Dup2(fd, n); err == nil {
						err = unix.Close(fd)
					}
				}
			}
		case "close", "eventfd", "epoll", "epolladd":
			// close N; eventfd N; epoll N; epolladd E T (EPOLLIN, data T)
			var n [2]int
			for i := 1; i < len(f) && i <= 2 && err == nil; i++ {
				n[i-1], err = strconv.Atoi(f[i])
			}
			if err != nil {
				return fail(cmd, err)
			}
			var fd int
			switch f[0] {
			case "close":
				err = unix.Close(n[0])
			case "eventfd":
				if fd, err = unix.Eventfd(7, 0); err == nil {
					err = moveFD(fd, n[0])
				}
			case "epoll":
				if fd, err = unix.EpollCreate1(0); err == nil {
					err = moveFD(fd, n[0])
				}
			case "epolladd":
				err = unix.EpollCtl(n[0], unix.EPOLL_CTL_ADD, n[1], &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(n[1])})
			}
		case "echo":
			var n int
			if len(f) != 3 || !strings.HasPrefix(f[2], ">&") {
				return fail(cmd, errors.New("cannot parse"))
			}
			if n, err = strconv.Atoi(f[2][2:]); err == nil {
				_, err = unix.Write(n, []byte(f[1]+"\n"))
			}
		case "exec":
			spec := f[1]
			i := strings.IndexAny(spec, "<>")
			if i <= 0 {
				return fail(cmd, errors.New("cannot parse"))
			}
			var fd, src int
			if fd, err = strconv.Atoi(spec[:i]); err != nil {
				return fail(cmd, err)
			}
			op, target := spec[i:], ""
			for _, o := range []string{"<>", ">&", ">", "<"} {
				if strings.HasPrefix(op, o) {
					op, target = o, op[len(o):]
					break
				}
			}
			switch op {
			case ">&":
				if src, err = strconv.Atoi(target); err == nil {
					err = unix.Dup2(src, fd)
				}
			default:
				flags := map[string]int{">": unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC, "<": unix.O_RDONLY, "<>": unix.O_RDWR}[op]
				if src, err = unix.Open(target, flags, 0o600); err == nil && src != fd {
					if err = unix.Dup2(src, fd); err == nil {
						err = unix.Close(src)
					}
				}
			}
		default:
			err = socketCommand(f) // unix_test.go
		}
		if err != nil {
			return fail(cmd, err)
		}
	}
	unix.Write(1, []byte("ready\n"))
	var b [1]byte
	unix.Read(0, b[:])
	return 0
}

// moveFD puts fd on number n.
func moveFD(fd, n int) error {
	if fd == n {
		return nil
	}
	if err := unix.Dup2(fd, n); err != nil {
		return err
	}
	return unix.Close(fd)
}

func fdVictim(t *testing.T, script string, args ...string) *exec.Cmd {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	// The test may have inherited fds without O_CLOEXEC from whatever
	// ran it (a job runner's pipe on fd 251), which the victim would
	// inherit in turn and Collect would rightly refuse: mark them
	// all close-on-exec. Go opens its own fds close-on-exec already.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		t.Fatalf("close_range(CLOSE_RANGE_CLOEXEC): %v", err)
	}
	// The victim is this test binary, running fdVictimMain: no shell is
	// needed (the arm64 test guest has none).
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envFDVictim+"="+script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = inR, outW, outW
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		inW.Close()
		outR.Close()
	})
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("victim said %q, %v; want ready", line, err)
	}
	return cmd
}

// lockThrough takes a lock on the open file description behind fd of
// pid, through a copy of it (pidfd_getfd): flock and OFD locks belong to
// the description, so they stay when the copy is closed.
func lockThrough(t *testing.T, pid, fd int, lock func(fd int) error) {
	t.Helper()
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	mine, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd(fd %d of pid %d): %v", fd, pid, err)
	}
	defer unix.Close(mine)
	if err := lock(mine); err != nil {
		t.Fatal(err)
	}
}

// Collect on a real process: which fds share a description, which
// are the same object opened again, how each is kept, and the locks held
// through them.
func TestCollectFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "file")
	cmd := fdVictim(t, `exec 3>"$1"; exec 4>&3; exec 5>"$1"; exec 6</dev/null; exec 7<"$2"; exec 8>/proc/self/fd/1; echo hi >&3`, path, dir)
	pid := cmd.Process.Pid
	lockThrough(t, pid, 3, func(fd int) error { return unix.Flock(fd, unix.LOCK_SH) })
	lockThrough(t, pid, 5, func(fd int) error {
		return unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 10, Len: 10})
	})

	d, err := Collect(pid, DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tab := d.Table()

	wantFDs := []image.FD{
		{Num: 0, File: 1}, // the command pipe
		{Num: 1, File: 2}, // the answer pipe...
		{Num: 2, File: 2}, // ...the same description
		{Num: 3, File: 3}, // the file
		{Num: 4, File: 3}, // dup of 3
		{Num: 5, File: 4}, // the file, opened again
		{Num: 6, File: 5}, // /dev/null
		{Num: 7, File: 6}, // the directory
		{Num: 8, File: 7}, // the answer pipe, opened again
	}
	if !reflect.DeepEqual(tab.FDs, wantFDs) {
		t.Errorf("fds:\n got %+v\nwant %+v", tab.FDs, wantFDs)
	}
	if len(tab.Files) != 7 {
		t.Fatalf("%d files, want 7: %+v", len(tab.Files), tab.Files)
	}
	realPath, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	realDir := filepath.Dir(realPath)
	var fst unix.Stat_t
	if err := unix.Stat(path, &fst); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		id   int
		kind image.FileKind
		std  int
		path string
		acc  uint32 // O_ACCMODE
		pos  int64
	}{
		{1, image.FileStd, 0, "pipe:[", unix.O_RDONLY, 0},
		{2, image.FileStd, 1, "pipe:[", unix.O_WRONLY, 0},
		{3, image.FileReg, 0, realPath, unix.O_WRONLY, 3},
		{4, image.FileReg, 0, realPath, unix.O_WRONLY, 0},
		{5, image.FileDevice, 0, "/dev/null", unix.O_RDONLY, 0},
		{6, image.FileDir, 0, realDir, unix.O_RDONLY, 0},
		{7, image.FileStd, 1, "pipe:[", unix.O_WRONLY, 0},
	} {
		f := tab.Files[w.id-1]
		if f.ID != w.id || f.Kind != w.kind || f.Std != w.std || !strings.HasPrefix(f.Path, w.path) ||
			f.Flags&unix.O_ACCMODE != w.acc || f.Pos != w.pos || f.Flags&unix.O_CLOEXEC != 0 {
			t.Errorf("file %d: %+v\nwant id %d kind %q std %d path %q access %d pos %d, no O_CLOEXEC",
				w.id, f, w.id, w.kind, w.std, w.path, w.acc, w.pos)
		}
	}
	// The file's two descriptions: one inode, what stat says of it.
	for _, f := range tab.Files[2:4] {
		if f.Dev != fst.Dev || f.Ino != fst.Ino || f.Size != 3 || f.Mode != fst.Mode {
			t.Errorf("file %d: dev %#x ino %d size %d mode %o; want %#x %d 3 %o", f.ID, f.Dev, f.Ino, f.Size, f.Mode, fst.Dev, fst.Ino, fst.Mode)
		}
	}
	// fd 8 is fd 1's pipe, another description of it.
	if a, b := tab.Files[1], tab.Files[6]; a.Dev != b.Dev || a.Ino != b.Ino || a.Path != b.Path {
		t.Errorf("fd 8 (%s, ino %d) is not fd 1's pipe (%s, ino %d)", b.Path, b.Ino, a.Path, a.Ino)
	}
	if tab.Files[0].Ino == tab.Files[1].Ino {
		t.Errorf("fd 0 and fd 1 are one pipe (ino %d)", tab.Files[0].Ino)
	}

	wantLocks := []image.Lock{
		{Kind: image.LockFlock, File: 3, Write: false, Start: 0, Len: 0},
		{Kind: image.LockOFD, File: 4, Write: true, Start: 10, Len: 10},
	}
	if !reflect.DeepEqual(tab.Locks, wantLocks) {
		t.Errorf("locks:\n got %+v\nwant %+v", tab.Locks, wantLocks)
	}
}

// What Collect cannot carry it refuses, naming the fd, on the
// kernel's own /proc links ("... (deleted)").
func TestCollectFilesRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, script, err string
		opts              DumpOptions
	}{
		{"namespace of a child", `exec 5</proc/$2/ns/uts`, "fd 5 is the uts namespace uts:[", DumpOptions{}},
		{"deleted file, linked elsewhere", `exec 3>"$1/gone"; ln "$1/gone" "$1/other"; rm "$1/gone"`,
			"gone (deleted), deleted there but still linked elsewhere (1 links)", DumpOptions{}},
		// 17 bytes against a limit of 8.
		{"unlinked file over the limit", `exec 3>"$1/big"; echo 0123456789abcdef >&3; rm "$1/big"`,
			"big (deleted), 17 bytes of data: more than the 8 bytes freeze carries of one file (freeze --max-file-size raises the limit)",
			DumpOptions{MaxBlob: 8}},
		// The watched files are epolls too.
		{"epoll item through a closed fd", `epoll 5; exec 6>&5; epoll 7; epolladd 7 5; close 5`,
			"fd 7 is an epoll instance (anon_inode:[eventpoll]): it watches a file registered through fd 5, which is closed now", DumpOptions{}},
		{"epoll item through a reused fd", `epoll 5; exec 6>&5; epoll 7; epolladd 7 5; close 5; epoll 5`,
			"fd 7 is an epoll instance (anon_inode:[eventpoll]): it watches a file registered through fd 5, which holds another file now", DumpOptions{}},
		{"epoll item twice under one number", `epoll 5; exec 6>&5; epoll 7; epolladd 7 5; close 5; epoll 5; epolladd 7 5`,
			"two files are registered under fd 5", DumpOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := fdVictim(t, tc.script, t.TempDir(), strconv.Itoa(otherUTS(t)))
			d, err := Collect(cmd.Process.Pid, tc.opts)
			if err == nil {
				d.Close()
				t.Fatalf("no error; files %+v", d.Table().Files)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q, want it to say %q", err, tc.err)
			}
		})
	}
}

// otherUTS starts a process in a UTS namespace of its own (root only)
// and returns its pid.
func otherUTS(t *testing.T) int {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a namespace of another process needs root to make")
	}
	in, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envFDVictim+"=echo hi >&1")
	cmd.Stdin = in
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.Close()
	t.Cleanup(func() {
		w.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// blobBag is a BlobWriter that keeps the blobs.
type blobBag map[uint64][]byte

func (b blobBag) WriteBlob(id uint64, data []byte) error {
	b[id] = append(b[id], data...)
	return nil
}

// blobsOf reads the blobs d recorded, as freeze writes them in the image.
func blobsOf(t *testing.T, d *Dumper) blobBag {
	t.Helper()
	bag := blobBag{}
	if err := d.WriteBlobs(bag); err != nil {
		t.Fatal(err)
	}
	return bag
}

// thawHere builds the files of d in this process, as the restore helper
// does before moving them into the stub: each kind's open, the blobs fed
// to their sinks, then the afters. It returns the built files by fd
// number.
func thawHere(t *testing.T, d *Dumper, bag blobBag, opts RestoreOptions) (map[int]*os.File, error) {
	t.Helper()
	tab := d.Table()
	host, _ := os.Hostname()
	r := &Restorer{P: &image.Process{Files: tab.Files, FDs: tab.FDs, Machine: host}, Opts: opts,
		Log: t.Logf, local: map[int]*os.File{}, stub: map[int]*os.File{}, state: map[image.FileKind]any{},
		sinks: map[uint64]func(uint64, []byte) error{}, fds: map[int][]image.FD{}}
	t.Cleanup(r.close)
	for _, fd := range tab.FDs {
		r.fds[fd.File] = append(r.fds[fd.File], fd)
	}
	got := map[int]*os.File{}
	for i := range tab.Files {
		f := &tab.Files[i]
		if f.Kind == image.FileStd {
			continue
		}
		lf, err := kindNamed(f.Kind).open(r, f)
		if err != nil {
			return nil, err
		}
		r.local[f.ID] = lf
		got[r.firstFD(f.ID)] = lf
	}
	for id, data := range bag {
		if sink := r.sinks[id]; sink != nil {
			if err := sink(0, data); err != nil {
				return nil, err
			}
		}
	}
	for _, fn := range r.afters {
		if err := fn(); err != nil {
			return nil, err
		}
	}
	return got, nil
}

// The path kinds on a real process, frozen and built again here: O_PATH
// descriptors of a file, a symbolic link and a directory, a deleted
// directory and a deleted device node, namespaces.
func TestPathKinds(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the deleted device node needs CAP_MKNOD (root)")
	}
	dir := t.TempDir()
	script := `exec 9>"$1/file"; echo hello >&9; opath 4 "$1/file"; symlink file "$1/link"; opathl 5 "$1/link"; opath 6 "$1";` +
		`mkdir "$1/gone"; exec 7<"$1/gone"; rmdir "$1/gone"; mknod "$1/null"; exec 8<>"$1/null"; rm "$1/null";` +
		`exec 10</proc/self/ns/net; opath 11 /proc/self/ns/uts`
	cmd := fdVictim(t, script, dir)
	d, err := Collect(cmd.Process.Pid, DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := map[int]image.FileKind{4: FilePath, 5: FilePath, 6: FilePath, 7: FileDeletedDir, 8: FileDeletedDev, 9: image.FileReg, 10: FileNS, 11: FileNS}
	links := map[int]string{}
	for n, k := range want {
		f := fileOfFD(t, d.Table(), n)
		if f.Kind != k {
			t.Errorf("fd %d (%s) is a %q file, want %q", n, f.Path, f.Kind, k)
		}
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", cmd.Process.Pid, n))
		if err != nil {
			t.Fatal(err)
		}
		links[n] = l
	}
	if f := fileOfFD(t, d.Table(), 7); strings.HasSuffix(f.Path, "(deleted)") || f.Mode != unix.S_IFDIR|0o700 {
		t.Errorf("deleted directory: path %q mode %o; want no (deleted) and mode 40700", f.Path, f.Mode)
	}
	cmd.Process.Kill()
	cmd.Wait()

	got, err := thawHere(t, d, blobsOf(t, d), RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for n := range want {
		f := fileOfFD(t, d.Table(), n)
		lf := got[n]
		var st unix.Stat_t
		if err := unix.Fstat(int(lf.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", lf.Fd()))
		fl, _ := unix.FcntlInt(lf.Fd(), unix.F_GETFL, 0)
		if l != links[n] || st.Mode != f.Mode || uint32(fl)&^unix.O_CLOEXEC != f.Flags {
			t.Errorf("fd %d: built %s mode %o flags %#o; want %s mode %o flags %#o", n, l, st.Mode, fl, links[n], f.Mode, f.Flags)
		}
		switch f.Kind {
		case FileDeletedDir, FileDeletedDev:
			if st.Nlink != 0 || st.Rdev != f.Rdev {
				t.Errorf("fd %d: nlink %d rdev %#x, want 0 and %#x", n, st.Nlink, st.Rdev, f.Rdev)
			}
		default:
			if st.Ino != f.Ino {
				t.Errorf("fd %d: inode %d, want %d", n, st.Ino, f.Ino)
			}
		}
	}
	if _, err := unix.Openat(int(got[7].Fd()), "x", unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o600); !errors.Is(err, unix.ENOENT) {
		t.Errorf("openat(O_CREAT) in the deleted directory made again: %v, want ENOENT", err)
	}
	if _, err := unix.Write(int(got[8].Fd()), []byte("x")); err != nil {
		t.Errorf("write to the deleted /dev/null made again: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%s holds %d entries after the thaw, want file and link", dir, len(ents))
	}
}

func fileOfFD(t *testing.T, tab *Table, n int) *image.File {
	t.Helper()
	for _, fd := range tab.FDs {
		if fd.Num == n {
			for i := range tab.Files {
				if tab.Files[i].ID == fd.File {
					return &tab.Files[i]
				}
			}
		}
	}
	t.Fatalf("no fd %d", n)
	return nil
}

// freeze --carry-files: the contents travel; at thaw a file gone is made
// again, one with other contents is refused (or left, when allowed).
func TestCarryFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "data")
	cmd := fdVictim(t, `exec 3>"$1"; echo hello >&3; exec 4<"$1"`, path)
	pid := cmd.Process.Pid

	_, err := Collect(pid, DumpOptions{CarryFiles: true, MaxBlob: 5})
	if err == nil || !strings.Contains(err.Error(), "fd 3: "+path+" is 6 bytes, more than the 5 bytes") ||
		!strings.Contains(err.Error(), "--max-file-size") {
		t.Errorf("a file over the limit: %v; want it named, with its size and --max-file-size", err)
	}

	d, err := Collect(pid, DumpOptions{CarryFiles: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f3, f4 := fileOfFD(t, d.Table(), 3), fileOfFD(t, d.Table(), 4)
	if f3.Blob == 0 || f4.Blob != 0 || len(f4.Payload) == 0 {
		t.Errorf("blobs: fd 3 %d, fd 4 %d (payload %s); want one, on the first fd of the inode", f3.Blob, f4.Blob, f4.Payload)
	}
	cmd.Process.Kill()
	cmd.Wait()
	bag := blobsOf(t, d)
	var st0 unix.Stat_t
	if err := unix.Stat(path, &st0); err != nil {
		t.Fatal(err)
	}

	t.Run("unchanged but touched", func(t *testing.T) {
		now := time.Now()
		os.Chtimes(path, now, now)
		if _, err := thawHere(t, d, bag, RestoreOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("other contents", func(t *testing.T) {
		if err := os.WriteFile(path, []byte("jello\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := thawHere(t, d, bag, RestoreOptions{})
		if err == nil || !strings.Contains(err.Error(), path+" changed since the freeze: its contents differ") {
			t.Errorf("thaw: %v; want it refused, naming the file", err)
		}
		if _, err := thawHere(t, d, bag, RestoreOptions{AllowChanged: true}); err != nil {
			t.Fatalf("with AllowChanged: %v", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "jello\n" {
			t.Errorf("with AllowChanged the file holds %q, want it left as it was (jello)", b)
		}
	})
	t.Run("gone", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		got, err := thawHere(t, d, bag, RestoreOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != "hello\n" || st.Mode != st0.Mode || st.Mtim != st0.Mtim {
			t.Errorf("made again: %q mode %o mtime %v; want hello, %o, %v", b, st.Mode, st.Mtim, st0.Mode, st0.Mtim)
		}
		for _, n := range []int{3, 4} {
			var fst unix.Stat_t
			unix.Fstat(int(got[n].Fd()), &fst)
			fl, _ := unix.FcntlInt(got[n].Fd(), unix.F_GETFL, 0)
			if fst.Ino != st.Ino || uint32(fl)&unix.O_ACCMODE != fileOfFD(t, d.Table(), n).Flags&unix.O_ACCMODE {
				t.Errorf("fd %d: inode %d flags %#o; want the file made again (%d), its access mode", n, fst.Ino, fl, st.Ino)
			}
		}
	})
	t.Run("the kernel's files are not carried", func(t *testing.T) {
		cmd := fdVictim(t, `exec 3</proc/self/stat; exec 4</sys/kernel/uevent_seqnum`)
		d, err := Collect(cmd.Process.Pid, DumpOptions{CarryFiles: true})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		for _, n := range []int{3, 4} {
			if f := fileOfFD(t, d.Table(), n); f.Kind != image.FileReg || f.Blob != 0 || len(f.Payload) != 0 {
				t.Errorf("fd %d (%s): kind %q blob %d payload %s; want a regular file, not carried", n, f.Path, f.Kind, f.Blob, f.Payload)
			}
		}
	})
	t.Run("gone with its directory", func(t *testing.T) {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		_, err := thawHere(t, d, bag, RestoreOptions{})
		if err == nil || !strings.Contains(err.Error(), "and so is its directory") {
			t.Errorf("thaw: %v; want it refused, the directory named", err)
		}
	})
}

// makeNear: at the path when free, else next to it, else in the nearest
// existing ancestor.
func TestMakeNear(t *testing.T) {
	dir := t.TempDir()
	taken := filepath.Join(dir, "taken")
	if err := os.Mkdir(taken, 0o700); err != nil {
		t.Fatal(err)
	}
	mk := func(p string) error { return unix.Mkdir(p, 0o700) }
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name, path, want string
	}{
		{"free", filepath.Join(dir, "free"), filepath.Join(dir, "free")},
		{"taken", taken, filepath.Join(dir, ".taken.cryo-"+pid+"-0")},
		{"taken again", taken, filepath.Join(dir, ".taken.cryo-"+pid+"-1")},
		{"directory gone", filepath.Join(dir, "a", "b", "gone"), filepath.Join(dir, ".gone.cryo-"+pid+"-0")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := makeNear(tc.path, mk)
			if err != nil || got != tc.want {
				t.Errorf("makeNear(%s) = %s, %v; want %s", tc.path, got, err, tc.want)
			}
		})
	}
	if _, err := makeNear(filepath.Join(dir, "x"), func(string) error { return unix.EPERM }); !errors.Is(err, unix.EPERM) {
		t.Errorf("makeNear with mknod refused: %v, want EPERM", err)
	}
}

// An unlinked file's data extents: its holes are left out.
func TestDataExtents(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps := int64(os.Getpagesize())
	for _, off := range []int64{0, 64 * ps, 64*ps + 3} {
		if _, err := f.WriteAt([]byte("data"), off); err != nil {
			t.Fatal(err)
		}
	}
	size := 200 * ps
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	got, total, err := dataExtents(f, size, true)
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]int64{{0, ps}, {64 * ps, ps}}
	if !reflect.DeepEqual(got, want) || total != 2*ps {
		// A file system without SEEK_DATA reports it all as data.
		if !reflect.DeepEqual(got, [][2]int64{{0, size}}) {
			t.Errorf("extents %v (%d bytes), want %v", got, total, want)
		}
	}
	if got, total, _ := dataExtents(f, size, false); !reflect.DeepEqual(got, [][2]int64{{0, size}}) || total != size {
		t.Errorf("without holes: %v (%d), want all of it", got, total)
	}
}

// An unlinked file is made again where it was and unlinked: under its
// own name when free, else next to it, else, its directory gone, in the
// nearest one still there (makeNear, as a deleted directory).
func TestNewUnlinked(t *testing.T) {
	r := &Restorer{P: &image.Process{}}
	for _, tc := range []struct {
		name, path string
		taken      bool // a file of someone else's has the name now
		own        bool // made under its own name
	}{
		{name: "name free", path: "scratch", own: true},
		{name: "name taken", path: "log", taken: true},
		{name: "directory gone", path: "gone/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, tc.path)
			if tc.taken {
				if err := os.WriteFile(path, []byte("new"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			f, err := r.newUnlinked(&image.File{Path: path + " (deleted)"})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Nlink != 0 || st.Mode&0o777 != 0o600 {
				t.Errorf("rebuilt file: nlink %d mode %o (%v), want unlinked, 0600", st.Nlink, st.Mode&0o777, err)
			}
			link, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
			if tc.own && link != path+" (deleted)" {
				t.Errorf("/proc shows %q, want %q", link, path+" (deleted)")
			}
			if !tc.own && (filepath.Dir(link) != dir || !strings.HasPrefix(filepath.Base(link), "."+filepath.Base(path)+".cryo-")) {
				t.Errorf("/proc shows %q, want a name of ours in %s", link, dir)
			}
			ents, _ := os.ReadDir(dir)
			if tc.taken {
				if b, err := os.ReadFile(path); err != nil || string(b) != "new" || len(ents) != 1 {
					t.Errorf("the file now at the name: %q, %v, %d entries; want it untouched, alone", b, err, len(ents))
				}
			} else if len(ents) != 0 {
				t.Errorf("entries left in the directory: %v", ents)
			}
		})
	}
}

// Terminals beyond 0-2 on a real process: a pty master alone (locked, as
// ptmx makes it), a slave whose master is the test's (an external peer,
// with a note), and a terminal that is neither (refused by name).
func TestCollectTerminals(t *testing.T) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	defer m.Close()
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave := fmt.Sprintf("/dev/pts/%d", n)
	cmd := fdVictim(t, `exec 3<>/dev/ptmx; exec 4<"$1"`, slave)
	d, err := Collect(cmd.Process.Pid, DumpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	tab := d.Table()
	if len(tab.Files) != 4 {
		t.Fatalf("%d files, want 4: %+v", len(tab.Files), tab.Files)
	}
	var master, outside ttyPayload
	for _, w := range []struct {
		f *image.File
		p *ttyPayload
	}{{&tab.Files[2], &master}, {&tab.Files[3], &outside}} {
		if w.f.Kind != FileTTY {
			t.Fatalf("file %d (%s) is %q, want %q", w.f.ID, w.f.Path, w.f.Kind, FileTTY)
		}
		if err := getPayload(w.f, w.p); err != nil {
			t.Fatal(err)
		}
	}
	if master.Role != ttyMaster || !master.Locked || master.SlaveClosed || master.Packet || master.Winsize == nil || len(master.Termios) != termiosSize {
		t.Errorf("fd 3, a new ptmx: %+v; want a locked master with its modes", master)
	}
	if outside.Role != ttySlave || !outside.PeerOutside || outside.Pty != n || tab.Files[3].Flags&unix.O_ACCMODE != unix.O_RDONLY {
		t.Errorf("fd 4, %s read-only: %+v (flags %#o); want a slave of pty %d, peer outside", slave, outside, tab.Files[3].Flags, n)
	}
	if len(tab.Notes) != 1 || !strings.Contains(tab.Notes[0], "fd 4: "+slave) || !strings.Contains(tab.Notes[0], "hung up") {
		t.Errorf("notes %q, want one for fd 4 saying it is hung up", tab.Notes)
	}

	// Bytes the slave has not read: refused, the fd and the count named.
	// (The slave is in canonical mode, where the kernel counts complete
	// lines only: without the newline the four bytes would not be seen.)
	if _, err := m.Write([]byte("abc\n")); err != nil {
		t.Fatal(err)
	}
	if d, err := Collect(cmd.Process.Pid, DumpOptions{}); err == nil {
		d.Close()
		t.Errorf("Collect of a slave with 4 bytes queued: no error")
	} else if !strings.Contains(err.Error(), "fd 4 is "+slave+", holding 4 bytes of input") {
		t.Errorf("error %q, want it to name fd 4 and its 4 bytes", err)
	}

	// The master closed: the slave is hung up, carried as such.
	m.Close()
	d, err = Collect(cmd.Process.Pid, DumpOptions{})
	if err != nil {
		t.Fatalf("Collect of a hung-up terminal: %v", err)
	}
	tab = d.Table()
	if err := getPayload(&tab.Files[3], &outside); err != nil {
		t.Fatal(err)
	}
	if outside.Role != ttySlave || !outside.PeerOutside || len(tab.Notes) != 1 || !strings.Contains(tab.Notes[0], "a terminal that is hung up") {
		t.Errorf("fd 4 hung up: %+v, notes %q; want a slave, peer outside, noted as hung up", outside, tab.Notes)
	}
	d.Close()

	if _, err := os.Stat("/dev/console"); err != nil {
		t.Logf("no /dev/console: %v", err)
		return
	}
	if f, err := os.Open("/dev/console"); err != nil {
		t.Logf("cannot open /dev/console: %v", err)
		return
	} else {
		f.Close()
	}
	cmd = fdVictim(t, `exec 5</dev/console`)
	if d, err := Collect(cmd.Process.Pid, DumpOptions{}); err == nil {
		d.Close()
		t.Errorf("Collect of /dev/console on fd 5: no error")
	} else if !strings.Contains(err.Error(), "fd 5 is /dev/console (terminal 5:1)") {
		t.Errorf("error %q, want it to name fd 5 and /dev/console", err)
	}
}
