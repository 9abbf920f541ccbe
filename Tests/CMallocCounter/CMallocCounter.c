#define _GNU_SOURCE
#include "CMallocCounter.h"
#include <stddef.h>
#include <malloc.h>

#if defined(__has_feature)
#  if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#    define PB_NO_INTERPOSE 1
#  endif
#endif

static __thread uint64_t pb_count;
static __thread int64_t pb_net;

uint64_t pb_thread_malloc_count(void) { return pb_count; }
int64_t pb_thread_net_heap_bytes(void) { return pb_net; }

#ifdef PB_NO_INTERPOSE
bool pb_sanitized_build(void) { return true; }
bool pb_malloc_counting_available(void) { return false; }
#else
bool pb_sanitized_build(void) { return false; }
bool pb_malloc_counting_available(void) { return true; }

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static inline void *pb_seen(void *p) {
    if (p) pb_net += (int64_t)malloc_usable_size(p);
    return p;
}

void *malloc(size_t size) { pb_count++; return pb_seen(__libc_malloc(size)); }
void *calloc(size_t n, size_t size) { pb_count++; return pb_seen(__libc_calloc(n, size)); }
void *realloc(void *p, size_t size) {
    pb_count++;
    if (p) pb_net -= (int64_t)malloc_usable_size(p);
    return pb_seen(__libc_realloc(p, size));
}
void free(void *p) {
    if (p) pb_net -= (int64_t)malloc_usable_size(p);
    __libc_free(p);
}
int posix_memalign(void **out, size_t alignment, size_t size) {
    pb_count++;
    void *p = pb_seen(__libc_memalign(alignment, size));
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}
void *aligned_alloc(size_t alignment, size_t size) { pb_count++; return pb_seen(__libc_memalign(alignment, size)); }
void *memalign(size_t alignment, size_t size) { pb_count++; return pb_seen(__libc_memalign(alignment, size)); }
#endif
