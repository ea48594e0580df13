/* segment_common.h - segment tests that run the same on both backends; included by test_segment_sysv.c and
 * test_segment_posix.c, which define BACKEND_TYPE and the backend-specific checks below. */
#ifndef SEGMENT_COMMON_H
#define SEGMENT_COMMON_H

#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Backend hooks: whether the segment of `key` exists, and remembering what teardown must check. */
static bool segment_exists(const struct shmh_key *key);
static void track(const struct shmh_key *key);
/* The lock semaphore's object path (System V key file / /dev/shm/sem.NAME). */
static void lock_object_path(const struct shmh_key *key, char *path, size_t len);

static uint64_t load_u64(const void *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* create, a second handle attaches and sees the bytes, the first detach keeps it, the last removes all. */
static void create_attach_detach(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "basic", BACKEND_TYPE, SHMH_KIND_SHARED_MEMORY);
    struct shmh_segment *a = shmh_segment_new(&key, NULL), *b = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_create(a, 4097, SHMH_READ_WRITE));
    track(&key);
    assert_int_equal(shmh_segment_size(a), 4097); /* no page rounding */
    unsigned char *p = shmh_segment_data(a);
    for (size_t i = 0; i < 4097; i++) assert_int_equal(p[i], 0);
    memcpy(p, "hello", 5);
    char sem_path[4200];
    lock_object_path(&key, sem_path, sizeof sem_path);
    assert_true(support_exists(sem_path));
    assert_ok(shmh_segment_attach(b, SHMH_READ_ONLY));
    assert_memory_equal(shmh_segment_data(b), "hello", 5);
    assert_int_equal(shmh_segment_size(b), 4097);
    assert_ok(shmh_segment_detach(a));
    assert_true(segment_exists(&key));
    assert_ok(shmh_segment_detach(b));
    assert_false(segment_exists(&key));
    assert_false(support_exists(sem_path));
    shmh_segment_free(a);
    shmh_segment_free(b);
    shmh_key_free(&key);
}

static void errors(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "errors", BACKEND_TYPE);
    struct shmh_segment *a = shmh_segment_new(&key, NULL), *b = shmh_segment_new(&key, NULL);
    assert_int_equal(shmh_segment_create(a, 0, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_INVALID_SIZE);
    assert_int_equal(shmh_segment_attach(a, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_NOT_FOUND);
    assert_int_equal(shmh_segment_detach(a), -1);
    assert_failure(SHMH_NOT_FOUND);
    assert_int_equal(shmh_segment_lock(a, 0), -1);
    assert_failure(SHMH_LOCK_ERROR);
    assert_ok(shmh_segment_create(a, 100, SHMH_READ_WRITE));
    track(&key);
    assert_int_equal(shmh_segment_create(a, 100, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_ALREADY_EXISTS);
    assert_int_equal(shmh_segment_create(b, 100, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_ALREADY_EXISTS);
    assert_ok(shmh_segment_attach(b, SHMH_READ_WRITE)); /* a failed create leaves it reachable */
    assert_ok(shmh_segment_detach(b));
    assert_ok(shmh_segment_detach(a));
    assert_false(segment_exists(&key));
    shmh_segment_free(a);
    shmh_segment_free(b);
    shmh_key_free(&key);
    struct shmh_key empty;
    assert_int_equal(shmh_key_init(&empty, BACKEND_TYPE, "", 0), 0);
    a = shmh_segment_new(&empty, NULL);
    assert_int_equal(shmh_segment_create(a, 10, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_KEY_ERROR);
    shmh_segment_free(a);
    shmh_key_free(&empty);
}

/* The segment lock excludes other handles; detach while locked releases it, as Qt does. */
static void lock_trylock_unlock(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "lock", BACKEND_TYPE);
    struct shmh_segment *a = shmh_segment_new(&key, NULL), *b = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_create(a, 64, SHMH_READ_WRITE));
    track(&key);
    assert_ok(shmh_segment_attach(b, SHMH_READ_WRITE));
    assert_ok(shmh_segment_lock(a, -1));
    assert_ok(shmh_segment_lock(a, -1)); /* twice: a no-op */
    assert_int_equal(shmh_segment_trylock(b), -1);
    assert_failure(SHMH_BUSY);
    assert_int_equal(shmh_segment_lock(b, 50 * 1000000LL), -1);
    assert_failure(SHMH_LOCK_ERROR);
    assert_ok(shmh_segment_unlock(a));
    assert_int_equal(shmh_segment_unlock(a), -1);
    assert_failure(SHMH_LOCK_ERROR);
    assert_ok(shmh_segment_trylock(b));
    assert_ok(shmh_segment_detach(b)); /* releases b's lock */
    assert_ok(shmh_segment_trylock(a));
    assert_ok(shmh_segment_unlock(a));
    assert_ok(shmh_segment_detach(a));
    shmh_segment_free(a);
    shmh_segment_free(b);
    shmh_key_free(&key);
}

/* Processes add to one counter under the segment lock: no update lost. */
static void multi_process_counter(void **state) {
    (void)state;
    enum { CHILDREN = 3, ROUNDS = 1500 };
    struct shmh_key key;
    support_legacy_key(&key, "counter", BACKEND_TYPE, SHMH_KIND_SHARED_MEMORY);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_create(seg, 4096, SHMH_READ_WRITE));
    track(&key);
    pid_t pids[CHILDREN];
    for (int c = 0; c < CHILDREN; c++) {
        pids[c] = fork();
        if (pids[c] == 0) {
            struct shmh_segment *mine = shmh_segment_new(&key, NULL);
            if (shmh_segment_attach(mine, SHMH_READ_WRITE) != 0) _exit(1);
            for (int i = 0; i < ROUNDS; i++) {
                if (shmh_segment_lock(mine, 30000000000LL) != 0) _exit(2);
                unsigned char *p = shmh_segment_data(mine);
                uint64_t v = load_u64(p) + 1;
                memcpy(p, &v, 8);
                if (shmh_segment_unlock(mine) != 0) _exit(3);
            }
            _exit(shmh_segment_detach(mine) == 0 ? 0 : 4);
        }
    }
    for (int c = 0; c < CHILDREN; c++) assert_int_equal(support_wait(pids[c]), 0);
    assert_int_equal(load_u64(shmh_segment_data(seg)), (uint64_t)CHILDREN * ROUNDS);
    assert_ok(shmh_segment_detach(seg));
    assert_false(segment_exists(&key));
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

/* An attacher that dies without detaching: the survivor's detach still cleans up. */
static void crashed_attacher_does_not_keep_the_segment(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "crashattach", BACKEND_TYPE);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_create(seg, 128, SHMH_READ_WRITE));
    track(&key);
    pid_t pid = fork();
    if (pid == 0) {
        struct shmh_segment *mine = shmh_segment_new(&key, NULL);
        if (shmh_segment_attach(mine, SHMH_READ_WRITE) != 0) _exit(1);
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    assert_int_equal(support_wait(pid), 128 + SIGKILL);
    assert_ok(shmh_segment_detach(seg));
    assert_false(segment_exists(&key));
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

/* Another user's objects are refused unless opted in (as root: a child drops to nobody). */
static void another_users_segment_needs_consent(void **state) {
    (void)state;
    if (geteuid() != 0) skip();
    struct shmh_key key;
    support_native_key(&key, "foreign", BACKEND_TYPE);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_create(seg, 128, SHMH_READ_WRITE));
    track(&key);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(10);
        struct shmh_segment *mine = shmh_segment_new(&key, NULL);
        if (shmh_segment_attach(mine, SHMH_READ_ONLY) == 0) _exit(11);
        _exit((int)shmh_last_failure()->code);
    }
    assert_int_equal(support_wait(pid), SHMH_PERMISSION_DENIED);
    assert_ok(shmh_segment_detach(seg));
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

#define COMMON_SEGMENT_TESTS                                                                                     \
    cmocka_unit_test_setup_teardown(create_attach_detach, support_setup, support_teardown),                      \
        cmocka_unit_test_setup_teardown(errors, support_setup, support_teardown),                                \
        cmocka_unit_test_setup_teardown(lock_trylock_unlock, support_setup, support_teardown),                   \
        cmocka_unit_test_setup_teardown(multi_process_counter, support_setup, support_teardown),                 \
        cmocka_unit_test_setup_teardown(crashed_attacher_does_not_keep_the_segment, support_setup, support_teardown), \
        cmocka_unit_test_setup_teardown(another_users_segment_needs_consent, support_setup, support_teardown)

#endif
