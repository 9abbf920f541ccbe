// Fault-guarded probes and copies: the user-space form of the kernel's copyin/copyout fault
// handling (pcb_onfault on FreeBSD's amd64, the exception tables on Linux). A guarded region
// is armed with a recovery point (sigsetjmp) and an address range; a SIGSEGV or SIGBUS raised
// inside it, at an address inside the range, returns through the recovery point as EFAULT
// instead of killing the process. Any other fault goes to the handler that was installed
// before ours (the Swift runtime's backtracer, the program's own, or the default action), so
// nothing else in the process changes.
//
// Why this is safe:
// - Between a recovery point and the instruction that can fault there are C frames only
//   (pb_guard_probe and pb_guard_copy are leaf routines of this file); no Swift frame, no
//   destructor and no unwind table is jumped over.
// - No lock is held and nothing is allocated inside a guarded region, so the jump leaves no
//   lock taken and no allocator state half-changed. The handler itself only reads this
//   thread's guard frames and jumps.
// - The handler runs on an alternate signal stack (SA_ONSTACK; one per thread that guards,
//   made on its first guard), so a fault near the end of a thread's stack still reaches it.
// - SA_NODEFER keeps the signal unblocked while the handler runs, so the jump back
//   (siglongjmp without a saved mask: no system call) leaves the thread's mask as it was.
// - A fault is ours only when this thread is inside a guarded region and the faulting
//   address is inside that region's range: a bug elsewhere, in another thread or in the
//   guard's own code, is still the crash it would have been.
//
// Under the thread sanitizer the guard is not used: its runtime takes SIGSEGV itself and the
// process dies on the first guarded fault. There pb_guard_probe and pb_guard_copy read through
// process_vm_readv instead (a system call, no signal): the same results, EFAULT and the bytes
// copied, so the engine's suites run under TSan with the same contract. The same system call
// serves a thread whose guard cannot be made ready (no memory for its alternate stack).
#define _GNU_SOURCE
#include "CPipeSys.h"

#if defined(__SANITIZE_THREAD__)
#define PB_GUARD_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PB_GUARD_UNDER_TSAN 1
#endif
#endif

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

struct pb_guard_frame {
    sigjmp_buf env;
    uintptr_t lo, hi;
    struct pb_guard_frame *outer;
};

// This thread's innermost guarded region (NULL outside any).
static __thread struct pb_guard_frame *volatile guard_top;
static __thread int guard_stack_ready;

static struct sigaction previous_segv, previous_bus;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_error;
static pthread_key_t stack_key;
static uint64_t recovered_faults;

enum { guard_stack_size = 64 * 1024 };

static void chain(int sig, siginfo_t *info, void *context) {
    struct sigaction *prev = sig == SIGBUS ? &previous_bus : &previous_segv;
    if (prev->sa_flags & SA_SIGINFO) {
        if (prev->sa_sigaction != NULL) { prev->sa_sigaction(sig, info, context); return; }
    } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    // The default action (an ignored SIGSEGV is not ignorable for a real fault either):
    // restore it and return, so that the faulting instruction runs again and kills the
    // process the way it would have without us.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
}

static void handler(int sig, siginfo_t *info, void *context) {
    uintptr_t addr = (uintptr_t)info->si_addr;
    for (struct pb_guard_frame *f = guard_top; f != NULL; f = f->outer) {
        if (addr >= f->lo && addr < f->hi) {
            guard_top = f->outer;
            __atomic_fetch_add(&recovered_faults, 1, __ATOMIC_RELAXED);
            siglongjmp(f->env, 1);
        }
    }
    chain(sig, info, context);
}

static void free_stack(void *stack) {
    stack_t off;
    memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, NULL);
    munmap(stack, guard_stack_size);
}

static void install(void) {
    if (pthread_key_create(&stack_key, free_stack) != 0) { install_error = EAGAIN; return; }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &previous_segv) != 0 || sigaction(SIGBUS, &sa, &previous_bus) != 0) {
        install_error = errno;
    }
}

// The handler once per process, an alternate signal stack once per thread (unless it has one).
static int ready(void) {
    pthread_once(&install_once, install);
    if (install_error) return install_error;
    if (!guard_stack_ready) {
        stack_t current;
        if (sigaltstack(NULL, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
            void *stack = mmap(NULL, guard_stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (stack == MAP_FAILED) return ENOMEM;
            stack_t mine = { .ss_sp = stack, .ss_size = guard_stack_size, .ss_flags = 0 };
            if (sigaltstack(&mine, NULL) != 0) { munmap(stack, guard_stack_size); return errno; }
            pthread_setspecific(stack_key, stack);
        }
        guard_stack_ready = 1;
    }
    return 0;
}

int pb_guard_install(void) { return ready(); }

// The page size, asked of the C library once: the probe runs once a direct-write chunk.
static long page_size(void) {
    static long cached;
    long p = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (p == 0) {
        p = sysconf(_SC_PAGESIZE);
        __atomic_store_n(&cached, p, __ATOMIC_RELAXED);
    }
    return p;
}

int pb_guard_catches_faults(void) {
#ifdef PB_GUARD_UNDER_TSAN
    return 0;
#else
    return 1;
#endif
}

uint64_t pb_guard_recovered_faults(void) { return __atomic_load_n(&recovered_faults, __ATOMIC_RELAXED); }

// The guard's results by system call (process_vm_readv, no signal): the thread-sanitizer
// build's probe and copy, and the fallback of a thread whose guard is not ready.
static int copy_by_syscall(void *dst, const void *src, size_t length, size_t *copied) {
    struct iovec local = { .iov_base = dst, .iov_len = length };
    struct iovec remote = { .iov_base = (void *)src, .iov_len = length };
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    *copied = got > 0 ? (size_t)got : 0;
    return *copied == length ? 0 : EFAULT;
}

int pb_guard_probe(const void *addr, size_t length) {
    if (length == 0) return 0;
#ifdef PB_GUARD_UNDER_TSAN
    return pb_probe_readable(addr, length);
#endif
    if (ready() != 0) return pb_probe_readable(addr, length);
    long page = page_size();
    uintptr_t start = (uintptr_t)addr & ~(uintptr_t)(page - 1);
    uintptr_t end = (uintptr_t)addr + length;
    struct pb_guard_frame frame;
    frame.lo = start;
    frame.hi = end;
    frame.outer = guard_top;
    if (sigsetjmp(frame.env, 0) != 0) return EFAULT;   // guard_top was popped by the handler
    guard_top = &frame;
    for (uintptr_t p = start; p < end; p += (uintptr_t)page) {
        (void)*(const volatile char *)p;
    }
    guard_top = frame.outer;
    return 0;
}

int pb_guard_copy(void *dst, const void *src, size_t length, size_t *copied) {
    *copied = 0;
    if (length == 0) return 0;
#ifdef PB_GUARD_UNDER_TSAN
    return copy_by_syscall(dst, src, length, copied);
#endif
    if (ready() != 0) return copy_by_syscall(dst, src, length, copied);
    // One memcpy, the fast path: the copy of a readable source is one call, whatever its
    // length. memcpy may move a range in any order (glibc loads a copy's tail before its
    // middle), so a fault in it says nothing about what arrived: then the copy runs again a
    // source page at a time, each page under the guard, and the first page that faults
    // ends it. The bytes before that page are exactly what `copied` reports.
    struct pb_guard_frame frame;
    frame.lo = (uintptr_t)src;
    frame.hi = (uintptr_t)src + length;
    frame.outer = guard_top;
    if (sigsetjmp(frame.env, 0) == 0) {
        guard_top = &frame;
        memcpy(dst, src, length);
        guard_top = frame.outer;
        *copied = length;
        return 0;
    }
    long page = page_size();
    // `done` lives in memory the jump does not roll back: how far the second copy got.
    volatile size_t done = 0;
    frame.outer = guard_top;                            // popped by the handler
    if (sigsetjmp(frame.env, 0) != 0) {
        *copied = done;
        return EFAULT;
    }
    guard_top = &frame;
    while (done < length) {
        uintptr_t at = (uintptr_t)src + done;
        size_t piece = (size_t)page - (at & (uintptr_t)(page - 1));
        if (piece > length - done) piece = length - done;
        memcpy((char *)dst + done, (const char *)at, piece);
        done += piece;
    }
    // Readable the second time (mapped again meanwhile): all of it arrived.
    guard_top = frame.outer;
    *copied = done;
    return 0;
}

int pb_guard_depth(void) {
    int depth = 0;
    for (struct pb_guard_frame *f = guard_top; f != NULL; f = f->outer) depth++;
    return depth;
}

int pb_guard_nested_copy(void *dst, const void *src, size_t length, int *inner_error) {
#ifdef PB_GUARD_UNDER_TSAN
    (void)dst; (void)src; (void)length; (void)inner_error;
    return -ENOTSUP;
#endif
    int e = ready();
    if (e) return -e;
    struct pb_guard_frame frame;
    frame.lo = (uintptr_t)dst;
    frame.hi = (uintptr_t)dst + length;
    frame.outer = guard_top;
    if (sigsetjmp(frame.env, 0) != 0) return EFAULT;   // the walk passed the inner frame
    guard_top = &frame;
    size_t copied;
    *inner_error = pb_guard_copy(dst, src, length, &copied);
    guard_top = frame.outer;
    return 0;
}

// A fault that is not ours reaches the handler installed before ours. In a child process
// (single-threaded after fork, its guard state reset, so the order of installation is this
// check's): install a SIGSEGV handler that exits with 40 + the stage it was reached in, arm
// the guard (installing ours over it), fault inside a guarded range (stage 1: ours must catch
// it), then outside any (stage 2: theirs). The child's exit status: 42 when both went right.
static volatile sig_atomic_t check_stage;
static void theirs(int sig) { (void)sig; _exit(40 + check_stage); }

int pb_guard_check_chaining(void) {
#ifdef PB_GUARD_UNDER_TSAN
    return -ENOTSUP;
#endif
    pid_t pid = fork();
    if (pid < 0) return -errno;
    if (pid == 0) {
        install_once = (pthread_once_t)PTHREAD_ONCE_INIT;
        install_error = 0;
        guard_top = NULL;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = theirs;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGSEGV, &sa, NULL);
        char *hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (hole == MAP_FAILED) _exit(2);
        check_stage = 1;
        if (pb_guard_probe(hole, 1) != EFAULT) _exit(3);
        check_stage = 2;
        (void)*(volatile char *)hole;
        _exit(4);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0) return -errno;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
