/* shmh_worker.c - shmh-worker PLAN [--user NAME|UID]: the C twin of the Swift worker (`shm-harness worker`).
 *
 * Runs one plan's steps (docs/worker-protocol.md) and talks to the runner over stdin/stdout:
 *   - `barrier NAME` (to the runner), then waits for `go NAME` or `abort NAME REASON` on stdin;
 *   - the last line is `result {json}` with the same keys, order and escaping as the Swift worker.
 * Exit status: 0 every step did what it should, 1 a step failed its expectation, 2 broken (unreadable plan or
 * arguments), 3 not applicable here (the user to drop to cannot be switched to). `crash` kills the worker.
 *
 * Step semantics follow Sources/Harness/StepExecutor.swift: a library error is compared with the step's
 * expect-error (match: success); a check mismatch, an aborted barrier or an unsupported step always fails the
 * worker; a step that was expected to fail and succeeded fails with unexpected-success. */
#include "plan.h"
#include "shmh.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <math.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_LATENCY_SAMPLES 200000

/* --- state --------------------------------------------------------------------------------------------- */

struct resource_state {
    const struct plan_resource *r;
    struct shmh_segment *segment; /* segments: made on first use */
    int read_only;                /* segments and files: the current attachment's mode */
    /* files and memfds */
    int fd;                       /* -1: none */
    int own_fd;                   /* we opened / created it (close at detach) */
    unsigned char *map;
    size_t map_len;
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

/* How a step ended, before its expectation is applied. */
enum outcome_kind { OUT_OK, OUT_LIBRARY, OUT_MISMATCH, OUT_ABORTED, OUT_UNSUPPORTED };
struct outcome {
    enum outcome_kind kind;
    enum shmh_error code; /* OUT_LIBRARY */
    int err;              /* errno of the failing call, 0 for a refusal */
    char message[2048];
};

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

static struct resource_state *find_state(const struct plan_text *id) {
    for (size_t i = 0; i < plan.nresources; i++)
        if (plan.resources[i].id.len == id->len && memcmp(plan.resources[i].id.s, id->s, id->len) == 0) return &states[i];
    return NULL;
}

static const char *object_of(const struct resource_state *st) {
    if (st->r->key.s) return st->r->key.s;
    if (st->r->path.s) return st->r->path.s;
    return NULL;
}

/* Swift's memory(id): the segment handle of a keyed segment resource, made on first use. */
static struct shmh_segment *segment_of(struct resource_state *st, const struct plan_step *step, struct outcome *o) {
    if (st->segment) return st->segment;
    struct shmh_key key;
    if (!st->r->key.s || shmh_key_from_string(&key, st->r->key.s, st->r->key.len) == -1) {
        refuse(o, SHMH_KEY_ERROR, plan_step_kind_name(step->kind), NULL, "resource %s is not a keyed segment in this plan",
               st->r->id.s);
        return NULL;
    }
    st->segment = shmh_segment_new(&key, NULL);
    shmh_key_free(&key);
    if (!st->segment) library_failure(o);
    return st->segment;
}

/* The bytes a resource is attached to, for data steps. */
struct view {
    unsigned char *data;
    size_t size;
    int read_only;
    int guarded; /* a file or memfd: accesses go through the bus-error guard */
};

static int view_of(struct resource_state *st, struct view *v) {
    if (st->r->kind == PLAN_RES_SEGMENT) {
        if (!st->segment || !shmh_segment_is_attached(st->segment)) return -1;
        v->data = shmh_segment_data(st->segment);
        v->size = shmh_segment_size(st->segment);
        v->read_only = st->read_only;
        v->guarded = 0;
        return 0;
    }
    if (!st->map) return -1;
    v->data = st->map;
    v->size = st->map_len;
    v->read_only = st->read_only;
    v->guarded = 1;
    return 0;
}

/* --- the bus-error guard (files and memfds that may shrink under us) --------------------------------- */

static sigjmp_buf bus_jump;
static volatile sig_atomic_t bus_armed;

static void on_bus(int sig) {
    if (bus_armed) siglongjmp(bus_jump, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Copies n bytes; -1 if the copy faulted with SIGBUS (a page past the end of a shrunk file). */
static int guarded_copy(void *dst, const void *src, size_t n) {
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_bus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, &old);
    volatile int faulted = 0;
    if (sigsetjmp(bus_jump, 1) == 0) {
        bus_armed = 1;
        memmove(dst, src, n);
    } else {
        faulted = 1;
    }
    bus_armed = 0;
    sigaction(SIGBUS, &old, NULL);
    return faulted ? -1 : 0;
}

/* Checked access as the library's read/write: not attached, read-only, range, and for files the current file
 * size and the fault guard. Returns the address of the range. */
static unsigned char *checked(struct resource_state *st, const char *operation, int64_t offset, size_t count, int writing,
                              struct outcome *o) {
    struct view v;
    const char *object = object_of(st);
    if (view_of(st, &v) == -1) return refuse(o, SHMH_NOT_FOUND, operation, object, "not attached"), NULL;
    if (writing && v.read_only)
        return refuse(o, SHMH_PERMISSION_DENIED, operation, object, "the segment is attached read-only"), NULL;
    if (offset < 0 || (uint64_t)offset > v.size || count > v.size - (size_t)offset)
        return refuse(o, SHMH_INVALID_SIZE, operation, object, "range %lld..<%lld is outside the segment of %zu bytes",
                      (long long)offset, (long long)offset + (long long)count, v.size),
               NULL;
    if (v.guarded) {
        struct stat sb;
        if (fstat(st->fd, &sb) == 0 && (uint64_t)sb.st_size < (uint64_t)offset + count)
            return refuse(o, SHMH_BUS_ERROR, operation, object, "range %lld..<%lld is past the end of the file (%lld bytes)",
                          (long long)offset, (long long)offset + (long long)count, (long long)sb.st_size),
                   NULL;
    }
    return v.data + offset;
}

static int checked_write(struct resource_state *st, const char *operation, int64_t offset, const void *bytes, size_t n,
                         struct outcome *o) {
    unsigned char *p = checked(st, operation, offset, n, 1, o);
    if (!p) return -1;
    if (st->r->kind == PLAN_RES_SEGMENT) memcpy(p, bytes, n);
    else if (guarded_copy(p, bytes, n) == -1)
        return refuse(o, SHMH_BUS_ERROR, operation, object_of(st), "SIGBUS writing %zu bytes at offset %lld", n, (long long)offset);
    return 0;
}

static int checked_read(struct resource_state *st, const char *operation, int64_t offset, void *bytes, size_t n,
                        struct outcome *o) {
    unsigned char *p = checked(st, operation, offset, n, 0, o);
    if (!p) return -1;
    if (st->r->kind == PLAN_RES_SEGMENT) memcpy(bytes, p, n);
    else if (guarded_copy(bytes, p, n) == -1)
        return refuse(o, SHMH_BUS_ERROR, operation, object_of(st), "SIGBUS reading %zu bytes at offset %lld", n, (long long)offset);
    return 0;
}

/* StepExecutor.pointer: plain access for add and atomic-add. */
static unsigned char *pointer(struct resource_state *st, int64_t offset, size_t length, struct outcome *o) {
    struct view v;
    const char *object = object_of(st);
    if (view_of(st, &v) == -1) return refuse(o, SHMH_NOT_FOUND, "access", object, "not attached"), NULL;
    if (v.read_only) return refuse(o, SHMH_PERMISSION_DENIED, "access", object, "attached read-only"), NULL;
    if (offset < 0 || v.size < length || (uint64_t)offset > v.size - length)
        return refuse(o, SHMH_INVALID_SIZE, "access", object, "offset %lld+%zu is outside %zu bytes", (long long)offset,
                      length, v.size),
               NULL;
    return v.data + offset;
}

/* --- files and memfds ------------------------------------------------------------------------------------- */

static void unmap_file(struct resource_state *st) {
    if (st->map) shmh_unmap(st->map, st->map_len);
    st->map = NULL;
    st->map_len = 0;
    if (st->own_fd && st->fd >= 0) close(st->fd);
    if (st->own_fd) st->fd = -1;
    st->own_fd = 0;
}

static int map_file(struct resource_state *st, int read_only, struct outcome *o) {
    struct stat sb;
    if (fstat(st->fd, &sb) == -1)
        return refuse(o, errno == EBADF ? SHMH_NOT_FOUND : SHMH_UNKNOWN, "attach", object_of(st), "fstat(fd %d): %s", st->fd,
                      strerror(errno));
    if (sb.st_size <= 0) return refuse(o, SHMH_INVALID_SIZE, "attach", object_of(st), "the file is empty");
    size_t len = (size_t)sb.st_size;
    void *p;
    if (st->r->is_private) {
        p = mmap(NULL, len, PROT_READ | (read_only ? 0 : PROT_WRITE), MAP_PRIVATE, st->fd, 0);
        if (p == MAP_FAILED)
            return refuse(o, shmh_error_from_errno(SHMH_OP_SEAL, errno), "map", object_of(st), "mmap(MAP_PRIVATE): %s",
                          strerror(errno));
    } else if (!(p = shmh_map(st->fd, len, 0, read_only ? SHMH_READ_ONLY : SHMH_READ_WRITE))) {
        return library_failure(o);
    }
    st->map = p;
    st->map_len = len;
    st->read_only = read_only;
    return 0;
}

static int lock_area_init(struct resource_state *st, struct outcome *o);

static int file_create(struct resource_state *st, const struct plan_step *step, struct outcome *o) {
    if (st->map) return refuse(o, SHMH_ALREADY_EXISTS, "create", object_of(st), "this object is attached already");
    int64_t size = step->has_size ? step->size : st->r->has_size ? st->r->size : 0;
    if (size <= 0) return refuse(o, SHMH_INVALID_SIZE, "create", object_of(st), "size %lld is not positive", (long long)size);
    if (st->r->kind == PLAN_RES_FILE) {
        if (!st->r->path.s)
            return other(o, OUT_UNSUPPORTED, "file resource %s has no path in this plan", st->r->id.s);
        int fd = shmh_file_create(st->r->path.s, (size_t)size);
        if (fd == -1) return library_failure(o);
        st->fd = fd;
        st->own_fd = 1;
    } else if (st->r->has_fd) {
        st->fd = st->r->fd;
        if (shmh_fd_resize(st->fd, (size_t)size) == -1) return library_failure(o);
    } else {
        int fd = shmh_memfd_create(st->r->id.s, (size_t)size, 1);
        if (fd == -1) return library_failure(o);
        st->fd = fd;
        st->own_fd = 1;
    }
    if (map_file(st, 0, o) == -1) {
        unmap_file(st);
        return -1;
    }
    return lock_area_init(st, o);
}

static int file_attach(struct resource_state *st, int read_only, struct outcome *o) {
    if (st->map) return refuse(o, SHMH_ALREADY_EXISTS, "attach", object_of(st), "this object is attached already");
    if (st->r->kind == PLAN_RES_FILE) {
        if (!st->r->path.s) return other(o, OUT_UNSUPPORTED, "file resource %s has no path in this plan", st->r->id.s);
        int fd = shmh_file_open(st->r->path.s, read_only ? SHMH_READ_ONLY : SHMH_READ_WRITE);
        if (fd == -1) return library_failure(o);
        st->fd = fd;
        st->own_fd = 1;
    } else if (st->fd < 0) {
        if (!st->r->has_fd) return refuse(o, SHMH_NOT_FOUND, "attach", NULL, "memfd %s: no descriptor (not inherited, not created)", st->r->id.s);
        st->fd = st->r->fd;
    }
    if (map_file(st, read_only, o) == -1) {
        unmap_file(st);
        return -1;
    }
    return 0;
}

static int file_detach(struct resource_state *st, struct outcome *o) {
    if (!st->map) return refuse(o, SHMH_NOT_FOUND, "detach", object_of(st), "this object is not attached");
    int keep_fd = st->r->kind == PLAN_RES_MEMFD; /* a memfd lives on in its descriptor */
    if (keep_fd) {
        shmh_unmap(st->map, st->map_len);
        st->map = NULL;
        st->map_len = 0;
    } else {
        unmap_file(st);
    }
    return 0;
}

static int descriptor(struct resource_state *st, const struct plan_step *step, struct outcome *o) {
    if (st->r->kind == PLAN_RES_SEGMENT)
        return other(o, OUT_UNSUPPORTED, "%s needs a file or memfd resource; %s is a segment", plan_step_kind_name(step->kind),
                     st->r->id.s);
    if (st->fd >= 0) return st->fd;
    if (st->r->kind == PLAN_RES_MEMFD && st->r->has_fd) return st->fd = st->r->fd;
    return refuse(o, SHMH_NOT_FOUND, plan_step_kind_name(step->kind), object_of(st), "not attached");
}

/* --- locks ----------------------------------------------------------------------------------------------- */

static enum shmh_lock_kind area_kind(const struct resource_state *st) {
    return st->r->lock == PLAN_LOCK_FUTEX ? SHMH_LOCK_FUTEX : SHMH_LOCK_ROBUST_MUTEX;
}

/* The 64-byte lock area at lock-offset (docs/lock-layout.md). */
static void *lock_area(struct resource_state *st, const char *operation, struct outcome *o) {
    struct view v;
    if (view_of(st, &v) == -1) return refuse(o, SHMH_LOCK_ERROR, operation, object_of(st), "no lock: create or attach first"), NULL;
    int64_t off = st->r->lock_offset;
    if (off < 0 || off % 8 != 0 || v.size < 64 || (uint64_t)off > v.size - 64)
        return refuse(o, SHMH_INVALID_SIZE, operation, object_of(st), "lock-offset %lld: the 64-byte lock area must be 8-aligned and inside %zu bytes",
                      (long long)off, v.size),
               NULL;
    return v.data + off;
}

static int lock_area_init(struct resource_state *st, struct outcome *o) {
    if (st->r->lock != PLAN_LOCK_FUTEX && st->r->lock != PLAN_LOCK_ROBUST_MUTEX) return 0;
    void *area = lock_area(st, "create", o);
    if (!area) return -1;
    if (shmh_lock_init(area, area_kind(st)) == -1) return library_failure(o);
    return 0;
}

static int lockfile_of(struct resource_state *st, const struct plan_step *step, struct outcome *o) {
    if (st->lockfile_open) return 0;
    if (st->r->kind != PLAN_RES_FILE || !st->r->path.s)
        return other(o, OUT_UNSUPPORTED, "lock: lockfile on %s needs a file resource with a path (the lock file of a memfd or segment is not specified in the plan)",
                     st->r->id.s);
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s.lock", st->r->path.s) >= sizeof path)
        return refuse(o, SHMH_KEY_ERROR, plan_step_kind_name(step->kind), st->r->path.s, "the lock file path is too long");
    if (shmh_lockfile_open(&st->lockfile, path) == -1) return library_failure(o);
    st->lockfile_open = 1;
    return 0;
}

static void record_latency(uint64_t start) {
    uint64_t ns = now_ns() - start;
    if (stats.nlatencies >= MAX_LATENCY_SAMPLES) return;
    if (!stats.latencies && !(stats.latencies = malloc(MAX_LATENCY_SAMPLES * sizeof *stats.latencies))) return;
    stats.latencies[stats.nlatencies++] = ns;
}

static int expects(const struct plan_step *step, const char *name) { return step->expect.s && strcmp(step->expect.s, name) == 0; }

static int do_lock(struct resource_state *st, const struct plan_step *step, struct outcome *o, int try) {
    const char *operation = try ? "try-lock" : "lock";
    switch (st->r->lock) {
    case PLAN_LOCK_SEMAPHORE: {
        struct shmh_segment *seg = st->r->kind == PLAN_RES_SEGMENT ? segment_of(st, step, o) : NULL;
        if (st->r->kind != PLAN_RES_SEGMENT)
            return other(o, OUT_UNSUPPORTED, "lock: semaphore is a segment's lock; %s is not a segment", st->r->id.s);
        if (!seg) return -1;
        if (try) {
            if (shmh_segment_trylock(seg) == -1) {
                if (shmh_last_failure()->code == SHMH_BUSY)
                    return refuse(o, SHMH_BUSY, "try-lock", st->r->key.s, "the lock is taken");
                return library_failure(o);
            }
            return 0;
        }
        uint64_t start = now_ns();
        if (shmh_segment_lock(seg, -1) == -1) return library_failure(o);
        record_latency(start);
        return 0;
    }
    case PLAN_LOCK_FUTEX:
    case PLAN_LOCK_ROBUST_MUTEX: {
        void *area = lock_area(st, operation, o);
        if (!area) return -1;
        if (shmh_lock_check(area, area_kind(st)) == -1) return library_failure(o);
        uint64_t start = now_ns();
        int rc = try ? shmh_lock_try(area) : shmh_lock_acquire(area, -1);
        if (rc == -1 && shmh_last_failure()->code == SHMH_OWNER_DIED) {
            /* We hold the lock now. A step that expected this repairs the state (nothing to repair here). */
            library_failure(o);
            if (expects(step, "owner-died")) {
                if (!try) record_latency(start);
                if (shmh_lock_consistent(area) == -1) return library_failure(o);
            }
            return -1;
        }
        if (rc == -1) return library_failure(o);
        if (!try) record_latency(start);
        return 0;
    }
    case PLAN_LOCK_LOCKFILE: {
        if (lockfile_of(st, step, o) == -1) return -1;
        uint64_t start = now_ns();
        if ((try ? shmh_lockfile_trylock(&st->lockfile) : shmh_lockfile_lock(&st->lockfile, -1)) == -1) return library_failure(o);
        if (!try) record_latency(start);
        return 0;
    }
    }
    return 0;
}

static int do_unlock(struct resource_state *st, const struct plan_step *step, struct outcome *o) {
    switch (st->r->lock) {
    case PLAN_LOCK_SEMAPHORE: {
        if (st->r->kind != PLAN_RES_SEGMENT)
            return other(o, OUT_UNSUPPORTED, "lock: semaphore is a segment's lock; %s is not a segment", st->r->id.s);
        struct shmh_segment *seg = segment_of(st, step, o);
        if (!seg) return -1;
        return shmh_segment_unlock(seg) == -1 ? library_failure(o) : 0;
    }
    case PLAN_LOCK_FUTEX:
    case PLAN_LOCK_ROBUST_MUTEX: {
        void *area = lock_area(st, "unlock", o);
        if (!area) return -1;
        if (shmh_lock_check(area, area_kind(st)) == -1) return library_failure(o);
        return shmh_lock_release(area) == -1 ? library_failure(o) : 0;
    }
    case PLAN_LOCK_LOCKFILE:
        if (!st->lockfile_open) return refuse(o, SHMH_LOCK_ERROR, "unlock", object_of(st), "this object does not hold the lock");
        return shmh_lockfile_unlock(&st->lockfile) == -1 ? library_failure(o) : 0;
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

static int act(const struct plan_step *step, struct outcome *o) {
    struct resource_state *st = NULL;
    if (step->res.s) {
        st = find_state(&step->res);
        if (!st) /* Swift: a resource the plan does not name is not a keyed segment */
            return refuse(o, SHMH_KEY_ERROR, plan_step_kind_name(step->kind), NULL, "resource %s is not a keyed segment in this plan",
                          step->res.s);
    }
    int segment = st && st->r->kind == PLAN_RES_SEGMENT;
    switch (step->kind) {
    case PLAN_STEP_CREATE: {
        if (!segment) return file_create(st, step, o);
        struct shmh_segment *seg = segment_of(st, step, o);
        if (!seg) return -1;
        int64_t size = step->has_size ? step->size : st->r->has_size ? st->r->size : 0;
        if (shmh_segment_create(seg, size < 0 ? SIZE_MAX : (size_t)size, SHMH_READ_WRITE) == -1) return library_failure(o);
        st->read_only = 0;
        return lock_area_init(st, o);
    }
    case PLAN_STEP_ATTACH: {
        if (!segment) return file_attach(st, step->read_only, o);
        struct shmh_segment *seg = segment_of(st, step, o);
        if (!seg) return -1;
        if (shmh_segment_attach(seg, step->read_only ? SHMH_READ_ONLY : SHMH_READ_WRITE) == -1) return library_failure(o);
        st->read_only = step->read_only;
        return 0;
    }
    case PLAN_STEP_DETACH: {
        if (!segment) return file_detach(st, o);
        struct shmh_segment *seg = segment_of(st, step, o);
        if (!seg) return -1;
        return shmh_segment_detach(seg) == -1 ? library_failure(o) : 0;
    }
    case PLAN_STEP_LOCK: return do_lock(st, step, o, 0);
    case PLAN_STEP_TRY_LOCK: return do_lock(st, step, o, 1);
    case PLAN_STEP_UNLOCK: return do_unlock(st, step, o);
    case PLAN_STEP_ADD: {
        if (segment && !segment_of(st, step, o)) return -1;
        unsigned char *p = pointer(st, step->offset, 8, o);
        if (!p) return -1;
        uint64_t old; /* a plain little-endian read-modify-write, on purpose not atomic */
        memcpy(&old, p, 8);
        old += (uint64_t)step->value;
        memcpy(p, &old, 8);
        return 0;
    }
    case PLAN_STEP_ATOMIC_ADD: {
        if (segment && !segment_of(st, step, o)) return -1;
        unsigned char *p = pointer(st, step->offset, 8, o);
        if (!p) return -1;
        if ((uintptr_t)p % 8 != 0)
            return refuse(o, SHMH_INVALID_SIZE, "atomic-add", NULL, "offset %lld is not 8-byte aligned", (long long)step->offset);
        __atomic_fetch_add((uint64_t *)(void *)p, (uint64_t)step->value, __ATOMIC_RELAXED);
        return 0;
    }
    case PLAN_STEP_STORE:
        if (segment && !segment_of(st, step, o)) return -1;
        return checked_write(st, "write", step->offset, step->bytes, step->nbytes, o);
    case PLAN_STEP_CHECK: {
        if (segment && !segment_of(st, step, o)) return -1;
        uint8_t *got = malloc(step->nbytes ? step->nbytes : 1);
        if (!got) return refuse(o, SHMH_OUT_OF_RESOURCES, "read", NULL, "out of memory");
        int rc = checked_read(st, "read", step->offset, got, step->nbytes, o);
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
        if (segment && !segment_of(st, step, o)) return -1;
        struct view v;
        size_t size = view_of(st, &v) == 0 ? v.size : 0;
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf) return refuse(o, SHMH_OUT_OF_RESOURCES, "read", NULL, "out of memory");
        int rc;
        if (step->kind == PLAN_STEP_FILL) {
            memset(buf, step->byte, size);
            rc = checked_write(st, "write", 0, buf, size, o);
        } else {
            rc = checked_read(st, "read", 0, buf, size, o);
            for (size_t i = 0; rc == 0 && i < size; i++)
                if (buf[i] != step->byte)
                    rc = other(o, OUT_MISMATCH, "at offset %zu of %s: want byte %u, got %u", i, step->res.s, (unsigned)step->byte,
                               (unsigned)buf[i]);
        }
        free(buf);
        return rc;
    }
    case PLAN_STEP_TOUCH_ALL: {
        if (segment && !segment_of(st, step, o)) return -1;
        struct view v;
        if (view_of(st, &v) == -1) return refuse(o, SHMH_NOT_FOUND, "touch-all", NULL, "not attached");
        uint8_t sum = 0;
        for (size_t off = 0; off < v.size; off += 4096) sum += *(volatile uint8_t *)(v.data + off);
        (void)sum;
        return 0;
    }
    case PLAN_STEP_TRUNCATE: {
        int fd = descriptor(st, step, o);
        if (fd < 0) return -1;
        if (step->size < 0) return refuse(o, SHMH_INVALID_SIZE, "truncate", object_of(st), "size %lld is negative", (long long)step->size);
        return shmh_fd_resize(fd, (size_t)step->size) == -1 ? library_failure(o) : 0;
    }
    case PLAN_STEP_SEAL: {
        int fd = descriptor(st, step, o);
        if (fd < 0) return -1;
        return shmh_fd_add_seals(fd, step->seals) == -1 ? library_failure(o) : 0;
    }
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
    case PLAN_STEP_REPEAT_TIMES:
    case PLAN_STEP_REPEAT_FOR: return 0;
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

/* StepExecutor.perform: one step and its expectation; -1 ends the run. */
static int perform(const struct plan_step *step) {
    stats.ops++;
    struct outcome o;
    o.kind = OUT_OK;
    o.message[0] = '\0';
    if (act(step, &o) == 0 || o.kind == OUT_OK) {
        if (step->expect.s) {
            fail_worker(step, "unexpected-success", 0, "expected %s, but the step succeeded", step->expect.s);
            return -1;
        }
        return 0;
    }
    switch (o.kind) {
    case OUT_LIBRARY: {
        const char *name = shmh_error_name(o.code);
        if (!step->expect.s) {
            fail_worker(step, name, o.err, "%s", o.message);
            return -1;
        }
        if (strcmp(name, step->expect.s) != 0) {
            fail_worker(step, name, o.err, "expected %s, got %s: %s", step->expect.s, name, o.message);
            return -1;
        }
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
    for (size_t i = 0; i < plan.nresources; i++) {
        struct resource_state *st = &states[i];
        shmh_segment_free(st->segment); /* detaches (releasing a held lock); the last detach removes, as in Qt */
        st->segment = NULL;
        unmap_file(st);
        if (st->lockfile_open) shmh_lockfile_close(&st->lockfile, 0);
        st->lockfile_open = 0;
    }
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
        states[i].r = &plan.resources[i];
        states[i].fd = -1;
    }
    uint64_t start = now_ns();
    execute(0, plan.nsteps);
    stats.elapsed_ns = now_ns() - start;
    close_all();
    print_result();
    free(stats.latencies);
    free(states);
    plan_free(&plan);
    return failure.failed ? 1 : 0;
}
