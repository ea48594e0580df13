/* robust_mutex.c - kind 2 of the lock area: a robust, process-shared pthread mutex. EOWNERDEAD means the
 * caller holds the mutex and must repair the data and call shmh_robust_mutex_consistent() before unlocking. */
#include "internal.h"

#include <errno.h>
#include <time.h>

int shmh_robust_mutex_lock(struct shmh_lock_area *area, int64_t timeout_ns) {
    const struct shmh_site site = {"lock", NULL, NULL};
    int rc;
    if (timeout_ns < 0) {
        rc = pthread_mutex_lock(&area->lock.mutex);
    } else {
        int64_t deadline = shmh_deadline(timeout_ns);
        struct timespec abs = {(time_t)(deadline / 1000000000LL), (long)(deadline % 1000000000LL)};
        rc = pthread_mutex_clocklock(&area->lock.mutex, CLOCK_MONOTONIC, &abs);
    }
    if (rc == 0) return 0;
    if (rc == EOWNERDEAD)
        return shmh_fail_refuse(&site, SHMH_OWNER_DIED, EOWNERDEAD,
                                "the holder died; this process holds the mutex now and must make it consistent");
    if (rc == ETIMEDOUT)
        return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, ETIMEDOUT, "timed out after %.3f s waiting for the robust mutex",
                                (double)timeout_ns / 1e9);
    return shmh_fail_call(&site, timeout_ns < 0 ? "pthread_mutex_lock" : "pthread_mutex_clocklock", SHMH_OP_GENERIC, rc,
                          NULL);
}

int shmh_robust_mutex_trylock(struct shmh_lock_area *area) {
    const struct shmh_site site = {"try-lock", NULL, NULL};
    int rc = pthread_mutex_trylock(&area->lock.mutex);
    if (rc == 0) return 0;
    if (rc == EOWNERDEAD)
        return shmh_fail_refuse(&site, SHMH_OWNER_DIED, EOWNERDEAD,
                                "the holder died; this process holds the mutex now and must make it consistent");
    return shmh_fail_call(&site, "pthread_mutex_trylock", SHMH_OP_TRYLOCK, rc, NULL);
}

int shmh_robust_mutex_unlock(struct shmh_lock_area *area) {
    const struct shmh_site site = {"unlock", NULL, NULL};
    int rc = pthread_mutex_unlock(&area->lock.mutex);
    if (rc != 0) return shmh_fail_call(&site, "pthread_mutex_unlock", SHMH_OP_LOCK, rc, NULL);
    return 0;
}

int shmh_robust_mutex_consistent(struct shmh_lock_area *area) {
    const struct shmh_site site = {"consistent", NULL, NULL};
    int rc = pthread_mutex_consistent(&area->lock.mutex);
    if (rc != 0) return shmh_fail_call(&site, "pthread_mutex_consistent", SHMH_OP_GENERIC, rc, NULL);
    return 0;
}
