// lmbench-pipe: kernel pipe bandwidth and latency measured the way lmbench's bw_pipe and
// lat_pipe do, as an independent cross-check of PipeHarness's linux-pipe transport.
//
//   bw_pipe:  a writer sends BYTES through a pipe in XFER-byte write(2)s (lmbench: 64 KiB),
//             the reader read(2)s XFER at a time; time from the reader's start signal until
//             it has read every byte.
//   lat_pipe: a one-byte token goes back and forth over two pipes N times; the time per
//             round trip is the total divided by N (lmbench's "Pipe latency").
//
// Each measurement is repeated REPS times; the median and the best are printed, one
// `key=value` per line, so that a test can parse them:
//   bw_pipe_bytes_per_sec_median=…  bw_pipe_bytes_per_sec_max=…
//   lat_pipe_ns_median=…            lat_pipe_ns_min=…
//
// Like lmbench, the two sides are separate processes (fork) by default; -t uses two threads
// of one process instead, as PipeHarness does. -w / -r pin the writer / reader (the token's
// sender / echoer) to a CPU.
//
// Build: cc -O2 -o lmbench-pipe scripts/lmbench-pipe.c -lpthread
// Usage: lmbench-pipe [-t] [-b BYTES] [-x XFER] [-n ROUNDTRIPS] [-R REPS] [-w CPU] [-r CPU]
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long opt_bytes = 64LL << 20;   // lmbench: 10 MB by default; more is steadier
static size_t opt_xfer = 64 << 10;         // lmbench's XFERSIZE
static long opt_roundtrips = 20000;
static int opt_reps = 5;
static int opt_threads = 0;
static int opt_writer_cpu = -1, opt_reader_cpu = -1;

static void die(const char *what) {
    fprintf(stderr, "lmbench-pipe: %s: %s\n", what, strerror(errno));
    exit(1);
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

static void write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; die("write"); }
        p += w;
        n -= (size_t)w;
    }
}

static void read_byte(int fd, char *c) {
    for (;;) {
        ssize_t r = read(fd, c, 1);
        if (r == 1) return;
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) { fprintf(stderr, "lmbench-pipe: unexpected end of file\n"); exit(1); }
        die("read");
    }
}

// Runs `body(arg)` on the other side: a forked child (which exits after) or a thread.
typedef struct { void (*body)(void *); void *arg; pthread_t thread; pid_t pid; } side_t;

static void *thread_main(void *p) { side_t *s = p; s->body(s->arg); return NULL; }

static void side_start(side_t *s, void (*body)(void *), void *arg) {
    s->body = body;
    s->arg = arg;
    if (opt_threads) {
        if (pthread_create(&s->thread, NULL, thread_main, s) != 0) die("pthread_create");
    } else {
        s->pid = fork();
        if (s->pid < 0) die("fork");
        if (s->pid == 0) { body(arg); _exit(0); }
    }
}

static void side_join(side_t *s) {
    if (opt_threads) {
        pthread_join(s->thread, NULL);
    } else {
        int status;
        while (waitpid(s->pid, &status, 0) < 0 && errno == EINTR) {}
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) { fprintf(stderr, "lmbench-pipe: child failed\n"); exit(1); }
    }
}

// MARK: bw_pipe

typedef struct { int data_w, go_r; char *buf; } bw_writer_t;

static void bw_writer(void *p) {
    bw_writer_t *w = p;
    pin(opt_writer_cpu);
    char c;
    read_byte(w->go_r, &c);
    long long left = opt_bytes;
    while (left > 0) {
        size_t n = left < (long long)opt_xfer ? (size_t)left : opt_xfer;
        write_all(w->data_w, w->buf, n);
        left -= (long long)n;
    }
    close(w->data_w);
}

static double bw_once(void) {
    int data[2], go[2];
    if (pipe(data) != 0 || pipe(go) != 0) die("pipe");
    char *wbuf = aligned_alloc(4096, opt_xfer), *rbuf = aligned_alloc(4096, opt_xfer);
    if (!wbuf || !rbuf) die("aligned_alloc");
    memset(wbuf, 'a', opt_xfer);   // touched before the clock starts, as lmbench's valloc'd
    memset(rbuf, 0, opt_xfer);     // buffers are by their first iterations
    bw_writer_t w = { data[1], go[0], wbuf };
    side_t s;
    side_start(&s, bw_writer, &w);
    if (!opt_threads) close(data[1]);

    pin(opt_reader_cpu);
    int64_t t0 = now_ns();
    write_all(go[1], "g", 1);
    long long got = 0;
    for (;;) {
        ssize_t r = read(data[0], rbuf, opt_xfer);
        if (r < 0) { if (errno == EINTR) continue; die("read"); }
        if (r == 0) break;
        got += r;
        if (got >= opt_bytes) break;
    }
    int64_t t1 = now_ns();
    side_join(&s);
    if (got != opt_bytes) { fprintf(stderr, "lmbench-pipe: read %lld of %lld bytes\n", got, opt_bytes); exit(1); }
    close(data[0]);
    close(go[0]);
    close(go[1]);
    free(wbuf);
    free(rbuf);
    return (double)opt_bytes / ((double)(t1 - t0) / 1e9);
}

// MARK: lat_pipe

typedef struct { int in_r, out_w; } lat_echo_t;

static void lat_echo(void *p) {
    lat_echo_t *e = p;
    pin(opt_reader_cpu);
    char c;
    for (long i = 0; i < opt_roundtrips + 1; i++) {   // +1: the warm-up token
        read_byte(e->in_r, &c);
        write_all(e->out_w, &c, 1);
    }
}

static double lat_once(void) {
    int p1[2], p2[2];
    if (pipe(p1) != 0 || pipe(p2) != 0) die("pipe");
    lat_echo_t e = { p1[0], p2[1] };
    side_t s;
    side_start(&s, lat_echo, &e);
    pin(opt_writer_cpu);
    char c = 'x';
    write_all(p1[1], &c, 1);   // warm-up round trip: the echo side is up and running
    read_byte(p2[0], &c);
    int64_t t0 = now_ns();
    for (long i = 0; i < opt_roundtrips; i++) {
        write_all(p1[1], &c, 1);
        read_byte(p2[0], &c);
    }
    int64_t t1 = now_ns();
    side_join(&s);
    close(p1[0]); close(p1[1]); close(p2[0]); close(p2[1]);
    return (double)(t1 - t0) / (double)opt_roundtrips;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    int opt;
    while ((opt = getopt(argc, argv, "tb:x:n:R:w:r:")) != -1) {
        switch (opt) {
        case 't': opt_threads = 1; break;
        case 'b': opt_bytes = atoll(optarg); break;
        case 'x': opt_xfer = (size_t)atol(optarg); break;
        case 'n': opt_roundtrips = atol(optarg); break;
        case 'R': opt_reps = atoi(optarg); break;
        case 'w': opt_writer_cpu = atoi(optarg); break;
        case 'r': opt_reader_cpu = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: %s [-t] [-b BYTES] [-x XFER] [-n ROUNDTRIPS] [-R REPS] [-w CPU] [-r CPU]\n", argv[0]);
            return 2;
        }
    }
    if (opt_bytes <= 0 || opt_xfer == 0 || opt_roundtrips <= 0 || opt_reps <= 0) {
        fprintf(stderr, "lmbench-pipe: sizes, round trips and repetitions must be positive\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    double *bw = calloc((size_t)opt_reps, sizeof *bw), *lat = calloc((size_t)opt_reps, sizeof *lat);
    // Interleaved, as the harness interleaves configurations.
    for (int i = 0; i < opt_reps; i++) {
        bw[i] = bw_once();
        lat[i] = lat_once();
    }
    double bw_max = bw[0], lat_min = lat[0];
    for (int i = 1; i < opt_reps; i++) {
        if (bw[i] > bw_max) bw_max = bw[i];
        if (lat[i] < lat_min) lat_min = lat[i];
    }
    printf("mode=%s\n", opt_threads ? "threads" : "processes");
    printf("writer_cpu=%d\nreader_cpu=%d\n", opt_writer_cpu, opt_reader_cpu);
    printf("bytes=%lld\nxfer=%zu\nroundtrips=%ld\nreps=%d\n", opt_bytes, opt_xfer, opt_roundtrips, opt_reps);
    printf("bw_pipe_bytes_per_sec_median=%.0f\n", median(bw, opt_reps));
    printf("bw_pipe_bytes_per_sec_max=%.0f\n", bw_max);
    printf("bw_pipe_MB_per_sec_median=%.2f\n", median(bw, opt_reps) / (1024.0 * 1024.0));   // lmbench's MB
    printf("lat_pipe_ns_median=%.1f\n", median(lat, opt_reps));
    printf("lat_pipe_ns_min=%.1f\n", lat_min);
    free(bw);
    free(lat);
    return 0;
}
