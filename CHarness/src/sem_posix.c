/* sem_posix.c - POSIX named semaphores (sem_open), created 0600 with O_EXCL as Qt does. glibc keeps one in
 * /dev/shm/sem.NAME: that file carries the usage records and the sticky-bit mark, as in
 * Semaphore/SystemSemaphore+POSIX.swift. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int shmh_sem_posix_open(struct shmh_sem *sem, unsigned int initial, const struct shmh_site *site) {
    const char *name = sem->key.native;
    const char *bare = shmh_posix_bare_name(&sem->key);
    if (!bare) return shmh_fail_refuse(site, SHMH_KEY_ERROR, EINVAL, "a POSIX semaphore name is one path component: %s", name);
    char path[4096];
    if (snprintf(path, sizeof path, "/dev/shm/sem.%s", bare) >= (int)sizeof path)
        return shmh_fail_refuse(site, SHMH_KEY_ERROR, ENAMETOOLONG, "name too long: %s", name);
    for (int attempt = 1;; attempt++) {
        if (attempt > 100) return shmh_fail_refuse(site, SHMH_KEY_ERROR, ENOENT, "the semaphore file %s keeps disappearing", path);
        /* An existing semaphore: record our use first, so that nobody removes it between open and use. */
        struct shmh_objfile existing;
        struct shmh_failure saved;
        shmh_fail_save(&saved);
        if (shmh_objfile_open_existing(&existing, path, sem->allow_foreign, site) == 0) {
            if (shmh_objfile_record_use(&existing, 0, site) == -1) {
                shmh_objfile_close(&existing);
                return -1;
            }
            if (!shmh_objfile_still_at_path(&existing)) {
                shmh_objfile_close(&existing);
                continue;
            }
            sem_t *s = sem_open(name, 0);
            if (s == SEM_FAILED) {
                int err = errno;
                shmh_objfile_close(&existing);
                if (err == ENOENT) continue;
                return shmh_fail_call(site, "sem_open", SHMH_OP_NAME, err, "%s", name);
            }
            if (!shmh_objfile_still_at_path(&existing)) {
                sem_close(s);
                shmh_objfile_close(&existing);
                continue;
            }
            sem->handle = s;
            sem->file = existing;
            sem->created = false;
            sem->managed = shmh_objfile_is_managed(&existing);
            return 0;
        }
        if (shmh_last_failure()->code != SHMH_NOT_FOUND) return -1;
        shmh_fail_restore(&saved);
        sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, initial);
        if (s == SEM_FAILED) {
            if (errno == EEXIST) continue;
            return shmh_fail_call(site, "sem_open", SHMH_OP_NAME, errno, "%s", name);
        }
        struct shmh_objfile made;
        if (shmh_objfile_open_existing(&made, path, false, site) == -1) {
            sem_close(s);
            sem_unlink(name);
            return -1;
        }
        if (shmh_objfile_record_use(&made, 0, site) == -1 || shmh_objfile_mark_managed(&made, 0600, site) == -1) {
            shmh_objfile_close(&made);
            sem_close(s);
            sem_unlink(name);
            return -1;
        }
        if (!shmh_objfile_still_at_path(&made)) {
            sem_close(s);
            shmh_objfile_close(&made);
            continue;
        }
        sem->handle = s;
        sem->file = made;
        sem->created = true;
        sem->managed = true;
        return 0;
    }
}

int shmh_sem_posix_acquire(struct shmh_sem *sem, int64_t deadline, bool try_only, const struct shmh_site *site) {
    for (;;) {
        int rc;
        const char *call = "sem_wait";
        if (try_only) {
            rc = sem_trywait(sem->handle);
            call = "sem_trywait";
        } else if (deadline == INT64_MAX) {
            rc = sem_wait(sem->handle);
        } else {
            struct timespec abs = {(time_t)(deadline / 1000000000LL), (long)(deadline % 1000000000LL)};
            rc = sem_clockwait(sem->handle, CLOCK_MONOTONIC, &abs);
            call = "sem_clockwait";
        }
        if (rc == 0) return 1;
        if (errno == EINTR) continue;
        if (errno == ETIMEDOUT || errno == EAGAIN) return 0;
        return shmh_fail_call(site, call, SHMH_OP_GENERIC, errno, "%s", sem->key.native);
    }
}

/* n posts; on a failure the ones made are taken back, so a release is all or nothing (as in Qt). */
int shmh_sem_posix_release(struct shmh_sem *sem, long n, const struct shmh_site *site) {
    for (long done = 0; done < n; done++) {
        if (sem_post(sem->handle) == -1) {
            int err = errno;
            for (long k = 0; k < done; k++) sem_trywait(sem->handle);
            return shmh_fail_call(site, "sem_post", SHMH_OP_POST, err, "%s", sem->key.native);
        }
    }
    return 0;
}

int shmh_sem_posix_value(struct shmh_sem *sem, int *value, const struct shmh_site *site) {
    if (sem_getvalue(sem->handle, value) == -1)
        return shmh_fail_call(site, "sem_getvalue", SHMH_OP_GENERIC, errno, "%s", sem->key.native);
    return 0;
}

bool shmh_sem_posix_no_other_holder(struct shmh_sem *sem) {
    if (!sem->handle || !shmh_objfile_still_at_path(&sem->file)) return false;
    if (shmh_ofd_conflicts(sem->file.fd, 1, SHMH_USAGE_BASE, 1) != 0) return false;
    const struct stat *st = &sem->file.st;
    return !shmh_any_process_maps(st->st_dev, (unsigned long long)st->st_ino, getpid(), (st->st_mode & 077) == 0, st->st_uid);
}

void shmh_sem_posix_close(struct shmh_sem *sem, bool remove_if_unused, shmh_still_removable check, const void *context) {
    if (!sem->handle) return;
    sem_close(sem->handle);
    sem->handle = NULL;
    if (remove_if_unused && shmh_objfile_provably_ours(&sem->file) && shmh_objfile_claim_for_removal(&sem->file, 0) &&
        shmh_objfile_still_at_path(&sem->file) && (!check || check(context)))
        sem_unlink(sem->key.native);
    shmh_objfile_close(&sem->file);
}
