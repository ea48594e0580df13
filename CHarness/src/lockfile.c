/* lockfile.c - open-file-description locks: the usage records of object files, and lock files
 * (docs/lock-layout.md: created 0600 with O_NOFOLLOW, an exclusive OFD lock on byte 0). */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int shmh_ofd_lock(int fd, int type, int64_t start, int64_t len, bool wait) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type == 0 ? F_RDLCK : type == 1 ? F_WRLCK : F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)start;
    fl.l_len = (off_t)len;
    int rc;
    do rc = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
    while (rc == -1 && errno == EINTR && wait);
    return rc;
}

int shmh_ofd_conflicts(int fd, int type, int64_t start, int64_t len) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type == 0 ? F_RDLCK : F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)start;
    fl.l_len = (off_t)len;
    if (fcntl(fd, F_OFD_GETLK, &fl) == -1) return -1;
    return fl.l_type == F_UNLCK ? 0 : 1;
}

int shmh_lockfile_open(struct shmh_lockfile *lf, const char *path) {
    struct shmh_site site = {"lockfile open", NULL, path};
    lf->fd = -1;
    if (strlen(path) >= sizeof lf->path) return shmh_fail_refuse(&site, SHMH_KEY_ERROR, ENAMETOOLONG, "path too long");
    int fd;
    do fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    while (fd == -1 && errno == EINTR);
    if (fd == -1) {
        if (errno == ELOOP)
            return shmh_fail_refuse(&site, SHMH_PERMISSION_DENIED, ELOOP, "%s is a symbolic link; refusing to follow it",
                                    path);
        return shmh_fail_call(&site, "open", SHMH_OP_NAME, errno, "%s", path);
    }
    struct stat st;
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        close(fd);
        return shmh_fail_refuse(&site, SHMH_PERMISSION_DENIED, EACCES, "%s is not a regular file of this user", path);
    }
    lf->fd = fd;
    strcpy(lf->path, path);
    return 0;
}

int shmh_lockfile_lock(struct shmh_lockfile *lf, int64_t timeout_ns) {
    struct shmh_site site = {"lock", NULL, lf->path};
    if (timeout_ns < 0) {
        if (shmh_ofd_lock(lf->fd, 1, 0, 1, true) == -1)
            return shmh_fail_call(&site, "fcntl(F_OFD_SETLKW)", SHMH_OP_GENERIC, errno, "%s", lf->path);
        return 0;
    }
    /* OFD locks have no timed wait: poll, backing off from 50 us to 5 ms. */
    int64_t deadline = shmh_deadline(timeout_ns);
    long pause = 50000;
    for (;;) {
        if (shmh_ofd_lock(lf->fd, 1, 0, 1, false) == 0) return 0;
        if (errno != EAGAIN && errno != EACCES)
            return shmh_fail_call(&site, "fcntl(F_OFD_SETLK)", SHMH_OP_GENERIC, errno, "%s", lf->path);
        int64_t left = shmh_remaining(deadline);
        if (left == 0)
            return shmh_fail_refuse(&site, SHMH_LOCK_ERROR, ETIMEDOUT, "timed out after %lld ns waiting for %s",
                                    (long long)timeout_ns, lf->path);
        struct timespec ts = {0, left < pause ? left : pause};
        nanosleep(&ts, NULL);
        if (pause < 5000000) pause *= 2;
    }
}

int shmh_lockfile_trylock(struct shmh_lockfile *lf) {
    struct shmh_site site = {"try-lock", NULL, lf->path};
    if (shmh_ofd_lock(lf->fd, 1, 0, 1, false) == 0) return 0;
    int err = errno == EACCES ? EAGAIN : errno;
    return shmh_fail_call(&site, "fcntl(F_OFD_SETLK)", SHMH_OP_TRYLOCK, err, "%s", lf->path);
}

int shmh_lockfile_unlock(struct shmh_lockfile *lf) {
    struct shmh_site site = {"unlock", NULL, lf->path};
    if (shmh_ofd_lock(lf->fd, 2, 0, 1, false) == -1)
        return shmh_fail_call(&site, "fcntl(F_OFD_SETLK)", SHMH_OP_GENERIC, errno, "%s", lf->path);
    return 0;
}

int shmh_lockfile_close(struct shmh_lockfile *lf, int remove) {
    if (lf->fd < 0) return 0;
    if (remove) {
        struct stat a, b;
        if (fstat(lf->fd, &a) == 0 && lstat(lf->path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
            unlink(lf->path);
    }
    close(lf->fd);
    lf->fd = -1;
    return 0;
}
