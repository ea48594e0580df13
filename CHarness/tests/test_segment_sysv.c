/* test_segment_sysv.c - System V keyed segments: the common cases on this backend, plus Qt's key-file and
 * permission rules, the crash-safe lock (SEM_UNDO), and shmget errors (mocked: ENOSPC/ENOMEM/EINVAL cannot be
 * produced on demand without changing system limits). */
#define BACKEND_TYPE SHMH_TYPE_SYSTEMV
#include "segment_common.h"

#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>

extern int wrap_shmget_failures;

static key_t ftok_of(const char *path, int id) {
    struct stat st;
    if (lstat(path, &st) == -1) return -1;
    return (key_t)(((uint32_t)st.st_ino & 0xFFFFu) | ((uint32_t)st.st_dev & 0xFFu) << 16 | (uint32_t)id << 24);
}

static bool segment_exists(const struct shmh_key *key) {
    key_t k = ftok_of(key->native, key->type);
    return support_exists(key->native) || (k != -1 && shmget(k, 0, 0) != -1);
}

static void lock_object_path(const struct shmh_key *key, char *path, size_t len) {
    struct shmh_key sem;
    assert_int_equal(shmh_key_lock_semaphore_key(key, &sem), 0);
    snprintf(path, len, "%s", sem.native);
    shmh_key_free(&sem);
}

static void track(const struct shmh_key *key) {
    char path[4200];
    support_track_key_file(key->native, key->type);
    lock_object_path(key, path, sizeof path);
    support_track_key_file(path, key->type);
}

/* Qt's permissions: key file 0640 (+ the sticky bit: made by this library), segment 0600; a legacy key's lock semaphore has its own key file. */
static void qt_permissions_and_files(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "perms", SHMH_TYPE_SYSTEMV, SHMH_KIND_SHARED_MEMORY);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_create(seg, 1000, SHMH_READ_WRITE));
    track(&key);
    assert_int_equal(support_mode(key.native), 01640); /* Qt's 0640 + the library's mark (sticky bit) */
    int id = shmget(ftok_of(key.native, 'Q'), 0, 0);
    assert_true(id >= 0);
    struct shmid_ds ds;
    assert_int_equal(shmctl(id, IPC_STAT, &ds), 0);
    assert_int_equal(ds.shm_perm.mode & 0777, 0600);
    assert_int_equal(ds.shm_segsz, 1000);
    assert_int_equal(ds.shm_nattch, 1);
    assert_int_equal(ftok_of(key.native, 'Q'), ftok(key.native, 'Q')); /* glibc's formula */
    assert_ok(shmh_segment_detach(seg));
    assert_false(support_exists(key.native));
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

/* The kernel gives a dead lock holder's count back (SEM_UNDO): the next lock succeeds at once. */
static void lock_holder_crash_is_recovered(void **state) {
    (void)state;
    struct shmh_key key;
    support_legacy_key(&key, "holdercrash", SHMH_TYPE_SYSTEMV, SHMH_KIND_SHARED_MEMORY);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_create(seg, 64, SHMH_READ_WRITE));
    track(&key);
    pid_t pid = fork();
    if (pid == 0) {
        struct shmh_segment *mine = shmh_segment_new(&key, NULL);
        if (shmh_segment_attach(mine, SHMH_READ_WRITE) != 0 || shmh_segment_lock(mine, -1) != 0) _exit(1);
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    assert_int_equal(support_wait(pid), 128 + SIGKILL);
    assert_ok(shmh_segment_lock(seg, 5000000000LL));
    assert_ok(shmh_segment_unlock(seg));
    assert_ok(shmh_segment_detach(seg));
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

static void shmget_errors_are_mapped(void **state) {
    (void)state;
    static const struct { int err; enum shmh_error code; bool keeps_key_file; } rows[] = {
        {ENOSPC, SHMH_OUT_OF_RESOURCES, false},
        {ENOMEM, SHMH_OUT_OF_RESOURCES, false},
        {EINVAL, SHMH_INVALID_SIZE, false},
        {EACCES, SHMH_PERMISSION_DENIED, false},
        /* Qt keeps a key file it made when the segment existed; but a segment under a key file made just now
         * is another key file's (an ftok collision): this library removes the file and says so. */
        {EEXIST, SHMH_ALREADY_EXISTS, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct shmh_key key;
        support_legacy_key(&key, "mocked", SHMH_TYPE_SYSTEMV, SHMH_KIND_SHARED_MEMORY);
        struct shmh_segment *seg = shmh_segment_new(&key, NULL);
        wrap_shmget_failures = 1;
        will_return(__wrap_shmget, rows[i].err);
        assert_int_equal(shmh_segment_create(seg, 4096, SHMH_READ_WRITE), -1);
        assert_int_equal(errno, rows[i].err);
        assert_failure(rows[i].code);
        assert_string_equal(shmh_last_failure()->call, "shmget");
        assert_non_null(strstr(shmh_last_failure()->detail, "size 4096"));
        assert_int_equal(support_exists(key.native), rows[i].keeps_key_file);
        assert_int_equal(strstr(shmh_last_failure()->detail, "was made just now") != NULL, rows[i].err == EEXIST);
        char sem_path[4200];
        lock_object_path(&key, sem_path, sizeof sem_path);
        assert_false(support_exists(sem_path)); /* the lock semaphore went with the failed create */
        if (rows[i].keeps_key_file) unlink(key.native);
        shmh_segment_free(seg);
        shmh_key_free(&key);
    }
}

/* A native System V key: segment and lock semaphore share one key file and key_t; it goes at the end. */
static void native_key_shares_the_key_file(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "native", SHMH_TYPE_SYSTEMV);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_ok(shmh_segment_create(seg, 256, SHMH_READ_WRITE));
    track(&key);
    key_t k = ftok_of(key.native, 'Q');
    assert_true(shmget(k, 0, 0) >= 0);
    assert_true(semget(k, 0, 0) >= 0);
    assert_ok(shmh_segment_detach(seg));
    assert_int_equal(shmget(k, 0, 0), -1);
    assert_int_equal(semget(k, 0, 0), -1);
    assert_false(support_exists(key.native));
    shmh_segment_free(seg);
    shmh_key_free(&key);
}

/* Two legacy keys whose key files give one ftok key (a hard link: one inode) are one segment. The second key's
 * create says already-exists and why; its attach reaches the first key's segment (as Qt's); and its lock
 * semaphore goes with its last user although the first key's user stays attached (the attach count cannot tell
 * the two keys' users apart), so nothing of the second key is left behind. */
static void hard_linked_key_files_collide(void **state) {
    (void)state;
    struct shmh_key first, second;
    support_legacy_key(&first, "collidefirst", SHMH_TYPE_SYSTEMV, SHMH_KIND_SHARED_MEMORY);
    support_legacy_key(&second, "collidesecond", SHMH_TYPE_SYSTEMV, SHMH_KIND_SHARED_MEMORY);
    struct shmh_segment *a = shmh_segment_new(&first, NULL);
    assert_ok(shmh_segment_create(a, 4096, SHMH_READ_WRITE));
    track(&first);
    track(&second);
    *(volatile uint64_t *)shmh_segment_data(a) = 1111;
    assert_int_equal(link(first.native, second.native), 0);

    struct shmh_segment *b = shmh_segment_new(&second, NULL);
    assert_int_equal(shmh_segment_create(b, 4096, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_ALREADY_EXISTS);
    assert_non_null(strstr(shmh_last_failure()->detail, "has 2 names (hard links)"));
    assert_true(support_exists(second.native)); /* not this library's name: kept */
    assert_ok(shmh_segment_attach(b, SHMH_READ_WRITE));
    assert_int_equal(*(volatile uint64_t *)shmh_segment_data(b), 1111);
    char sem_path[4200];
    lock_object_path(&second, sem_path, sizeof sem_path);
    key_t sem_key = ftok_of(sem_path, 'Q');
    assert_true(semget(sem_key, 0, 0) >= 0);
    assert_ok(shmh_segment_detach(b));
    assert_int_equal(semget(sem_key, 0, 0), -1); /* the second key's lock semaphore is gone... */
    assert_false(support_exists(sem_path));     /* ...with its key file */
    assert_true(shmh_segment_is_attached(a));   /* and the first key's segment is untouched */
    assert_int_equal(*(volatile uint64_t *)shmh_segment_data(a), 1111);
    shmh_segment_free(b);

    assert_int_equal(unlink(second.native), 0);
    assert_ok(shmh_segment_detach(a));
    assert_false(segment_exists(&first));
    shmh_segment_free(a);
    shmh_key_free(&first);
    shmh_key_free(&second);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        COMMON_SEGMENT_TESTS,
        cmocka_unit_test_setup_teardown(qt_permissions_and_files, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(lock_holder_crash_is_recovered, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(shmget_errors_are_mapped, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(native_key_shares_the_key_file, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(hard_linked_key_files_collide, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("segment_sysv", tests, NULL, NULL);
}
