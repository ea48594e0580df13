/* test_sem_posix.c - POSIX system semaphores: sem_open 0600 with O_EXCL, the sticky-bit mark on
 * /dev/shm/sem.NAME, removal by the last user only (crashes included), Qt's semaphores left alone, bad names,
 * symlinks refused, timeouts as lock-error. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void sem_file(const struct shmh_key *key, char *path, size_t len) {
    snprintf(path, len, "/dev/shm/sem.%s", key->native + 1);
}

static void create_acquire_release_remove(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "basic", SHMH_TYPE_POSIX, SHMH_KIND_SYSTEM_SEMAPHORE);
    char path[4200];
    sem_file(&key, path, sizeof path);
    struct shmh_sem *a = shmh_sem_open(&key, 2, SHMH_SEM_OPEN, NULL);
    assert_nonnull_ok(a);
    assert_true(shmh_sem_created(a));
    assert_int_equal(support_mode(path), 01600); /* 0600 + the "made by this library" mark */
    int value = -1;
    assert_ok(shmh_sem_value(a, &value));
    assert_int_equal(value, 2);
    assert_ok(shmh_sem_acquire(a, -1));
    assert_ok(shmh_sem_try_acquire(a));
    assert_int_equal(shmh_sem_try_acquire(a), -1);
    assert_failure(SHMH_BUSY);
    struct shmh_sem *b = shmh_sem_open(&key, 9, SHMH_SEM_CREATE, NULL);
    assert_nonnull_ok(b);
    assert_false(shmh_sem_created(b));
    assert_ok(shmh_sem_release(b, 3));
    assert_ok(shmh_sem_value(a, &value));
    assert_int_equal(value, 3);
    shmh_sem_close(a, 1);
    assert_true(support_exists(path)); /* b still uses it */
    shmh_sem_close(b, 1);
    assert_false(support_exists(path));
    shmh_key_free(&key);
}

static void timeout_is_a_lock_error(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "timeout", SHMH_TYPE_POSIX);
    struct shmh_sem *s = shmh_sem_open(&key, 0, SHMH_SEM_OPEN, NULL);
    assert_nonnull_ok(s);
    assert_int_equal(shmh_sem_acquire(s, 50 * 1000000LL), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_failure(SHMH_LOCK_ERROR);
    shmh_sem_close(s, 1);
    shmh_key_free(&key);
}

/* A user that dies without closing does not keep the semaphore alive (its usage record goes with it). */
static void crashed_user_does_not_block_removal(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "crash", SHMH_TYPE_POSIX);
    char path[4200];
    sem_file(&key, path, sizeof path);
    struct shmh_sem *s = shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL);
    assert_nonnull_ok(s);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (!shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL)) _exit(1);
        support_signal(ready[1]);
        pause();
        _exit(2);
    }
    assert_int_equal(support_await(ready[0]), 0);
    kill(pid, SIGKILL);
    assert_int_equal(support_wait(pid), 128 + SIGKILL);
    shmh_sem_close(s, 1);
    assert_false(support_exists(path));
    close(ready[0]);
    close(ready[1]);
    shmh_key_free(&key);
}

static void qt_made_semaphore_is_left_to_qt(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "qtsem", SHMH_TYPE_POSIX, SHMH_KIND_SYSTEM_SEMAPHORE);
    char path[4200];
    sem_file(&key, path, sizeof path);
    sem_t *qt = sem_open(key.native, O_CREAT | O_EXCL, 0600, 1);
    assert_true(qt != SEM_FAILED);
    struct shmh_sem *s = shmh_sem_open(&key, 4, SHMH_SEM_CREATE, NULL);
    assert_nonnull_ok(s);
    assert_false(shmh_sem_created(s));
    int value = -1;
    assert_ok(shmh_sem_value(s, &value));
    assert_int_equal(value, 1);
    shmh_sem_close(s, 1);
    assert_true(support_exists(path));
    sem_close(qt);
    sem_unlink(key.native);
    shmh_key_free(&key);
}

static void bad_names_are_key_errors(void **state) {
    (void)state;
    static const char *const names[] = {"/a/b", "/", "", "//"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        struct shmh_key key;
        assert_int_equal(shmh_key_init(&key, SHMH_TYPE_POSIX, names[i], (size_t)-1), 0);
        assert_null(shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL));
        assert_failure(SHMH_KEY_ERROR);
        shmh_key_free(&key);
    }
}

static void symlink_in_dev_shm_is_refused(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "symlink", SHMH_TYPE_POSIX);
    char path[4200], target[4200];
    sem_file(&key, path, sizeof path);
    snprintf(target, sizeof target, "/dev/shm/%s.target", key.native + 1);
    int fd = open(target, O_CREAT | O_EXCL | O_RDWR, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(symlink(target, path), 0);
    assert_null(shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL));
    assert_failure(SHMH_PERMISSION_DENIED);
    assert_true(support_exists(target));
    unlink(path);
    unlink(target);
    shmh_key_free(&key);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_acquire_release_remove, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(timeout_is_a_lock_error, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(crashed_user_does_not_block_removal, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(qt_made_semaphore_is_left_to_qt, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(bad_names_are_key_errors, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(symlink_in_dev_shm_is_refused, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("sem_posix", tests, NULL, NULL);
}
