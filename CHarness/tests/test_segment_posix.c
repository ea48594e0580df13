/* test_segment_posix.c - POSIX keyed segments: the common cases on this backend, plus the sticky-bit mark,
 * Qt's own segments left alone, full allocation at create (posix_fallocate errors mocked: a full /dev/shm
 * cannot be made on demand), and a dead lock holder: lock-error after the timeout instead of a hang while
 * another handle might hold it, and the last user detaching at once and removing both objects. */
#define BACKEND_TYPE SHMH_TYPE_POSIX
#include "segment_common.h"

#include <sys/mman.h>
#include <sys/stat.h>

extern int wrap_fallocate_failures;

static void object_path(const struct shmh_key *key, char *path, size_t len) {
    snprintf(path, len, "/dev/shm/%s", key->native + 1);
}

static bool segment_exists(const struct shmh_key *key) {
    char path[4200];
    object_path(key, path, sizeof path);
    return support_exists(path);
}

static void lock_object_path(const struct shmh_key *key, char *path, size_t len) {
    struct shmh_key sem;
    assert_int_equal(shmh_key_lock_semaphore_key(key, &sem), 0);
    snprintf(path, len, "/dev/shm/sem.%s", sem.native + 1);
    shmh_key_free(&sem);
}

static void track(const struct shmh_key *key) { (void)key; /* /dev/shm is checked by name */ }

static void marked_and_fully_allocated(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "marked", SHMH_TYPE_POSIX, SHMH_KIND_SHARED_MEMORY);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_create(seg, 3 * 4096 + 1, SHMH_READ_WRITE));
    char path[4200], sem_path[4200];
    object_path(&key, path, sizeof path);
    lock_object_path(&key, sem_path, sizeof sem_path);
    assert_int_equal(support_mode(path), 01600);
    assert_int_equal(support_mode(sem_path), 01600);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3 * 4096 + 1);
    assert_true(st.st_blocks * 512 >= 3 * 4096 + 1); /* every byte reserved, not sparse */
    assert_ok(shmh_segment_detach(seg));
    assert_false(support_exists(path));
    assert_false(support_exists(sem_path));
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

/* A segment Qt made (no mark) is attached and used, but never unlinked by us (Qt never unlinks either). */
static void qt_made_segment_is_left_to_qt(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "qtseg", SHMH_TYPE_POSIX, SHMH_KIND_SHARED_MEMORY);
    int fd = shm_open(key.native, O_RDWR | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 512), 0);
    close(fd);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_attach(seg, SHMH_READ_WRITE));
    assert_int_equal(shmh_segment_size(seg), 512);
    assert_ok(shmh_segment_detach(seg));
    assert_true(segment_exists(&key));
    char sem_path[4200];
    lock_object_path(&key, sem_path, sizeof sem_path);
    assert_false(support_exists(sem_path)); /* our lock semaphore went: nobody is attached */
    shm_unlink(key.native);
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

static void fallocate_errors_leave_nothing(void **state) {
    (void)state;
    static const struct { int err; enum shmh_error code; } rows[] = {
        {ENOSPC, SHMH_OUT_OF_RESOURCES}, {EFBIG, SHMH_UNKNOWN}, {EINVAL, SHMH_INVALID_SIZE}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct shmh_key key;
        support_native_key(&key, "full", SHMH_TYPE_POSIX);
        struct shmh_segment *seg = shmh_segment_new(&key, NULL);
        wrap_fallocate_failures = 1;
        will_return(__wrap_posix_fallocate, rows[i].err);
        assert_int_equal(shmh_segment_create(seg, 1 << 20, SHMH_READ_WRITE), -1);
        assert_int_equal(errno, rows[i].err);
        assert_failure(rows[i].code);
        assert_string_equal(shmh_last_failure()->call, "posix_fallocate");
        assert_false(segment_exists(&key));
        char sem_path[4200];
        lock_object_path(&key, sem_path, sizeof sem_path);
        assert_false(support_exists(sem_path));
        shmh_segment_free(seg);
        shmh_key_free(&key);
    }
}

/* POSIX semaphores have no undo: a dead holder leaves the lock taken. Others get lock-error after their
 * timeout, never a hang. */
static void dead_lock_holder_gives_lock_error(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "deadholder", SHMH_TYPE_POSIX);
    struct shmh_options options;
    shmh_options_default(&options);
    options.operation_timeout_ns = 200 * 1000000LL;
    struct shmh_segment *seg = shmh_segment_new(&key, &options);
    assert_ok(shmh_segment_create(seg, 64, SHMH_READ_WRITE));
    pid_t pid = fork();
    if (pid == 0) {
        struct shmh_segment *mine = shmh_segment_new(&key, NULL);
        if (shmh_segment_attach(mine, SHMH_READ_WRITE) != 0 || shmh_segment_lock(mine, -1) != 0) _exit(1);
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    assert_int_equal(support_wait(pid), 128 + SIGKILL);
    assert_int_equal(shmh_segment_lock(seg, 100 * 1000000LL), -1);
    assert_failure(SHMH_LOCK_ERROR);
    /* Another handle (a second open of the semaphore: a usage record) might hold it: attach times out. */
    struct shmh_segment *late = shmh_segment_new(&key, &options);
    assert_int_equal(shmh_segment_attach(late, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_LOCK_ERROR);
    assert_non_null(strstr(shmh_last_failure()->detail, "unable to lock"));
    shmh_segment_free(late);
    /* The last user: no other usage record, no other mapping of the semaphore's file - the holder is dead, so
     * detach takes its place at once and removes the segment and its semaphore (issue 10 item 6). */
    struct timespec before, after;
    clock_gettime(CLOCK_MONOTONIC, &before);
    assert_ok(shmh_segment_detach(seg));
    clock_gettime(CLOCK_MONOTONIC, &after);
    assert_true((after.tv_sec - before.tv_sec) * 1000000000LL + (after.tv_nsec - before.tv_nsec) < 150 * 1000000LL);
    assert_false(segment_exists(&key));
    char sem_path[4200];
    lock_object_path(&key, sem_path, sizeof sem_path);
    assert_false(support_exists(sem_path));
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

static void bad_names(void **state) {
    (void)state;
    struct shmh_key key;
    assert_int_equal(shmh_key_init(&key, SHMH_TYPE_POSIX, "/" SUPPORT_MARKER "/inner", (size_t)-1), 0);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_int_equal(shmh_segment_create(seg, 64, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_KEY_ERROR);
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COMMON_SEGMENT_TESTS,
        cmocka_unit_test_setup_teardown(marked_and_fully_allocated, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(qt_made_segment_is_left_to_qt, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(fallocate_errors_leave_nothing, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(dead_lock_holder_gives_lock_error, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(bad_names, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("segment_posix", tests, NULL, NULL);
}
