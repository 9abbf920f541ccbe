// locked-ring: what the seed's locking discipline allows, without the rest of the engine.
//
// sys_pipe.c serialises a pipe's reader and writer: both take the pipe's I/O lock for every
// read(2) and write(2) and copy under it, so the two copies of one byte never overlap. This
// program is that discipline and nothing else, as a ceiling for the engine's buffered path:
//
//   - a ring of PIPE_SIZE (16 KiB), one spin lock (test-and-test-and-set, exponential back-off
//     of `pause`s up to BACKOFF), every copy made under it;
//   - a read takes min(count, bytes in the ring, bytes up to the ring's end), as pipe_read;
//     when the ring empties, both pointers go back to the start ("improves cache hit stats");
//   - a write of more than PIPE_BUF (512) bytes may be split; once the ring is full the writer
//     waits until fewer than MINPIPESIZE (PIPE_SIZE / 3) bytes are left (pipe_read's write
//     blocking hysteresis);
//   - a side that must wait spins outside the lock (the engine's default wait spins too).
//
// No descriptors, no reference counts, no I/O lock flag word, no timestamps, no wake-ups: the
// difference between this and the engine is what those cost. ENGINE_COSTS=1 adds the engine's
// per-call bookkeeping that needs no wake-up: a reference count taken and dropped around each
// call (fget / fdrop: two atomic operations on a line of the caller's own), the I/O lock flag
// and busy count stored under the lock (a second shared line), and a coarse-clock timestamp
// (pipe_atime / pipe_mtime, a third). In the same run, the same
// transfer goes through a Linux pipe (F_SETPIPE_SZ 1 MiB, as pipebench's README table), so the
// printed ratio compares like with like on a noisy machine. Writer on CPU 0, reader on CPU 1.
//
// Build: cc -O2 -pthread -o /tmp/locked-ring scripts/locked-ring.c
// Usage: locked-ring [WRITE_SIZE [TOTAL_BYTES [REPS [BACKOFF [VERIFY [ENGINE_COSTS]]]]]]
//        defaults: 4096 268435456 5 4 0 0. VERIFY=1 checks every byte (slower: not for timing).
// Output: one `key=value` per line (medians over REPS, after one warm-up).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { PIPE_SIZE = 16384, PIPE_BUF_ = 512, MINPIPESIZE = PIPE_SIZE / 3 };

static long write_size, total;
static unsigned backoff_cap;
static int verify;

static _Alignas(64) uint32_t ring_lock;
static _Alignas(64) struct { long cnt, in, out; } rb;
static _Alignas(4096) unsigned char ring[PIPE_SIZE];

static inline void cpu_relax(void) { __builtin_ia32_pause(); }

// ENGINE_COSTS: [0] the writer's file count, [16] the reader's (a line each); the pipe's state
// word and busy count; its access and modification times.
static int engine_costs;
static _Alignas(64) uint32_t file_count[32];
static _Alignas(64) struct { uint32_t state; long busy; } pipe_flags;
static _Alignas(64) struct { struct timespec atime, mtime; } pipe_times;

static inline void fget(int reader) {
    if (engine_costs) __atomic_fetch_add(&file_count[reader * 16], 1, __ATOMIC_ACQUIRE);
}
static inline void fdrop(int reader) {
    if (engine_costs) __atomic_fetch_sub(&file_count[reader * 16], 1, __ATOMIC_RELEASE);
}
static inline void bookkeeping(int reader) {   // under the lock
    if (!engine_costs) return;
    pipe_flags.busy++;
    pipe_flags.state |= 1;                      // PIPE_LOCKFL
    clock_gettime(CLOCK_REALTIME_COARSE, reader ? &pipe_times.atime : &pipe_times.mtime);
    pipe_flags.state &= ~1u;
    pipe_flags.busy--;
}

static void lock(void) {
    unsigned backoff = 1;
    for (;;) {
        uint32_t expected = 0;
        if (__atomic_load_n(&ring_lock, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&ring_lock, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        for (unsigned k = 0; k < backoff; k++) cpu_relax();
        if (backoff < backoff_cap) backoff <<= 1;
    }
}

static void unlock(void) { __atomic_store_n(&ring_lock, 0, __ATOMIC_RELEASE); }

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        fprintf(stderr, "locked-ring: cannot pin to CPU %d\n", cpu);
        exit(2);
    }
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static unsigned char pattern(long offset) { return (unsigned char)(offset * 131 + (offset >> 12)); }

static void *alloc_buffer(long n) {
    void *p = NULL;
    if (posix_memalign(&p, 4096, n) != 0) { perror("posix_memalign"); exit(2); }
    memset(p, 0, n);
    return p;
}

// ---- the locked ring ----

static void *ring_reader(void *arg) {
    (void)arg;
    pin(1);
    unsigned char *buf = alloc_buffer(write_size);
    long got = 0;
    while (got < total) {
        fget(1);
        lock();
        bookkeeping(1);
        if (rb.cnt == 0) { unlock(); fdrop(1); cpu_relax(); continue; }
        long size = PIPE_SIZE - rb.out;
        if (size > rb.cnt) size = rb.cnt;
        if (size > write_size) size = write_size;
        memcpy(buf, ring + rb.out, size);
        rb.out += size;
        if (rb.out >= PIPE_SIZE) rb.out = 0;
        rb.cnt -= size;
        if (rb.cnt == 0) rb.in = rb.out = 0;
        unlock();
        fdrop(1);
        if (verify)
            for (long i = 0; i < size; i++)
                if (buf[i] != pattern(got + i)) {
                    fprintf(stderr, "locked-ring: byte %ld is %u, expected %u\n", got + i, buf[i], pattern(got + i));
                    exit(1);
                }
        got += size;
    }
    free(buf);
    return NULL;
}

static void ring_writer(const unsigned char *src) {
    unsigned char *from = (unsigned char *)src;
    long sent = 0;
    while (sent < total) {
        long want = write_size < total - sent ? write_size : total - sent, done = 0;
        if (verify) for (long i = 0; i < want; i++) from[i] = pattern(sent + i);
        while (done < want) {
            fget(0);
            lock();
            bookkeeping(0);
            long space = PIPE_SIZE - rb.cnt;
            if (space < want - done && want <= PIPE_BUF_) space = 0;   // atomic small writes
            if (space == 0) {
                unlock();
                fdrop(0);
                while (__atomic_load_n(&rb.cnt, __ATOMIC_RELAXED) >= MINPIPESIZE) cpu_relax();
                continue;
            }
            while (space > 0 && done < want) {
                long seg = PIPE_SIZE - rb.in;
                if (seg > space) seg = space;
                if (seg > want - done) seg = want - done;
                memcpy(ring + rb.in, from + done, seg);
                rb.in += seg;
                if (rb.in >= PIPE_SIZE) rb.in = 0;
                rb.cnt += seg;
                space -= seg;
                done += seg;
            }
            unlock();
            fdrop(0);
        }
        sent += want;
    }
}

// ---- the same transfer through a Linux pipe ----

static int kpipe[2];

static void *kernel_reader(void *arg) {
    (void)arg;
    pin(1);
    unsigned char *buf = alloc_buffer(write_size);
    long got = 0;
    while (got < total) {
        ssize_t n = read(kpipe[0], buf, write_size);
        if (n <= 0) { perror("read"); exit(2); }
        got += n;
    }
    free(buf);
    return NULL;
}

static void kernel_writer(const unsigned char *src) {
    long sent = 0;
    while (sent < total) {
        long want = write_size < total - sent ? write_size : total - sent;
        ssize_t n = write(kpipe[1], src, want);
        if (n <= 0) { perror("write"); exit(2); }
        sent += n;
    }
}

static double run(void *(*reader)(void *), void (*writer)(const unsigned char *), const unsigned char *src) {
    memset(&rb, 0, sizeof rb);
    pthread_t thread;
    double start = now();
    if (pthread_create(&thread, NULL, reader, NULL) != 0) { perror("pthread_create"); exit(2); }
    writer(src);
    pthread_join(thread, NULL);
    return total / (now() - start) / 1e9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, n, sizeof *v, by_value);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    write_size = argc > 1 ? atol(argv[1]) : 4096;
    total = argc > 2 ? atol(argv[2]) : 256L << 20;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    backoff_cap = argc > 4 ? (unsigned)atoi(argv[4]) : 4;
    verify = argc > 5 ? atoi(argv[5]) : 0;
    engine_costs = argc > 6 ? atoi(argv[6]) : 0;
    if (write_size <= 0 || total < write_size || reps < 1 || reps > 1000 || backoff_cap < 1) {
        fprintf(stderr, "usage: locked-ring [WRITE_SIZE [TOTAL_BYTES [REPS [BACKOFF [VERIFY [ENGINE_COSTS]]]]]]\n");
        return 2;
    }
    pin(0);
    unsigned char *src = alloc_buffer(write_size);
    if (pipe(kpipe) != 0) { perror("pipe"); return 2; }
    if (fcntl(kpipe[1], F_SETPIPE_SZ, 1 << 20) < 0)
        fprintf(stderr, "locked-ring: F_SETPIPE_SZ 1 MiB refused (%s); the kernel pipe keeps its size\n", strerror(errno));

    double ringv[1000], kernelv[1000];
    for (int rep = -1; rep < reps; rep++) {          // rep -1: warm-up, not counted
        double r = run(ring_reader, ring_writer, src);
        double k = verify ? 0 : run(kernel_reader, kernel_writer, src);
        if (rep >= 0) { ringv[rep] = r; kernelv[rep] = k; }
    }
    double r = median(ringv, reps), k = median(kernelv, reps);
    printf("write_size_B=%ld\ntotal_B=%ld\nrepetitions=%d\nbackoff_pauses=%u\nverified=%d\nengine_costs=%d\n",
           write_size, total, reps, backoff_cap, verify, engine_costs);
    printf("locked_ring_GBps_median=%.3f\n", r);
    if (!verify) printf("linux_pipe_1M_GBps_median=%.3f\nratio=%.2f\n", k, r / k);
    return 0;
}
