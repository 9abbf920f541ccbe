#define _GNU_SOURCE
#include "CPipeSys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int pb_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *relative_timeout) {
    long r = syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, relative_timeout, NULL, 0);
    return r == 0 ? 0 : errno;
}

int pb_futex_wake(uint32_t *word, int count) {
    long r = syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
    return r < 0 ? 0 : (int)r;
}

int pb_lock_slow(uint32_t *word) {
    // Spin first: a holder on another CPU leaves within a few hundred nanoseconds; parking
    // would cost two system calls and a cross-CPU wake-up (~20 us on a VM).
    // 4000 `pause`s in all (~100 us at 25 ns each here), looking at the word between them.
    unsigned backoff = 1;
    for (int i = 0; i < 4000; i += backoff) {
        uint32_t seen = __atomic_load_n(word, __ATOMIC_RELAXED);
        if (seen == 0) {
            uint32_t expected = 0;
            if (__atomic_compare_exchange_n(word, &expected, 1, false,
                                            __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
                return 0;
            }
        } else if (seen == 2) {
            break;  // others are parked already: queue behind them
        }
        // Back off between looks: every look pulls the line away from the holder.
        for (unsigned k = 0; k < backoff; k++) pb_cpu_relax();
        if (backoff < 16) backoff <<= 1;
    }
    // Drepper's "futexes are tricky" mutex, third version: mark contended, park until free.
    while (__atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) != 0) {
        pb_futex_wait(word, 2, NULL);
    }
    return 1;
}

__thread uint64_t pb_thread_events[PB_EVENT_SLOTS] __attribute__((tls_model("initial-exec")));

void pb_thread_events_copy(uint64_t *out) {
    memcpy(out, pb_thread_events, sizeof pb_thread_events);
}

int pb_events_counted(void) {
#ifndef PB_NO_EVENTS
    return 1;
#else
    return 0;
#endif
}

int pb_thread_rusage(int64_t *voluntary, int64_t *involuntary, int64_t *user_ns, int64_t *system_ns) {
    struct rusage u;
    if (getrusage(RUSAGE_THREAD, &u) != 0) return errno;
    *voluntary = u.ru_nvcsw;
    *involuntary = u.ru_nivcsw;
    *user_ns = (int64_t)u.ru_utime.tv_sec * 1000000000 + (int64_t)u.ru_utime.tv_usec * 1000;
    *system_ns = (int64_t)u.ru_stime.tv_sec * 1000000000 + (int64_t)u.ru_stime.tv_usec * 1000;
    return 0;
}

int pb_madvise(void *addr, size_t length, int advice) {
    return madvise(addr, length, advice) == 0 ? 0 : errno;
}

int pb_mlock(const void *addr, size_t length) { return mlock(addr, length) == 0 ? 0 : errno; }
int pb_munlock(const void *addr, size_t length) { return munlock(addr, length) == 0 ? 0 : errno; }

void *pb_mmap_reserve(size_t length, int *error) {
    void *p = mmap(NULL, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { *error = errno; return NULL; }
    *error = 0;
    return p;
}

void *pb_mmap_anonymous_rw(size_t length, int *error) {
    void *p = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { *error = errno; return NULL; }
    *error = 0;
    return p;
}

int pb_munmap(void *addr, size_t length) { return munmap(addr, length) == 0 ? 0 : errno; }
int pb_mprotect(void *addr, size_t length, int prot) { return mprotect(addr, length, prot) == 0 ? 0 : errno; }

bool pb_populate_read_supported(void) {
    static int cached = -1;
    int known = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (known >= 0) return known == 1;
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int ok = 0;
    if (p != MAP_FAILED) {
        ok = madvise(p, page, PB_MADV_POPULATE_READ) == 0;
        munmap(p, page);
    }
    __atomic_store_n(&cached, ok, __ATOMIC_RELAXED);
    return ok;
}

int pb_probe_readable(const void *addr, size_t length) {
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t start = (uintptr_t)addr & ~(uintptr_t)(page - 1);
    uintptr_t end = (uintptr_t)addr + length;
    char sink[64];
    struct iovec local = { .iov_base = sink, .iov_len = sizeof sink };
    struct iovec remote[64];
    pid_t self = getpid();
    while (start < end) {
        int n = 0;
        for (; n < 64 && start < end; n++, start += page) {
            remote[n].iov_base = (void *)start;
            remote[n].iov_len = 1;
        }
        local.iov_len = n;
        ssize_t got = process_vm_readv(self, &local, 1, remote, n, 0);
        if (got != n) return EFAULT;
    }
    return 0;
}

int pb_get_memlock_limit(uint64_t *soft, uint64_t *hard) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0) return errno;
    *soft = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    *hard = rl.rlim_max == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_max;
    return 0;
}

int pb_set_memlock_limit(uint64_t soft, uint64_t hard) {
    struct rlimit rl;
    rl.rlim_cur = soft == UINT64_MAX ? RLIM_INFINITY : (rlim_t)soft;
    rl.rlim_max = hard == UINT64_MAX ? RLIM_INFINITY : (rlim_t)hard;
    return setrlimit(RLIMIT_MEMLOCK, &rl) == 0 ? 0 : errno;
}

long pb_vmlck_kb(void) {
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmLck:", 6) == 0) { kb = strtol(line + 6, NULL, 10); break; }
    }
    fclose(f);
    return kb;
}

pid_t pb_gettid(void) { return (pid_t)syscall(SYS_gettid); }
int pb_sched_getcpu(void) { return sched_getcpu(); }

int pb_pin_current_thread(int cpu) {
    if (cpu < 0 || cpu >= CPU_SETSIZE) return EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int pb_unpin_current_thread(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return errno;   // the process's mask
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

int64_t pb_thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t pb_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void pb_coarse_realtime(struct timespec *ts) { clock_gettime(CLOCK_REALTIME_COARSE, ts); }

int pb_runnable_threads(void) {
    // One descriptor for the process, opened on first use: a pread at offset 0 makes the
    // kernel format the file afresh (seq_file), so a sample is one system call.
    static int shared_fd = -1;
    int fd = __atomic_load_n(&shared_fd, __ATOMIC_ACQUIRE);
    if (fd < 0) {
        int opened = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
        if (opened < 0) return -1;
        int expected = -1;
        if (__atomic_compare_exchange_n(&shared_fd, &expected, opened, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            fd = opened;
        } else {
            close(opened);
            fd = expected;
        }
    }
    char text[128];
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    if (n <= 0) return -1;
    text[n] = 0;
    // "0.04 0.01 0.00 1/84 1908": the fourth field is runnable/total.
    char *field = text;
    for (int spaces = 0; spaces < 3; spaces++) {
        field = strchr(field, ' ');
        if (field == NULL) return -1;
        field++;
    }
    char *end = NULL;
    long runnable = strtol(field, &end, 10);
    if (end == field || *end != '/') return -1;
    return (int)runnable;
}

int pb_set_pipe_size(int fd, int size) {
    int r = fcntl(fd, F_SETPIPE_SZ, size);
    return r < 0 ? -errno : r;
}

int pb_get_pipe_size(int fd) {
    int r = fcntl(fd, F_GETPIPE_SZ);
    return r < 0 ? -errno : r;
}

ssize_t pb_vmsplice(int fd, const void *base, size_t length, unsigned int flags) {
    struct iovec iov = { .iov_base = (void *)base, .iov_len = length };
    ssize_t r = vmsplice(fd, &iov, 1, flags);
    return r < 0 ? -errno : r;
}

void pb_write_stderr(const char *line) {
    fputs(line, stderr);
    fputc('\n', stderr);
}

int pb_affinity_cpus(int tid, int *cpus, int capacity) {
    cpu_set_t set;
    if (sched_getaffinity((pid_t)tid, sizeof set, &set) != 0) return -errno;
    int n = 0;
    for (int i = 0; i < CPU_SETSIZE; i++) {
        if (!CPU_ISSET(i, &set)) continue;
        if (n < capacity) cpus[n] = i;
        n++;
    }
    return n;
}

#if defined(__x86_64__)
#include <emmintrin.h>
void pb_copy_streaming(void *dst, const void *src, size_t n) {
    char *d = dst;
    const char *s = src;
    size_t head = (64 - ((uintptr_t)d & 63)) & 63;   // up to the first line boundary: cached
    if (head > n) head = n;
    memcpy(d, s, head);
    d += head; s += head; n -= head;
    for (; n >= 64; d += 64, s += 64, n -= 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)s), b = _mm_loadu_si128((const __m128i *)(s + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + 32)), e = _mm_loadu_si128((const __m128i *)(s + 48));
        _mm_stream_si128((__m128i *)d, a);
        _mm_stream_si128((__m128i *)(d + 16), b);
        _mm_stream_si128((__m128i *)(d + 32), c);
        _mm_stream_si128((__m128i *)(d + 48), e);
    }
    memcpy(d, s, n);                                  // the tail: cached
    _mm_sfence();
}
#else
void pb_copy_streaming(void *dst, const void *src, size_t n) { memcpy(dst, src, n); }
#endif

extern char **environ;

int pb_spawn(const char *const argv[], const char *const envp[], const char *cwd,
             int stdin_fd, int stdout_fd, int stderr_fd, int close_others, int *pid) {
    posix_spawn_file_actions_t actions;
    int r = posix_spawn_file_actions_init(&actions);
    if (r != 0) return r;
    const int from[3] = {stdin_fd, stdout_fd, stderr_fd};
    for (int target = 0; target < 3 && r == 0; target++) {
        if (from[target] < 0) {
            r = posix_spawn_file_actions_addopen(&actions, target, "/dev/null",
                                                 target == 0 ? O_RDONLY : O_WRONLY, 0);
        } else {
            // dup2 onto the target clears FD_CLOEXEC there; the source itself stays
            // close-on-exec and vanishes at exec.
            r = posix_spawn_file_actions_adddup2(&actions, from[target], target);
        }
    }
    if (r == 0 && cwd) r = posix_spawn_file_actions_addchdir_np(&actions, cwd);
    if (r == 0 && close_others) r = posix_spawn_file_actions_addclosefrom_np(&actions, 3);
    // The child starts as a fresh process would: every signal at its default action and none
    // blocked. The test runner and the harness ignore SIGPIPE (a write to a closed pipe must
    // come back as EPIPE), and an ignored signal stays ignored across exec: without this a
    // child such as `yes | head` would never die of SIGPIPE.
    posix_spawnattr_t attributes;
    int attributes_made = 0;
    if (r == 0) r = posix_spawnattr_init(&attributes);
    if (r == 0) {
        attributes_made = 1;
        sigset_t all, none;
        sigfillset(&all);
        sigemptyset(&none);
        r = posix_spawnattr_setsigdefault(&attributes, &all);
        if (r == 0) r = posix_spawnattr_setsigmask(&attributes, &none);
        if (r == 0) r = posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    }
    if (r == 0) {
        r = posix_spawnp(pid, argv[0], &actions, &attributes, (char *const *)argv,
                         envp ? (char *const *)envp : environ);
    }
    if (attributes_made) posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return r;
}

int pb_wait_exit(int pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -errno;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -ECHILD;
}

long pb_max_map_count(void) {
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    long n = -1;
    if (f) {
        if (fscanf(f, "%ld", &n) != 1) n = -1;
        fclose(f);
    }
    return n > 0 ? n : 65530;
}

int pb_owner_exists(int owner) {
    if (owner == INT_MIN) return 0;              /* -INT_MIN has no process group */
    if (owner == -1) owner = 1;                  /* kill(-1) would be every process: group 1 is init's */
    if (kill(owner, 0) == 0) return 1;
    return errno == EPERM;                       /* there, but not ours to signal */
}

int pb_hypervisor_signature(char out[13]) {
    memset(out, 0, 13);
#if defined(__x86_64__) || defined(__i386__)
    unsigned int a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!(c & (1u << 31))) return 0;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000u), "c"(0));
    memcpy(out, &b, 4);
    memcpy(out + 4, &c, 4);
    memcpy(out + 8, &d, 4);
    return 1;
#else
    return 0;
#endif
}
