/* futex.c - the lock area (docs/lock-layout.md) and its kind 1, a futex word (Drepper's "mutex 2"):
 * 0 free, 1 locked, 2 locked with possible waiters; shared (not FUTEX_PRIVATE_FLAG) futex operations. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const struct shmh_site lock_site = {"lock", NULL, NULL};

/* The pid recorded as the holder, without a getpid() system call per lock: read once, and again in the child
 * after fork() (pthread_atfork). A child made without glibc's fork() that does not exec records its parent's
 * pid (the field is informational). */
static uint32_t cached_pid;
static pthread_once_t pid_once = PTHREAD_ONCE_INIT;
static void pid_reset(void) { __atomic_store_n(&cached_pid, 0, __ATOMIC_RELAXED); }
static void pid_register(void) { pthread_atfork(NULL, NULL, pid_reset); }

static uint32_t holder_pid(void);

/* The owner field names the last taker; written only when it differs (a store before the next locked
 * instruction would wait for the store buffer: a process re-locking writes nothing). */
static void record_holder(struct shmh_lock_area *area) {
    uint32_t pid = holder_pid();
    if (__atomic_load_n(&area->lock.futex.owner, __ATOMIC_RELAXED) != pid)
        __atomic_store_n(&area->lock.futex.owner, pid, __ATOMIC_RELAXED);
}

static uint32_t holder_pid(void) {
    uint32_t pid = __atomic_load_n(&cached_pid, __ATOMIC_RELAXED);
    if (pid != 0) return pid;
    pthread_once(&pid_once, pid_register);
    pid = (uint32_t)getpid();
    __atomic_store_n(&cached_pid, pid, __ATOMIC_RELAXED);
    return pid;
}

static int futex_wait_until(uint32_t *word, uint32_t expected, int64_t deadline) {
    struct timespec abs, *timeout = NULL;
    if (deadline != INT64_MAX) {
        abs.tv_sec = (time_t)(deadline / 1000000000LL);
        abs.tv_nsec = (long)(deadline % 1000000000LL);
        timeout = &abs;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time: no recomputation after EINTR. */
    return (int)syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, timeout, NULL, FUTEX_BITSET_MATCH_ANY);
}

static int futex_wake(uint32_t *word, int count) { return (int)syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0); }

int shmh_futex_lock(struct shmh_lock_area *area, int64_t timeout_ns) {
    uint32_t *word = &area->lock.futex.word;
    uint32_t c = 0;
    if (!__atomic_compare_exchange_n(word, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        int64_t deadline = shmh_deadline(timeout_ns);
        if (c != 2) c = __atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE);
        while (c != 0) {
            if (futex_wait_until(word, 2, deadline) == -1 && errno != EAGAIN && errno != EINTR) {
                if (errno == ETIMEDOUT)
                    return shmh_fail_refuse(&lock_site, SHMH_LOCK_ERROR, ETIMEDOUT,
                                            "timed out after %.3f s waiting for the futex lock (holder pid %u)",
                                            (double)timeout_ns / 1e9, __atomic_load_n(&area->lock.futex.owner, __ATOMIC_RELAXED));
                return shmh_fail_call(&lock_site, "futex(FUTEX_WAIT_BITSET)", SHMH_OP_GENERIC, errno, NULL);
            }
            c = __atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE);
        }
    }
    record_holder(area);
    return 0;
}

int shmh_futex_trylock(struct shmh_lock_area *area) {
    uint32_t c = 0;
    if (!__atomic_compare_exchange_n(&area->lock.futex.word, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        const struct shmh_site site = {"try-lock", NULL, NULL};
        return shmh_fail_refuse(&site, SHMH_BUSY, EBUSY, "the futex lock is held (pid %u)",
                                __atomic_load_n(&area->lock.futex.owner, __ATOMIC_RELAXED));
    }
    record_holder(area);
    return 0;
}

int shmh_futex_unlock(struct shmh_lock_area *area) {
    uint32_t *word = &area->lock.futex.word;
    if (__atomic_load_n(word, __ATOMIC_RELAXED) == 0) {
        const struct shmh_site site = {"unlock", NULL, NULL};
        return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, EPERM, "the futex lock is not held");
    }
    if (__atomic_fetch_sub(word, 1, __ATOMIC_RELEASE) != 1) {
        __atomic_store_n(word, 0, __ATOMIC_RELEASE);
        futex_wake(word, 1);
    }
    return 0;
}

/* --- the area --- */

int shmh_lock_init(void *area_ptr, enum shmh_lock_kind kind) {
    const struct shmh_site site = {"lock init", NULL, NULL};
    struct shmh_lock_area *area = area_ptr;
    if (!area || ((uintptr_t)area & 7) != 0)
        return shmh_fail_refuse(&site, SHMH_INVALID_SIZE, EINVAL, "the lock area must be 8-byte aligned");
    if (kind != SHMH_LOCK_FUTEX && kind != SHMH_LOCK_ROBUST_MUTEX)
        return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, EINVAL, "unknown lock kind %d", (int)kind);
    /* magic goes first, so that nobody uses the area while it is being (re)initialised */
    __atomic_store_n(&area->magic, 0, __ATOMIC_RELAXED);
    memset((char *)area + 4, 0, sizeof *area - 4);
    if (kind == SHMH_LOCK_ROBUST_MUTEX) {
        pthread_mutexattr_t attr;
        int rc = pthread_mutexattr_init(&attr);
        if (rc == 0) rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        if (rc == 0) rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        if (rc == 0) rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_NORMAL);
        if (rc == 0) rc = pthread_mutex_init(&area->lock.mutex, &attr);
        pthread_mutexattr_destroy(&attr);
        if (rc != 0) return shmh_fail_call(&site, "pthread_mutex_init", SHMH_OP_GENERIC, rc, NULL);
    }
    area->kind = (uint32_t)kind;
    __atomic_store_n(&area->magic, SHMH_LOCK_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

int shmh_lock_check(const void *area_ptr, enum shmh_lock_kind kind) {
    const struct shmh_site site = {"lock", NULL, NULL};
    const struct shmh_lock_area *area = area_ptr;
    uint32_t magic = __atomic_load_n(&area->magic, __ATOMIC_ACQUIRE);
    if (magic != SHMH_LOCK_MAGIC)
        return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, EINVAL, "no initialised lock area (magic 0x%08x)", magic);
    if (area->kind != (uint32_t)kind)
        return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, EINVAL, "the lock area holds kind %u, not %d", area->kind, (int)kind);
    return 0;
}

static int area_kind(const void *area_ptr) {
    const struct shmh_lock_area *area = area_ptr;
    if (__atomic_load_n(&area->magic, __ATOMIC_ACQUIRE) == SHMH_LOCK_MAGIC &&
        (area->kind == SHMH_LOCK_FUTEX || area->kind == SHMH_LOCK_ROBUST_MUTEX))
        return (int)area->kind;
    shmh_lock_check(area_ptr, SHMH_LOCK_FUTEX); /* records the refusal */
    return -1;
}

int shmh_lock_acquire(void *area, int64_t timeout_ns) {
    switch (area_kind(area)) {
    case SHMH_LOCK_FUTEX: return shmh_futex_lock(area, timeout_ns);
    case SHMH_LOCK_ROBUST_MUTEX: return shmh_robust_mutex_lock(area, timeout_ns);
    default: return -1;
    }
}

int shmh_lock_try(void *area) {
    switch (area_kind(area)) {
    case SHMH_LOCK_FUTEX: return shmh_futex_trylock(area);
    case SHMH_LOCK_ROBUST_MUTEX: return shmh_robust_mutex_trylock(area);
    default: return -1;
    }
}

int shmh_lock_release(void *area) {
    switch (area_kind(area)) {
    case SHMH_LOCK_FUTEX: return shmh_futex_unlock(area);
    case SHMH_LOCK_ROBUST_MUTEX: return shmh_robust_mutex_unlock(area);
    default: return -1;
    }
}

int shmh_lock_consistent(void *area) {
    if (shmh_lock_check(area, SHMH_LOCK_ROBUST_MUTEX) == -1) return -1;
    return shmh_robust_mutex_consistent(area);
}
