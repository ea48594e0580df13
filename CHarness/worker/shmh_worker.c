/* shmh_worker.c - shmh-worker PLAN [--user NAME|UID]: the C twin of the Swift worker (`shm-harness worker`).
 *
 * Runs one plan's steps (docs/worker-protocol.md) and talks to the runner over stdin/stdout:
 *   - `barrier NAME` (to the runner), then waits for `go NAME` or `abort NAME REASON` on stdin;
 *   - the last line is `result {json}` with the same keys, order and escaping as the Swift worker.
 * Exit status: 0 every step did what it should, 1 a step failed its expectation, 2 broken (unreadable plan or
 * arguments), 3 not applicable here (the user to drop to cannot be switched to). `crash` kills the worker.
 *
 * Step semantics follow Sources/WorkerKit/StepExecutor.swift: a library error is compared with the step's
 * expect-error (match: success); a check mismatch, an aborted barrier or an unsupported step always fails the
 * worker; a step that was expected to fail and succeeded fails with unexpected-success. Resources and locks
 * behave as Sources/WorkerKit/ResourceHandle.swift says. */
#include "plan.h"
#include "shmh.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LATENCY_SAMPLES 200000

/* --- state --------------------------------------------------------------------------------------------- */

/* How a step ended, before its expectation is applied. */
enum outcome_kind { OUT_OK, OUT_LIBRARY, OUT_MISMATCH, OUT_ABORTED, OUT_UNSUPPORTED };
struct outcome {
    enum outcome_kind kind;
    enum shmh_error code; /* OUT_LIBRARY */
    int err;              /* errno of the failing call, 0 for a refusal */
    char message[2048];
};

/* One resource as this worker sees it (ResourceHandle.swift): a keyed segment, a mapped file or a memfd,
 * with the lock its scenario chose. */
struct resource_state {
    const struct plan_resource *r;
    char object[600];             /* how errors name it: key, else path, else memfd:ID */
    struct shmh_segment *segment; /* segments: made on first use */
    struct shmh_sem *sem;         /* semaphores: while open (create / attach until detach) */
    int read_only;                /* the current attachment's mode */
    int private_map;              /* files: this attachment is MAP_PRIVATE (attach mode=private) */
    /* files and memfds */
    int fd;                       /* -1: none (a memfd's is the inherited one, adopted on first use) */
    unsigned char *map;
    size_t map_len;
    /* in-memory locks (futex, robust mutex): opened at create / attach */
    void *lock_area;
    int has_lock_problem; /* why attach could not open it, reported by the first lock step */
    struct outcome lock_problem;
    /* lock files */
    struct shmh_lockfile lockfile;
    int lockfile_open;
};

static struct plan plan;
static struct resource_state *states;

static struct {
    long long ops;
    uint64_t *latencies;
    size_t nlatencies;
    uint64_t elapsed_ns;
} stats;

/* Outcome counting (`count=NAME` steps): one row of tallies per counter name, slot 0 for success ("ok") and
 * slot CODE for each library error code. Set up once from the plan, so that counting a step costs an add. */
struct counter {
    const char *name;
    long long tally[SHMH_ERROR_COUNT + 1];
};
static struct counter *counters;
static size_t ncounters;
static int *step_counter;       /* per plan step: its counter, or -1 */
static unsigned *step_accepts;  /* per plan step: bit 0 success, bit CODE that error (expect-error) */

/* The first failing step: what the result line reports. */
static struct {
    int failed;
    int line;
    const char *step;
    char error[64];
    char message[4096];
    int has_errno;
    int err;
} failure;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- outcomes ----------------------------------------------------------------------------------------- */

/* The library's last failure (formatted as the Swift side formats SharedMemoryError). */
static int library_failure(struct outcome *o) {
    const struct shmh_failure *f = shmh_last_failure();
    o->kind = OUT_LIBRARY;
    o->code = f->code ? f->code : SHMH_UNKNOWN;
    o->err = f->err;
    shmh_failure_format(o->message, sizeof o->message);
    return -1;
}

/* A refusal by the worker itself, worded as SharedMemoryError.description: "op: detail: code [object]". */
static int refuse(struct outcome *o, enum shmh_error code, const char *operation, const char *object, const char *fmt, ...) {
    o->kind = OUT_LIBRARY;
    o->code = code;
    o->err = 0;
    size_t used = (size_t)snprintf(o->message, sizeof o->message, "%s: ", operation);
    va_list ap;
    va_start(ap, fmt);
    if (used < sizeof o->message) used += (size_t)vsnprintf(o->message + used, sizeof o->message - used, fmt, ap);
    va_end(ap);
    if (used < sizeof o->message)
        used += (size_t)snprintf(o->message + used, sizeof o->message - used, ": %s", shmh_error_name(code));
    if (object && used < sizeof o->message) snprintf(o->message + used, sizeof o->message - used, " [%s]", object);
    return -1;
}

static int other(struct outcome *o, enum outcome_kind kind, const char *fmt, ...) {
    o->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->message, sizeof o->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* --- resources --------------------------------------------------------------------------------------------- */

static int is_segment(const struct resource_state *st) { return st->r->kind == PLAN_RES_SEGMENT; }
static int in_memory_lock(const struct resource_state *st) {
    return st->r->lock == PLAN_LOCK_FUTEX || st->r->lock == PLAN_LOCK_ROBUST_MUTEX;
}

/* SegmentHandle.segment(): the handle of a keyed segment, made on first use. */
static struct shmh_segment *segment_of(struct resource_state *st, struct outcome *o) {
    if (st->segment) return st->segment;
    struct shmh_key key;
    if (!st->r->key.s || shmh_key_from_string(&key, st->r->key.s, st->r->key.len) == -1) {
        refuse(o, SHMH_KEY_ERROR, "resource", NULL, "resource %s has no key in the plan", st->r->id.s);
        return NULL;
    }
    st->segment = shmh_segment_new(&key, NULL);
    shmh_key_free(&key);
    if (!st->segment) library_failure(o);
    return st->segment;
}

/* The mapped bytes while attached (NULL otherwise). */
static unsigned char *bytes_of(const struct resource_state *st, size_t *size) {
    if (is_segment(st)) {
        if (!st->segment || !shmh_segment_is_attached(st->segment)) return *size = 0, NULL;
        *size = shmh_segment_size(st->segment);
        return shmh_segment_data(st->segment);
    }
    *size = st->map_len;
    return st->map;
}

/* --- the bus-error guard (files, memfds and POSIX segments: all may shrink under us) ------------------ */

static sigjmp_buf bus_jump;
static volatile sig_atomic_t bus_armed;

/* A fault raised by the kernel (si_code > 0) while the guard is armed jumps back; anything else (a SIGBUS
 * outside a guard, one sent with kill) gets the default action: the worker dies of SIGBUS, as touch-all expects. */
static void on_bus(int sig, siginfo_t *info, void *context) {
    (void)context;
    if (bus_armed && info && info->si_code > 0) {
        bus_armed = 0;
        siglongjmp(bus_jump, 1);
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The handler is installed once; arming the guard then costs no system call (savemask 0). */
static void install_bus_handler(void) {
    static int installed;
    if (installed) return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_bus;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
    installed = 1;
}

/* Back from the handler: SIGBUS is still blocked (savemask 0 did not save the mask), unblock it. */
static void after_bus_fault(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGBUS);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

/* Copies n bytes; -1 if the copy faulted with SIGBUS (a page past the end of a shrunk file). */
static int guarded_copy(void *dst, const void *src, size_t n) {
    install_bus_handler();
    if (sigsetjmp(bus_jump, 0) != 0) {
        after_bus_fault();
        return -1;
    }
    bus_armed = 1;
    memmove(dst, src, n);
    bus_armed = 0;
    return 0;
}

/* add / atomic-add under the guard: -1 if the access faulted with SIGBUS. */
static uint64_t plain_load_u64(const unsigned char *p);
static void plain_store_u64(unsigned char *p, uint64_t v);

static int guarded_add(unsigned char *p, uint64_t value, int atomic) {
    install_bus_handler();
    if (sigsetjmp(bus_jump, 0) != 0) {
        after_bus_fault();
        return -1;
    }
    bus_armed = 1;
    if (atomic) {
        __atomic_fetch_add((uint64_t *)(void *)p, value, __ATOMIC_RELAXED);
    } else {
        /* a plain little-endian read-modify-write, on purpose not atomic, through volatile accesses */
        plain_store_u64(p, plain_load_u64(p) + value);
    }
    bus_armed = 0;
    return 0;
}

/* A POSIX segment's file may be shrunk by another process (ftruncate of /dev/shm/NAME): its size now, or -1
 * when the segment cannot shrink (System V). */
static long long segment_backed_size(const struct resource_state *st) {
    return st->segment ? shmh_segment_file_size(st->segment) : -1;
}

/* Checked access, as SharedMemory.read/write (segments) and FileMapping.read/write (files, memfds: the range,
 * then the file's current size, then a guarded copy). */
static int checked_access(struct resource_state *st, int writing, int64_t offset, void *buf, size_t n, struct outcome *o) {
    const char *operation = writing ? "write" : "read";
    size_t size;
    unsigned char *data = bytes_of(st, &size);
    if (is_segment(st)) {
        if (!data) return refuse(o, SHMH_NOT_FOUND, operation, st->object, "not attached");
        if (writing && st->read_only) return refuse(o, SHMH_PERMISSION_DENIED, operation, st->object, "the segment is attached read-only");
        if (offset < 0 || (uint64_t)offset > size || n > size - (size_t)offset)
            return refuse(o, SHMH_INVALID_SIZE, operation, st->object, "range %lld..<%lld is outside the segment of %zu bytes",
                          (long long)offset, (long long)offset + (long long)n, size);
        if (n == 0) return 0;
        /* As SharedMemory.read/write: the file's size first, then the guarded copy. */
        long long backed = segment_backed_size(st);
        if (backed >= 0 && (uint64_t)backed < (uint64_t)offset + n)
            return refuse(o, SHMH_BUS_ERROR, operation, st->object,
                          "the segment's file is now %lld bytes; bytes %lld..<%lld of it are gone (it was shrunk)", backed,
                          (long long)offset, (long long)offset + (long long)n);
        if (guarded_copy(writing ? (void *)(data + offset) : buf, writing ? buf : (void *)(data + offset), n) == -1)
            return refuse(o, SHMH_BUS_ERROR, operation, st->object, "guarded copy(memcpy(%zu bytes; SIGBUS during the copy))", n);
        return 0;
    }
    const char *object = st->r->kind == PLAN_RES_FILE ? st->object : NULL;
    if (!data) {
        if (st->r->kind == PLAN_RES_FILE) return refuse(o, SHMH_NOT_FOUND, "access", object, "not attached");
        return refuse(o, SHMH_NOT_FOUND, "access", NULL, "memfd %s is not attached", st->r->id.s);
    }
    if (writing && st->read_only) return refuse(o, SHMH_PERMISSION_DENIED, "write", object, "the mapping is read-only");
    if (n == 0) return 0;
    if (offset < 0 || (uint64_t)offset > size || n > size - (size_t)offset)
        return refuse(o, SHMH_INVALID_SIZE, operation, object, "bytes %lld..<%lld are outside the %zu-byte mapping",
                      (long long)offset, (long long)offset + (long long)n, size);
    struct stat sb;
    if (fstat(st->fd, &sb) == 0 && (uint64_t)sb.st_size < (uint64_t)offset + n)
        return refuse(o, SHMH_BUS_ERROR, operation, object, "the file is now %lld bytes; bytes %lld..<%lld of it are gone (it was shrunk)",
                      (long long)sb.st_size, (long long)offset, (long long)offset + (long long)n);
    if (guarded_copy(writing ? (void *)(data + offset) : buf, writing ? buf : (void *)(data + offset), n) == -1)
        return refuse(o, SHMH_BUS_ERROR, "guarded copy", object, "memcpy(%zu bytes; SIGBUS during the copy)", n);
    return 0;
}

/* ResourceHandle.pointer: plain access for add and atomic-add. */
static unsigned char *pointer(struct resource_state *st, int64_t offset, size_t length, struct outcome *o) {
    size_t size;
    unsigned char *data = bytes_of(st, &size);
    if (!data) return refuse(o, SHMH_NOT_FOUND, "access", st->object, "not attached"), NULL;
    if (st->read_only) return refuse(o, SHMH_PERMISSION_DENIED, "access", st->object, "attached read-only"), NULL;
    if (offset < 0 || size < length || (uint64_t)offset > size - length)
        return refuse(o, SHMH_INVALID_SIZE, "access", st->object, "offset %lld+%zu is outside %zu bytes", (long long)offset,
                      length, size),
               NULL;
    return data + offset;
}

/* --- in-memory locks ------------------------------------------------------------------------------------ */

static enum shmh_lock_kind area_kind(const struct resource_state *st) {
    return st->r->lock == PLAN_LOCK_FUTEX ? SHMH_LOCK_FUTEX : SHMH_LOCK_ROBUST_MUTEX;
}

/* The 64-byte lock area at lock-offset (docs/lock-layout.md): the creator initialises it, others check it. */
static int open_lock_area(struct resource_state *st, int initialize, struct outcome *o) {
    st->lock_area = NULL;
    if (!in_memory_lock(st)) return 0;
    size_t size;
    unsigned char *data = bytes_of(st, &size);
    if (!data) return 0;
    const char *operation = st->r->lock == PLAN_LOCK_FUTEX ? "futex lock" : "robust mutex";
    int64_t off = st->r->lock_offset;
    if (off < 0 || off % 8 != 0)
        return refuse(o, SHMH_INVALID_SIZE, operation, NULL, "lock offset %lld is not a non-negative multiple of 8", (long long)off);
    if (size < 64 || (uint64_t)off > size - 64)
        return refuse(o, SHMH_INVALID_SIZE, operation, NULL, "the 64-byte lock area at %lld is outside the %zu bytes", (long long)off, size);
    void *area = data + off;
    if ((initialize ? shmh_lock_init(area, area_kind(st)) : shmh_lock_check(area, area_kind(st))) == -1) return library_failure(o);
    st->lock_area = area;
    return 0;
}

/* --- kinds: create, attach, detach, close --------------------------------------------------------------- */

static void unmap(struct resource_state *st) {
    if (st->map) shmh_unmap(st->map, st->map_len);
    st->map = NULL;
    st->map_len = 0;
}

/* A memfd's descriptor: the inherited one (MemFDHandle.object()). */
static int memfd_descriptor(struct resource_state *st, struct outcome *o) {
    if (st->fd >= 0) return st->fd;
    if (!st->r->has_fd) return refuse(o, SHMH_NOT_FOUND, "attach", NULL, "memfd %s: no inherited descriptor", st->r->id.s);
    struct stat sb;
    if (fstat(st->r->fd, &sb) == -1)
        return o->err = errno, refuse(o, SHMH_NOT_FOUND, "attach", NULL, "memfd %s: descriptor %d is not open", st->r->id.s, st->r->fd);
    return st->fd = st->r->fd;
}

/* Maps the whole of st->fd: shared, or private for a `private=1` file. */
static int map_fd(struct resource_state *st, int writable, struct outcome *o) {
    struct stat sb;
    if (fstat(st->fd, &sb) == -1) return refuse(o, SHMH_UNKNOWN, "map", st->object, "fstat: %s", strerror(errno));
    if (sb.st_size <= 0) return refuse(o, SHMH_INVALID_SIZE, "map", st->object, "the file is empty");
    size_t len = (size_t)sb.st_size;
    void *p;
    if (st->r->kind == PLAN_RES_FILE && (st->r->is_private || st->private_map)) {
        p = mmap(NULL, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_PRIVATE, st->fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            refuse(o, shmh_error_from_errno(SHMH_OP_SEAL, err), "map", st->object, "mmap(MAP_PRIVATE): %s", strerror(err));
            o->err = err;
            return -1;
        }
    } else if (!(p = shmh_map(st->fd, len, 0, writable ? SHMH_READ_WRITE : SHMH_READ_ONLY))) {
        return library_failure(o);
    }
    st->map = p;
    st->map_len = len;
    st->read_only = !writable;
    return 0;
}

/* SemaphoreHandle (ResourceHandle+Semaphore.swift): create opens in Create mode, attach in Open mode (which makes a
 * missing semaphore with the initial count, as Qt's), both with the resource's initial count. */
static int sem_open_resource(struct resource_state *st, enum shmh_sem_mode mode, const char *operation, struct outcome *o) {
    if (st->sem) return refuse(o, SHMH_ALREADY_EXISTS, operation, st->object, "the semaphore is open already");
    struct shmh_key key;
    if (!st->r->key.s || shmh_key_from_string(&key, st->r->key.s, st->r->key.len) == -1)
        return refuse(o, SHMH_KEY_ERROR, operation, NULL, "resource %s has no key in the plan", st->r->id.s);
    st->sem = shmh_sem_open(&key, st->r->has_initial ? (long)st->r->initial : 0, mode, NULL);
    shmh_key_free(&key);
    return st->sem ? 0 : library_failure(o);
}

static struct shmh_sem *sem_of(struct resource_state *st, const char *operation, struct outcome *o) {
    if (st->r->kind != PLAN_RES_SEMAPHORE) {
        refuse(o, SHMH_KEY_ERROR, operation, NULL, "resource %s is not a semaphore", st->r->id.s);
        return NULL;
    }
    if (!st->sem) refuse(o, SHMH_NOT_FOUND, operation, st->object, "the semaphore is not open (create or attach it first)");
    return st->sem;
}

/* The semaphore steps and check-at-most (StepExecutor.semaphoreStep). */
static int semaphore_step(struct resource_state *st, const struct plan_step *step, struct outcome *o) {
    struct shmh_sem *sem;
    switch (step->kind) {
    case PLAN_STEP_ACQUIRE:
        if (!(sem = sem_of(st, "acquire", o))) return -1;
        for (int64_t i = 0; i < step->n; i++) /* n units one at a time, all or nothing */
            if (shmh_sem_acquire(sem, step->ns > 0 ? step->ns : -1) == -1) {
                library_failure(o);
                if (i > 0) (void)shmh_sem_release(sem, (long)i);
                return -1;
            }
        return 0;
    case PLAN_STEP_RELEASE:
        if (!(sem = sem_of(st, "release", o))) return -1;
        return shmh_sem_release(sem, (long)step->n) == -1 ? library_failure(o) : 0;
    case PLAN_STEP_TRY_ACQUIRE:
        if (!(sem = sem_of(st, "try-acquire", o))) return -1;
        if (shmh_sem_try_acquire(sem) == 0) return 0;
        if (shmh_last_failure()->code == SHMH_BUSY) return refuse(o, SHMH_BUSY, "try-acquire", st->object, "the count is 0");
        return library_failure(o);
    case PLAN_STEP_CHECK_VALUE: {
        int value = 0;
        if (!(sem = sem_of(st, "check-value", o))) return -1;
        if (shmh_sem_value(sem, &value) == -1) return library_failure(o);
        if (value != step->value)
            return other(o, OUT_MISMATCH, "semaphore %s: want count %lld, got %d", st->r->id.s, (long long)step->value, value);
        return 0;
    }
    case PLAN_STEP_CHECK_AT_MOST: {
        uint8_t b[8];
        if (checked_access(st, 0, step->offset, b, 8, o) == -1) return -1;
        uint64_t got = 0;
        for (int i = 0; i < 8; i++) got |= (uint64_t)b[i] << (8 * i);
        if (got > step->u64)
            return other(o, OUT_MISMATCH, "at offset %lld of %s: u64 %llu is more than %llu", (long long)step->offset, st->r->id.s,
                         (unsigned long long)got, (unsigned long long)step->u64);
        return 0;
    }
    default: return 0;
    }
}

static int64_t create_size(const struct resource_state *st, const struct plan_step *step) {
    return step->has_size ? step->size : st->r->has_size ? st->r->size : 0;
}

static int create_object(struct resource_state *st, const struct plan_step *step, struct outcome *o) {
    int64_t size = create_size(st, step);
    switch (st->r->kind) {
    case PLAN_RES_SEGMENT: {
        struct shmh_segment *seg = segment_of(st, o);
        if (!seg) return -1;
        if (shmh_segment_create(seg, size < 0 ? SIZE_MAX : (size_t)size, SHMH_READ_WRITE) == -1) return library_failure(o);
        st->read_only = 0;
        return 0;
    }
    case PLAN_RES_FILE: {
        if (size < 0) return refuse(o, SHMH_INVALID_SIZE, "create", st->object, "size %lld is negative", (long long)size);
        int fd = shmh_file_create(st->r->path.s ? st->r->path.s : "", (size_t)size);
        if (fd == -1) return library_failure(o);
        unmap(st);
        if (st->fd >= 0) close(st->fd);
        st->fd = fd;
        return map_fd(st, 1, o);
    }
    case PLAN_RES_SEMAPHORE: return sem_open_resource(st, SHMH_SEM_CREATE, "create", o);
    case PLAN_RES_MEMFD: {
        if (st->fd < 0 && !st->r->has_fd) { /* share: pass: nobody inherited it; this worker makes it */
            char name[300];
            snprintf(name, sizeof name, "shm-harness-%s", st->r->id.s);
            int fd = shmh_memfd_create(name, size < 0 ? 0 : (size_t)size, 1);
            if (fd == -1) return library_failure(o);
            st->fd = fd;
        }
        if (memfd_descriptor(st, o) == -1) return -1;
        struct stat sb;
        if (fstat(st->fd, &sb) == 0 && sb.st_size < size && shmh_fd_resize(st->fd, (size_t)size) == -1) return library_failure(o);
        unmap(st);
        return map_fd(st, 1, o);
    }
    }
    return 0;
}

static int attach_object(struct resource_state *st, int read_only, struct outcome *o) {
    switch (st->r->kind) {
    case PLAN_RES_SEGMENT: {
        struct shmh_segment *seg = segment_of(st, o);
        if (!seg) return -1;
        if (shmh_segment_attach(seg, read_only ? SHMH_READ_ONLY : SHMH_READ_WRITE) == -1) return library_failure(o);
        st->read_only = read_only;
        return 0;
    }
    case PLAN_RES_FILE: {
        if (st->map) return refuse(o, SHMH_ALREADY_EXISTS, "attach", st->object, "already attached");
        int fd = shmh_file_open(st->r->path.s ? st->r->path.s : "", read_only ? SHMH_READ_ONLY : SHMH_READ_WRITE);
        if (fd == -1) return library_failure(o);
        if (st->fd >= 0) close(st->fd);
        st->fd = fd;
        if (map_fd(st, !read_only, o) == -1) {
            close(st->fd);
            st->fd = -1;
            return -1;
        }
        return 0;
    }
    case PLAN_RES_SEMAPHORE: return sem_open_resource(st, SHMH_SEM_OPEN, "attach", o);
    case PLAN_RES_MEMFD:
        if (st->map) return refuse(o, SHMH_ALREADY_EXISTS, "attach", NULL, "already attached");
        if (memfd_descriptor(st, o) == -1) return -1;
        return map_fd(st, !read_only, o);
    }
    return 0;
}

static int detach_object(struct resource_state *st, struct outcome *o) {
    switch (st->r->kind) {
    case PLAN_RES_SEGMENT: {
        struct shmh_segment *seg = segment_of(st, o);
        if (!seg) return -1;
        return shmh_segment_detach(seg) == -1 ? library_failure(o) : 0;
    }
    case PLAN_RES_FILE:
        if (!st->map) return refuse(o, SHMH_NOT_FOUND, "detach", st->object, "not attached");
        unmap(st);
        if (st->fd >= 0) close(st->fd);
        st->fd = -1;
        return 0;
    case PLAN_RES_MEMFD: /* the memfd lives on in its descriptor */
        if (!st->map) return refuse(o, SHMH_NOT_FOUND, "detach", NULL, "not attached");
        unmap(st);
        return 0;
    case PLAN_RES_SEMAPHORE:
        if (!st->sem) return refuse(o, SHMH_NOT_FOUND, "detach", st->object, "the semaphore is not open");
        shmh_sem_close(st->sem, 1); /* the last user of this library removes it */
        st->sem = NULL;
        return 0;
    }
    return 0;
}

static void close_lockfile(struct resource_state *st) {
    if (st->lockfile_open) shmh_lockfile_close(&st->lockfile, 0); /* closing drops an OFD lock we hold */
    st->lockfile_open = 0;
}

/* ResourceHandle.create / attach / detach: the object, then the in-memory lock. */
static int do_create(struct resource_state *st, const struct plan_step *step, struct outcome *o) {
    if (create_object(st, step, o) == -1) return -1;
    st->has_lock_problem = 0;
    return open_lock_area(st, 1, o);
}

static int do_attach(struct resource_state *st, int read_only, struct outcome *o) {
    if (attach_object(st, read_only, o) == -1) return -1;
    st->has_lock_problem = open_lock_area(st, 0, &st->lock_problem) == -1;
    return 0;
}

static int do_detach(struct resource_state *st, struct outcome *o) {
    st->lock_area = NULL;
    st->has_lock_problem = 0;
    close_lockfile(st);
    return detach_object(st, o);
}

/* ResourceHandle.close(), at the end of the run. */
static void close_resource(struct resource_state *st) {
    if (st->sem) {
        shmh_sem_close(st->sem, 1);
        st->sem = NULL;
    }
    if (st->segment) {
        if (shmh_segment_is_attached(st->segment)) close_lockfile(st);
        shmh_segment_free(st->segment); /* detaches (releasing a held lock); the last detach removes, as in Qt */
        st->segment = NULL;
    }
    /* The mapping stays until the process exits: a robust mutex we still hold must be in mapped memory when
     * the kernel walks our robust list at exit, or the next locker never hears owner-died and waits forever. */
    st->map = NULL;
    st->map_len = 0;
    if (st->fd >= 0 && st->r->kind == PLAN_RES_FILE) close(st->fd);
    st->fd = -1;
    close_lockfile(st);
}

/* --- locks ----------------------------------------------------------------------------------------------- */

enum lock_op { LOCK_LOCK, LOCK_TRY, LOCK_UNLOCK };

static void record_latency(uint64_t start) {
    uint64_t ns = now_ns() - start;
    if (stats.nlatencies >= MAX_LATENCY_SAMPLES) return;
    if (!stats.latencies && !(stats.latencies = malloc(MAX_LATENCY_SAMPLES * sizeof *stats.latencies))) return;
    stats.latencies[stats.nlatencies++] = ns;
}

/* A try whose lock is taken: the step fails with busy, worded as the Swift worker words it. */
static int taken(struct resource_state *st, struct outcome *o) {
    return refuse(o, SHMH_BUSY, "try-lock", st->object, "the lock is taken");
}

/* ResourceHandle.lock(_:timeout:): lock / try-lock / unlock with the resource's lock kind; a lock waits at most
 * timeout_ns (< 0: without limit). */
static int do_lock(struct resource_state *st, enum lock_op op, int64_t timeout_ns, struct outcome *o) {
    switch (st->r->lock) {
    case PLAN_LOCK_SEMAPHORE: {
        if (!is_segment(st)) return refuse(o, SHMH_LOCK_ERROR, "lock", NULL, "lock: semaphore belongs to segments");
        struct shmh_segment *seg = segment_of(st, o);
        if (!seg) return -1;
        if (op == LOCK_UNLOCK) return shmh_segment_unlock(seg) == -1 ? library_failure(o) : 0;
        if (op == LOCK_TRY) {
            if (shmh_segment_trylock(seg) == 0) return 0;
            return shmh_last_failure()->code == SHMH_BUSY ? taken(st, o) : library_failure(o);
        }
        return shmh_segment_lock(seg, timeout_ns) == -1 ? library_failure(o) : 0;
    }
    case PLAN_LOCK_FUTEX:
    case PLAN_LOCK_ROBUST_MUTEX: {
        if (st->has_lock_problem) {
            *o = st->lock_problem;
            return -1;
        }
        if (!st->lock_area)
            return refuse(o, SHMH_LOCK_ERROR, "lock", NULL, "not attached: the %s is in the memory",
                          st->r->lock == PLAN_LOCK_FUTEX ? "futex word" : "mutex");
        if (op == LOCK_UNLOCK) return shmh_lock_release(st->lock_area) == -1 ? library_failure(o) : 0;
        int rc = op == LOCK_TRY ? shmh_lock_try(st->lock_area) : shmh_lock_acquire(st->lock_area, timeout_ns);
        if (rc == 0) return 0;
        enum shmh_error code = shmh_last_failure()->code;
        if (code == SHMH_OWNER_DIED) {
            /* The lock is held: make the state consistent, and let the step report owner-died. */
            library_failure(o);
            if (shmh_lock_consistent(st->lock_area) == -1) return library_failure(o);
            return -1;
        }
        return op == LOCK_TRY && code == SHMH_BUSY ? taken(st, o) : library_failure(o);
    }
    case PLAN_LOCK_LOCKFILE: {
        if (!st->lockfile_open) {
            if (!st->r->path.s) return refuse(o, SHMH_LOCK_ERROR, "lock", NULL, "lock: lockfile needs a path in the plan");
            char path[4096];
            if ((size_t)snprintf(path, sizeof path, "%s.lock", st->r->path.s) >= sizeof path)
                return refuse(o, SHMH_KEY_ERROR, "open lock file", st->r->path.s, "the lock file path is too long");
            if (shmh_lockfile_open(&st->lockfile, path) == -1) return library_failure(o);
            st->lockfile_open = 1;
        }
        if (op == LOCK_UNLOCK) return shmh_lockfile_unlock(&st->lockfile) == -1 ? library_failure(o) : 0;
        if (op == LOCK_TRY) {
            if (shmh_lockfile_trylock(&st->lockfile) == 0) return 0;
            return shmh_last_failure()->code == SHMH_BUSY ? taken(st, o) : library_failure(o);
        }
        return shmh_lockfile_lock(&st->lockfile, timeout_ns) == -1 ? library_failure(o) : 0;
    }
    }
    return 0;
}

/* --- the protocol ----------------------------------------------------------------------------------------- */

static int barrier(const struct plan_text *name, struct outcome *o) {
    fputs("barrier ", stdout);
    fwrite(name->s, 1, name->len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    char *reply = NULL;
    size_t cap = 0;
    ssize_t n = getline(&reply, &cap, stdin);
    if (n < 0) {
        free(reply);
        return other(o, OUT_ABORTED, "the runner went away");
    }
    if (n > 0 && reply[n - 1] == '\n') reply[--n] = '\0';
    int go = (size_t)n == 3 + name->len && memcmp(reply, "go ", 3) == 0 && memcmp(reply + 3, name->s, name->len) == 0;
    if (!go) other(o, OUT_ABORTED, "%s", n > 6 ? reply + 6 : ""); /* the reply after "abort " */
    free(reply);
    return go ? 0 : -1;
}

/* --- steps ---------------------------------------------------------------------------------------------- */

static void describe_value(char *buf, size_t len, int is_u64, const uint8_t *bytes, size_t n) {
    if (is_u64) {
        uint64_t v = 0;
        for (size_t i = 0; i < n && i < 8; i++) v |= (uint64_t)bytes[i] << (8 * i);
        snprintf(buf, len, "u64 %llu", (unsigned long long)v);
        return;
    }
    size_t used = (size_t)snprintf(buf, len, "hex ");
    for (size_t i = 0; i < n && used + 3 < len; i++) used += (size_t)snprintf(buf + used, len - used, "%02x", bytes[i]);
}

/* --- descriptor passing (DescriptorChannels.swift): the plan's `channel` sockets to other workers --------- */

static int *channel_open; /* per plan.channels[i]: still connected (a peer that ended is dropped) */

/* send-fd: the memfd's descriptor, with the resource id as the message, to every process of `group`. */
static int send_fd(struct resource_state *st, const struct plan_text *group, struct outcome *o) {
    if (st->r->kind != PLAN_RES_MEMFD) return refuse(o, SHMH_INVALID_SIZE, "send-fd", st->object, "only a memfd's descriptor is passed");
    size_t sent = 0;
    for (size_t i = 0; i < plan.nchannels; i++) {
        const struct plan_channel *c = &plan.channels[i];
        if (c->group.len != group->len || memcmp(c->group.s, group->s, group->len) != 0) continue;
        if (sent == 0 && memfd_descriptor(st, o) == -1) return -1;
        /* A channel whose peer ended was closed by receive-fd (its number may be another descriptor's by now). */
        if (channel_open && !channel_open[i])
            return refuse(o, SHMH_NOT_FOUND, "send-fd", NULL, "worker %s/%ld has ended (the socket was closed)", c->group.s, c->index);
        if (shmh_fd_send(c->fd, st->fd, st->r->id.s, st->r->id.len) == -1) return library_failure(o);
        sent++;
    }
    if (sent == 0) return refuse(o, SHMH_NOT_FOUND, "send-fd", NULL, "no channel to worker group %s in this plan", group->s);
    return 0;
}

/* receive-fd: the next descriptor any peer sends becomes the resource; peers that end without sending are
 * dropped, and when none is left: not-found. */
static int receive_fd(struct resource_state *st, struct outcome *o) {
    if (st->r->kind != PLAN_RES_MEMFD) return refuse(o, SHMH_INVALID_SIZE, "receive-fd", st->object, "only a memfd's descriptor is passed");
    if (st->fd >= 0 || st->r->has_fd) return refuse(o, SHMH_ALREADY_EXISTS, "receive-fd", NULL, "memfd %s: this worker already holds one", st->r->id.s);
    if (!channel_open && plan.nchannels) {
        channel_open = malloc(plan.nchannels * sizeof *channel_open);
        if (!channel_open) return refuse(o, SHMH_OUT_OF_RESOURCES, "receive-fd", NULL, "out of memory");
        for (size_t i = 0; i < plan.nchannels; i++) channel_open[i] = 1;
    }
    for (;;) {
        struct pollfd fds[plan.nchannels ? plan.nchannels : 1];
        size_t which[plan.nchannels ? plan.nchannels : 1], n = 0;
        for (size_t i = 0; i < plan.nchannels; i++)
            if (channel_open[i]) fds[n] = (struct pollfd){.fd = plan.channels[i].fd, .events = POLLIN}, which[n++] = i;
        if (n == 0) return refuse(o, SHMH_NOT_FOUND, "receive-fd", NULL, "memfd %s: every sender ended without sending it", st->r->id.s);
        if (poll(fds, (nfds_t)n, -1) == -1) {
            if (errno == EINTR) continue;
            int err = errno;
            refuse(o, SHMH_UNKNOWN, "receive-fd", NULL, "poll: %s", strerror(err));
            o->err = err;
            return -1;
        }
        for (size_t k = 0; k < n; k++) {
            if (!fds[k].revents) continue;
            const struct plan_channel *c = &plan.channels[which[k]];
            char id[257];
            size_t len = 0;
            int fd = shmh_fd_recv(c->fd, id, sizeof id - 1, &len);
            if (fd == -1) {
                if (errno == ECONNRESET && shmh_last_failure()->code == SHMH_NOT_FOUND) {
                    channel_open[which[k]] = 0; /* this peer ended; the others may still send */
                    close(c->fd);
                    continue;
                }
                return library_failure(o);
            }
            id[len] = '\0';
            if (len != st->r->id.len || memcmp(id, st->r->id.s, len) != 0) {
                close(fd);
                return refuse(o, SHMH_KEY_ERROR, "receive-fd", NULL,
                              "received the descriptor of '%s', expected '%s' (descriptors arrive in the order they were sent) [%s/%ld]",
                              id, st->r->id.s, c->group.s, c->index);
            }
            unsigned int seals;
            if (shmh_fd_get_seals(fd, &seals) == -1) { /* MemFD(adopting:): only a memfd (or shmem file) has seals */
                int err = errno;
                close(fd);
                refuse(o, SHMH_KEY_ERROR, "receive-fd", NULL, "the received descriptor is not a memfd (%s)", strerror(err));
                o->err = err;
                return -1;
            }
            st->fd = fd;
            return 0;
        }
    }
}

/* check-file: the bytes read(2) gets at offset of the file, opened afresh (ResourceHandle+FileSteps.swift). */
static int check_file(struct resource_state *st, const struct plan_step *step, struct outcome *o) {
    if (st->r->kind != PLAN_RES_FILE || !st->r->path.s)
        return refuse(o, SHMH_INVALID_SIZE, "check-file", st->object, "only a file resource has a file to read");
    int fd = open(st->r->path.s, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1) {
        int err = errno;
        refuse(o, err == ENOENT ? SHMH_NOT_FOUND : (err == EACCES || err == ELOOP) ? SHMH_PERMISSION_DENIED : SHMH_UNKNOWN,
               "check-file", st->r->path.s, "open: %s", strerror(err));
        o->err = err;
        return -1;
    }
    uint8_t *got = malloc(step->nbytes ? step->nbytes : 1);
    if (!got) {
        close(fd);
        return refuse(o, SHMH_OUT_OF_RESOURCES, "check-file", NULL, "out of memory");
    }
    size_t done = 0;
    int rc = 0;
    while (rc == 0 && done < step->nbytes) {
        ssize_t n = pread(fd, got + done, step->nbytes - done, (off_t)(step->offset + (int64_t)done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            rc = refuse(o, SHMH_UNKNOWN, "check-file", st->r->path.s, "pread: %s", strerror(err));
            o->err = err;
        } else if (n == 0) {
            rc = refuse(o, SHMH_INVALID_SIZE, "check-file", st->r->path.s, "offset %lld+%zu is past the end of the file (%lld bytes)",
                        (long long)step->offset, step->nbytes, (long long)(step->offset + (int64_t)done));
        } else {
            done += (size_t)n;
        }
    }
    close(fd);
    if (rc == 0 && memcmp(got, step->bytes, step->nbytes) != 0) {
        char want[1024], have[1024];
        describe_value(want, sizeof want, step->is_u64, step->bytes, step->nbytes);
        describe_value(have, sizeof have, step->is_u64, got, step->nbytes);
        rc = other(o, OUT_MISMATCH, "in the file of %s at offset %lld (read(2)): want %s, got %s", step->res.s, (long long)step->offset, want, have);
    }
    free(got);
    return rc;
}

static struct resource_state *find_state(const struct plan_text *id) {
    for (size_t i = 0; i < plan.nresources; i++)
        if (plan.resources[i].id.len == id->len && memcmp(plan.resources[i].id.s, id->s, id->len) == 0) return &states[i];
    return NULL;
}

/* The bytes `fill` and `check-fill` cover: all but an in-memory lock's 64-byte area. */
static size_t data_ranges(const struct resource_state *st, size_t size, size_t starts[2], size_t ends[2]) {
    size_t n = 0;
    if (!in_memory_lock(st)) {
        starts[0] = 0;
        ends[0] = size;
        return size ? 1 : 0;
    }
    size_t lock_start = st->r->lock_offset < 0 ? 0 : (size_t)st->r->lock_offset;
    size_t a = lock_start < size ? lock_start : size;
    size_t b = lock_start + 64 < size ? lock_start + 64 : size;
    if (a > 0) starts[n] = 0, ends[n++] = a;
    if (b < size) starts[n] = b, ends[n++] = size;
    return n;
}

/* Deliberately plain 64-bit access (add, load, store-loaded): volatile, so the compiler may neither drop nor
 * merge it, and not atomic (as the Swift worker's shm_shim_plain_load_u64 / _store_u64). */
static uint64_t plain_load_u64(const unsigned char *p) {
    if (((uintptr_t)p & 7) == 0) return *(const volatile uint64_t *)(const void *)p;
    const volatile unsigned char *b = p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)b[i] << (8 * i);
    return v;
}

static void plain_store_u64(unsigned char *p, uint64_t v) {
    if (((uintptr_t)p & 7) == 0) {
        *(volatile uint64_t *)(void *)p = v;
        return;
    }
    volatile unsigned char *b = p;
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
}

/* The worker's register: what the last `load` read, for `store-loaded`. */
static uint64_t loaded_value;
static int has_loaded;

static int act(const struct plan_step *step, struct outcome *o) {
    struct resource_state *st = NULL;
    if (step->res.s && !(st = find_state(&step->res)))
        return refuse(o, SHMH_KEY_ERROR, "resource", NULL, "no resource %s in this plan", step->res.s);
    switch (step->kind) {
    case PLAN_STEP_CREATE:
        st->private_map = 0;
        return do_create(st, step, o);
    case PLAN_STEP_ATTACH:
        if (step->private_map && st->r->kind != PLAN_RES_FILE)
            return refuse(o, SHMH_INVALID_SIZE, "attach", st->object, "mode: private maps a file");
        st->private_map = step->private_map;
        return do_attach(st, step->read_only, o);
    case PLAN_STEP_DETACH: return do_detach(st, o);
    case PLAN_STEP_LOCK: {
        uint64_t start = now_ns();
        if (do_lock(st, LOCK_LOCK, step->ns > 0 ? step->ns : -1, o) == -1) return -1;
        record_latency(start);
        return 0;
    }
    case PLAN_STEP_TRY_LOCK: return do_lock(st, LOCK_TRY, -1, o);
    case PLAN_STEP_UNLOCK: return do_lock(st, LOCK_UNLOCK, -1, o);
    case PLAN_STEP_ADD: {
        /* Under the SIGBUS guard, as the Swift worker: another process may shrink the memory. */
        unsigned char *p = pointer(st, step->offset, 8, o);
        if (!p) return -1;
        if (guarded_add(p, (uint64_t)step->value, 0) == -1)
            return refuse(o, SHMH_BUS_ERROR, "add", st->object, "guarded add(SIGBUS during the access: the memory's file was shrunk)");
        return 0;
    }
    case PLAN_STEP_LOAD: {
        unsigned char *p = pointer(st, step->offset, 8, o);
        if (!p) return -1;
        loaded_value = plain_load_u64(p);
        has_loaded = 1;
        return 0;
    }
    case PLAN_STEP_STORE_LOADED: {
        if (!has_loaded) return other(o, OUT_UNSUPPORTED, "store-loaded before any load: nothing was loaded");
        unsigned char *p = pointer(st, step->offset, 8, o);
        if (!p) return -1;
        plain_store_u64(p, loaded_value + (uint64_t)step->value);
        return 0;
    }
    case PLAN_STEP_COMPARE: {
        uint8_t a[8], b[8];
        if (checked_access(st, 0, step->offset, a, 8, o) == -1 || checked_access(st, 0, step->with, b, 8, o) == -1) return -1;
        if (memcmp(a, b, 8) != 0) {
            uint64_t x = 0, y = 0;
            for (int i = 0; i < 8; i++) x |= (uint64_t)a[i] << (8 * i), y |= (uint64_t)b[i] << (8 * i);
            return other(o, OUT_MISMATCH, "at offset %lld of %s: u64 %llu, but at offset %lld: u64 %llu", (long long)step->offset,
                         step->res.s, (unsigned long long)x, (long long)step->with, (unsigned long long)y);
        }
        return 0;
    }
    case PLAN_STEP_ATOMIC_ADD: {
        unsigned char *p = pointer(st, step->offset, 8, o);
        if (!p) return -1;
        if ((uintptr_t)p % 8 != 0)
            return refuse(o, SHMH_INVALID_SIZE, "atomic-add", NULL, "offset %lld is not 8-byte aligned", (long long)step->offset);
        if (guarded_add(p, (uint64_t)step->value, 1) == -1)
            return refuse(o, SHMH_BUS_ERROR, "atomic-add", st->object, "guarded add(SIGBUS during the access: the memory's file was shrunk)");
        return 0;
    }
    case PLAN_STEP_STORE: return checked_access(st, 1, step->offset, step->bytes, step->nbytes, o);
    case PLAN_STEP_CHECK: {
        uint8_t *got = malloc(step->nbytes ? step->nbytes : 1);
        if (!got) return refuse(o, SHMH_OUT_OF_RESOURCES, "read", NULL, "out of memory");
        int rc = checked_access(st, 0, step->offset, got, step->nbytes, o);
        if (rc == 0 && memcmp(got, step->bytes, step->nbytes) != 0) {
            char want[1024], have[1024];
            describe_value(want, sizeof want, step->is_u64, step->bytes, step->nbytes);
            describe_value(have, sizeof have, step->is_u64, got, step->nbytes);
            rc = other(o, OUT_MISMATCH, "at offset %lld of %s: want %s, got %s", (long long)step->offset, step->res.s, want, have);
        }
        free(got);
        return rc;
    }
    case PLAN_STEP_FILL:
    case PLAN_STEP_CHECK_FILL: {
        int fill = step->kind == PLAN_STEP_FILL;
        size_t size;
        if (!bytes_of(st, &size)) return refuse(o, SHMH_NOT_FOUND, fill ? "fill" : "check-fill", st->object, "not attached");
        size_t starts[2], ends[2];
        size_t n = data_ranges(st, size, starts, ends);
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf) return refuse(o, SHMH_OUT_OF_RESOURCES, "read", NULL, "out of memory");
        int rc = 0;
        for (size_t r = 0; rc == 0 && r < n; r++) {
            size_t len = ends[r] - starts[r];
            if (fill) {
                memset(buf, step->byte, len);
                rc = checked_access(st, 1, (int64_t)starts[r], buf, len, o);
                continue;
            }
            rc = checked_access(st, 0, (int64_t)starts[r], buf, len, o);
            for (size_t i = 0; rc == 0 && i < len; i++)
                if (buf[i] != step->byte)
                    rc = other(o, OUT_MISMATCH, "at offset %zu of %s: want byte %u, got %u", starts[r] + i, step->res.s,
                               (unsigned)step->byte, (unsigned)buf[i]);
        }
        free(buf);
        return rc;
    }
    case PLAN_STEP_TOUCH_ALL: {
        /* Plain loads, unguarded: after a shrink the worker dies of SIGBUS, as a scenario may expect. Volatile, so
         * that no optimizer drops them. */
        size_t size;
        unsigned char *data = bytes_of(st, &size);
        if (!data) return refuse(o, SHMH_NOT_FOUND, "touch-all", NULL, "not attached");
        uint8_t sum = 0;
        for (size_t off = 0; off < size; off += 4096) sum += *(volatile uint8_t *)(data + off);
        (void)sum;
        return 0;
    }
    case PLAN_STEP_TRUNCATE: {
        if (is_segment(st)) return refuse(o, SHMH_INVALID_SIZE, "truncate", NULL, "segment resources have no file size to change");
        if (step->size < 0) return refuse(o, SHMH_INVALID_SIZE, "resize", st->object, "size %lld is negative", (long long)step->size);
        if (st->r->kind == PLAN_RES_MEMFD) {
            if (memfd_descriptor(st, o) == -1) return -1;
            return shmh_fd_resize(st->fd, (size_t)step->size) == -1 ? library_failure(o) : 0;
        }
        if (st->fd >= 0) return shmh_fd_resize(st->fd, (size_t)step->size) == -1 ? library_failure(o) : 0;
        int fd = shmh_file_open(st->r->path.s ? st->r->path.s : "", SHMH_READ_WRITE); /* not attached: open it for this */
        if (fd == -1) return library_failure(o);
        int rc = shmh_fd_resize(fd, (size_t)step->size) == -1 ? library_failure(o) : 0;
        close(fd);
        return rc;
    }
    case PLAN_STEP_SEAL:
        if (st->r->kind != PLAN_RES_MEMFD) return refuse(o, SHMH_SEALED, "seal", NULL, "only a memfd takes seals");
        if (memfd_descriptor(st, o) == -1) return -1;
        return shmh_fd_add_seals(st->fd, step->seals) == -1 ? library_failure(o) : 0;
    case PLAN_STEP_BARRIER: return barrier(&step->name, o);
    case PLAN_STEP_SLEEP: {
        int64_t ns = step->ns > 0 ? step->ns : 0;
        struct timespec req = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)}, rem;
        while (nanosleep(&req, &rem) == -1 && errno == EINTR) req = rem;
        return 0;
    }
    case PLAN_STEP_CRASH: {
        fflush(NULL);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        sigaction(step->signal, &sa, NULL); /* fails harmlessly for SIGKILL and SIGSTOP */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, step->signal);
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        raise(step->signal);
        _exit(128 + step->signal);
    }
    case PLAN_STEP_SYNC:
        if (is_segment(st)) return refuse(o, SHMH_INVALID_SIZE, "sync", st->object, "sync works on a file or memfd mapping");
        if (!st->map) return refuse(o, SHMH_NOT_FOUND, "sync", st->object, "not attached");
        if (msync(st->map, st->map_len, MS_SYNC) == -1) {
            int err = errno;
            refuse(o, SHMH_UNKNOWN, "sync", st->object, "msync(%zu bytes): %s", st->map_len, strerror(err));
            o->err = err;
            return -1;
        }
        return 0;
    case PLAN_STEP_CHECK_FILE: return check_file(st, step, o);
    case PLAN_STEP_SEND_FD: return send_fd(st, &step->name, o);
    case PLAN_STEP_RECEIVE_FD: return receive_fd(st, o);
    case PLAN_STEP_REPEAT_TIMES:
    case PLAN_STEP_REPEAT_FOR: return 0;
    case PLAN_STEP_ACQUIRE:
    case PLAN_STEP_RELEASE:
    case PLAN_STEP_TRY_ACQUIRE:
    case PLAN_STEP_CHECK_VALUE:
    case PLAN_STEP_CHECK_AT_MOST: return semaphore_step(st, step, o);
    }
    return 0;
}

static void fail_worker(const struct plan_step *step, const char *error, int err, const char *fmt, ...) {
    failure.failed = 1;
    failure.line = step->line;
    failure.step = plan_step_kind_name(step->kind);
    snprintf(failure.error, sizeof failure.error, "%s", error);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure.message, sizeof failure.message, fmt, ap);
    va_end(ap);
    failure.has_errno = err != 0;
    failure.err = err;
}

/* --- where the worker is: `at LINE` on SIGUSR1 (the runner asks before it kills a worker out of time) --- */

static volatile sig_atomic_t current_line;

static void report_step(int sig) {
    (void)sig;
    int saved = errno;
    char text[32] = "at ", digits[16];
    int n = 0;
    unsigned line = current_line > 0 ? (unsigned)current_line : 0;
    do digits[n++] = (char)('0' + line % 10), line /= 10;
    while (line && n < (int)sizeof digits);
    size_t used = 3;
    while (n) text[used++] = digits[--n];
    text[used++] = '\n';
    ssize_t ignored = write(1, text, used); /* async-signal-safe */
    (void)ignored;
    errno = saved;
}

static void install_step_reporter(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = report_step;
    sa.sa_flags = SA_RESTART; /* a barrier's read goes on */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
}

/* The step's expect-error as the Swift worker words it: `already-exists`, or `[none, already-exists]`. */
static const char *expect_text(const struct plan_step *step, char *buf, size_t len) {
    if (!step->expect.s) return "success";
    if (!memchr(step->expect.s, ',', step->expect.len)) return step->expect.s;
    size_t used = 0;
    buf[used++] = '[';
    for (const char *c = step->expect.s; *c && used + 3 < len; c++) {
        if (*c == ',') {
            buf[used++] = ',';
            buf[used++] = ' ';
        } else {
            buf[used++] = *c;
        }
    }
    buf[used++] = ']';
    buf[used] = '\0';
    return buf;
}

/* What each step accepts and where it counts (once, before the first step). -1: a broken plan (an outcome
 * name in an expect-error list that is not an error name). */
static int prepare_outcomes(char *why, size_t whylen) {
    step_counter = calloc(plan.nsteps ? plan.nsteps : 1, sizeof *step_counter);
    step_accepts = calloc(plan.nsteps ? plan.nsteps : 1, sizeof *step_accepts);
    counters = calloc(plan.nsteps ? plan.nsteps : 1, sizeof *counters);
    if (!step_counter || !step_accepts || !counters) return snprintf(why, whylen, "out of memory"), -1;
    for (size_t i = 0; i < plan.nsteps; i++) {
        const struct plan_step *step = &plan.steps[i];
        step_counter[i] = -1;
        if (!step->expect.s) {
            step_accepts[i] = 1u;
        } else if (!memchr(step->expect.s, ',', step->expect.len)) {
            enum shmh_error code = shmh_error_from_name(step->expect.s);
            step_accepts[i] = code ? 1u << code : 0u; /* an unknown name matches no error: the step fails */
        } else {
            for (const char *a = step->expect.s; *a;) {
                size_t len = strcspn(a, ",");
                char name[64];
                snprintf(name, sizeof name, "%.*s", (int)(len < sizeof name ? len : sizeof name - 1), a);
                enum shmh_error code = shmh_error_from_name(name);
                if (strcmp(name, "none") == 0) step_accepts[i] |= 1u;
                else if (code) step_accepts[i] |= 1u << code;
                else return snprintf(why, whylen, "step at line %d: expect-error=%s: '%s' is neither none nor an error name", step->line, step->expect.s, name), -1;
                a += len + (a[len] == ',');
            }
        }
        if (!step->count.s) continue;
        size_t c = 0;
        while (c < ncounters && strcmp(counters[c].name, step->count.s) != 0) c++;
        if (c == ncounters) counters[ncounters++].name = step->count.s;
        step_counter[i] = (int)c;
    }
    return 0;
}

static void tally(const struct plan_step *step, int slot) {
    int c = step_counter[step - plan.steps];
    if (c >= 0) counters[c].tally[slot]++;
}

/* StepExecutor.perform: one step and its expectation; -1 ends the run. */
static int perform(const struct plan_step *step) {
    stats.ops++;
    current_line = step->line;
    struct outcome o;
    o.kind = OUT_OK;
    o.message[0] = '\0';
    unsigned accepts = step_accepts[step - plan.steps];
    char shown[256];
    if (act(step, &o) == 0 || o.kind == OUT_OK) {
        if (!(accepts & 1u)) {
            fail_worker(step, "unexpected-success", 0, "expected %s, but the step succeeded", expect_text(step, shown, sizeof shown));
            return -1;
        }
        tally(step, 0);
        return 0;
    }
    switch (o.kind) {
    case OUT_LIBRARY: {
        const char *name = shmh_error_name(o.code);
        if (!step->expect.s) {
            fail_worker(step, name, o.err, "%s", o.message);
            return -1;
        }
        if ((unsigned)o.code > SHMH_ERROR_COUNT || !(accepts & (1u << o.code))) {
            fail_worker(step, name, o.err, "expected %s, got %s: %s", expect_text(step, shown, sizeof shown), name, o.message);
            return -1;
        }
        tally(step, (int)o.code);
        return 0;
    }
    case OUT_MISMATCH: fail_worker(step, "check-mismatch", 0, "%s", o.message); return -1;
    case OUT_ABORTED: fail_worker(step, "barrier-aborted", 0, "%s", o.message); return -1;
    case OUT_UNSUPPORTED: fail_worker(step, "unsupported", 0, "%s", o.message); return -1;
    case OUT_OK: break;
    }
    return 0;
}

/* The items [begin, end) of the flat step list; a repeat's body follows it. */
static int execute(size_t begin, size_t end) {
    for (size_t i = begin; i < end;) {
        const struct plan_step *step = &plan.steps[i];
        if (step->kind == PLAN_STEP_REPEAT_TIMES) {
            for (int64_t n = 0; n < step->times; n++)
                if (execute(i + 1, i + 1 + step->span) == -1) return -1;
            i += 1 + step->span;
        } else if (step->kind == PLAN_STEP_REPEAT_FOR) {
            uint64_t until = now_ns() + (uint64_t)(step->ns > 0 ? step->ns : 0);
            while (now_ns() < until)
                if (execute(i + 1, i + 1 + step->span) == -1) return -1;
            i += 1 + step->span;
        } else {
            if (perform(step) == -1) return -1;
            i++;
        }
    }
    return 0;
}

static void close_all(void) {
    for (size_t i = 0; i < plan.nresources; i++) close_resource(&states[i]);
}

/* --- the result line ---------------------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* WorkerStats.percentile on sorted samples: index = ceil(n * p) - 1, clamped to 0..n-1. */
static uint64_t percentile(const uint64_t *sorted, size_t n, double p) {
    double rank = ceil((double)n * p) - 1;
    size_t index = rank < 0 ? 0 : (size_t)rank;
    if (index > n - 1) index = n - 1;
    return sorted[index];
}

/* A JSON string as Foundation's JSONEncoder writes it ("/" as "\/"); invalid UTF-8 becomes U+FFFD. */
static void json_string(FILE *out, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    while (*p) {
        unsigned char c = *p;
        if (c == '"' || c == '\\' || c == '/') {
            fputc('\\', out);
            fputc(c, out);
            p++;
        } else if (c < 0x20) {
            switch (c) {
            case '\b': fputs("\\b", out); break;
            case '\f': fputs("\\f", out); break;
            case '\n': fputs("\\n", out); break;
            case '\r': fputs("\\r", out); break;
            case '\t': fputs("\\t", out); break;
            default: fprintf(out, "\\u%04x", c);
            }
            p++;
        } else if (c < 0x80) {
            fputc(c, out);
            p++;
        } else {
            /* a well-formed UTF-8 sequence passes through */
            size_t n = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
            size_t k = 1;
            if (n == 0 || c > 0xf4) n = 0;
            for (; n && k < n; k++)
                if ((p[k] & 0xc0) != 0x80) break;
            uint32_t cp = 0;
            if (n && k == n) {
                cp = n == 2 ? (uint32_t)(c & 0x1f) : n == 3 ? (uint32_t)(c & 0x0f) : (uint32_t)(c & 0x07);
                for (size_t j = 1; j < n; j++) cp = cp << 6 | (p[j] & 0x3f);
            }
            int ok = n && k == n && !(n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) && !(n == 4 && (cp < 0x10000 || cp > 0x10ffff));
            if (ok) {
                fwrite(p, 1, n, out);
                p += n;
            } else {
                fputs("\xef\xbf\xbd", out);
                p++;
            }
        }
    }
    fputc('"', out);
}

static int cmp_counter(const void *a, const void *b) {
    return strcmp((*(const struct counter *const *)a)->name, (*(const struct counter *const *)b)->name);
}

static int cmp_name(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* `,"outcomes":{"NAME":{"OUTCOME":N,...},...}`, keys sorted and only what happened (as the Swift worker's
 * JSONEncoder writes its dictionary); nothing when no counted step ran. */
static void print_outcomes(FILE *out) {
    const struct counter *used[ncounters ? ncounters : 1];
    size_t n = 0;
    for (size_t c = 0; c < ncounters; c++)
        for (int k = 0; k <= SHMH_ERROR_COUNT; k++)
            if (counters[c].tally[k]) {
                used[n++] = &counters[c];
                break;
            }
    if (!n) return;
    qsort(used, n, sizeof *used, cmp_counter);
    fputs(",\"outcomes\":{", out);
    for (size_t c = 0; c < n; c++) {
        const char *names[SHMH_ERROR_COUNT + 1];
        long long counts[SHMH_ERROR_COUNT + 1];
        size_t m = 0;
        for (int k = 0; k <= SHMH_ERROR_COUNT; k++)
            if (used[c]->tally[k]) names[m++] = k == 0 ? "ok" : shmh_error_name((enum shmh_error)k);
        qsort(names, m, sizeof *names, cmp_name);
        for (size_t j = 0; j < m; j++) {
            enum shmh_error code = strcmp(names[j], "ok") == 0 ? SHMH_OK : shmh_error_from_name(names[j]);
            counts[j] = used[c]->tally[code];
        }
        if (c) fputc(',', out);
        json_string(out, used[c]->name);
        fputs(":{", out);
        for (size_t j = 0; j < m; j++) {
            if (j) fputc(',', out);
            json_string(out, names[j]);
            fprintf(out, ":%lld", counts[j]);
        }
        fputc('}', out);
    }
    fputc('}', out);
}

/* `result {json}`: the Swift worker's keys, sorted, absent ones left out. */
static void print_result(void) {
    size_t n = stats.nlatencies;
    uint64_t p50 = 0, p90 = 0, p99 = 0, max = 0;
    if (n) {
        qsort(stats.latencies, n, sizeof *stats.latencies, cmp_u64);
        p50 = percentile(stats.latencies, n, 0.5);
        p90 = percentile(stats.latencies, n, 0.9);
        p99 = percentile(stats.latencies, n, 0.99);
        max = stats.latencies[n - 1];
    }
    FILE *out = stdout;
    fprintf(out, "result {\"elapsedNs\":%llu", (unsigned long long)stats.elapsed_ns);
    if (failure.failed && failure.has_errno) fprintf(out, ",\"errno\":%d", failure.err);
    if (failure.failed) {
        fputs(",\"error\":", out);
        json_string(out, failure.error);
        fprintf(out, ",\"line\":%d", failure.line);
    }
    fprintf(out, ",\"lockCount\":%zu", n);
    if (n)
        fprintf(out, ",\"lockMaxNs\":%llu,\"lockP50Ns\":%llu,\"lockP90Ns\":%llu,\"lockP99Ns\":%llu", (unsigned long long)max,
                (unsigned long long)p50, (unsigned long long)p90, (unsigned long long)p99);
    if (failure.failed) {
        fputs(",\"message\":", out);
        json_string(out, failure.message);
    }
    fprintf(out, ",\"ok\":%s,\"ops\":%lld", failure.failed ? "false" : "true", stats.ops);
    print_outcomes(out);
    if (failure.failed) {
        fputs(",\"step\":", out);
        json_string(out, failure.step);
    }
    fputs("}\n", out);
    fflush(out);
}

/* --- main ------------------------------------------------------------------------------------------------- */

/* Drops to `user` (name, or a uid with a passwd entry): no supplementary groups, its primary group, its uid.
 * NULL on success, or why not. */
static const char *drop_privileges(const char *user) {
    struct passwd *pw = getpwnam(user);
    if (!pw) {
        char *end;
        errno = 0;
        unsigned long uid = strtoul(user, &end, 10);
        if (*user >= '0' && *user <= '9' && *end == '\0' && errno == 0 && uid <= 0xffffffffUL) pw = getpwuid((uid_t)uid);
    }
    if (!pw) return "no such user";
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (geteuid() != 0) return "dropping to another user needs root";
    if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) return strerror(errno);
    return NULL;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        char *more = realloc(buf, cap * 2);
        if (!more) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = more;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int usage(void) {
    fputs("usage: shmh-worker PLAN [--user NAME|UID]\n       shmh-worker --user NAME|UID --probe\n", stderr);
    return 2;
}

int main(int argc, char **argv) {
    const char *plan_path = NULL, *user = NULL;
    int probe = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--user") && i + 1 < argc) user = argv[++i];
        else if (!strncmp(argv[i], "--user=", 7)) user = argv[i] + 7;
        else if (!strcmp(argv[i], "--probe")) probe = 1;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') return usage();
        else if (!plan_path) plan_path = argv[i];
        else return usage();
    }
    if (!plan_path && !probe) return usage();

    if (plan_path) {
        size_t len = 0;
        char *text = read_file(plan_path, &len);
        if (!text) {
            fprintf(stderr, "shmh-worker: cannot read the plan %s: %s\n", plan_path, strerror(errno));
            return 2;
        }
        char why[512];
        int rc = plan_parse(text, len, &plan, why, sizeof why);
        free(text);
        if (rc == -1) {
            fprintf(stderr, "shmh-worker: %s: %s\n", plan_path, why);
            return 2;
        }
    }
    if (user) {
        const char *reason = drop_privileges(user);
        if (reason) {
            fprintf(stderr, "shmh-worker: cannot run as %s: %s\n", user, reason);
            plan_free(&plan);
            return 3;
        }
    }
    /* Die with the runner. Set after the user change (which clears it); a runner already gone ends us. */
    if (!probe) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        const char *runner = getenv("SHM_HARNESS_RUNNER_PID");
        if (runner && (pid_t)strtol(runner, NULL, 10) != getppid()) {
            fprintf(stderr, "shmh-worker: the runner (pid %s) is gone\n", runner);
            plan_free(&plan);
            return 2;
        }
    }
    if (probe) {
        plan_free(&plan);
        return 0;
    }

    states = calloc(plan.nresources ? plan.nresources : 1, sizeof *states);
    if (!states) {
        fputs("shmh-worker: out of memory\n", stderr);
        plan_free(&plan);
        return 2;
    }
    for (size_t i = 0; i < plan.nresources; i++) {
        struct resource_state *st = &states[i];
        st->r = &plan.resources[i];
        st->fd = -1;
        const struct plan_resource *r = st->r;
        if (r->key.s) snprintf(st->object, sizeof st->object, "%s", r->key.s);
        else if (r->path.s) snprintf(st->object, sizeof st->object, "%s", r->path.s);
        else snprintf(st->object, sizeof st->object, "memfd:%s", r->id.s);
    }
    char why[512];
    if (prepare_outcomes(why, sizeof why) == -1) {
        fprintf(stderr, "shmh-worker: %s: %s\n", plan_path, why);
        plan_free(&plan);
        return 2;
    }
    install_step_reporter();
    uint64_t start = now_ns();
    execute(0, plan.nsteps);
    stats.elapsed_ns = now_ns() - start;
    close_all();
    print_result();
    free(stats.latencies);
    free(counters);
    free(step_counter);
    free(step_accepts);
    free(states);
    plan_free(&plan);
    return failure.failed ? 1 : 0;
}
