/* test_futex.c - the lock area (docs/lock-layout.md) and its futex word: layout bytes, init/check, lock,
 * try-lock busy, timeout, a waiter woken by another process, and a multi-process counter with no lost update. */
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

static void layout_bytes(void **state) {
    (void)state;
    unsigned char *p = shared_page();
    memset(p, 0xAB, 64);
    assert_ok(shmh_lock_init(p, SHMH_LOCK_FUTEX));
    static const unsigned char head[8] = {0x53, 0x48, 0x4D, 0x4C, 1, 0, 0, 0}; /* "SHML", kind 1, LE */
    assert_memory_equal(p, head, 8);
    for (int i = 8; i < 64; i++) assert_int_equal(p[i], 0);
    assert_ok(shmh_lock_acquire(p, -1));
    uint32_t word, owner;
    memcpy(&word, p + 16, 4);
    memcpy(&owner, p + 20, 4);
    assert_int_equal(word, 1);
    assert_int_equal(owner, (uint32_t)getpid());
    assert_ok(shmh_lock_release(p));
    memcpy(&word, p + 16, 4);
    memcpy(&owner, p + 20, 4);
    assert_int_equal(word, 0);
    assert_int_equal(owner, (uint32_t)getpid()); /* the last taker stays recorded (docs/lock-layout.md) */
    munmap(p, 4096);
}

static void uninitialised_or_wrong_kind_is_a_lock_error(void **state) {
    (void)state;
    unsigned char *p = shared_page();
    assert_int_equal(shmh_lock_acquire(p, 0), -1);
    assert_failure(SHMH_LOCK_ERROR);
    assert_ok(shmh_lock_init(p, SHMH_LOCK_FUTEX));
    assert_int_equal(shmh_lock_check(p, SHMH_LOCK_ROBUST_MUTEX), -1);
    assert_failure(SHMH_LOCK_ERROR);
    assert_int_equal(shmh_lock_init(p + 4, SHMH_LOCK_FUTEX), -1); /* misaligned */
    munmap(p, 4096);
}

static void busy_timeout_and_unlock_errors(void **state) {
    (void)state;
    void *p = shared_page();
    assert_ok(shmh_lock_init(p, SHMH_LOCK_FUTEX));
    assert_ok(shmh_lock_try(p));
    assert_int_equal(shmh_lock_try(p), -1);
    assert_failure(SHMH_BUSY);
    assert_int_equal(shmh_lock_acquire(p, 30 * 1000000LL), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_failure(SHMH_LOCK_ERROR);
    assert_ok(shmh_lock_release(p));
    assert_int_equal(shmh_lock_release(p), -1);
    assert_failure(SHMH_LOCK_ERROR);
    munmap(p, 4096);
}

/* A waiter blocks in FUTEX_WAIT and is woken by the holder's unlock in another process. */
static void waiter_is_woken_across_processes(void **state) {
    (void)state;
    unsigned char *p = shared_page();
    assert_ok(shmh_lock_init(p, SHMH_LOCK_FUTEX));
    assert_ok(shmh_lock_acquire(p, -1));
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        support_signal(ready[1]);
        if (shmh_lock_acquire(p, 10000000000LL) != 0) _exit(1);
        p[100] = 42;
        _exit(shmh_lock_release(p) == 0 ? 0 : 2);
    }
    assert_int_equal(support_await(ready[0]), 0);
    /* the child is on its way to FUTEX_WAIT: wait until it marked the word contended (2), at most 10 s */
    uint32_t word = 0;
    for (int i = 0; i < 10000; i++) {
        __atomic_load((uint32_t *)(void *)(p + 16), &word, __ATOMIC_SEQ_CST);
        if (word == 2) break;
        usleep(1000);
    }
    if (word != 2) fail_msg("the waiter never marked the lock word contended (word %u after 10 s)", word);
    assert_ok(shmh_lock_release(p));
    assert_int_equal(support_wait(pid), 0);
    assert_int_equal(p[100], 42);
    close(ready[0]);
    close(ready[1]);
    munmap(p, 4096);
}

static void multi_process_counter(void **state) {
    (void)state;
    enum { CHILDREN = 4, ROUNDS = 20000 };
    unsigned char *p = shared_page();
    assert_ok(shmh_lock_init(p, SHMH_LOCK_FUTEX));
    pid_t pids[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        pids[c] = fork();
        if (pids[c] == 0) {
            volatile uint64_t *counter = (volatile uint64_t *)(p + 64);
            for (int i = 0; i < ROUNDS; i++) {
                if (shmh_futex_lock((struct shmh_lock_area *)p, -1) != 0) _exit(1);
                *counter = *counter + 1;
                if (shmh_futex_unlock((struct shmh_lock_area *)p) != 0) _exit(2);
            }
            _exit(0);
        }
    }
    for (int c = 0; c < CHILDREN; c++) assert_int_equal(support_wait(pids[c]), 0);
    assert_int_equal(*(uint64_t *)(p + 64), (uint64_t)CHILDREN * ROUNDS);
    munmap(p, 4096);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layout_bytes),
        cmocka_unit_test(uninitialised_or_wrong_kind_is_a_lock_error),
        cmocka_unit_test(busy_timeout_and_unlock_errors),
        cmocka_unit_test(waiter_is_woken_across_processes),
        cmocka_unit_test(multi_process_counter),
    };
    return cmocka_run_group_tests_name("futex", tests, NULL, NULL);
}
