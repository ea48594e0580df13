/* test_robust_mutex.c - kind 2 of the lock area: a robust process-shared mutex. A child that dies holding it
 * gives the next locker owner-died WITH the lock held; consistent() repairs it; skipping that makes the mutex
 * unrecoverable (lock-error). */
#include "support.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *shared_page(void) {
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    return p;
}

/* A child takes the lock and is killed holding it. */
static void die_holding(void *p) {
    pid_t pid = fork();
    if (pid == 0) {
        if (shmh_lock_acquire(p, -1) != 0) _exit(1);
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    assert_int_equal(support_wait(pid), 128 + SIGKILL);
}

/* Whether another process finds the lock busy. */
static int busy_in_child(void *p) {
    pid_t pid = fork();
    if (pid == 0) {
        if (shmh_lock_try(p) == 0) _exit(shmh_lock_release(p) == 0 ? 0 : 99);
        _exit((int)shmh_last_failure()->code);
    }
    return support_wait(pid);
}

static void layout_and_basic_locking(void **state) {
    (void)state;
    unsigned char *p = shared_page();
    assert_ok(shmh_lock_init(p, SHMH_LOCK_ROBUST_MUTEX));
    static const unsigned char head[8] = {0x53, 0x48, 0x4D, 0x4C, 2, 0, 0, 0};
    assert_memory_equal(p, head, 8);
    assert_ok(shmh_lock_acquire(p, -1));
    assert_int_equal(busy_in_child(p), SHMH_BUSY);
    assert_ok(shmh_lock_release(p));
    assert_int_equal(busy_in_child(p), 0);
    assert_ok(shmh_lock_acquire(p, 1000000000LL));
    pid_t pid = fork();
    if (pid == 0) _exit(shmh_lock_acquire(p, 30 * 1000000LL) == -1 && shmh_last_failure()->code == SHMH_LOCK_ERROR ? 0 : 1);
    assert_int_equal(support_wait(pid), 0); /* timed out in the child */
    assert_ok(shmh_lock_release(p));
    munmap(p, 4096);
}

static void owner_died_then_consistent(void **state) {
    (void)state;
    void *p = shared_page();
    assert_ok(shmh_lock_init(p, SHMH_LOCK_ROBUST_MUTEX));
    die_holding(p);
    assert_int_equal(shmh_lock_acquire(p, 1000000000LL), -1);
    assert_int_equal(errno, EOWNERDEAD);
    assert_failure(SHMH_OWNER_DIED);
    assert_int_equal(busy_in_child(p), SHMH_BUSY); /* the caller holds it now */
    assert_ok(shmh_lock_consistent(p));
    assert_ok(shmh_lock_release(p));
    assert_ok(shmh_lock_acquire(p, -1)); /* healthy again */
    assert_ok(shmh_lock_release(p));
    munmap(p, 4096);
}

static void without_consistent_it_is_unrecoverable(void **state) {
    (void)state;
    void *p = shared_page();
    assert_ok(shmh_lock_init(p, SHMH_LOCK_ROBUST_MUTEX));
    die_holding(p);
    assert_int_equal(shmh_lock_try(p), -1);
    assert_failure(SHMH_OWNER_DIED);
    assert_ok(shmh_lock_release(p)); /* no consistent() */
    assert_int_equal(shmh_lock_acquire(p, 0), -1);
    assert_int_equal(errno, ENOTRECOVERABLE);
    assert_failure(SHMH_LOCK_ERROR);
    munmap(p, 4096);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layout_and_basic_locking),
        cmocka_unit_test(owner_died_then_consistent),
        cmocka_unit_test(without_consistent_it_is_unrecoverable),
    };
    return cmocka_run_group_tests_name("robust_mutex", tests, NULL, NULL);
}
