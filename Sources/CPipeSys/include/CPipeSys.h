// CPipeSys: the few Linux primitives that Swift's Glibc module does not expose
// (it is imported without _GNU_SOURCE): futex, mlock2, MADV_POPULATE_*, RLIMIT_MEMLOCK,
// sched_getcpu, CPU affinity, vmsplice, F_SETPIPE_SZ, and C11 atomics on plain words
// (a futex needs the address of a 32-bit word, so the word and its atomics live here).
#ifndef PIPEBENCH_CPIPESYS_H
#define PIPEBENCH_CPIPESYS_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <time.h>
#include <sys/types.h>
#include <sys/uio.h>

// MARK: atomics (sequentially consistent unless the name says otherwise)

static inline uint32_t pb_load_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline uint32_t pb_load_relaxed_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void pb_store_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t pb_fetch_add_u32(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t pb_fetch_sub_u32(uint32_t *p, uint32_t v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t pb_fetch_or_u32(uint32_t *p, uint32_t v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t pb_fetch_and_u32(uint32_t *p, uint32_t v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t pb_exchange_u32(uint32_t *p, uint32_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }

static inline int64_t pb_load_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline int64_t pb_load_relaxed_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void pb_store_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_SEQ_CST); }
static inline int64_t pb_fetch_add_i64(int64_t *p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline bool pb_cas_i64(int64_t *p, int64_t *expected, int64_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline void pb_release_store_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int64_t pb_acquire_load_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }

static inline void *pb_acquire_load_ptr(void *const *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void pb_release_store_ptr(void **p, void *v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/// `refcount_acquire_if_not_zero`: adds one unless the count is 0; true when it added.
static inline bool pb_acquire_if_not_zero_u32(uint32_t *p) {
    uint32_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old != 0) {
        if (__atomic_compare_exchange_n(p, &old, old + 1, true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            return true;
        }
    }
    return false;
}
static inline uint32_t pb_acquire_load_u32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void pb_release_store_u32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

/// One iteration of a spin-wait loop (`pause` on x86).
static inline void pb_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
/// Writes a line to stderr (Swift 6 cannot touch the `stderr` global safely).
void pb_write_stderr(const char *line);

#endif
}

// MARK: futex (private, on a 32-bit word)

/// Sleeps while `*word == expected`. Returns 0 when woken (possibly spuriously), or the errno:
/// EAGAIN (the word had changed), EINTR, ETIMEDOUT. `relative_timeout` may be NULL.
int pb_futex_wait(uint32_t *word, uint32_t expected, const struct timespec *relative_timeout);
/// Wakes at most `count` sleepers on `word`; returns how many were woken.
int pb_futex_wake(uint32_t *word, int count);

// MARK: the engine's event counters (PipeEngine's PipeEvent names the slots)

/// Slots of the per-thread event counters; PipeEvent's cases use the first ones.
enum { PB_EVENT_SLOTS = 48 };
/// This thread's counts, one per slot. Thread-local, so counting is one add to memory no
/// other thread touches: no atomic, no cache line shared with the peer (initial-exec: the
/// counters are in the executable, reached from the thread pointer without a call).
extern __thread uint64_t pb_thread_events[PB_EVENT_SLOTS] __attribute__((tls_model("initial-exec")));
/// Counts one event in this thread. Built with -DPB_NO_EVENTS it counts nothing (the build
/// the counting's cost is measured against).
static inline void pb_event_count(int slot) {
#ifndef PB_NO_EVENTS
    pb_thread_events[slot] += 1;
#else
    (void)slot;
#endif
}
/// Copies this thread's PB_EVENT_SLOTS counts into `out`.
void pb_thread_events_copy(uint64_t *out);
/// 1 when events are counted in this build, 0 when built with -DPB_NO_EVENTS.
int pb_events_counted(void);

/// What getrusage(RUSAGE_THREAD) says of the calling thread: voluntary and involuntary
/// context switches, user and system CPU time in nanoseconds. 0 or errno.
int pb_thread_rusage(int64_t *voluntary, int64_t *involuntary, int64_t *user_ns, int64_t *system_ns);

// MARK: a spin-then-park mutex on one 32-bit word (0 free, 1 held, 2 held with sleepers)

/// The contended half of `pb_lock`: spins while the holder is likely running (the engine's
/// critical sections are a few dozen instructions), then parks on the word with a futex.
/// Returns 1 when it parked, 0 when spinning got the lock.
int pb_lock_slow(uint32_t *word);
/// Takes the lock: one compare-and-swap when it is free.
static inline void pb_lock(uint32_t *word) {
    uint32_t expected = 0;
    if (__builtin_expect(__atomic_compare_exchange_n(word, &expected, 1, false,
                                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED), 1)) {
        return;
    }
    pb_lock_slow(word);
}
/// `pb_lock`, counting a contended acquisition in event slot `contended` and one that had to
/// park in `parked` (the pipe pair's mutex).
static inline void pb_lock_counted(uint32_t *word, int contended, int parked) {
    uint32_t expected = 0;
    if (__builtin_expect(__atomic_compare_exchange_n(word, &expected, 1, false,
                                                     __ATOMIC_ACQUIRE, __ATOMIC_RELAXED), 1)) {
        return;
    }
    pb_event_count(contended);
    if (pb_lock_slow(word)) pb_event_count(parked);
}
/// Gives the lock back; wakes one parked thread if any is there.
static inline void pb_unlock(uint32_t *word) {
    if (__builtin_expect(__atomic_exchange_n(word, 0, __ATOMIC_RELEASE) == 2, 0)) {
        pb_futex_wake(word, 1);
    }
}

// MARK: memory

/// Copies `n` bytes with non-temporal stores where the CPU has them (x86-64: SSE2), whole
/// aligned lines at a time, then `sfence`, so that the stores are visible before whatever
/// the caller publishes next (the pipe mutex's release). Elsewhere, `memcpy`.
void pb_copy_streaming(void *dst, const void *src, size_t n);

enum {
    PB_MADV_POPULATE_READ = 22,
    PB_MADV_POPULATE_WRITE = 23,
    PB_MLOCK_ONFAULT = 1,
};
/// `madvise`, returning 0 or the errno.
int pb_madvise(void *addr, size_t length, int advice);
/// `mlock` / `munlock`, returning 0 or the errno.
int pb_mlock(const void *addr, size_t length);
int pb_munlock(const void *addr, size_t length);
/// `mmap` returning NULL (and the errno in *error) on failure instead of MAP_FAILED.
void *pb_mmap_reserve(size_t length, int *error);
void *pb_mmap_anonymous_rw(size_t length, int *error);
int pb_munmap(void *addr, size_t length);
int pb_mprotect(void *addr, size_t length, int prot);
/// Whether madvise(MADV_POPULATE_READ) works here (Linux 5.14+).
bool pb_populate_read_supported(void);
/// 0 when every page of [addr, addr+length) is readable, else EFAULT (process_vm_readv of one
/// byte per page on this process: no fault, no copy worth the name).
int pb_probe_readable(const void *addr, size_t length);
/// RLIMIT_MEMLOCK soft and hard limits, in bytes (UINT64_MAX for unlimited). 0 or errno.
int pb_get_memlock_limit(uint64_t *soft, uint64_t *hard);
int pb_set_memlock_limit(uint64_t soft, uint64_t hard);
/// Kilobytes locked by this process (VmLck in /proc/self/status), or -1.
long pb_vmlck_kb(void);

// MARK: the machine

/// The hypervisor's CPUID signature (leaf 0x40000000: twelve bytes in EBX, ECX, EDX, such as
/// "KVMKVMKVM", "TCGTCGTCGTCG", "Microsoft Hv") into `out` (13 bytes, NUL-terminated), when
/// CPUID leaf 1 sets the hypervisor bit (ECX bit 31). Returns 1 then, 0 on bare metal or
/// where CPUID does not exist (not x86), with `out` empty.
int pb_hypervisor_signature(char out[13]);

// MARK: threads and CPUs

pid_t pb_gettid(void);
int pb_sched_getcpu(void);
/// Pins the calling thread to one CPU; 0 or errno.
int pb_pin_current_thread(int cpu);
/// Whether a SIGIO owner exists on the host: a process (owner > 0) or a process group
/// (owner < 0, the group -owner), as kill(owner, 0) finds it.
int pb_owner_exists(int owner);
/// Clears any pinning of the calling thread (all CPUs the process may use); 0 or errno.
int pb_unpin_current_thread(void);
/// CPU time of the calling thread, in nanoseconds.
int64_t pb_thread_cpu_ns(void);
/// CLOCK_MONOTONIC, in nanoseconds.
int64_t pb_monotonic_ns(void);
/// Fault-guarded access (FaultGuard.c): the kernel's copyin fault handling in user space.
/// 0 when the handler is installed and this thread has its alternate signal stack, else an errno.
int pb_guard_install(void);
/// Reads one byte of every page of [addr, addr + length): 0, or EFAULT when one faults
/// (unmapped, PROT_NONE, past the end of a mapped file), caught instead of killing the process.
int pb_guard_probe(const void *addr, size_t length);
/// memcpy under the guard: 0, or EFAULT when the source faults; *copied is what arrived
/// either way (after a fault, the source up to the first page that cannot be read).
int pb_guard_copy(void *dst, const void *src, size_t length, size_t *copied);
/// 1 when the guard catches faults; 0 in a thread-sanitizer build, where probe and copy read
/// through process_vm_readv instead (same results, a system call each).
int pb_guard_catches_faults(void);
/// Faults the guard has turned into EFAULT, all threads.
uint64_t pb_guard_recovered_faults(void);
/// This thread's guarded regions now (0 outside any): a recovery leaves none behind.
int pb_guard_depth(void);
/// Nested guards: a guarded copy (the inner region, over the source) inside an outer guarded
/// region over the destination. A source fault is the inner's (*inner_error = EFAULT, 0
/// returned); a destination fault is the outer's, reached past the inner frame (EFAULT
/// returned). -ENOTSUP in a thread-sanitizer build.
int pb_guard_nested_copy(void *dst, const void *src, size_t length, int *inner_error);
/// In a child process: a fault outside every guarded range reaches the handler installed
/// before the guard's. 42 when it did (see FaultGuard.c), another status when not.
int pb_guard_check_chaining(void);
/// CLOCK_REALTIME_COARSE (getnanotime's cheap clock).
void pb_coarse_realtime(struct timespec *ts);
/// The threads runnable on the machine now, the calling one included (the running count of
/// /proc/loadavg: on a CPU or waiting in a run queue), or -1 when it cannot be read.
int pb_runnable_threads(void);

// MARK: kernel pipes (Linux)

/// fcntl(F_SETPIPE_SZ) / fcntl(F_GETPIPE_SZ): the new size, or -errno.
int pb_set_pipe_size(int fd, int size);
int pb_get_pipe_size(int fd);
/// vmsplice(2) of one iovec; bytes moved, or -errno.
ssize_t pb_vmsplice(int fd, const void *base, size_t length, unsigned int flags);
enum { PB_SPLICE_F_GIFT = 8, PB_SPLICE_F_NONBLOCK = 2 };

/// Writes a line to stderr (Swift 6 cannot touch the `stderr` global safely).
void pb_write_stderr(const char *line);

/// The host's per-process mapping limit (/proc/sys/vm/max_map_count), or 65530 (Linux's
/// default) when it cannot be read.
long pb_max_map_count(void);

// MARK: descriptors and children

/// posix_spawnp(argv[0]) with `stdin_fd`, `stdout_fd`, `stderr_fd` as the child's 0, 1, 2
/// (-1: /dev/null), `cwd` as its directory (NULL: ours) and `envp` as its environment (NULL:
/// ours). With `close_others`, every other descriptor is closed in the child as well
/// (posix_spawn_file_actions_addclosefrom_np), whatever its close-on-exec flag. 0 and the
/// child's pid in `*pid`, or errno.
int pb_spawn(const char *const argv[], const char *const envp[], const char *cwd,
             int stdin_fd, int stdout_fd, int stderr_fd, int close_others, int *pid);
/// waitpid(pid) until it exits: its exit status, 128 + the signal that ended it, or -errno.
int pb_wait_exit(int pid);

// MARK: CPU lists (appended for placement)

/// The CPUs in the affinity mask of thread `tid` (0: the calling thread; getpid(): the
/// process's main thread), lowest first; writes at most `capacity` of them to `cpus` and
/// returns how many the mask holds (which may exceed `capacity`), or -errno.
int pb_affinity_cpus(int tid, int *cpus, int capacity);

#endif
