/* plan.h - the worker plan format, version 1 (docs/worker-protocol.md; the reference is
 * Sources/WorkerKit/Plan.swift). Plain C11 and libc only: no libshmh, no other library. */
#ifndef SHMH_WORKER_PLAN_H
#define SHMH_WORKER_PLAN_H

#include <stddef.h>
#include <stdint.h>

/* A decoded value: may contain NUL bytes (Qt keys may); always NUL-terminated after `len` bytes. */
struct plan_text {
    char *s;
    size_t len;
};

enum plan_resource_kind { PLAN_RES_SEGMENT, PLAN_RES_FILE, PLAN_RES_MEMFD, PLAN_RES_SEMAPHORE };
enum plan_lock_kind { PLAN_LOCK_SEMAPHORE, PLAN_LOCK_FUTEX, PLAN_LOCK_ROBUST_MUTEX, PLAN_LOCK_LOCKFILE };

struct plan_resource {
    struct plan_text id;
    enum plan_resource_kind kind;
    struct plan_text key; /* s == NULL: none */
    int has_size;
    int64_t size;
    enum plan_lock_kind lock;
    int64_t lock_offset;
    struct plan_text path; /* s == NULL: none */
    int has_fd;
    int fd;
    int is_private;
    int has_initial; /* semaphores: initial= given */
    int64_t initial; /* semaphores: the count a create (or an open that makes it) starts with */
};

enum plan_step_kind {
    PLAN_STEP_CREATE,
    PLAN_STEP_ATTACH,
    PLAN_STEP_DETACH,
    PLAN_STEP_LOCK,
    PLAN_STEP_UNLOCK,
    PLAN_STEP_TRY_LOCK,
    PLAN_STEP_ADD,
    PLAN_STEP_ATOMIC_ADD,
    PLAN_STEP_STORE,
    PLAN_STEP_CHECK,
    PLAN_STEP_FILL,
    PLAN_STEP_CHECK_FILL,
    PLAN_STEP_TRUNCATE,
    PLAN_STEP_SEAL,
    PLAN_STEP_TOUCH_ALL,
    PLAN_STEP_BARRIER,
    PLAN_STEP_SLEEP,
    PLAN_STEP_CRASH,
    PLAN_STEP_REPEAT_TIMES,
    PLAN_STEP_REPEAT_FOR,
    PLAN_STEP_LOAD,         /* a plain 64-bit load into the worker's register */
    PLAN_STEP_STORE_LOADED, /* a plain 64-bit store of the register + value (plus=) */
    PLAN_STEP_COMPARE,      /* the u64 at offset equals the u64 at with= */
    PLAN_STEP_SEND_FD,      /* res's descriptor (SCM_RIGHTS) to every process of group to= */
    PLAN_STEP_RECEIVE_FD,   /* the next descriptor a peer sends becomes res */
    PLAN_STEP_SYNC,         /* msync(MS_SYNC) of res's mapping */
    PLAN_STEP_CHECK_FILE,   /* pread of res's file, opened afresh, compared as check */
    PLAN_STEP_ACQUIRE,      /* semaphores: take n= units, one at a time, each within timeout-ns= */
    PLAN_STEP_RELEASE,      /* semaphores: give back n= units at once */
    PLAN_STEP_TRY_ACQUIRE,  /* semaphores: take one unit if the count is above 0, else busy */
    PLAN_STEP_CHECK_VALUE,  /* semaphores: the count is value= */
    PLAN_STEP_CHECK_AT_MOST, /* the u64 at offset is at most max= */
};

/* Seal bits (the same values as libshmh's SHMH_SEAL_*). */
#define PLAN_SEAL_SEAL 0x0001u
#define PLAN_SEAL_SHRINK 0x0002u
#define PLAN_SEAL_GROW 0x0004u
#define PLAN_SEAL_WRITE 0x0008u
#define PLAN_SEAL_FUTURE_WRITE 0x0010u

/* One item of the flat step list, in plan order. A repeat is followed by its body: `body` direct children
 * (a nested repeat counts as one) spanning `span` items of the list. */
struct plan_step {
    enum plan_step_kind kind;
    int line;                  /* the step's line in the scenario file */
    struct plan_text res;      /* s == NULL: none */
    struct plan_text expect;   /* expect-error: a name, or a comma list (none = success); s == NULL: none */
    struct plan_text count;    /* count=NAME: tally the step's outcome under NAME; s == NULL: none */
    struct plan_text name;     /* barrier; send-fd: the group (to=) */
    int has_size;              /* create: size given */
    int64_t size;              /* create, truncate */
    int read_only;             /* attach mode=ro */
    int private_map;           /* attach mode=private: a file mapped MAP_PRIVATE, writable (copy-on-write) */
    int64_t offset;            /* add, atomic-add, store, check, load, store-loaded, compare */
    int64_t value;             /* add, atomic-add, check-value; store-loaded: plus= */
    int64_t n;                 /* acquire, release: units */
    int64_t with;              /* compare: the other offset */
    uint8_t *bytes;            /* store, check: the value as bytes (u64: 8 little-endian bytes) */
    size_t nbytes;
    int is_u64;                /* store, check: given as u64= (else hex=) */
    uint64_t u64;              /* check-at-most: max= */
    uint8_t byte;              /* fill, check-fill */
    unsigned int seals;        /* seal */
    int64_t ns;                /* sleep, repeat for-ns; lock, acquire: timeout-ns (0: wait without limit) */
    int signal;                /* crash */
    int64_t times;             /* repeat times */
    size_t body;               /* repeat: direct children */
    size_t span;               /* repeat: items after this one that belong to it */
};

/* `channel GROUP INDEX fd=N`: an inherited socket connected to process INDEX of worker GROUP. */
struct plan_channel {
    struct plan_text group;
    long index;
    int fd;
};

struct plan {
    struct plan_text file;
    struct plan_text group;
    long index, count;
    struct plan_resource *resources;
    size_t nresources;
    struct plan_step *steps;
    size_t nsteps;
    struct plan_channel *channels;
    size_t nchannels;
};

/* The kind's spelling in plans and results ("try-lock"; "repeat" for both repeats). */
const char *plan_step_kind_name(enum plan_step_kind kind);

/* Parses a plan, strictly: an unknown or repeated field, a malformed number, hex value, seal, mode or signal is a
 * broken plan. 0 on success; -1 (a broken plan: the worker exits 2) with "plan line N: why" in err.
 * On failure `out` holds nothing to free. */
int plan_parse(const char *text, size_t len, struct plan *out, char *err, size_t errlen);
void plan_free(struct plan *plan);

/* Percent-decoding as Plan.decode: -1 on a bad escape. out->s is malloc'd. */
int plan_decode(const char *text, size_t len, struct plan_text *out);

const struct plan_resource *plan_resource(const struct plan *plan, const char *id, size_t len);

#endif
