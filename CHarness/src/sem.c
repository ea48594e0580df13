/* sem.c - system semaphores (QSystemSemaphore) on both backends, as Semaphore/SystemSemaphore.swift:
 * made or opened at once; both modes create a missing semaphore with the initial value and never reset an
 * existing one; removed only by the last user of this library, and only if this library created it. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>

void shmh_options_default(struct shmh_options *options) {
    options->allow_foreign_owner = 0;
    options->operation_timeout_ns = SHMH_DEFAULT_OPERATION_TIMEOUT_NS;
    options->allow_any_path = 0;
}

struct shmh_sem *shmh_sem_open(const struct shmh_key *key, long initial, enum shmh_sem_mode mode,
                               const struct shmh_options *options) {
    (void)mode; /* both modes create a missing semaphore and never reset an existing one */
    struct shmh_site site = {"open semaphore", key, NULL};
    if (key->native_len == 0) return shmh_fail_refuse(&site, SHMH_KEY_ERROR, EINVAL, "the key is empty"), NULL;
    if (initial < 0 || initial > INT32_MAX)
        return shmh_fail_refuse(&site, SHMH_INVALID_SIZE, EINVAL, "initial value %ld is out of range", initial), NULL;
    bool systemv = shmh_key_is_systemv(key->type);
    if (!systemv && key->type != SHMH_TYPE_POSIX)
        return shmh_fail_refuse(&site, SHMH_KEY_ERROR, EINVAL, "unsupported key type %u on this platform",
                                (unsigned)key->type), NULL;
    if (shmh_check_key_path(key, options && options->allow_any_path, &site) == -1) return NULL;
    struct shmh_sem *sem = calloc(1, sizeof *sem);
    if (!sem) return errno = ENOMEM, NULL;
    if (shmh_key_copy(&sem->key, key) == -1) {
        free(sem);
        return NULL;
    }
    site.key = &sem->key;
    sem->systemv = systemv;
    sem->semid = -1;
    sem->file.fd = -1;
    sem->initial = (int)initial;
    sem->allow_foreign = options && options->allow_foreign_owner;
    int rc = systemv ? shmh_sem_sysv_open(sem, &site) : shmh_sem_posix_open(sem, (unsigned)initial, &site);
    if (rc == -1) {
        int err = errno;
        shmh_key_free(&sem->key);
        free(sem);
        errno = err;
        return NULL;
    }
    return sem;
}

static int acquire(struct shmh_sem *sem, int64_t deadline, bool try_only, const struct shmh_site *site) {
    return sem->systemv ? shmh_sem_sysv_operate(sem, -1, deadline, try_only, site)
                        : shmh_sem_posix_acquire(sem, deadline, try_only, site);
}

int shmh_sem_acquire(struct shmh_sem *sem, int64_t timeout_ns) {
    struct shmh_site site = {"acquire", &sem->key, NULL};
    int rc = acquire(sem, shmh_deadline(timeout_ns), false, &site);
    if (rc == 0)
        return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, ETIMEDOUT, "timed out after %.3f s waiting for the semaphore",
                                (double)timeout_ns / 1e9);
    return rc < 0 ? -1 : 0;
}

int shmh_sem_try_acquire(struct shmh_sem *sem) {
    struct shmh_site site = {"try-acquire", &sem->key, NULL};
    int rc = acquire(sem, 0, true, &site);
    if (rc == 0) return shmh_fail_refuse(&site, SHMH_BUSY, EAGAIN, "the semaphore's count is 0");
    return rc < 0 ? -1 : 0;
}

int shmh_sem_release(struct shmh_sem *sem, long n) {
    struct shmh_site site = {"release", &sem->key, NULL};
    if (n < 0 || n > 32767) return shmh_fail_refuse(&site, SHMH_INVALID_SIZE, EINVAL, "release count %ld is out of range", n);
    if (n == 0) return 0;
    if (sem->systemv) return shmh_sem_sysv_operate(sem, (int)n, INT64_MAX, false, &site) < 0 ? -1 : 0;
    return shmh_sem_posix_release(sem, n, &site);
}

int shmh_sem_value(struct shmh_sem *sem, int *value) {
    struct shmh_site site = {"value", &sem->key, NULL};
    return sem->systemv ? shmh_sem_sysv_value(sem, value, &site) : shmh_sem_posix_value(sem, value, &site);
}

int shmh_sem_created(const struct shmh_sem *sem) { return sem->created; }

/* This process's usage record goes first: two last users closing at the same moment would otherwise each see the
 * other's record, and neither would remove the semaphore (SystemSemaphore.close does the same). */
void shmh_sem_close(struct shmh_sem *sem, int remove_if_unused) {
    if (remove_if_unused) shmh_sem_drop_record_before_close(sem);
    shmh_sem_close_if(sem, remove_if_unused, NULL, NULL);
}

void shmh_sem_drop_record_before_close(struct shmh_sem *sem) {
    if (sem) shmh_objfile_release_usage(&sem->file);
}

void shmh_sem_close_if(struct shmh_sem *sem, int remove_if_unused, shmh_still_removable check, const void *context) {
    if (!sem) return;
    int err = errno;
    if (sem->systemv) shmh_sem_sysv_close(sem, remove_if_unused, check, context);
    else shmh_sem_posix_close(sem, remove_if_unused, check, context);
    shmh_key_free(&sem->key);
    free(sem);
    errno = err;
}
