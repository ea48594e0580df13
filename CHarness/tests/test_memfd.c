/* test_memfd.c - memfd with seals (each refused operation is "sealed"; a write seal while a writable mapping
 * exists is "busy"), and mapped files created 0600 with O_EXCL|O_NOFOLLOW. */
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void create_map_and_share(void **state) {
    (void)state;
    int fd = shmh_memfd_create(SUPPORT_MARKER "-memfd", 8192, 1);
    assert_true(fd >= 0);
    char *a = shmh_map(fd, 8192, 0, SHMH_READ_WRITE);
    char *b = shmh_map(fd, 8192, 0, SHMH_READ_ONLY);
    assert_nonnull_ok(a);
    assert_nonnull_ok(b);
    memcpy(a + 4096, "seen", 4);
    assert_memory_equal(b + 4096, "seen", 4);
    assert_ok(shmh_unmap(a, 8192));
    assert_ok(shmh_unmap(b, 8192));
    close(fd);
}

static void seals_refuse_with_sealed(void **state) {
    (void)state;
    int fd = shmh_memfd_create(SUPPORT_MARKER "-seals", 4096, 1);
    assert_true(fd >= 0);
    assert_ok(shmh_fd_add_seals(fd, SHMH_SEAL_GROW | SHMH_SEAL_SHRINK));
    unsigned int seals = 0;
    assert_ok(shmh_fd_get_seals(fd, &seals));
    assert_int_equal(seals, SHMH_SEAL_GROW | SHMH_SEAL_SHRINK);
    assert_int_equal(shmh_fd_resize(fd, 8192), -1);
    assert_failure(SHMH_SEALED);
    assert_int_equal(shmh_fd_resize(fd, 1024), -1);
    assert_failure(SHMH_SEALED);
    /* a write seal while a writable shared mapping exists: busy */
    void *w = shmh_map(fd, 4096, 0, SHMH_READ_WRITE);
    assert_nonnull_ok(w);
    assert_int_equal(shmh_fd_add_seals(fd, SHMH_SEAL_WRITE), -1);
    assert_failure(SHMH_BUSY);
    assert_ok(shmh_unmap(w, 4096));
    assert_ok(shmh_fd_add_seals(fd, SHMH_SEAL_WRITE | SHMH_SEAL_SEAL));
    assert_null(shmh_map(fd, 4096, 0, SHMH_READ_WRITE));
    assert_failure(SHMH_SEALED);
    void *r = shmh_map(fd, 4096, 0, SHMH_READ_ONLY);
    assert_nonnull_ok(r);
    assert_ok(shmh_unmap(r, 4096));
    assert_int_equal(shmh_fd_add_seals(fd, SHMH_SEAL_FUTURE_WRITE), -1); /* F_SEAL_SEAL */
    assert_failure(SHMH_SEALED);
    close(fd);
    /* without MFD_ALLOW_SEALING, sealing itself is refused */
    fd = shmh_memfd_create(SUPPORT_MARKER "-nosealing", 4096, 0);
    assert_true(fd >= 0);
    assert_int_equal(shmh_fd_add_seals(fd, SHMH_SEAL_GROW), -1);
    assert_failure(SHMH_SEALED);
    close(fd);
}

static void mapped_files(void **state) {
    (void)state;
    char *name = support_unique("file");
    char temp[4096], path[4300], link[4400];
    assert_int_equal(shmh_qt_temp_path(temp, sizeof temp), 0);
    snprintf(path, sizeof path, "%s/%s", temp, name);
    snprintf(link, sizeof link, "%s.link", path);
    free(name);
    int fd = shmh_file_create(path, 10000);
    assert_true(fd >= 0);
    assert_int_equal(support_mode(path), 0600);
    assert_int_equal(shmh_file_create(path, 10), -1);
    assert_failure(SHMH_ALREADY_EXISTS);
    char *p = shmh_map(fd, 10000, 0, SHMH_READ_WRITE);
    assert_nonnull_ok(p);
    memcpy(p + 9000, "x", 1);
    int fd2 = shmh_file_open(path, SHMH_READ_ONLY);
    assert_true(fd2 >= 0);
    char c = 0;
    assert_int_equal(pread(fd2, &c, 1, 9000), 1);
    assert_int_equal(c, 'x');
    assert_int_equal(symlink(path, link), 0);
    assert_int_equal(shmh_file_open(link, SHMH_READ_ONLY), -1);
    assert_failure(SHMH_PERMISSION_DENIED);
    assert_ok(shmh_unmap(p, 10000));
    close(fd);
    close(fd2);
    unlink(link);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_map_and_share, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(seals_refuse_with_sealed, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(mapped_files, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("memfd", tests, NULL, NULL);
}
