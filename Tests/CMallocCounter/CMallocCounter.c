#define _GNU_SOURCE
#include "CMallocCounter.h"
#include <stddef.h>

#if defined(__has_feature)
#  if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#    define PB_NO_INTERPOSE 1
#  endif
#endif

static __thread uint64_t pb_count;

uint64_t pb_thread_malloc_count(void) { return pb_count; }

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

void *malloc(size_t size) { pb_count++; return __libc_malloc(size); }
void *calloc(size_t n, size_t size) { pb_count++; return __libc_calloc(n, size); }
void *realloc(void *p, size_t size) { pb_count++; return __libc_realloc(p, size); }
void free(void *p) { __libc_free(p); }
int posix_memalign(void **out, size_t alignment, size_t size) {
    pb_count++;
    void *p = __libc_memalign(alignment, size);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}
void *aligned_alloc(size_t alignment, size_t size) { pb_count++; return __libc_memalign(alignment, size); }
void *memalign(size_t alignment, size_t size) { pb_count++; return __libc_memalign(alignment, size); }
#endif
