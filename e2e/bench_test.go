package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The benchmarks measure freeze and thaw of a process with 256 MiB of
// present memory (testdata/big.c: half random, half zero) against a floor
// measured in the same run: reading the same present pages with
// process_vm_readv and writing them to a file in the same directory.
//
//	go test ./e2e -run '^$' -bench . -benchtime 5x
//
// BenchmarkRatio, which runs last, reports freeze/floor and thaw/floor.

var (
	benchMu      sync.Mutex
	benchNsPerOp = map[string]float64{}
	ratioOnce    sync.Once
)

// reportBench adds MiB/image (and MB/s) to a benchmark's result and
// records its ns/op for BenchmarkRatio.
func reportBench(b *testing.B, name string, bytes int64) {
	b.SetBytes(bytes)
	b.ReportMetric(float64(bytes)/(1<<20), "MiB/image")
	benchMu.Lock()
	benchNsPerOp[name] = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	benchMu.Unlock()
}

// startBig starts the 256 MiB victim and waits until it is idle in read.
func startBig(b *testing.B) *proc {
	b.Helper()
	p := startProc(b, "big", buildVictim(b, "big"), nil)
	p.expect("ready")
	waitInSyscall(b, p, sysRead)
	return p
}

func fileSize(tb testing.TB, path string) int64 {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// BenchmarkFloor256M: the raw cost of moving the victim's bytes: for each
// readable private mapping, its present pages (per /proc/PID/pagemap) read
// with process_vm_readv in 4 MiB chunks and written to a file, fsynced.
func BenchmarkFloor256M(b *testing.B) {
	setup(b)
	p := startBig(b)
	out := filepath.Join(b.TempDir(), "floor.bin")
	var n int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var err error
		n, err = floorCopy(p.pid(), out)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.Remove(out); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	reportBench(b, "floor", n)
}

// floorCopy copies the present pages of pid's readable private mappings to
// the file out and returns the number of bytes written.
func floorCopy(pid int, out string) (int64, error) {
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, err
	}
	defer maps.Close()
	pagemap, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return 0, err
	}
	defer pagemap.Close()
	f, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	defer f.Close()

	const chunk = 4 << 20
	pageSize := uint64(os.Getpagesize())
	buf := make([]byte, chunk)
	pm := make([]byte, 8*(chunk/pageSize))
	var total int64

	// copyRange moves [addr, addr+n) (n <= chunk) from the victim to f.
	copyRange := func(addr, n uint64) error {
		local := []unix.Iovec{{Base: (*byte)(unsafe.Pointer(&buf[0]))}}
		local[0].SetLen(int(n))
		remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: int(n)}}
		got, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if err != nil {
			return fmt.Errorf("process_vm_readv %#x+%d: %w", addr, n, err)
		}
		w, err := f.Write(buf[:got])
		total += int64(w)
		return err
	}

	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		perms := fields[1]
		if perms[0] != 'r' || perms[3] != 'p' {
			continue
		}
		if len(fields) >= 6 {
			switch fields[5] {
			case "[vvar]", "[vvar_vclock]", "[vsyscall]":
				continue // not readable through process_vm_readv
			}
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			return total, fmt.Errorf("bad maps line %q", sc.Text())
		}

		// Walk the mapping in chunks; in each, copy the runs of present pages.
		for base := start; base < end; base += chunk {
			n := min(end-base, chunk)
			pages := n / pageSize
			entries := pm[:8*pages]
			if _, err := pagemap.ReadAt(entries, int64(base/pageSize*8)); err != nil && err != io.EOF {
				return total, fmt.Errorf("pagemap at %#x: %w", base, err)
			}
			runStart := -1
			for i := 0; i <= int(pages); i++ {
				present := i < int(pages) && binary.LittleEndian.Uint64(entries[8*i:])&(1<<63) != 0
				switch {
				case present && runStart < 0:
					runStart = i
				case !present && runStart >= 0:
					if err := copyRange(base+uint64(runStart)*pageSize, uint64(i-runStart)*pageSize); err != nil {
						return total, err
					}
					runStart = -1
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return total, err
	}
	if err := f.Sync(); err != nil {
		return total, err
	}
	return total, f.Close()
}

// BenchmarkFreeze256M: freeze --leave-running of the 256 MiB victim, as a
// subprocess, to a new file each time.
func BenchmarkFreeze256M(b *testing.B) {
	setup(b)
	p := startBig(b)
	img := filepath.Join(b.TempDir(), "img.bin")
	pid := strconv.Itoa(p.pid())
	var size int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.Remove(img); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		b.StartTimer()
		r := runTool(b, freezeBin, "--leave-running", "-o", img, pid)
		b.StopTimer()
		requireNoCrash(b, r)
		if r.code != 0 {
			b.Fatalf("freeze failed:\n%s", r)
		}
		size = fileSize(b, img)
		b.StartTimer()
	}
	b.StopTimer()
	p.ask("ping", "pong") // the original is unharmed
	reportBench(b, "freeze", size)
}

// BenchmarkThaw256M: run an image of the 256 MiB victim (made once, with
// --leave-running) until the restored process answers a ping.
func BenchmarkThaw256M(b *testing.B) {
	setup(b)
	p := startBig(b)
	sum := p.ask("sum", "sum ")
	waitInSyscall(b, p, sysRead)
	img := filepath.Join(b.TempDir(), "img.bin")
	r := runTool(b, freezeBin, "--leave-running", "-o", img, strconv.Itoa(p.pid()))
	if r.code != 0 {
		b.Fatalf("freeze failed:\n%s", r)
	}
	p.kill()
	size := fileSize(b, img)

	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		th := thaw(b, img, false)
		th.ask("ping", "pong")
		b.StopTimer()
		if i == 0 {
			if got := th.ask("sum", "sum "); got != sum {
				b.Fatalf("thawed memory differs: %s, want %s", got, sum)
			}
		}
		th.kill()
		b.StartTimer()
	}
	b.StopTimer()
	reportBench(b, "thaw", size)
}

// BenchmarkRatio reports freeze/floor and thaw/floor from the benchmarks
// above, which must have run first in the same process (-bench .).
func BenchmarkRatio(b *testing.B) {
	benchMu.Lock()
	floor, fr, th := benchNsPerOp["floor"], benchNsPerOp["freeze"], benchNsPerOp["thaw"]
	benchMu.Unlock()
	if floor == 0 || (fr == 0 && th == 0) {
		b.Skip("run together with BenchmarkFloor256M and BenchmarkFreeze256M/BenchmarkThaw256M (-bench .)")
	}
	b.ReportMetric(0, "ns/op") // no time of its own
	var parts []string
	if fr != 0 {
		b.ReportMetric(fr/floor, "freeze/floor")
		parts = append(parts, fmt.Sprintf("freeze %.1f ms = %.2fx", fr/1e6, fr/floor))
	}
	if th != 0 {
		b.ReportMetric(th/floor, "thaw/floor")
		parts = append(parts, fmt.Sprintf("thaw %.1f ms = %.2fx", th/1e6, th/floor))
	}
	ratioOnce.Do(func() {
		b.Logf("floor %.1f ms; %s the floor", floor/1e6, strings.Join(parts, ", "))
	})
}

// BenchmarkFreezeReserve64G: freeze --leave-running of testdata/reserve.c,
// a process with a 64 GiB PROT_NONE|MAP_NORESERVE reservation and a few
// hundred pages of data (issue 7, item 3): the cost must follow the data,
// not the reservation. Reports freeze's peak RSS, and the time as a
// multiple of the 256 MiB floor when BenchmarkFloor256M ran before it.
func BenchmarkFreezeReserve64G(b *testing.B) {
	setup(b)
	p := startProc(b, "reserve", buildVictim(b, "reserve"), []string{"64", filepath.Join(b.TempDir(), "reserve.dat")})
	p.expect("ready")
	waitInSyscall(b, p, sysRead)
	img := filepath.Join(b.TempDir(), "img.bin")
	pid := strconv.Itoa(p.pid())
	var size, peak int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.Remove(img); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		b.StartTimer()
		_, rss := freezePeak(b, "--leave-running", "-o", img, pid)
		b.StopTimer()
		peak = max(peak, rss)
		size = fileSize(b, img)
		b.StartTimer()
	}
	b.StopTimer()
	p.ask("ping", "pong") // the original is unharmed
	b.SetBytes(size)
	b.ReportMetric(float64(size)/(1<<20), "MiB/image")
	b.ReportMetric(float64(peak)/(1<<20), "MiB-peak-RSS")
	benchMu.Lock()
	floor := benchNsPerOp["floor"]
	benchMu.Unlock()
	if floor != 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/floor, "x-floor256M")
	}
}

// BenchmarkThreads: freeze (--leave-running) and thaw, until the thawed
// process answers, of a process with 1 thread (testdata/pipe.c) and of
// one with 64 (testdata/threads.c with 56 idle threads added to its 8),
// both small: the cost of the threads themselves, next to each other.
// Reports freeze-ms and thaw-ms per run.
func BenchmarkThreads(b *testing.B) {
	for _, bc := range []struct {
		name, victim string
		args         []string
		ask, answer  string
	}{
		{name: "1", victim: "pipe", ask: "one", answer: "got one"},
		{name: "64", victim: "threads", args: []string{"56"}, ask: "tick", answer: "tick "},
	} {
		b.Run(bc.name, func(b *testing.B) {
			setup(b)
			p := startProc(b, bc.victim, buildVictim(b, bc.victim), bc.args)
			p.expect("ready")
			p.ask(bc.ask, bc.answer)
			if n := countTasks(b, p.pid()); strconv.Itoa(n) != bc.name {
				b.Fatalf("%s has %d threads, want %s", bc.victim, n, bc.name)
			}
			waitInSyscall(b, p, sysRead)
			cycles(b, p, filepath.Join(b.TempDir(), "img.bin"), false, nil, func(th *proc) { th.ask(bc.ask, bc.answer) })
		})
	}
}

// cycles freezes p (--leave-running) to img and thaws the image (with
// opts) to its first answer, b.N times, and reports the mean freeze and
// thaw times and the image's size. With replace the original is killed
// before each thaw and the thawed copy is the next one frozen (a program
// holding a port, files...); otherwise each thawed copy is killed.
func cycles(b *testing.B, p *proc, img string, replace bool, opts []procOpt, answer func(*proc)) {
	pid := strconv.Itoa(p.pid())
	var freezeNs, thawNs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.Remove(img); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		r := runTool(b, freezeBin, "--leave-running", "-o", img, pid)
		freezeNs += time.Since(t0)
		if r.code != 0 {
			b.Fatalf("freeze failed:\n%s", r)
		}
		b.StopTimer()
		if replace {
			p.kill()
		}
		b.StartTimer()
		t0 = time.Now()
		th := thaw(b, img, false, opts...)
		answer(th)
		thawNs += time.Since(t0)
		b.StopTimer()
		if replace {
			p, pid = th, strconv.Itoa(th.pid())
		} else {
			th.kill()
		}
		b.StartTimer()
	}
	b.StopTimer()
	if replace {
		p.kill()
	}
	b.ReportMetric(float64(freezeNs.Microseconds())/1000/float64(b.N), "freeze-ms")
	b.ReportMetric(float64(thawNs.Microseconds())/1000/float64(b.N), "thaw-ms")
	b.ReportMetric(float64(fileSize(b, img))/(1<<20), "MiB/image")
}

func countTasks(tb testing.TB, pid int) int {
	tb.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// BenchmarkPrograms: the real programs of the e2e tests, each frozen
// (--leave-running) and thawed to its first answer: freeze time, image
// size and thaw time (the restorer included) of redis-server, a JVM, a Go
// program, python3 with threads and vim.
func BenchmarkPrograms(b *testing.B) {
	type realProgram struct {
		name  string
		start func(b *testing.B, dir string) *proc
		// ready waits for the started program; answer for the thawed
		// one's first answer.
		ready, answer func(b *testing.B, p *proc)
	}
	var port string
	programs := []realProgram{
		{name: "redis-server",
			start: func(b *testing.B, dir string) *proc {
				port = freePort(b)
				return startProc(b, "redis-server", program(b, "redis-server"),
					[]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}, inDir(dir))
			},
			ready: func(b *testing.B, p *proc) {
				for {
					l, ok := p.out.nextLine(lineTimeout)
					if !ok {
						b.Fatalf("redis-server did not get ready\n%s", p.diag())
					}
					if strings.Contains(l, "Ready to accept connections") {
						break
					}
				}
				r := dialRedis(b, port)
				for i := 0; i < 1000; i++ {
					r.send(b, []string{"SET", fmt.Sprintf("key:%d", i), strings.Repeat("v", 100)})
				}
				for i := 0; i < 1000; i++ {
					r.reply(b)
				}
				// No client connection across a freeze: the original,
				// killed, closes it with a FIN, and the orphan holds
				// the 4-tuple a repaired copy needs.
				r.c.Close()
				if n := waitSockets(b, p.pid(), 1); n != 1 {
					b.Fatalf("redis-server holds %d sockets, want its listener", n)
				}
			},
			answer: func(b *testing.B, p *proc) {
				r := dialRedis(b, port)
				if got := r.do(b, "DBSIZE"); got != "1000" {
					b.Fatalf("redis after thaw: DBSIZE %s", got)
				}
				r.c.Close()
				if n := waitSockets(b, p.pid(), 1); n != 1 {
					b.Fatalf("redis-server holds %d sockets, want its listener", n)
				}
			}},
		{name: "java",
			start: func(b *testing.B, dir string) *proc {
				return startProc(b, "java", program(b, "java"), []string{"-Xmx64m", "-cp", buildJava(b, "jticker"), "Ticker"}, inDir(dir))
			},
			ready:  func(b *testing.B, p *proc) { p.expect("ready"); p.expect("tick ") },
			answer: func(b *testing.B, p *proc) { p.expect("tick ") }},
		{name: "go",
			start: func(b *testing.B, dir string) *proc {
				return startProc(b, "gocounter", buildGoVictim(b, "gocounter"), nil, inDir(dir))
			},
			ready:  func(b *testing.B, p *proc) { p.expect("ready") },
			answer: func(b *testing.B, p *proc) { p.ask("inc", "count ") }},
		{name: "python3",
			start: func(b *testing.B, dir string) *proc {
				script, err := filepath.Abs(filepath.Join("..", "testdata", "pythreads.py"))
				if err != nil {
					b.Fatal(err)
				}
				return startProc(b, "python3", pythonPath(b), []string{script, "py.log"}, inDir(dir))
			},
			ready:  func(b *testing.B, p *proc) { p.expect("ready"); p.ask("go", "going") },
			answer: func(b *testing.B, p *proc) { p.ask("threads", "threads 5") }},
	}
	for _, pg := range programs {
		b.Run(pg.name, func(b *testing.B) {
			setup(b)
			dir := b.TempDir()
			p := pg.start(b, dir)
			pg.ready(b, p)
			cycles(b, p, filepath.Join(dir, "img.bin"), true, []procOpt{inDir(dir)}, func(th *proc) { pg.answer(b, th) })
		})
	}
}

// BenchmarkStream512M: a process with 512 MiB of present memory (big
// 512) frozen through a pipe into thaw -, until the thawed copy answers a
// ping (freeze --leave-running PID -o - | thaw --fd 0=&3 -), next to a
// plain freeze of it to a file in the same run. Reports both, and their
// ratio stream/file (the target of issue 10: at most 1.5).
func BenchmarkStream512M(b *testing.B) {
	setup(b)
	p := startProc(b, "big", buildVictim(b, "big"), []string{"512"})
	p.expect("ready")
	sum := p.ask("sum", "sum ")
	waitInSyscall(b, p, sysRead)
	pid := strconv.Itoa(p.pid())
	img := filepath.Join(b.TempDir(), "img.bin")
	var fileNs, streamNs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := os.Remove(img); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		r := runTool(b, freezeBin, "--leave-running", "-o", img, pid)
		fileNs += time.Since(t0)
		if r.code != 0 {
			b.Fatalf("freeze failed:\n%s", r)
		}

		cmdR, cmdW, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		stream, wait := startFreezeStream(b, "--leave-running", pid)
		th := startProc(b, "thaw -", thawBin, []string{"--fd", "0=&3", "-"}, withStdin(stream), withFiles([]*os.File{cmdR}))
		stream.Close()
		cmdR.Close()
		th.stdin.Close()
		th.stdin = cmdW
		th.ask("ping", "pong")
		streamNs += time.Since(t0)
		b.StopTimer()
		if r := wait(); r.code != 0 {
			b.Fatalf("freeze -o - failed:\n%s", r)
		}
		if i == 0 {
			if got := th.ask("sum", "sum "); got != sum {
				b.Fatalf("memory thawed from the stream differs: %s, want %s", got, sum)
			}
		}
		th.kill()
		b.StartTimer()
	}
	b.StopTimer()
	p.ask("ping", "pong") // the original is unharmed
	size := fileSize(b, img)
	b.SetBytes(size)
	b.ReportMetric(float64(size)/(1<<20), "MiB/image")
	file, str := float64(fileNs.Microseconds())/1000/float64(b.N), float64(streamNs.Microseconds())/1000/float64(b.N)
	b.ReportMetric(file, "file-freeze-ms")
	b.ReportMetric(str, "stream-thaw-ms")
	b.ReportMetric(str/file, "stream/file")
	b.Logf("freeze to a file %.1f ms; freeze -o - | thaw - until it answers %.1f ms = %.2fx (target at most 1.5x)", file, str, str/file)
}
