package files

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// FileUnlinked: a regular file whose last name was removed while the
// process held it open (a temporary file, a log rotated away). FileMemfd:
// a memfd_create(2) file. Neither can be opened again by path: freeze
// carries the contents, and thaw makes the file again.
//
// One file, however many open file descriptions and MAP_SHARED mappings
// use it (image.VMASharedObject names its File), is one object: its
// contents travel once (a BLOB of the extents that hold data; holes stay
// holes), and thaw builds it once, in the helper, then opens each File's
// description of it again through /proc/self/fd (its own access mode,
// status flags and offset) and gives the mappings a descriptor of it to
// map (read-only unless the mapping may be made writable, VmFlag "mw",
// as the original's descriptor was), so that a write through any of them
// is seen through all the others after thaw as before. A mapping whose
// file no fd holds any more is carried the same way, read through
// /proc/PID/map_files (which needs CAP_CHECKPOINT_RESTORE or root), or,
// unprivileged, as the mappings show it (addWindows).
//
// An unlinked file is made again where it was, as a deleted directory is
// (makeNear, deleted.go: under its own name when that is free, so that
// /proc shows the same "/dir/name (deleted)"), and unlinked at once; its size is set
// first, so that holes stay holes; its mode and owner are given back
// once every description is open (a file that is read-only for its owner
// may still have been open read-write). A memfd is created with its name,
// and its seals are added last of all, after the mappings: F_SEAL_WRITE
// would forbid the writes that put its contents back, F_SEAL_FUTURE_WRITE
// the writable mappings made before it.
//
// One file may put at most DumpOptions.MaxBlob bytes of data in the image
// (freeze --max-file-size); a bigger one is refused by name. A hugetlbfs
// memfd is refused, and so is a deleted file that still has a name
// elsewhere (another hard link, which the thawed copy would no longer
// share).
const (
	FileUnlinked image.FileKind = "unlinked"
	FileMemfd    image.FileKind = "memfd"
)

type shmemPayload struct {
	// Name is a memfd's name (as memfd_create got it, without "memfd:").
	Name string `json:"name,omitempty"`
	// Seals are a memfd's seals (F_GET_SEALS).
	Seals int `json:"seals,omitempty"`
	// Uid and Gid own the file.
	Uid uint32 `json:"uid"`
	Gid uint32 `json:"gid"`
	// Data are the extents of the file that hold data, as (offset,
	// length) pairs in order; the File's blob is their bytes, one after
	// the other. The rest of the file, up to its size, is holes.
	Data [][2]int64 `json:"data,omitempty"`
}

var memfdKind = kind{
	name: FileMemfd,
	match: func(d *Dumper, o *Object) bool {
		return isMemfd(o.Link, o.Stat.Mode) && o.Info.Flags&unix.O_PATH == 0
	},
	dump: dumpShmem,
	open: openShmem,
}

var unlinkedKind = kind{
	name: FileUnlinked,
	match: func(d *Dumper, o *Object) bool {
		return o.Stat.Mode&unix.S_IFMT == unix.S_IFREG && deleted(o) && !isMemfd(o.Link, o.Stat.Mode) && o.Info.Flags&unix.O_PATH == 0
	},
	dump: dumpShmem,
	open: openShmem,
}

// isMemfd tells a memfd by its /proc link: "/memfd:NAME (deleted)".
func isMemfd(link string, mode uint32) bool {
	return mode&unix.S_IFMT == unix.S_IFREG && strings.HasPrefix(link, "/memfd:") && strings.HasSuffix(link, deletedSuffix)
}

// shmemKey is a file's identity: its device and inode at freeze.
type shmemKey struct{ dev, ino uint64 }

// shmemSeen is the freeze-side bookkeeping: the files carried already,
// with the blob and payload every description of them shares.
type shmemSeen map[shmemKey]*image.File

func dumpShmem(d *Dumper, o *Object, f *image.File) error {
	seen, _ := d.state[FileMemfd].(shmemSeen)
	if seen == nil {
		seen = shmemSeen{}
		d.state[FileMemfd] = seen
	}
	key := shmemKey{o.Stat.Dev, o.Stat.Ino}
	if prev := seen[key]; prev != nil {
		// Another description of a file carried already.
		f.Blob, f.Payload = prev.Blob, prev.Payload
		return nil
	}
	p := shmemPayload{Uid: o.Stat.Uid, Gid: o.Stat.Gid}
	if f.Kind == FileMemfd {
		var sfs unix.Statfs_t
		if err := unix.Fstatfs(int(o.Local.Fd()), &sfs); err == nil && sfs.Type == unix.HUGETLBFS_MAGIC {
			return fmt.Errorf("%s is the memfd %s, of hugetlbfs pages: unsupported", o.where(), o.Link)
		}
		p.Name = strings.TrimSuffix(strings.TrimPrefix(o.Link, "/memfd:"), deletedSuffix)
		seals, err := unix.FcntlInt(o.Local.Fd(), unix.F_GET_SEALS, 0)
		if err != nil {
			return fmt.Errorf("%s (%s): F_GET_SEALS: %w", o.where(), o.Link, err)
		}
		p.Seals = seals
	} else if o.Stat.Nlink > 0 {
		return fmt.Errorf("%s is %s, deleted there but still linked elsewhere (%d links), which a copy would not share: unsupported",
			o.where(), o.Link, o.Stat.Nlink)
	}
	src, holes, err := d.readable(o)
	if err != nil {
		return fmt.Errorf("%s (%s): read its contents: %w", o.where(), o.Link, err)
	}
	var total int64
	if p.Data, total, err = dataExtents(src, o.Stat.Size, holes); err != nil {
		return fmt.Errorf("%s (%s): %w", o.where(), o.Link, err)
	}
	if total > d.Opts.MaxBlob {
		return fmt.Errorf("%s is %s, %s of data: more than the %s freeze carries of one file (freeze --max-file-size raises the limit)",
			o.where(), o.Link, sizeName(total), sizeName(d.Opts.MaxBlob))
	}
	if total > 0 {
		f.Blob = d.addRangesBlob(src, p.Data)
	}
	if err := setPayload(f, &p); err != nil {
		return err
	}
	seen[key] = f
	return nil
}

// readable returns a descriptor to read o's file from: a description of
// freeze's own (opened again through /proc, so that finding the holes
// moves no offset of the target's), or the target's own, read with pread
// only, where that cannot be opened (holes is then false: SEEK_DATA
// would move its offset).
func (d *Dumper) readable(o *Object) (f *os.File, holes bool, err error) {
	if o.private {
		return o.Local, true, nil
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/fd/%d", d.Pid, o.Num), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) { // O_NOATIME: not the owner
		fd, err = unix.Open(fmt.Sprintf("/proc/%d/fd/%d", d.Pid, o.Num), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err == nil {
		f := os.NewFile(uintptr(fd), o.Link)
		d.hold(f)
		return f, true, nil
	}
	if o.Info.Flags&unix.O_ACCMODE != unix.O_WRONLY {
		return o.Local, false, nil
	}
	return nil, false, err
}

// dataExtents lists the extents of f (size bytes) that hold data, and
// their total length: SEEK_DATA and SEEK_HOLE, where the file system
// knows them and holes is set; else the whole file.
func dataExtents(f *os.File, size int64, holes bool) ([][2]int64, int64, error) {
	if size == 0 {
		return nil, 0, nil
	}
	all := [][2]int64{{0, size}}
	if !holes {
		return all, size, nil
	}
	fd := int(f.Fd())
	var out [][2]int64
	var total int64
	for off := int64(0); off < size; {
		start, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // holes to the end
		}
		if err != nil {
			return all, size, nil // SEEK_DATA unknown here: all of it
		}
		if start >= size {
			break
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil || end > size {
			end = size
		}
		if end <= start {
			return nil, 0, fmt.Errorf("SEEK_HOLE from %d gave %d", start, end)
		}
		out = append(out, [2]int64{start, end - start})
		total += end - start
		off = end
	}
	return out, total, nil
}

// Mapped names, in each VMASharedObject of vmas, the File it maps: the
// memfd or unlinked file of an fd when the process still holds one;
// else the file is taken through /proc/PID/map_files and carried as a
// File without fds. Call it after Collect, before the image is written.
func (d *Dumper) Mapped(vmas []image.VMA) error {
	for i := range vmas {
		v := &vmas[i]
		if v.Kind != image.VMASharedObject {
			continue
		}
		dev, err := parseDev(v.Dev)
		if err != nil {
			return fmt.Errorf("mapping %#x-%#x %s: %w", v.Start, v.End, v.Path, err)
		}
		if v.File = d.shmemFile(dev, v.Inode); v.File != 0 {
			continue
		}
		if v.File, err = d.addMapped(vmas, i); err != nil {
			return err
		}
	}
	return nil
}

// shmemFile returns the id of a memfd or unlinked File on inode ino of
// dev, or 0.
func (d *Dumper) shmemFile(dev, ino uint64) int {
	for _, f := range d.t.Files {
		if (f.Kind == FileMemfd || f.Kind == FileUnlinked) && f.Dev == dev && f.Ino == ino {
			return f.ID
		}
	}
	return 0
}

// addMapped carries the file of vmas[i], which no fd holds, as a File
// without fds: the whole file, opened through /proc/PID/map_files, or,
// where that is not allowed, what its mappings show (addWindows).
func (d *Dumper) addMapped(vmas []image.VMA, i int) (int, error) {
	v := &vmas[i]
	where := fmt.Sprintf("mapping %#x-%#x", v.Start, v.End)
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", d.Pid, v.Start, v.End), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return d.addWindows(vmas, i)
	}
	if err != nil {
		return 0, fmt.Errorf("%s is a shared mapping of %s, which no fd holds: open it through /proc/PID/map_files: %w", where, v.Path, err)
	}
	o := &Object{Num: -1, Local: os.NewFile(uintptr(fd), v.Path), Link: v.Path, mapping: where, private: true}
	d.objs = append(d.objs, o) // Close closes its Local
	if err := unix.Fstat(fd, &o.Stat); err != nil {
		return 0, fmt.Errorf("%s (%s): fstat: %w", where, v.Path, err)
	}
	if id := d.shmemFile(o.Stat.Dev, o.Stat.Ino); id != 0 {
		// maps named another device (an overlay's lower file): the
		// same file as an fd's after all.
		d.objs = d.objs[:len(d.objs)-1]
		o.Local.Close()
		return id, nil
	}
	o.Info.Flags = unix.O_RDWR
	k := &unlinkedKind
	if memfdKind.match(d, o) {
		k = &memfdKind
	} else if !k.match(d, o) {
		return 0, fmt.Errorf("%s is a shared mapping of %s (%s), which cannot be reopened: unsupported", where, v.Path, modeName(o.Stat.Mode))
	}
	d.t.Files = append(d.t.Files, image.File{
		ID: len(d.t.Files) + 1, Kind: k.name, Path: v.Path, Flags: unix.O_RDWR,
		Mode: o.Stat.Mode, Size: o.Stat.Size, Dev: o.Stat.Dev, Ino: o.Stat.Ino, MtimeNs: o.Stat.Mtim.Nano(),
	})
	f := &d.t.Files[len(d.t.Files)-1]
	if err := k.dump(d, o, f); err != nil {
		return 0, err
	}
	return f.ID, nil
}

// addWindows carries the file of vmas[i], which no fd holds, as the
// process's mappings show it, for a freeze without the privilege to open
// /proc/PID/map_files: the windows of the file that it maps (every
// mapping of the same file), read through /proc/PID/mem. What no mapping
// shows, the process cannot reach either. Its size is where the last
// window ends (the pages a mapping has past the end of its file cannot be
// read, and are left out), its mode memfd_create's or 0600, its seals
// F_SEAL_WRITE when a mapping shows one (VmFlags sh without mw), else
// none: without an fd the process cannot ask for any of them. Pages
// never written read as zero, and reading them gives the original
// memory for them (they are holes of the file until read).
func (d *Dumper) addWindows(vmas []image.VMA, i int) (int, error) {
	v := &vmas[i]
	where := fmt.Sprintf("mapping %#x-%#x", v.Start, v.End)
	dev, err := parseDev(v.Dev)
	if err != nil {
		return 0, err
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", d.Pid))
	if err != nil {
		return 0, fmt.Errorf("%s (%s): %w", where, v.Path, err)
	}
	d.hold(mem)
	type window struct{ addr, off, len int64 }
	var ws []window
	var idx []int
	sealed := false
	for j := i; j < len(vmas); j++ {
		w := &vmas[j]
		if w.Kind != image.VMASharedObject || w.Dev != v.Dev || w.Inode != v.Inode || w.File != 0 {
			continue
		}
		n := readableLen(mem, int64(w.Start), int64(w.End-w.Start))
		ws = append(ws, window{int64(w.Start), int64(w.Offset), n})
		idx = append(idx, j)
		sealed = sealed || (w.Flags&image.VMAShared != 0 && w.Flags&image.VMAMayWrite == 0 && w.Prot&unix.PROT_WRITE == 0)
	}
	sort.Slice(ws, func(a, b int) bool { return ws[a].off < ws[b].off })
	// The file's extents, each read from the first window showing it.
	var data, src [][2]int64
	var end, total int64
	for _, w := range ws {
		s, e := max(w.off, end), w.off+w.len
		if e <= s {
			continue
		}
		data = append(data, [2]int64{s, e - s})
		src = append(src, [2]int64{w.addr + s - w.off, e - s})
		total += e - s
		end = e
	}
	o := &Object{Num: -1, Link: v.Path, mapping: where}
	o.Stat.Dev, o.Stat.Ino, o.Stat.Mode, o.Stat.Size = dev, v.Inode, unix.S_IFREG|0o600, end
	k := &unlinkedKind
	if isMemfd(v.Path, o.Stat.Mode) {
		k, o.Stat.Mode = &memfdKind, unix.S_IFREG|0o777
	}
	if total > d.Opts.MaxBlob {
		return 0, fmt.Errorf("%s is a shared mapping of %s, %s of data: more than the %s freeze carries of one file (freeze --max-file-size raises the limit)",
			where, v.Path, sizeName(total), sizeName(d.Opts.MaxBlob))
	}
	p := shmemPayload{Data: data}
	var pst unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d", d.Pid), &pst); err == nil {
		p.Uid, p.Gid = pst.Uid, pst.Gid
	}
	if k == &memfdKind {
		p.Name = strings.TrimSuffix(strings.TrimPrefix(v.Path, "/memfd:"), deletedSuffix)
		if sealed {
			p.Seals = unix.F_SEAL_WRITE
		}
	}
	d.objs = append(d.objs, o)
	d.t.Files = append(d.t.Files, image.File{
		ID: len(d.t.Files) + 1, Kind: k.name, Path: v.Path, Flags: unix.O_RDWR,
		Mode: o.Stat.Mode, Size: end, Dev: dev, Ino: v.Inode,
	})
	f := &d.t.Files[len(d.t.Files)-1]
	if total > 0 {
		f.Blob = d.addRangesBlob(mem, src)
	}
	if err := setPayload(f, &p); err != nil {
		return 0, err
	}
	for _, j := range idx {
		vmas[j].File = f.ID
	}
	d.Note("%s: the shared mapping of %s, which no fd holds, is carried as the mappings show it (opening the file through /proc/PID/map_files needs root)", where, v.Path)
	return f.ID, nil
}

// readableLen returns how much of [addr, addr+n) of the process reads
// through /proc/PID/mem, from the start: a mapping of a file past its end
// cannot be read (the access would be SIGBUS).
func readableLen(mem *os.File, addr, n int64) int64 {
	ps := int64(os.Getpagesize())
	var b [1]byte
	ok := func(pg int64) bool { _, err := mem.ReadAt(b[:], addr+pg*ps); return err == nil }
	pages := n / ps
	if pages == 0 || ok(pages-1) {
		return n
	}
	// The first page that cannot be read: the file ends before it.
	lo, hi := int64(0), pages-1 // ok(hi) is false
	for lo < hi {
		mid := (lo + hi) / 2
		if ok(mid) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo * ps
}

// parseDev reads a maps device, "MAJ:MIN" in hex.
func parseDev(s string) (uint64, error) {
	a, b, ok := strings.Cut(s, ":")
	maj, err1 := strconv.ParseUint(a, 16, 32)
	min, err2 := strconv.ParseUint(b, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("device %q is not MAJ:MIN", s)
	}
	return unix.Mkdev(uint32(maj), uint32(min)), nil
}

// shmemObj is one memfd or unlinked file rebuilt at thaw: the helper's
// read-write descriptor of it, from which every description and mapping
// descriptor is opened.
type shmemObj struct {
	f    *os.File
	kind image.FileKind
	p    shmemPayload
	mode uint32
	what string // for messages: "fd 3 (/tmp/x (deleted))"
}

// shmemWhere names f in messages: its lowest fd, or, mapped only, its
// path.
func (r *Restorer) shmemWhere(f *image.File) string {
	if fds := r.fds[f.ID]; len(fds) > 0 {
		return fmt.Sprintf("fd %d (%s)", fds[0].Num, f.Path)
	}
	return "the mapped file " + f.Path
}

func openShmem(r *Restorer, f *image.File) (*os.File, error) {
	obj, err := r.shmemObject(f)
	if err != nil {
		return nil, err
	}
	if len(r.fds[f.ID]) == 0 {
		return nil, nil // only mapped: MappingFD gives it to the mappings
	}
	// This File's own description of the file.
	lf, err := reopenSelf(obj.f, f.Flags&unix.O_ACCMODE)
	if err != nil {
		return nil, fmt.Errorf("%s: open the rebuilt file again: %w", r.shmemWhere(f), err)
	}
	if err := setStatusFlags(lf, f.Flags); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: %w", r.shmemWhere(f), err)
	}
	if _, err := lf.Seek(f.Pos, 0); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: seek to %d: %w", r.shmemWhere(f), f.Pos, err)
	}
	return lf, nil
}

// reopenSelf opens the file of f again, a new open file description,
// with access mode acc.
func reopenSelf(f *os.File, acc uint32) (*os.File, error) {
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), int(acc)|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// shmemObject returns the rebuilt file of f, building it (and routing
// its blob into it) the first time.
func (r *Restorer) shmemObject(f *image.File) (*shmemObj, error) {
	key := shmemKey{f.Dev, f.Ino}
	if obj := r.objs[key]; obj != nil {
		return obj, nil
	}
	obj := &shmemObj{kind: f.Kind, mode: f.Mode &^ unix.S_IFMT, what: r.shmemWhere(f)}
	if err := getPayload(f, &obj.p); err != nil {
		return nil, err
	}
	var err error
	if f.Kind == FileMemfd {
		obj.f, err = newMemfd(&obj.p, obj.mode)
	} else {
		obj.f, err = r.newUnlinked(f)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", obj.what, err)
	}
	r.objs[key] = obj
	if err := obj.f.Truncate(f.Size); err != nil {
		return nil, fmt.Errorf("%s: give it its size, %d bytes: %w", obj.what, f.Size, err)
	}
	if f.Blob != 0 {
		ext := obj.p.Data
		r.sink(f.Blob, func(off uint64, data []byte) error {
			// off is into the extents laid end to end.
			for len(data) > 0 {
				at, n := int64(-1), int64(0)
				for pos, i := int64(0), 0; i < len(ext); i++ {
					if int64(off) < pos+ext[i][1] {
						at, n = ext[i][0]+int64(off)-pos, pos+ext[i][1]-int64(off)
						break
					}
					pos += ext[i][1]
				}
				if at < 0 {
					return fmt.Errorf("%s: the image has more bytes for it than its extents hold", obj.what)
				}
				n = min(n, int64(len(data)))
				if _, err := obj.f.WriteAt(data[:n], at); err != nil {
					return fmt.Errorf("%s: put back its contents: %w", obj.what, err)
				}
				data, off = data[n:], off+uint64(n)
			}
			return nil
		})
	}
	return obj, nil
}

// newMemfd creates a memfd named as p says, open read-write, with
// sealing allowed: the seals are added at the end (shmemDone).
func newMemfd(p *shmemPayload, mode uint32) (*os.File, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	// Linux 6.3+ wants to be told whether the memfd may be executed
	// (and warns when it is not); older kernels refuse these flags.
	exec := unix.MFD_EXEC
	if mode&0o111 == 0 && p.Seals&unix.F_SEAL_EXEC != 0 {
		exec = unix.MFD_NOEXEC_SEAL
	}
	fd, err := unix.MemfdCreate(p.Name, flags|exec)
	if errors.Is(err, unix.EINVAL) {
		fd, err = unix.MemfdCreate(p.Name, flags)
	}
	if err != nil {
		return nil, fmt.Errorf("memfd_create(%q): %w", p.Name, err)
	}
	return os.NewFile(uintptr(fd), "/memfd:"+p.Name+deletedSuffix), nil
}

// newUnlinked creates f's file again where it was (makeNear: under its
// own name when free, else next to it, else in the nearest directory
// still there) and unlinks it.
func (r *Restorer) newUnlinked(f *image.File) (*os.File, error) {
	path := strings.TrimSuffix(f.Path, deletedSuffix)
	fd := -1
	name, err := makeNear(path, func(p string) error {
		var err error
		fd, err = unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("make the deleted file %s again: %w", path, err)
	}
	if err := unix.Unlink(name); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("remove the deleted file %s again (made as %s): %w", path, name, err)
	}
	if name != path {
		r.logf("%s: made again as %s (its name or directory is taken or gone), and removed", f.Path, name)
	}
	return os.NewFile(uintptr(fd), name+deletedSuffix), nil
}

// mapKey is a descriptor given to the mappings: a File's file, read-write
// or read-only.
type mapKey struct {
	file int
	rw   bool
}

// mapKeyOf says which descriptor v is mapped from: read-write when the
// mapping is writable, may be made so, or was made from a descriptor
// open for writing (VM_SHARED: a write-sealed memfd's, see MapAfterSeals);
// read-only else: the kernel then leaves VM_SHARED and VM_MAYWRITE out,
// as it did for the original.
func mapKeyOf(v *image.VMA) mapKey {
	return mapKey{v.File, v.Prot&unix.PROT_WRITE != 0 || v.Flags&(image.VMAMayWrite|image.VMAShared) != 0}
}

// MapAfterSeals tells whether v must be mapped after Seal: a read-only
// shared mapping of a memfd sealed against writes, from a descriptor open
// for writing (VmFlags sh without mw: the seal took VM_MAYWRITE away).
// Mapped before the seal it would keep VM_MAYWRITE, and the seal would
// be refused (EBUSY).
func MapAfterSeals(v *image.VMA) bool {
	return v.Kind == image.VMASharedObject && v.Flags&image.VMAShared != 0 &&
		v.Flags&image.VMAMayWrite == 0 && v.Prot&unix.PROT_WRITE == 0
}

// moveMapped moves into the stub one descriptor of each rebuilt file
// that a MAP_SHARED mapping maps, read-write when the mapping is or may
// be made writable, read-only else (as the original's descriptor was:
// the mapping's VM_MAYWRITE follows it). Called while the channel is
// open, after the fds are placed.
func (r *Restorer) moveMapped() error {
	for i := range r.P.VMAs {
		v := &r.P.VMAs[i]
		if v.Kind != image.VMASharedObject {
			continue
		}
		key := mapKeyOf(v)
		if _, ok := r.mapFDs[key]; ok {
			continue
		}
		f := r.P.File(v.File)
		if f == nil || (f.Kind != FileMemfd && f.Kind != FileUnlinked) {
			return fmt.Errorf("mapping %#x-%#x %s names file %d, which is no memfd or deleted file of the image", v.Start, v.End, v.Path, v.File)
		}
		obj := r.objs[shmemKey{f.Dev, f.Ino}]
		if obj == nil {
			return fmt.Errorf("mapping %#x-%#x %s: its file was not rebuilt", v.Start, v.End, v.Path)
		}
		acc := uint32(unix.O_RDONLY)
		if key.rw {
			acc = unix.O_RDWR
		}
		lf, err := reopenSelf(obj.f, acc)
		if err != nil {
			return fmt.Errorf("mapping %#x-%#x %s: open the rebuilt file again: %w", v.Start, v.End, v.Path, err)
		}
		got, err := r.move(lf)
		lf.Close()
		if err != nil {
			return fmt.Errorf("mapping %#x-%#x %s: move its file into the thawing process: %w", v.Start, v.End, v.Path, err)
		}
		r.mapFDs[key] = got
	}
	return nil
}

// MappingFD returns the thawing process's descriptor to map v
// (VMASharedObject) from, with mmap(MAP_SHARED|MAP_FIXED, fd, v.Offset).
// It stays open until MappingsDone.
func (r *Restorer) MappingFD(v *image.VMA) (int, error) {
	fd, ok := r.mapFDs[mapKeyOf(v)]
	if !ok {
		return -1, fmt.Errorf("mapping %#x-%#x %s: no descriptor of its file was moved in", v.Start, v.End, v.Path)
	}
	return fd, nil
}

// Seal gives each rebuilt memfd and deleted file its owner and mode, and
// each memfd its seals: once the mappings are made, but those that
// MapAfterSeals.
func (r *Restorer) Seal() error {
	for _, obj := range r.objs {
		if err := obj.finish(r); err != nil {
			return err
		}
	}
	return nil
}

// MappingsDone closes the descriptors MappingFD gave out, once every
// mapping is made, and lets go of the rebuilt files.
func (r *Restorer) MappingsDone() error {
	var errs []error
	for _, fd := range r.mapFDs {
		if _, err := r.T.Syscall(fmt.Sprintf("close fd %d (a mapped file)", fd), r.Sys.Close, uint64(fd)); err != nil {
			errs = append(errs, err)
		}
	}
	r.mapFDs = nil
	for _, obj := range r.objs {
		obj.f.Close()
	}
	r.objs = nil
	return errors.Join(errs...)
}

func (obj *shmemObj) finish(r *Restorer) error {
	fd := int(obj.f.Fd())
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("%s: fstat: %w", obj.what, err)
	}
	if st.Uid != obj.p.Uid || st.Gid != obj.p.Gid {
		if err := unix.Fchown(fd, int(obj.p.Uid), int(obj.p.Gid)); err != nil {
			// Only root gives a file away: the thawing user owns it.
			r.logf("%s: owner %d:%d not given back: %v", obj.what, obj.p.Uid, obj.p.Gid, err)
		}
	}
	if st.Mode&0o7777 != obj.mode&0o7777 {
		if err := unix.Fchmod(fd, obj.mode&0o7777); err != nil {
			return fmt.Errorf("%s: give it its mode %#o: %w", obj.what, obj.mode&0o7777, err)
		}
	}
	if obj.kind != FileMemfd {
		return nil
	}
	cur, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil {
		return fmt.Errorf("%s: F_GET_SEALS: %w", obj.what, err)
	}
	if add := obj.p.Seals &^ cur; add != 0 {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, add); err != nil {
			return fmt.Errorf("%s: add its seals %#x: %w", obj.what, add, err)
		}
	}
	return nil
}
