/* test_lockfile.c - lock files: created 0600 without following symlinks, an exclusive OFD lock on byte 0
 * that other open file descriptions see (busy, timeout) and that the kernel drops when the holder dies. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void lock_path(char *path, size_t len) {
    char *name = support_unique("lock");
    char temp[4096];
    assert_int_equal(shmh_qt_temp_path(temp, sizeof temp), 0);
    snprintf(path, len, "%s/%s.lock", temp, name);
    free(name);
}

static void lock_busy_timeout_unlock(void **state) {
    (void)state;
    char path[4200];
    lock_path(path, sizeof path);
    struct shmh_lockfile a, b;
    assert_ok(shmh_lockfile_open(&a, path));
    assert_int_equal(support_mode(path), 0600);
    assert_ok(shmh_lockfile_open(&b, path));
    assert_ok(shmh_lockfile_lock(&a, -1));
    assert_int_equal(shmh_lockfile_trylock(&b), -1);
    assert_failure(SHMH_BUSY);
    assert_int_equal(shmh_lockfile_lock(&b, 20 * 1000000LL), -1);
    assert_failure(SHMH_LOCK_ERROR);
    assert_ok(shmh_lockfile_unlock(&a));
    assert_ok(shmh_lockfile_trylock(&b));
    assert_ok(shmh_lockfile_unlock(&b));
    shmh_lockfile_close(&b, 0);
    shmh_lockfile_close(&a, 1);
    assert_false(support_exists(path));
}

static void dead_holder_releases(void **state) {
    (void)state;
    char path[4200];
    lock_path(path, sizeof path);
    struct shmh_lockfile a;
    assert_ok(shmh_lockfile_open(&a, path));
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        struct shmh_lockfile c;
        if (shmh_lockfile_open(&c, path) != 0 || shmh_lockfile_lock(&c, -1) != 0) _exit(1);
        support_signal(ready[1]);
        pause();
        _exit(2);
    }
    assert_int_equal(support_await(ready[0]), 0);
    assert_int_equal(shmh_lockfile_trylock(&a), -1);
    kill(pid, SIGKILL);
    assert_int_equal(support_wait(pid), 128 + SIGKILL);
    assert_ok(shmh_lockfile_lock(&a, 1000000000LL));
    shmh_lockfile_close(&a, 1);
    close(ready[0]);
    close(ready[1]);
}

static void symlink_is_refused(void **state) {
    (void)state;
    char path[4200], target[4300];
    lock_path(path, sizeof path);
    snprintf(target, sizeof target, "%s.target", path);
    int fd = open(target, O_CREAT | O_EXCL | O_RDWR, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(symlink(target, path), 0);
    struct shmh_lockfile a;
    assert_int_equal(shmh_lockfile_open(&a, path), -1);
    assert_failure(SHMH_PERMISSION_DENIED);
    unlink(path);
    unlink(target);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(lock_busy_timeout_unlock, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(dead_holder_releases, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(symlink_is_refused, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("lockfile", tests, NULL, NULL);
}
