package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/restore"
)

// TestThawInfo: thaw --info and --info --json describe a real image
// without running it: a threaded victim with two idle threads added, a
// file it was given on fd 3, a pipe on fd 4 whose writer is ours (an
// external peer), and signals pending for a thread and for the process.
// The JSON decodes, strictly, into the documented schema (restore.Info,
// docs/info.md) and holds what the test knows of the victim. The same
// image then thaws and the victim takes its signals: --info changed
// nothing. A damaged image is refused in one line; a user who may read
// the file but not trace anything gets the same answer as root.
func TestThawInfo(t *testing.T) {
	setup(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data file")
	if err := os.WriteFile(data, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	df, err := os.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	defer df.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	p := startProc(t, "threads", buildVictim(t, "threads"), []string{"2"}, withFiles([]*os.File{df, pr}))
	pr.Close()
	p.expect("ready")
	p.ask("pend", "pend ok")
	pid := p.pid()
	argv := readCmdline(t, pid)
	tids := taskIDs(t, pid)
	comm := readTrim(t, pid, "comm")
	before := time.Now()
	img := filepath.Join(dir, "threads.bin")
	freezeKill(t, p, img)
	after := time.Now()

	r := runTool(t, thawBin, "--info", "--json", img)
	requireNoCrash(t, r)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("thaw --info --json:\n%s", r)
	}
	var in restore.Info
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		t.Fatalf("decode the JSON: %v\n%s", err, r.stdout)
	}
	if dec.More() {
		t.Errorf("more than one JSON document:\n%s", r.stdout)
	}
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	check := func(what string, got, want any) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("info_version", in.InfoVersion, restore.InfoVersion)
	check("file_bytes", in.FileBytes, fi.Size())
	check("pid", in.Pid, pid)
	check("comm", in.Comm, comm)
	check("argv", strings.Join(in.Argv, "\x00"), strings.Join(argv, "\x00"))
	check("kernel", in.Kernel, unix.ByteSliceToString(uts.Release[:]))
	check("arch", in.Arch, runtime.GOARCH)
	check("page_size", in.PageSize, os.Getpagesize())
	check("uid", in.UID, uint32(os.Geteuid()))
	if in.FrozenAt.Before(before) || in.FrozenAt.After(after) {
		t.Errorf("frozen_at %v, not between %v and %v", in.FrozenAt, before, after)
	}
	var gotTids []int
	for _, th := range in.Threads {
		gotTids = append(gotTids, th.Tid)
	}
	sort.Ints(gotTids)
	check("thread ids", string(mustJSON(t, gotTids)), string(mustJSON(t, tids)))
	fds := map[int]restore.InfoFD{}
	for _, f := range in.FDs {
		fds[f.FD] = f
	}
	check("fd 3 kind", fds[3].Kind, "reg")
	check("fd 3 path", fds[3].Path, data)
	check("fd 4 kind", fds[4].Kind, "pipe")
	if !slices.ContainsFunc(in.Peers, func(s string) bool { return strings.Contains(s, "fd 4") }) {
		t.Errorf("external_peers %q say nothing of fd 4, the pipe whose writer is the test", in.Peers)
	}
	// "pend": SIGUSR2 for worker 1, SIGRTMIN+1 (35) for the process.
	var usr2, rt bool
	for _, s := range in.Pending {
		usr2 = usr2 || s.Signo == int(unix.SIGUSR2) && s.Name == "SIGUSR2" && slices.Contains(tids, s.Thread) && s.Thread != pid
		rt = rt || s.Signo == 35 && s.Thread == 0
	}
	if !usr2 || !rt {
		t.Errorf("pending_signals %+v: want SIGUSR2 for a worker thread and signal 35 for the process", in.Pending)
	}
	exe, _ := filepath.EvalSymlinks(buildVictim(t, "threads"))
	var mapped uint64
	exeMapped := false
	for _, m := range in.Mappings {
		mapped += m.Bytes
		exeMapped = exeMapped || m.Path == exe && m.Kind == "file" && strings.Contains(m.Prot, "x")
	}
	if !exeMapped {
		t.Errorf("no executable file mapping of %s in %+v", exe, in.Mappings)
	}
	check("mapped_bytes", in.MappedBytes, mapped)
	if in.Pages == 0 || in.PageBytes != in.Pages*uint64(in.PageSize) || in.StoredBytes == 0 || in.StoredBytes > in.PageBytes+in.PageRecords*64 {
		t.Errorf("pages %d, page_bytes %d, stored %d in %d records: inconsistent", in.Pages, in.PageBytes, in.StoredBytes, in.PageRecords)
	}
	if in.ImageBytes <= int64(in.StoredBytes) || in.ImageBytes >= in.FileBytes {
		t.Errorf("image_bytes %d: want between the stored pages (%d) and the file (%d)", in.ImageBytes, in.StoredBytes, in.FileBytes)
	}
	if in.FPUBytes == 0 || len(in.CPU) == 0 {
		t.Errorf("xsave_bytes %d, cpu_features %v: want both", in.FPUBytes, in.CPU)
	}

	// The text: the same facts for a reader.
	txt := runTool(t, thawBin, "--info", img)
	requireNoCrash(t, txt)
	if txt.code != 0 {
		t.Fatalf("thaw --info:\n%s", txt)
	}
	for _, want := range []string{
		"pid       " + strconv.Itoa(pid) + ",",
		"argv      " + argv[0] + " 2\n",
		"SIGUSR2 (thread ",
		"  3    reg       " + data,
		"  4    pipe ",
		"external peers\n",
		" MiB (image ",
	} {
		if !strings.Contains(txt.stdout, want) {
			t.Errorf("thaw --info says nothing like %q:\n%s", want, txt.stdout)
		}
	}
	t.Logf("thaw --info:\n%s", txt.stdout)

	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// Without privileges (no ptrace, no capability): nobody, with a copy
	// of thaw and of the image it may read, gets the same answer.
	if os.Geteuid() == 0 {
		pubDir, bin := privDir(t)
		pub := filepath.Join(pubDir, "threads.bin")
		if err := os.WriteFile(pub, b, 0o644); err != nil {
			t.Fatal(err)
		}
		nr := runToolWith(t, toolEnv{cred: nobody}, bin["thaw"], "--info", "--json", pub)
		requireNoCrash(t, nr)
		if nr.code != 0 {
			t.Fatalf("thaw --info as nobody:\n%s", nr)
		}
		if want := strings.Replace(r.stdout, strconv.Quote(img), strconv.Quote(pub), 1); nr.stdout != want {
			t.Errorf("thaw --info --json as nobody differs from root's:\n%s\nwant\n%s", nr.stdout, want)
		}
	}
	pubDir := t.TempDir()
	// Damaged: cut short, or a bit flipped in the pages.
	cut := filepath.Join(pubDir, "cut.bin")
	os.WriteFile(cut, b[:len(b)-100], 0o644)
	requireToolError(t, runTool(t, thawBin, "--info", cut), 1, []string{"thaw: "}, "truncated|damaged")
	flip := filepath.Join(pubDir, "flip.bin")
	bad := bytes.Clone(b)
	bad[len(b)-64-int(in.ImageBytes)/2] ^= 0x10
	os.WriteFile(flip, bad, 0o644)
	requireToolError(t, runTool(t, thawBin, "--info", flip), 1, []string{"thaw: "}, "corrupt|checksum")

	// --info ran nothing and changed nothing: the image thaws, and the
	// signals are still pending for their threads.
	q := thaw(t, img, true)
	if got := q.ask("take", "take "); got != "take w1=12/0 others=none main=35/77" {
		t.Errorf("after thaw: take = %q", got)
	}
	q.send("exit 0")
	q.waitExit()
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readCmdline(t *testing.T, pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

func readTrim(t *testing.T, pid int, name string) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// taskIDs lists the thread ids of pid, sorted.
func taskIDs(t *testing.T, pid int) []int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	var ids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err == nil {
			ids = append(ids, n)
		}
	}
	sort.Ints(ids)
	return ids
}
