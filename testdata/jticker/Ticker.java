// Ticker: a multi-threaded Java program for the e2e tests (TestJVM).
//
// Four worker threads allocate all the time (so the garbage collector
// runs, and its threads, safepoints and JIT-compiled code are live
// across a freeze); each keeps a count in a shared array. The main thread
// prints one line every 20 ms:
//
//	tick N gc G w W0 W1 W2 W3
//
// N goes up by one each line (the test checks that the output continues
// after a thaw without a gap or a repeat), G is the number of GC cycles
// so far, Wi the workers' counts, which must keep growing. A thread
// reads commands on stdin: "exit N" exits with status N.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLongArray;

public class Ticker {
    static final int WORKERS = 4;

    static long gcCount() {
        long n = 0;
        for (GarbageCollectorMXBean b : ManagementFactory.getGarbageCollectorMXBeans()) {
            n += Math.max(0, b.getCollectionCount());
        }
        return n;
    }

    public static void main(String[] args) throws Exception {
        AtomicLongArray done = new AtomicLongArray(WORKERS);
        for (int w = 0; w < WORKERS; w++) {
            final int id = w;
            Thread t = new Thread(() -> {
                List<byte[]> keep = new ArrayList<>();
                while (true) {
                    keep.add(new byte[2048]);
                    if (keep.size() > 2000) {
                        keep.clear();
                    }
                    done.incrementAndGet(id);
                }
            }, "worker-" + w);
            t.setDaemon(true);
            t.start();
        }
        Thread in = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in))) {
                for (String l; (l = r.readLine()) != null; ) {
                    if (l.startsWith("exit ")) {
                        System.out.flush();
                        System.exit(Integer.parseInt(l.substring(5).trim()));
                    }
                }
            } catch (Exception e) {
                e.printStackTrace();
            }
        }, "stdin");
        in.setDaemon(true);
        in.start();
        System.out.println("ready");
        for (long i = 1; ; i++) {
            StringBuilder b = new StringBuilder();
            b.append("tick ").append(i).append(" gc ").append(gcCount()).append(" w");
            for (int w = 0; w < WORKERS; w++) {
                b.append(' ').append(done.get(w));
            }
            System.out.println(b);
            System.out.flush();
            Thread.sleep(20);
        }
    }
}
