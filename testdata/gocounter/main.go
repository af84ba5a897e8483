// gocounter: a Go program for the e2e tests. Its runtime has several
// threads (GOMAXPROCS, sysmon, the GC workers), a goroutine allocates
// all the time so that the GC runs across a freeze, and the main
// goroutine keeps a counter in memory.
//
// Commands on stdin, one answer line each on stdout:
//
//	inc      -> "count N", one more each time
//	gc       -> "gc N": the GC cycles completed so far
//	churn    -> "churn N": the allocator's rounds so far
//	threads  -> "threads N": the runtime's OS threads
//	http     -> "http PORT": serves the counter over HTTP on
//	            127.0.0.1:PORT too (GET /inc: "count N", the same
//	            counter), from a net/http server with its own goroutines,
//	            listening on plain TCP
//	httpdefault -> the same, on the listener net.Listen gives by default
//	            (Go 1.24+: multipath TCP where the kernel has it)
//	rand     -> "rand HEX": 16 bytes of crypto/rand (Go 1.24+ on Linux
//	            6.11+: through the vdso's getrandom, its state in a
//	            MAP_DROPPABLE mapping)
//	exit N
//
// Prints "ready" once the allocator has run a GC cycle.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
)

var rounds atomic.Int64

// allocate keeps a ring of live buffers and replaces them forever: the
// heap grows and shrinks, the GC runs cycle after cycle.
func allocate() {
	ring := make([][]byte, 256)
	for i := 0; ; i++ {
		b := make([]byte, 16<<10)
		b[0] = byte(i)
		ring[i%len(ring)] = b
		if i%len(ring) == 0 {
			rounds.Add(1)
			runtime.Gosched()
		}
	}
}

func numGC() uint32 {
	var s debug.GCStats
	debug.ReadGCStats(&s)
	return uint32(s.NumGC)
}

func main() {
	go allocate()
	for numGC() == 0 {
		runtime.Gosched()
	}
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	say("ready")
	var count atomic.Int64
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "inc":
			say("count %d", count.Add(1))
		case "http", "httpdefault":
			var lc net.ListenConfig
			if f[0] == "http" {
				lc.SetMultipathTCP(false)
			}
			l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
			if err != nil {
				say("http %v", err)
				continue
			}
			mux := http.NewServeMux()
			mux.HandleFunc("/inc", func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "count %d", count.Add(1))
			})
			go http.Serve(l, mux)
			say("http %d", l.Addr().(*net.TCPAddr).Port)
		case "rand":
			b := make([]byte, 16)
			if _, err := rand.Read(b); err != nil {
				say("rand %v", err)
				continue
			}
			say("rand %x", b)
		case "gc":
			say("gc %d", numGC())
		case "churn":
			say("churn %d", rounds.Load())
		case "threads":
			n, _ := os.ReadDir("/proc/self/task")
			say("threads %d", len(n))
		case "exit":
			code := 0
			if len(f) > 1 {
				code, _ = strconv.Atoi(f[1])
			}
			os.Exit(code)
		}
	}
}
