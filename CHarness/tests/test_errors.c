/* test_errors.c - the error vocabulary: the same names in the same order as the Swift side (generated from
 * SharedMemoryError.swift), the errno table with its call-site refinements, and the message format. */
#include "support.h"

#include <errno.h>
#include <string.h>

#include "vectors.h"

static void names_match_the_swift_list(void **state) {
    (void)state;
    assert_int_equal(swift_error_name_count, SHMH_ERROR_COUNT);
    for (size_t i = 0; i < swift_error_name_count; i++) {
        assert_string_equal(shmh_error_name((enum shmh_error)(i + 1)), swift_error_names[i]);
        assert_int_equal(shmh_error_from_name(swift_error_names[i]), (int)(i + 1));
    }
    assert_string_equal(shmh_error_name(SHMH_OK), "ok");
    assert_null(shmh_error_name((enum shmh_error)(SHMH_ERROR_COUNT + 1)));
    assert_int_equal(shmh_error_from_name("no-such-error"), SHMH_OK);
}

static void errno_table(void **state) {
    (void)state;
    static const struct { enum shmh_op op; int err; enum shmh_error code; } rows[] = {
        {SHMH_OP_GENERIC, EACCES, SHMH_PERMISSION_DENIED}, {SHMH_OP_GENERIC, EPERM, SHMH_PERMISSION_DENIED},
        {SHMH_OP_SEAL, EPERM, SHMH_SEALED},                {SHMH_OP_GENERIC, EEXIST, SHMH_ALREADY_EXISTS},
        {SHMH_OP_GENERIC, ENOENT, SHMH_NOT_FOUND},         {SHMH_OP_GENERIC, EIDRM, SHMH_NOT_FOUND},
        {SHMH_OP_GENERIC, ENOSPC, SHMH_OUT_OF_RESOURCES},  {SHMH_OP_GENERIC, ENOMEM, SHMH_OUT_OF_RESOURCES},
        {SHMH_OP_GENERIC, EMFILE, SHMH_OUT_OF_RESOURCES},  {SHMH_OP_GENERIC, ENFILE, SHMH_OUT_OF_RESOURCES},
        {SHMH_OP_GENERIC, ERANGE, SHMH_OUT_OF_RESOURCES},  {SHMH_OP_GENERIC, ENAMETOOLONG, SHMH_KEY_ERROR},
        {SHMH_OP_GENERIC, ELOOP, SHMH_KEY_ERROR},          {SHMH_OP_GENERIC, EINVAL, SHMH_UNKNOWN},
        {SHMH_OP_NAME, EINVAL, SHMH_KEY_ERROR},            {SHMH_OP_SIZE, EINVAL, SHMH_INVALID_SIZE},
        {SHMH_OP_SEMOP, EINVAL, SHMH_NOT_FOUND},           {SHMH_OP_POST, EINVAL, SHMH_OUT_OF_RESOURCES},
        {SHMH_OP_GENERIC, EAGAIN, SHMH_LOCK_ERROR},        {SHMH_OP_TRYLOCK, EAGAIN, SHMH_BUSY},
        {SHMH_OP_TRYLOCK, EBUSY, SHMH_BUSY},               {SHMH_OP_TRYLOCK, EACCES, SHMH_BUSY},
        {SHMH_OP_SEAL, EBUSY, SHMH_BUSY},                  {SHMH_OP_GENERIC, EBUSY, SHMH_UNKNOWN},
        {SHMH_OP_LOCK, EPERM, SHMH_LOCK_ERROR},               {SHMH_OP_GENERIC, ETIMEDOUT, SHMH_LOCK_ERROR},
        {SHMH_OP_GENERIC, EDEADLK, SHMH_LOCK_ERROR},       {SHMH_OP_GENERIC, ENOTRECOVERABLE, SHMH_LOCK_ERROR},
        {SHMH_OP_GENERIC, EOWNERDEAD, SHMH_OWNER_DIED},    {SHMH_OP_GENERIC, ENXIO, SHMH_UNKNOWN},
        {SHMH_OP_GENERIC, 0, SHMH_OK},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum shmh_error got = shmh_error_from_errno(rows[i].op, rows[i].err);
        if (got != rows[i].code)
            fail_msg("op %d errno %s: got %s, want %s", rows[i].op, shmh_errno_symbol(rows[i].err),
                     shmh_error_name(got), shmh_error_name(rows[i].code));
    }
    assert_string_equal(shmh_errno_symbol(EACCES), "EACCES");
    assert_null(shmh_errno_symbol(-5));
}

static void failure_names_call_errno_and_object(void **state) {
    (void)state;
    struct shmh_key key;
    assert_int_equal(shmh_key_init(&key, SHMH_TYPE_POSIX, "/" SUPPORT_MARKER "-never-created", (size_t)-1), 0);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_non_null(seg);
    errno = 0;
    assert_int_equal(shmh_segment_detach(seg), -1);
    assert_failure(SHMH_NOT_FOUND);
    char buf[1400];
    assert_string_equal(shmh_failure_format(buf, sizeof buf),
                        "detach: this handle is not attached: not-found [posix:/" SUPPORT_MARKER "-never-created]");
    /* a failed call: open of a missing key file with a real errno */
    struct shmh_key sysv;
    assert_int_equal(shmh_key_init(&sysv, SHMH_TYPE_SYSTEMV, "/nonexistent-dir-" SUPPORT_MARKER "/k", (size_t)-1), 0);
    /* outside the temp folder: refused by the key path rule before anything is opened */
    assert_null(shmh_sem_open(&sysv, 1, SHMH_SEM_OPEN, NULL));
    assert_failure(SHMH_KEY_ERROR);
    assert_non_null(strstr(shmh_failure_format(buf, sizeof buf), "outside the temp folder"));
    struct shmh_options anywhere;
    shmh_options_default(&anywhere);
    anywhere.allow_any_path = 1;
    struct shmh_sem *sem = shmh_sem_open(&sysv, 1, SHMH_SEM_OPEN, &anywhere);
    assert_null(sem);
    assert_int_equal(errno, ENOENT);
    assert_failure(SHMH_NOT_FOUND);
    assert_string_equal(shmh_failure_format(buf, sizeof buf),
                        "open semaphore: open(/nonexistent-dir-" SUPPORT_MARKER "/k): not-found (ENOENT: No such file "
                        "or directory) [systemv:/nonexistent-dir-" SUPPORT_MARKER "/k]");
    shmh_segment_free(seg);
    shmh_key_free(&key);
    shmh_key_free(&sysv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names_match_the_swift_list),
        cmocka_unit_test(errno_table),
        cmocka_unit_test_setup_teardown(failure_names_call_errno_and_object, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("errors", tests, NULL, NULL);
}
