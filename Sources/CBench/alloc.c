/* alloc.c - a per-thread allocation counter: the executable that links this file interposes the allocation
 * functions; each adds one to the calling thread's count and calls glibc's own allocator. Frees are not
 * counted. Thread-local in the initial-exec model: reading it never allocates. */
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <unistd.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static __thread uint64_t allocations __attribute__((tls_model("initial-exec")));

uint64_t cbench_allocations(void) { return allocations; }

void *malloc(size_t size) {
    allocations++;
    return __libc_malloc(size);
}
void *calloc(size_t n, size_t size) {
    allocations++;
    return __libc_calloc(n, size);
}
void *realloc(void *p, size_t size) {
    allocations++;
    return __libc_realloc(p, size);
}
void free(void *p) { __libc_free(p); }
void *memalign(size_t alignment, size_t size) {
    allocations++;
    return __libc_memalign(alignment, size);
}
void *aligned_alloc(size_t alignment, size_t size) {
    allocations++;
    return __libc_memalign(alignment, size);
}
int posix_memalign(void **out, size_t alignment, size_t size) {
    allocations++;
    if (alignment < sizeof(void *) || (alignment & (alignment - 1)) != 0) return EINVAL;
    void *p = __libc_memalign(alignment, size);
    if (!p) return ENOMEM;
    *out = p;
    return 0;
}
void *valloc(size_t size) {
    allocations++;
    return __libc_memalign((size_t)sysconf(_SC_PAGESIZE), size);
}

int cbench_allocation_counter_works(void) {
    uint64_t before = allocations;
    void *(*volatile allocate)(size_t) = malloc; /* through a pointer: no call the compiler may elide */
    void *p = allocate(24);
    free(p);
    return allocations == before + 1;
}
