// buffer-reuse: what it costs a writer to refill cache lines its reader has just read.
//
// The seed's buffered path reuses one buffer: pipe_read puts both pointers back to the start
// whenever the buffer empties, and a 4 KiB stream runs as fill/drain cycles over the 64 KiB
// (BIG_PIPE_SIZE) buffer (README, "Where it loses"). So every line the writer stores into was
// last read by the reader on the other CPU, and the store has to take it back. This program is
// that access pattern and nothing else (no lock, no pipe, no system call): the writer (CPU 0)
// copies 16 chunks of 4 KiB into a 64 KiB buffer and hands it over with one flag, the reader
// (CPU 1) copies the 16 chunks out and hands it back; each side times its 16 copies. After each
// chunk the writer makes one locked instruction, as the engine's mutex release does, so the
// time includes its stores' completion, not only their issue.
//
// Modes (every mode alternated three times, medians printed):
//   plain      memcpy on both sides (the engine's default copies)
//   prefetchw  the writer also prefetches the next chunk for writing before each copy
//   streaming  the writer's copy with non-temporal stores (the engine's `engine.copy`)
//   flush      the reader also clflushopt's each line it has copied out
// The sum of one writer and one reader chunk is the time per 4 KiB that fill/drain cycles over
// one reused buffer cannot beat on this machine; 4096 / sum is that bound in GB/s. The line
// round trip between the two CPUs (pipebench's probe_ns) is measured before and after, since
// on a VM the host moves the vCPUs and every number here moves with it.
//
// Build: cc -O2 -pthread -o /tmp/buffer-reuse scripts/buffer-reuse.c
// Usage: buffer-reuse [ROUNDS]   (default 20000 per measurement)
#define _GNU_SOURCE
#include <cpuid.h>
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { CHUNK = 4096, CHUNKS = 16, ALTERNATIONS = 3 };
enum mode { PLAIN, PREFETCHW, STREAMING, FLUSH, MODES };
static const char *mode_names[MODES] = { "plain", "prefetchw", "streaming", "flush" };

static char *buffer;
static char source[CHUNK] __attribute__((aligned(64)));
static char sink[CHUNK] __attribute__((aligned(64)));
static int turn;          // 0: the writer fills, 1: the reader drains
static long rounds;
static enum mode mode;
static long writer_ns, reader_ns, completions;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0) {
        fprintf(stderr, "buffer-reuse: cannot pin to CPU %d\n", cpu);
        exit(1);
    }
}

static void wait_turn(int mine) {
    while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != mine) _mm_pause();
}

__attribute__((target("prfchw")))
static void prefetch_for_write(char *p, size_t n) {
    for (size_t i = 0; i < n; i += 64) __builtin_prefetch(p + i, 1, 3);
}

static void copy_streaming(char *d, const char *s, size_t n) {
    for (size_t i = 0; i < n; i += 64) {
        __m128i a = _mm_load_si128((const __m128i *)(s + i));
        __m128i b = _mm_load_si128((const __m128i *)(s + i + 16));
        __m128i c = _mm_load_si128((const __m128i *)(s + i + 32));
        __m128i e = _mm_load_si128((const __m128i *)(s + i + 48));
        _mm_stream_si128((__m128i *)(d + i), a);
        _mm_stream_si128((__m128i *)(d + i + 16), b);
        _mm_stream_si128((__m128i *)(d + i + 32), c);
        _mm_stream_si128((__m128i *)(d + i + 48), e);
    }
    _mm_sfence();
}

__attribute__((target("clflushopt")))
static void flush_lines(const char *p, size_t n) {
    for (size_t i = 0; i < n; i += 64) _mm_clflushopt((void *)(p + i));
}

static void *reader(void *unused) {
    (void)unused;
    pin(1);
    for (long r = 0; r < rounds; r++) {
        wait_turn(1);
        long t = now_ns();
        for (int k = 0; k < CHUNKS; k++) {
            memcpy(sink, buffer + k * CHUNK, CHUNK);
            __asm__ volatile("" : : "r"(sink) : "memory");   // the copy is used
            if (mode == FLUSH) flush_lines(buffer + k * CHUNK, CHUNK);
        }
        if (mode == FLUSH) _mm_sfence();
        reader_ns += now_ns() - t;
        __atomic_store_n(&turn, 0, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void measure(enum mode m, double *writer_chunk_ns, double *reader_chunk_ns) {
    mode = m;
    writer_ns = reader_ns = 0;
    turn = 0;
    pthread_t thread;
    pthread_create(&thread, NULL, reader, NULL);
    for (long r = 0; r < rounds; r++) {
        wait_turn(0);
        long t = now_ns();
        for (int k = 0; k < CHUNKS; k++) {
            char *chunk = buffer + k * CHUNK;
            if (m == PREFETCHW && k + 1 < CHUNKS) prefetch_for_write(chunk + CHUNK, CHUNK);
            if (m == STREAMING) copy_streaming(chunk, source, CHUNK);
            else memcpy(chunk, source, CHUNK);
            __asm__ volatile("" : : : "memory");
            __atomic_fetch_add(&completions, 1, __ATOMIC_SEQ_CST);
        }
        writer_ns += now_ns() - t;
        __atomic_store_n(&turn, 1, __ATOMIC_RELEASE);
    }
    pthread_join(thread, NULL);
    *writer_chunk_ns = (double)writer_ns / (rounds * CHUNKS);
    *reader_chunk_ns = (double)reader_ns / (rounds * CHUNKS);
}

static int ball;        // the probe's cache line: 0 = CPU 0's turn, 1 = CPU 1's
static int echo_ready;  // the echo thread runs on CPU 1 (timing before it does measures a migration)
enum { PROBE_TRIPS = 20000 };

static void *probe_echo(void *unused) {
    (void)unused;
    pin(1);
    __atomic_store_n(&echo_ready, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < PROBE_TRIPS; i++) {
        while (__atomic_load_n(&ball, __ATOMIC_ACQUIRE) != 1) {}   // no pause, as pipebench
        __atomic_store_n(&ball, 0, __ATOMIC_RELEASE);
    }
    return NULL;
}

/// The round trip of one cache line between CPU 0 (the caller) and CPU 1, in ns.
static double probe(void) {
    ball = 0;
    echo_ready = 0;
    pthread_t thread;
    pthread_create(&thread, NULL, probe_echo, NULL);
    while (!__atomic_load_n(&echo_ready, __ATOMIC_ACQUIRE)) {}
    long t = now_ns();
    for (int i = 0; i < PROBE_TRIPS; i++) {
        __atomic_store_n(&ball, 1, __ATOMIC_RELEASE);
        while (__atomic_load_n(&ball, __ATOMIC_ACQUIRE) != 0) {}
    }
    long elapsed = now_ns() - t;
    pthread_join(thread, NULL);
    return (double)elapsed / PROBE_TRIPS;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    rounds = argc > 1 ? atol(argv[1]) : 20000;
    if (rounds <= 0) {
        fprintf(stderr, "usage: buffer-reuse [ROUNDS]\n");
        return 64;
    }
    unsigned a, b, c, d;
    int has_clflushopt = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_CLFLUSHOPT);
    int has_prefetchw = __get_cpuid(0x80000001, &a, &b, &c, &d) && (c & bit_PRFCHW);
    if (posix_memalign((void **)&buffer, 4096, CHUNK * CHUNKS) != 0) return 1;
    memset(buffer, 0, CHUNK * CHUNKS);
    memset(source, 7, CHUNK);
    pin(0);

    double probe_before = probe();
    double w[MODES][ALTERNATIONS], r[MODES][ALTERNATIONS], sum[MODES][ALTERNATIONS];
    for (int i = 0; i < ALTERNATIONS; i++) {
        for (int m = 0; m < MODES; m++) {
            if (m == FLUSH && !has_clflushopt) continue;
            measure((enum mode)m, &w[m][i], &r[m][i]);
            sum[m][i] = w[m][i] + r[m][i];
        }
    }
    double probe_after = probe();
    printf("per 4 KiB chunk, medians of %d alternations of %ld rounds x %d chunks "
           "(CPUID: prefetchw %s, clflushopt %s); line round trip CPU 0-1: %.0f ns before, "
           "%.0f ns after\n", ALTERNATIONS, rounds, CHUNKS,
           has_prefetchw ? "advertised" : "not advertised", has_clflushopt ? "yes" : "no",
           probe_before, probe_after);
    printf("%-10s %10s %10s %10s %12s\n", "mode", "writer ns", "reader ns", "sum ns", "bound GB/s");
    for (int m = 0; m < MODES; m++) {
        if (m == FLUSH && !has_clflushopt) continue;
        qsort(w[m], ALTERNATIONS, sizeof(double), by_value);
        qsort(r[m], ALTERNATIONS, sizeof(double), by_value);
        qsort(sum[m], ALTERNATIONS, sizeof(double), by_value);
        double s = sum[m][ALTERNATIONS / 2];
        printf("%-10s %10.0f %10.0f %10.0f %12.2f\n", mode_names[m], w[m][ALTERNATIONS / 2],
               r[m][ALTERNATIONS / 2], s, CHUNK / s);
    }
    return 0;
}
