/* support.c - see support.h. */
#include "support.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned counter;
static key_t tracked[256];
static size_t tracked_count;

char *support_unique(const char *what) {
    char *out = NULL;
    if (asprintf(&out, SUPPORT_MARKER "%dx%u%s", (int)getpid(), ++counter, what) < 0) abort();
    return out;
}

void support_legacy_key(struct shmh_key *key, const char *what, uint16_t type, enum shmh_kind kind) {
    char *name = support_unique(what);
    assert_int_equal(shmh_key_legacy(key, name, (size_t)-1, type, kind, NULL), 0);
    free(name);
}

void support_native_key(struct shmh_key *key, const char *what, uint16_t type) {
    char *name = support_unique(what);
    char temp[4096], path[4200];
    if (type == SHMH_TYPE_POSIX) {
        snprintf(path, sizeof path, "/%s", name);
    } else {
        assert_int_equal(shmh_qt_temp_path(temp, sizeof temp), 0);
        snprintf(path, sizeof path, "%s/%s", temp, name);
    }
    free(name);
    assert_int_equal(shmh_key_init(key, type, path, (size_t)-1), 0);
}

void support_track_key_file(const char *path, int project_id) {
    struct stat st;
    if (lstat(path, &st) == -1 || tracked_count == sizeof tracked / sizeof tracked[0]) return;
    tracked[tracked_count++] =
        (key_t)(((uint32_t)st.st_ino & 0xFFFFu) | ((uint32_t)st.st_dev & 0xFFu) << 16 | ((uint32_t)project_id & 0xFFu) << 24);
}

int support_setup(void **state) {
    (void)state;
    tracked_count = 0;
    return 0;
}

/* Lines of /proc/sysvipc/{shm,sem}: key is the first field, id the second; for shm the creator pid is the 5th. */
static int sysv_leaks(const char *file, int is_shm) {
    FILE *f = fopen(file, "re");
    if (!f) return 0;
    char line[512];
    int leaks = 0;
    if (!fgets(line, sizeof line, f)) line[0] = '\0'; /* header */
    while (fgets(line, sizeof line, f)) {
        long long key = 0, id = 0;
        unsigned perms = 0;
        unsigned long long size = 0;
        long long cpid = 0;
        int n = sscanf(line, "%lld %lld %o %llu %lld", &key, &id, &perms, &size, &cpid);
        if (n < 2) continue;
        int ours = 0;
        for (size_t i = 0; i < tracked_count; i++) ours |= (key_t)key == tracked[i];
        if (is_shm && n == 5 && cpid == getpid()) ours = 1; /* shm: made by this test process */
        if (!ours) continue;
        leaks++;
        fprintf(stderr, "leak: %s id %lld key 0x%08llx\n", is_shm ? "shm" : "sem", id, (unsigned long long)(key & 0xFFFFFFFF));
        if (is_shm) shmctl((int)id, IPC_RMID, NULL);
        else semctl((int)id, 0, IPC_RMID);
    }
    fclose(f);
    return leaks;
}

static int dir_leaks(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int leaks = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, SUPPORT_MARKER)) continue;
        char pid[32];
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        /* only this process's names: a concurrent run of the suite has its own pid */
        if (!strstr(e->d_name, pid) && !strstr(e->d_name, "qipc_")) continue;
        leaks++;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        fprintf(stderr, "leak: %s\n", path);
        unlink(path);
    }
    closedir(d);
    return leaks;
}

int support_teardown(void **state) {
    (void)state;
    char temp[4096];
    int leaks = sysv_leaks("/proc/sysvipc/shm", 1) + sysv_leaks("/proc/sysvipc/sem", 0) + dir_leaks("/dev/shm");
    if (shmh_qt_temp_path(temp, sizeof temp) == 0) leaks += dir_leaks(temp);
    tracked_count = 0;
    return leaks ? -1 : 0;
}

int support_wait(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) == -1)
        if (errno != EINTR) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

void support_signal(int fd) {
    char c = 'r';
    while (write(fd, &c, 1) == -1 && errno == EINTR) {}
}

int support_await(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1) return -1;
    char c;
    return read(fd, &c, 1) == 1 ? 0 : -1;
}

int support_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

int support_mode(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}
