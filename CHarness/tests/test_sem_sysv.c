/* test_sem_sysv.c - System V system semaphores: Qt's key files and ftok ids, nsems 2 for sets we make,
 * SEM_UNDO, usage records (removal by the last user only, crashes included), Qt's sets left alone,
 * symlinks and other users' files refused, semget errors mapped (mocked: ENOSPC cannot be made on demand). */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/stat.h>
#include <unistd.h>

extern int wrap_semget_failures;

static int set_nsems(const char *path, int project_id, int *nsems) {
    struct stat st;
    if (lstat(path, &st) == -1) return -1;
    key_t k = (key_t)(((uint32_t)st.st_ino & 0xFFFFu) | ((uint32_t)st.st_dev & 0xFFu) << 16 | (uint32_t)project_id << 24);
    int id = semget(k, 0, 0);
    if (id == -1) return -1;
    struct semid_ds ds;
    if (semctl(id, 0, IPC_STAT, &ds) == -1) return -1;
    *nsems = (int)ds.sem_nsems;
    return id;
}

static void create_acquire_release_remove(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "basic", SHMH_TYPE_SYSTEMV, SHMH_KIND_SYSTEM_SEMAPHORE);
    struct shmh_sem *a = shmh_sem_open(&key, 1, SHMH_SEM_CREATE, NULL);
    assert_nonnull_ok(a);
    support_track_key_file(key.native, SHMH_TYPE_SYSTEMV);
    assert_true(shmh_sem_created(a));
    assert_int_equal(support_mode(key.native), 01640); /* Qt's 0640 + the library's mark (sticky bit) */
    int nsems = 0;
    assert_true(set_nsems(key.native, SHMH_TYPE_SYSTEMV, &nsems) >= 0);
    assert_int_equal(nsems, 2); /* ours: Qt's sets have 1 */
    int value = -1;
    assert_ok(shmh_sem_value(a, &value));
    assert_int_equal(value, 1);
    assert_ok(shmh_sem_acquire(a, -1));
    assert_int_equal(shmh_sem_try_acquire(a), -1);
    assert_int_equal(errno, EAGAIN);
    assert_failure(SHMH_BUSY);
    /* Create mode on an existing set never resets it (Qt's SETVAL would) */
    struct shmh_sem *b = shmh_sem_open(&key, 5, SHMH_SEM_CREATE, NULL);
    assert_nonnull_ok(b);
    assert_false(shmh_sem_created(b));
    assert_ok(shmh_sem_value(b, &value));
    assert_int_equal(value, 0);
    assert_ok(shmh_sem_release(b, 2));
    assert_ok(shmh_sem_value(a, &value));
    assert_int_equal(value, 2);
    assert_int_equal(shmh_sem_release(a, -1), -1);
    assert_failure(SHMH_INVALID_SIZE);
    /* the first close leaves it to the other user */
    shmh_sem_close(a, 1);
    assert_true(set_nsems(key.native, SHMH_TYPE_SYSTEMV, &nsems) >= 0);
    assert_true(support_exists(key.native));
    shmh_sem_close(b, 1);
    assert_false(support_exists(key.native));
    shmh_key_free(&key);
}

static void timeout_is_a_lock_error(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "timeout", SHMH_TYPE_SYSTEMV);
    struct shmh_sem *s = shmh_sem_open(&key, 0, SHMH_SEM_OPEN, NULL);
    assert_nonnull_ok(s);
    support_track_key_file(key.native, SHMH_TYPE_SYSTEMV);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(shmh_sem_acquire(s, 100 * 1000000LL), -1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_failure(SHMH_LOCK_ERROR);
    double elapsed = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(elapsed >= 0.09 && elapsed < 5);
    shmh_sem_close(s, 1);
    shmh_key_free(&key);
}

/* A crashed user's record goes with it; its SEM_UNDO gives back what it held. */
static void crashed_user_neither_blocks_removal_nor_keeps_the_count(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "crash", SHMH_TYPE_SYSTEMV, SHMH_KIND_SYSTEM_SEMAPHORE);
    struct shmh_sem *s = shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL);
    assert_nonnull_ok(s);
    support_track_key_file(key.native, SHMH_TYPE_SYSTEMV);
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct shmh_sem *c = shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL);
        if (!c || shmh_sem_acquire(c, 5000000000LL) != 0) _exit(1);
        support_signal(ready[1]);
        pause(); /* killed while holding */
        _exit(2);
    }
    assert_int_equal(support_await(ready[0]), 0);
    int value = -1;
    assert_ok(shmh_sem_value(s, &value));
    assert_int_equal(value, 0);
    kill(pid, SIGKILL);
    assert_int_equal(support_wait(pid), 128 + SIGKILL);
    assert_ok(shmh_sem_value(s, &value));
    assert_int_equal(value, 1); /* SEM_UNDO */
    shmh_sem_close(s, 1);
    assert_false(support_exists(key.native));
    close(ready[0]);
    close(ready[1]);
    shmh_key_free(&key);
}

/* A set Qt made (nsems 1) is used but never removed by us. */
static void qt_made_set_is_left_to_qt(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "qtset", SHMH_TYPE_SYSTEMV, SHMH_KIND_SYSTEM_SEMAPHORE);
    int fd = open(key.native, O_CREAT | O_EXCL | O_RDWR, 0640);
    assert_true(fd >= 0);
    close(fd);
    support_track_key_file(key.native, 'Q');
    int qt_id = semget(ftok(key.native, 'Q'), 1, IPC_CREAT | IPC_EXCL | 0600);
    assert_true(qt_id >= 0);
    assert_int_equal(semctl(qt_id, 0, SETVAL, 1), 0);
    struct shmh_sem *s = shmh_sem_open(&key, 7, SHMH_SEM_OPEN, NULL);
    assert_nonnull_ok(s);
    assert_false(shmh_sem_created(s));
    int value = -1;
    assert_ok(shmh_sem_value(s, &value));
    assert_int_equal(value, 1);
    shmh_sem_close(s, 1);
    int nsems = 0;
    assert_int_equal(set_nsems(key.native, 'Q', &nsems), qt_id);
    assert_int_equal(nsems, 1);
    semctl(qt_id, 0, IPC_RMID);
    unlink(key.native);
    shmh_key_free(&key);
}

static void symlinked_key_file_is_refused(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "symlink", SHMH_TYPE_SYSTEMV);
    char target[4200];
    snprintf(target, sizeof target, "%s.target", key.native);
    int fd = open(target, O_CREAT | O_EXCL | O_RDWR, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(symlink(target, key.native), 0);
    assert_null(shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL));
    assert_failure(SHMH_PERMISSION_DENIED);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(support_mode(target), 0600); /* untouched */
    unlink(key.native);
    unlink(target);
    shmh_key_free(&key);
}

static void another_users_key_file_needs_consent(void **state) {
    (void)state;
    if (geteuid() != 0) skip();
    struct shmh_key key;
    support_native_key(&key, "foreign", SHMH_TYPE_SYSTEMV);
    int fd = open(key.native, O_CREAT | O_EXCL | O_RDWR, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fchown(fd, 65534, 65534), 0);
    close(fd);
    assert_null(shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL));
    assert_failure(SHMH_PERMISSION_DENIED);
    struct shmh_options options;
    shmh_options_default(&options);
    options.allow_foreign_owner = 1;
    struct shmh_sem *s = shmh_sem_open(&key, 1, SHMH_SEM_OPEN, &options);
    assert_nonnull_ok(s);
    support_track_key_file(key.native, SHMH_TYPE_SYSTEMV);
    shmh_sem_close(s, 1); /* removes the set it made and, being the last user, the key file */
    unlink(key.native);
    shmh_key_free(&key);
}

/* semget errors, mocked: ENOSPC (SEMMNI reached), EACCES, and EINVAL (2 semaphores past SEMMSL: a kernel limit,
 * said so); the key file made for the attempt goes again. */
static void semget_errors_are_mapped_and_leave_nothing(void **state) {
    (void)state;
    static const struct { int err; enum shmh_error code; } rows[] = {
        {ENOSPC, SHMH_OUT_OF_RESOURCES}, {EACCES, SHMH_PERMISSION_DENIED}, {ENOMEM, SHMH_OUT_OF_RESOURCES},
        {EINVAL, SHMH_OUT_OF_RESOURCES}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct shmh_key key;
        support_legacy_key(&key, "mocked", SHMH_TYPE_SYSTEMV, SHMH_KIND_SYSTEM_SEMAPHORE);
        wrap_semget_failures = 1;
        will_return(__wrap_semget, rows[i].err);
        assert_null(shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL));
        assert_int_equal(errno, rows[i].err);
        assert_failure(rows[i].code);
        assert_string_equal(shmh_last_failure()->call, "semget");
        assert_int_equal(strstr(shmh_last_failure()->detail, "kernel.sem SEMMSL") != NULL, rows[i].err == EINVAL);
        assert_false(support_exists(key.native));
        shmh_key_free(&key);
    }
}

static void empty_and_unsupported_keys(void **state) {
    (void)state;
    struct shmh_key key;
    assert_int_equal(shmh_key_init(&key, SHMH_TYPE_SYSTEMV, "", 0), 0);
    assert_null(shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL));
    assert_failure(SHMH_KEY_ERROR);
    shmh_key_free(&key);
    assert_int_equal(shmh_key_init(&key, SHMH_TYPE_WINDOWS, "Global\\x", (size_t)-1), 0);
    assert_null(shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL));
    assert_failure(SHMH_KEY_ERROR);
    shmh_key_free(&key);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_acquire_release_remove, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(timeout_is_a_lock_error, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(crashed_user_neither_blocks_removal_nor_keeps_the_count, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(qt_made_set_is_left_to_qt, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(symlinked_key_file_is_refused, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(another_users_key_file_needs_consent, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(semget_errors_are_mapped_and_leave_nothing, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(empty_and_unsupported_keys, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("sem_sysv", tests, NULL, NULL);
}
