/* test_hostile.c - a hostile local user (nobody, in a forked child): the library never deletes a file it did
 * not make, never adopts a System V object a stranger made and handed over with IPC_SET, never blocks on a
 * FIFO (or a directory, or a socket) planted at a key path. Same rules as HostileObjectTests.swift. */
#include "support.h"

#include <errno.h>
#include <stdbool.h>
#include <unistd.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOBODY 65534

static key_t ftok_of(const char *path) {
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return (key_t)(((uint32_t)st.st_ino & 0xFFFFu) | ((uint32_t)st.st_dev & 0xFFu) << 16 | 0x51u << 24);
}

static void make_file(const char *path, const char *contents) {
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, contents, strlen(contents)), (ssize_t)strlen(contents));
    close(fd);
}

static bool file_is(const char *path, const char *contents) {
    char buf[256] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    return n == (ssize_t)strlen(contents) && memcmp(buf, contents, (size_t)n) == 0;
}

static bool sysv_object_with_key(key_t key) {
    return semget(key, 0, 0) != -1 || shmget(key, 0, 0) != -1;
}

static bool last_failure_mentions(const char *text) {
    char buf[1400];
    return strstr(shmh_failure_format(buf, sizeof buf), text) != NULL;
}

/* A key naming an existing file the library did not make: semaphores, create/detach and a failed attach leave
 * the file as it was, and no System V object. */
static void native_key_naming_an_existing_file_leaves_it_alone(void **state) {
    (void)state;
    struct shmh_key key;
    support_native_key(&key, "victim", SHMH_TYPE_SYSTEMV);
    make_file(key.native, "precious\n");
    key_t ipc = ftok_of(key.native);

    struct shmh_sem *sem = shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL);
    assert_nonnull_ok(sem);
    shmh_sem_close(sem, 1); /* the last user: removes the set it made, not the file */
    assert_true(file_is(key.native, "precious\n"));

    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_int_equal(shmh_segment_attach(seg, SHMH_READ_ONLY), -1); /* dump's path: not found */
    assert_failure(SHMH_NOT_FOUND);
    assert_true(file_is(key.native, "precious\n"));
    assert_ok(shmh_segment_create(seg, 64, SHMH_READ_WRITE));
    assert_ok(shmh_segment_detach(seg));
    shmh_segment_free(seg);
    assert_true(file_is(key.native, "precious\n"));
    assert_false(sysv_object_with_key(ipc));
    unlink(key.native);
    shmh_key_free(&key);
}

/* Outside the temp and runtime folders: refused before anything is opened; allow_any_path opts in. */
static void native_key_outside_the_temp_folder_needs_consent(void **state) {
    (void)state;
    /* a writable folder outside the temp folders (the checkout may itself be under /tmp) */
    char cwd[4096], path[4300];
    assert_non_null(getcwd(cwd, sizeof cwd));
    const char *folders[] = {cwd, "/var/tmp", "/var/cache", "/root"};
    struct shmh_key key;
    bool found = false;
    for (size_t i = 0; i < sizeof folders / sizeof folders[0] && !found; i++) {
        if (access(folders[i], W_OK) != 0) continue;
        snprintf(path, sizeof path, "%s/%s-%d-outside", folders[i], SUPPORT_MARKER, (int)getpid());
        assert_int_equal(shmh_key_init(&key, SHMH_TYPE_SYSTEMV, path, (size_t)-1), 0);
        /* the file does not exist yet: an allowed folder says not-found, a refused one key-error */
        struct shmh_sem *probe = shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL);
        if (probe) shmh_sem_close(probe, 0);
        found = !probe && shmh_last_failure()->code == SHMH_KEY_ERROR;
    }
    assert_true(found);
    make_file(path, "system file\n");
    assert_null(shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL));
    assert_failure(SHMH_KEY_ERROR);
    assert_true(last_failure_mentions("outside the temp folder"));
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_int_equal(shmh_segment_create(seg, 64, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_KEY_ERROR);
    shmh_segment_free(seg);
    struct shmh_options anywhere;
    shmh_options_default(&anywhere);
    anywhere.allow_any_path = 1;
    seg = shmh_segment_new(&key, &anywhere);
    assert_ok(shmh_segment_create(seg, 64, SHMH_READ_WRITE));
    assert_ok(shmh_segment_detach(seg));
    shmh_segment_free(seg);
    assert_true(file_is(path, "system file\n"));
    unlink(path);
    shmh_key_free(&key);
}

/* In a child that becomes nobody: makes a System V object at `key` and hands it to root with IPC_SET. */
static int squat(key_t key, bool segment) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY)) _exit(2);
        int id;
        if (segment) {
            struct shmid_ds ds;
            id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
            if (id < 0 || shmctl(id, IPC_STAT, &ds) < 0) _exit(3);
            ds.shm_perm.uid = 0;
            ds.shm_perm.gid = 0;
            if (shmctl(id, IPC_SET, &ds) < 0) _exit(4);
        } else {
            struct semid_ds ds;
            id = semget(key, 2, IPC_CREAT | IPC_EXCL | 0600); /* nsems 2: looks like the library's */
            if (id < 0 || semctl(id, 0, SETVAL, 1) < 0 || semctl(id, 0, IPC_STAT, &ds) < 0) _exit(3);
            ds.sem_perm.uid = 0;
            ds.sem_perm.gid = 0;
            if (semctl(id, 0, IPC_SET, &ds) < 0) _exit(4);
        }
        if (write(fds[1], &id, sizeof id) != sizeof id) _exit(5);
        _exit(0);
    }
    close(fds[1]);
    int id = -1;
    assert_int_equal(read(fds[0], &id, sizeof id), sizeof id);
    close(fds[0]);
    assert_int_equal(support_wait(pid), 0);
    return id;
}

static void squatted_lock_semaphore_is_not_adopted(void **state) {
    (void)state;
    if (geteuid() != 0) skip();
    struct shmh_key key;
    support_legacy_key(&key, "squatlock", SHMH_TYPE_SYSTEMV, SHMH_KIND_SYSTEM_SEMAPHORE);
    make_file(key.native, "");
    int semid = squat(ftok_of(key.native), false);
    assert_null(shmh_sem_open(&key, 1, SHMH_SEM_OPEN, NULL));
    assert_failure(SHMH_PERMISSION_DENIED);
    assert_true(last_failure_mentions("created by uid 65534"));
    /* consent: used, and never removed (not ours) */
    struct shmh_options consent;
    shmh_options_default(&consent);
    consent.allow_foreign_owner = 1;
    struct shmh_sem *sem = shmh_sem_open(&key, 1, SHMH_SEM_OPEN, &consent);
    assert_nonnull_ok(sem);
    shmh_sem_close(sem, 1);
    struct semid_ds ds;
    assert_int_equal(semctl(semid, 0, IPC_STAT, &ds), 0);
    assert_int_equal(semctl(semid, 0, IPC_RMID), 0);
    assert_true(file_is(key.native, ""));
    unlink(key.native);
    shmh_key_free(&key);
}

static void squatted_segment_is_not_attached(void **state) {
    (void)state;
    if (geteuid() != 0) skip();
    struct shmh_key key;
    support_legacy_key(&key, "squatseg", SHMH_TYPE_SYSTEMV, SHMH_KIND_SHARED_MEMORY);
    make_file(key.native, "");
    int shmid = squat(ftok_of(key.native), true);
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    assert_int_equal(shmh_segment_attach(seg, SHMH_READ_WRITE), -1);
    assert_failure(SHMH_PERMISSION_DENIED);
    assert_true(last_failure_mentions("created by uid 65534"));
    shmh_segment_free(seg);
    struct shmh_options consent;
    shmh_options_default(&consent);
    consent.allow_foreign_owner = 1;
    seg = shmh_segment_new(&key, &consent);
    assert_ok(shmh_segment_attach(seg, SHMH_READ_ONLY));
    assert_ok(shmh_segment_detach(seg)); /* the last detach: still not ours to remove */
    shmh_segment_free(seg);
    struct shmid_ds ds;
    assert_int_equal(shmctl(shmid, IPC_STAT, &ds), 0);
    assert_int_equal(shmctl(shmid, IPC_RMID, NULL), 0);
    unlink(key.native);
    shmh_key_free(&key);
}

enum planted { FIFO, DIRECTORY, SOCKET };

/* Plants `what` at the segment's key path; as nobody (for whom root's 0444 FIFO is read-only, the open that
 * blocked) attaching must fail at once with a key error naming the type. alarm() bounds it: SIGALRM = hang. */
static void planted(enum planted what, uint16_t type) {
    /* A temp folder nobody can make key files in (mode 1777, as /tmp): TMPDIR itself may be 0755. Set as TMPDIR
     * while the key is derived and the children run (cmocka runs one test at a time). */
    const char *outer = getenv("TMPDIR");
    char *saved = outer ? strdup(outer) : NULL;
    char shared[4200];
    snprintf(shared, sizeof shared, "%s/shmh-hostile-%d", saved && saved[0] ? saved : "/tmp", (int)getpid());
    assert_true(mkdir(shared, 0700) == 0 || errno == EEXIST);
    assert_int_equal(chmod(shared, 01777), 0);
    assert_int_equal(setenv("TMPDIR", shared, 1), 0);
    struct shmh_key key;
    support_legacy_key(&key, "plant", type, SHMH_KIND_SHARED_MEMORY);
    char path[4200];
    if (type == SHMH_TYPE_POSIX) snprintf(path, sizeof path, "/dev/shm%s", key.native);
    else snprintf(path, sizeof path, "%s", key.native);
    int sock = -1;
    const char *word = "is a FIFO";
    if (what == FIFO) {
        assert_int_equal(mkfifo(path, 0444), 0);
        assert_int_equal(chmod(path, 0444), 0);
    } else if (what == DIRECTORY) {
        assert_int_equal(mkdir(path, 0755), 0);
        word = "is a directory";
    } else {
        /* a long TMPDIR makes the path longer than sun_path: bind through the folder's descriptor */
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        char *slash = strrchr(path, '/');
        *slash = '\0';
        int folder = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
        assert_true(folder >= 0);
        int n = snprintf(addr.sun_path, sizeof addr.sun_path, "/proc/self/fd/%d/%s", folder, slash + 1);
        assert_true(n > 0 && (size_t)n < sizeof addr.sun_path);
        sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(sock, (struct sockaddr *)&addr, sizeof addr), 0);
        close(folder);
        word = "is a socket";
    }
    /* nobody first: for nobody, root's 0444 FIFO opens read-only only (the open that blocked) */
    for (int as_nobody = geteuid() == 0 ? 1 : 0; as_nobody >= 0; as_nobody--) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            alarm(10);
            if (as_nobody && (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))) _exit(2);
            struct shmh_segment *seg = shmh_segment_new(&key, NULL);
            int rc = shmh_segment_attach(seg, SHMH_READ_ONLY);
            bool ok = rc == -1 && shmh_last_failure()->code == SHMH_KEY_ERROR && last_failure_mentions(word) &&
                      last_failure_mentions("not a regular file");
            if (!ok) {
                char buf[1400];
                fprintf(stderr, "attach: %s\n", shmh_failure_format(buf, sizeof buf));
            }
            shmh_segment_free(seg);
            _exit(ok ? 0 : 1);
        }
        int status = support_wait(pid);
        if (status == 128 + SIGALRM) fail_msg("attach blocked on %s (%s) as %s", path, word, as_nobody ? "nobody" : "root");
        assert_int_equal(status, 0);
    }
    struct stat st;
    assert_int_equal(lstat(path, &st), 0); /* left where it was */
    if (what == DIRECTORY) rmdir(path);
    else unlink(path);
    if (sock >= 0) close(sock);
    /* The lock semaphore the children made went with them. */
    struct shmh_key lock;
    assert_int_equal(shmh_key_lock_semaphore_key(&key, &lock), 0);
    if (type == SHMH_TYPE_POSIX) snprintf(path, sizeof path, "/dev/shm/sem.%s", lock.native + 1);
    else snprintf(path, sizeof path, "%s", lock.native);
    assert_false(support_exists(path));
    shmh_key_free(&lock);
    shmh_key_free(&key);
    if (saved) setenv("TMPDIR", saved, 1);
    else unsetenv("TMPDIR");
    free(saved);
    assert_int_equal(rmdir(shared), 0);
}

static void fifo_at_a_key_path(void **state) {
    (void)state;
    planted(FIFO, SHMH_TYPE_SYSTEMV);
    planted(FIFO, SHMH_TYPE_POSIX);
}
static void directory_at_a_key_path(void **state) {
    (void)state;
    planted(DIRECTORY, SHMH_TYPE_SYSTEMV);
    planted(DIRECTORY, SHMH_TYPE_POSIX);
}
static void socket_at_a_key_path(void **state) {
    (void)state;
    planted(SOCKET, SHMH_TYPE_SYSTEMV);
    planted(SOCKET, SHMH_TYPE_POSIX);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(native_key_naming_an_existing_file_leaves_it_alone, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(native_key_outside_the_temp_folder_needs_consent, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(squatted_lock_semaphore_is_not_adopted, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(squatted_segment_is_not_attached, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(fifo_at_a_key_path, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(directory_at_a_key_path, support_setup, support_teardown),
        cmocka_unit_test_setup_teardown(socket_at_a_key_path, support_setup, support_teardown),
    };
    return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}
