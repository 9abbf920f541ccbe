// Counts heap allocations made by the calling thread, by interposing malloc and friends in
// the test executable (as package-benchmark's MallocInterposer does). Not built under the
// thread sanitizer, which owns malloc itself: then `pb_malloc_counting_available` is false.
#ifndef PIPEBENCH_CMALLOCCOUNTER_H
#define PIPEBENCH_CMALLOCCOUNTER_H
#include <stdbool.h>
#include <stdint.h>
/// Allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc) by this thread so far.
uint64_t pb_thread_malloc_count(void);
bool pb_malloc_counting_available(void);
/// Bytes this thread allocated minus the bytes it freed (malloc_usable_size), so far.
int64_t pb_thread_net_heap_bytes(void);
/// True in a thread- or address-sanitized build (whose runtime ignores mlock, among others).
bool pb_sanitized_build(void);
#endif
