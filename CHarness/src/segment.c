/* segment.c - keyed segments (QSharedMemory), the facade over both backends, with Qt's call order: open the
 * lock semaphore, lock, create or attach, unlock. Same protocol as Segment/SharedMemory.swift, including the
 * rule that the lock semaphore goes only once no process at all is attached to the segment. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>

struct shmh_segment {
    struct shmh_key key;
    struct shmh_options options;
    struct shmh_sem *semaphore;
    struct shmh_backend backend;
    bool attached;
    bool locked_by_me;
};

void shmh_backend_init(struct shmh_backend *b, const struct shmh_key *key, bool allow_foreign) {
    b->key = key;
    b->allow_foreign = allow_foreign;
    b->systemv = shmh_key_is_systemv(key->type);
    b->file.fd = -1;
    b->file.path = NULL;
    b->shmid = -1;
    b->address = NULL;
    b->size = 0;
    b->access = SHMH_READ_WRITE;
}

int shmh_backend_create(struct shmh_backend *b, size_t size, const struct shmh_site *site) {
    return b->systemv ? shmh_sysv_segment_create(b, size, site) : shmh_posix_segment_create(b, size, site);
}
int shmh_backend_attach(struct shmh_backend *b, enum shmh_access access, const struct shmh_site *site) {
    return b->systemv ? shmh_sysv_segment_attach(b, access, site) : shmh_posix_segment_attach(b, access, site);
}
int shmh_backend_detach(struct shmh_backend *b, const struct shmh_site *site) {
    return b->systemv ? shmh_sysv_segment_detach(b, site) : shmh_posix_segment_detach(b, site);
}
bool shmh_backend_destroy_if_unused(struct shmh_backend *b) {
    return b->systemv ? shmh_sysv_segment_destroy_if_unused(b) : shmh_posix_segment_destroy_if_unused(b);
}
bool shmh_backend_attached_by_any_process(const struct shmh_key *key) {
    return shmh_key_is_systemv(key->type) ? shmh_sysv_segment_attached_by_any_process(key)
                                          : shmh_posix_segment_attached_by_any_process(key);
}
void shmh_backend_release(struct shmh_backend *b) {
    if (b->address) {
        if (b->systemv) shmdt(b->address);
        else munmap(b->address, b->size);
        b->address = NULL;
    }
    shmh_objfile_close(&b->file);
    b->shmid = -1;
}

struct shmh_segment *shmh_segment_new(const struct shmh_key *key, const struct shmh_options *options) {
    struct shmh_segment *seg = calloc(1, sizeof *seg);
    if (!seg) return errno = ENOMEM, NULL;
    if (shmh_key_copy(&seg->key, key) == -1) {
        free(seg);
        return NULL;
    }
    if (options) seg->options = *options;
    else shmh_options_default(&seg->options);
    shmh_backend_init(&seg->backend, &seg->key, seg->options.allow_foreign_owner);
    return seg;
}

static int check_key(struct shmh_segment *seg, const struct shmh_site *site) {
    if (seg->key.native_len == 0) return shmh_fail_refuse(site, SHMH_KEY_ERROR, EINVAL, "the key is empty");
    if (!shmh_key_is_systemv(seg->key.type) && seg->key.type != SHMH_TYPE_POSIX)
        return shmh_fail_refuse(site, SHMH_KEY_ERROR, EINVAL, "unsupported key type %u on this platform",
                                (unsigned)seg->key.type);
    return shmh_check_key_path(&seg->key, seg->options.allow_any_path, site);
}

static void close_semaphore(struct shmh_segment *seg, bool remove_if_unused) {
    shmh_sem_close(seg->semaphore, remove_if_unused);
    seg->semaphore = NULL;
}

static bool segment_gone(const void *key) { return !shmh_backend_attached_by_any_process(key); }

/* Closes the lock semaphore, removing it only if no other library user has it open and then (asked last, it
 * is the costly question: POSIX has no attach count) no process at all is attached to a segment under the key. */
static void close_semaphore_if_segment_gone(struct shmh_segment *seg) {
    shmh_sem_close_if(seg->semaphore, true, segment_gone, &seg->key);
    seg->semaphore = NULL;
}

enum body { BODY_CREATE, BODY_ATTACH, BODY_DETACH };

/* The lock for create, attach and detach, waiting at most the operation timeout. A POSIX semaphore has no
 * SEM_UNDO: a process that dies holding it leaves it taken for ever. When no process but this one can hold
 * it (no other usage record on the semaphore's file, no other process mapping it: every sem_open maps it),
 * whoever took the unit is dead, and this handle takes its place (releasing it when done repairs the
 * semaphore). Tried at once and after every second of waiting (a holder may die while we wait); as
 * SharedMemory.acquireForOperation. */
static int acquire_for_operation(struct shmh_segment *seg) {
    struct shmh_failure saved;
    shmh_fail_save(&saved);
    if (shmh_sem_try_acquire(seg->semaphore) == 0) return 0;
    if (shmh_last_failure()->code != SHMH_BUSY) return -1;
    shmh_fail_restore(&saved);
    if (seg->semaphore->systemv) return shmh_sem_acquire(seg->semaphore, seg->options.operation_timeout_ns);
    int64_t timeout = seg->options.operation_timeout_ns;
    int64_t deadline = shmh_deadline(timeout);
    for (;;) {
        if (shmh_sem_posix_no_other_holder(seg->semaphore)) {
            (void)shmh_sem_try_acquire(seg->semaphore); /* taken: ours now; still taken: the dead holder's is ours */
            shmh_fail_restore(&saved);
            return 0;
        }
        int64_t left = shmh_remaining(deadline); /* -1: no deadline */
        if (left == 0) {
            struct shmh_site site = {"acquire", &seg->semaphore->key, NULL};
            return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, ETIMEDOUT, "timed out after %.3f s waiting for the semaphore",
                                    (double)timeout / 1e9);
        }
        int64_t slice = left < 0 || left > 1000000000LL ? 1000000000LL : left;
        if (shmh_sem_acquire(seg->semaphore, slice) == 0) return 0;
        if (shmh_last_failure()->code != SHMH_LOCK_ERROR) return -1;
        shmh_fail_restore(&saved);
    }
}

/* Opens the lock semaphore if needed, runs the body under the lock, releases it, and closes the semaphore
 * (removing it if unused) once no segment is attached. */
static int with_segment_lock(struct shmh_segment *seg, const struct shmh_site *site, enum body body, size_t size,
                             enum shmh_access access) {
    if (!seg->semaphore) {
        struct shmh_key sem_key;
        if (shmh_key_lock_semaphore_key(&seg->key, &sem_key) == -1) return -1;
        struct shmh_options sem_options = seg->options;
        seg->semaphore = shmh_sem_open(&sem_key, 1, SHMH_SEM_OPEN, &sem_options);
        int err = errno;
        shmh_key_free(&sem_key);
        if (!seg->semaphore) {
            errno = err;
            return -1;
        }
    }
    bool already_locked = seg->locked_by_me;
    if (!already_locked && acquire_for_operation(seg) == -1) {
        int err = errno;
        struct shmh_failure saved;
        shmh_fail_save(&saved);
        if (!seg->attached) close_semaphore(seg, true);
        shmh_fail_restore(&saved);
        shmh_fail_relabel(site->operation, SHMH_LOCK_ERROR, "unable to lock: ");
        errno = err;
        return -1;
    }
    int rc = 0;
    switch (body) {
    case BODY_CREATE:
        shmh_backend_init(&seg->backend, &seg->key, seg->options.allow_foreign_owner);
        rc = shmh_backend_create(&seg->backend, size, site);
        if (rc == 0 && shmh_backend_attach(&seg->backend, access, site) == -1) {
            int err = errno;
            struct shmh_failure saved;
            shmh_fail_save(&saved);
            shmh_backend_destroy_if_unused(&seg->backend);
            shmh_backend_release(&seg->backend);
            shmh_fail_restore(&saved);
            errno = err;
            rc = -1;
        } else if (rc == -1) {
            shmh_backend_release(&seg->backend);
        }
        seg->attached = rc == 0;
        break;
    case BODY_ATTACH:
        shmh_backend_init(&seg->backend, &seg->key, seg->options.allow_foreign_owner);
        rc = shmh_backend_attach(&seg->backend, access, site);
        if (rc == -1) shmh_backend_release(&seg->backend);
        seg->attached = rc == 0;
        break;
    case BODY_DETACH:
        seg->attached = false;
        rc = shmh_backend_detach(&seg->backend, site);
        shmh_backend_release(&seg->backend);
        break;
    }
    int err = errno;
    struct shmh_failure saved;
    shmh_fail_save(&saved);
    /* Qt releases the caller's own lock too when detaching while locked; keep its lock otherwise. */
    if (!already_locked || !seg->attached) {
        /* Done with the semaphore (detached): drop our usage record on a POSIX one *before* the post. The next
         * holder may be the last user; it decides under the lock whether the semaphore goes, and must not see
         * us as a user any more (else both would leave it behind). As SharedMemory.withSegmentLock. */
        if (!seg->attached && !seg->semaphore->systemv && seg->semaphore->file.fd >= 0)
            (void)shmh_ofd_lock(seg->semaphore->file.fd, 2, SHMH_USAGE_BASE, 0, false);
        shmh_sem_release(seg->semaphore, 1);
        seg->locked_by_me = false;
    }
    /* The lock semaphore goes with the segment: only if no other process using this library has it open, and
     * then only when no process (Qt's included) is attached to a segment under this key. */
    if (!seg->attached) close_semaphore_if_segment_gone(seg);
    shmh_fail_restore(&saved);
    errno = err;
    return rc;
}

int shmh_segment_create(struct shmh_segment *seg, size_t size, enum shmh_access access) {
    struct shmh_site site = {"create", &seg->key, NULL};
    if (check_key(seg, &site) == -1) return -1;
    if (seg->attached) return shmh_fail_refuse(&site, SHMH_ALREADY_EXISTS, EEXIST, "this handle is already attached");
    if (size == 0 || size > (size_t)INT64_MAX)
        return shmh_fail_refuse(&site, SHMH_INVALID_SIZE, EINVAL, "size %zu is not positive", size);
    return with_segment_lock(seg, &site, BODY_CREATE, size, access);
}

int shmh_segment_attach(struct shmh_segment *seg, enum shmh_access access) {
    struct shmh_site site = {"attach", &seg->key, NULL};
    if (check_key(seg, &site) == -1) return -1;
    if (seg->attached) return shmh_fail_refuse(&site, SHMH_ALREADY_EXISTS, EEXIST, "this handle is already attached");
    return with_segment_lock(seg, &site, BODY_ATTACH, 0, access);
}

int shmh_segment_detach(struct shmh_segment *seg) {
    struct shmh_site site = {"detach", &seg->key, NULL};
    if (!seg->attached) return shmh_fail_refuse(&site, SHMH_NOT_FOUND, EINVAL, "this handle is not attached");
    return with_segment_lock(seg, &site, BODY_DETACH, 0, SHMH_READ_WRITE);
}

int shmh_segment_lock(struct shmh_segment *seg, int64_t timeout_ns) {
    struct shmh_site site = {"lock", &seg->key, NULL};
    if (seg->locked_by_me) return 0;
    if (!seg->semaphore) return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, EINVAL, "no lock: create or attach first");
    if (shmh_sem_acquire(seg->semaphore, timeout_ns) == -1) {
        shmh_fail_relabel("lock", SHMH_LOCK_ERROR, NULL);
        return -1;
    }
    seg->locked_by_me = true;
    return 0;
}

int shmh_segment_trylock(struct shmh_segment *seg) {
    struct shmh_site site = {"try-lock", &seg->key, NULL};
    if (seg->locked_by_me) return 0;
    if (!seg->semaphore) return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, EINVAL, "no lock: create or attach first");
    if (shmh_sem_try_acquire(seg->semaphore) == -1) return -1;
    seg->locked_by_me = true;
    return 0;
}

int shmh_segment_unlock(struct shmh_segment *seg) {
    struct shmh_site site = {"unlock", &seg->key, NULL};
    if (!seg->locked_by_me || !seg->semaphore)
        return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, EPERM, "this handle does not hold the lock");
    if (shmh_sem_release(seg->semaphore, 1) == -1) return -1;
    seg->locked_by_me = false;
    return 0;
}

int shmh_segment_is_attached(const struct shmh_segment *seg) { return seg->attached; }
size_t shmh_segment_size(const struct shmh_segment *seg) { return seg->attached ? seg->backend.size : 0; }
void *shmh_segment_data(const struct shmh_segment *seg) { return seg->attached ? seg->backend.address : NULL; }
const struct shmh_key *shmh_segment_key(const struct shmh_segment *seg) { return &seg->key; }

long long shmh_segment_file_size(const struct shmh_segment *seg) {
    if (!seg->attached || seg->backend.systemv || seg->backend.file.fd < 0) return -1;
    struct stat st;
    if (fstat(seg->backend.file.fd, &st) == -1) return -1;
    return (long long)st.st_size;
}

void shmh_segment_free(struct shmh_segment *seg) {
    if (!seg) return;
    int err = errno;
    struct shmh_failure saved;
    shmh_fail_save(&saved);
    if (seg->attached) shmh_segment_detach(seg);
    if (seg->semaphore) close_semaphore_if_segment_gone(seg);
    shmh_backend_release(&seg->backend);
    shmh_key_free(&seg->key);
    free(seg);
    shmh_fail_restore(&saved);
    errno = err;
}
