# pythreads: python3 with worker threads (threading) holding state in
# memory and writing to an open file. Each of 4 workers counts while the
# main thread says go, appending "w<i> <n>" to the log file named by
# argv[1] at each count. Commands on stdin, one answer line each:
#   go       -> "going": the workers count
#   counts   -> "counts a b c d"
#   threads  -> "threads N"
#   exit N
import sys
import threading
import time

counts = [0] * 4
lock = threading.Lock()
going = threading.Event()
log = open(sys.argv[1], "a")


def worker(i):
    n = 0
    while True:
        going.wait()
        with lock:
            n += 1
            counts[i] = n
            log.write(f"w{i} {n}\n")
            log.flush()
        time.sleep(0.005)


for i in range(4):
    threading.Thread(target=worker, args=(i,), daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    if not cmd:
        continue
    if cmd[0] == "go":
        going.set()
        print("going", flush=True)
    elif cmd[0] == "counts":
        with lock:
            print("counts", *counts, flush=True)
    elif cmd[0] == "threads":
        print("threads", threading.active_count(), flush=True)
    elif cmd[0] == "exit":
        sys.exit(int(cmd[1]))
