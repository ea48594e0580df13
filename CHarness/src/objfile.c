/* objfile.c - the files that stand for IPC objects: System V key files (Qt's ftok files), /dev/shm/sem.NAME
 * behind a POSIX semaphore, /dev/shm/NAME behind a POSIX segment. Same rules as
 * Sources/SharedMemoryKit/Files/ObjectFile.swift: opened without following symlinks, regular files owned by
 * the caller only (unless opted in), usage records as shared OFD locks at SHMH_USAGE_BASE + slot, and the
 * sticky bit as the "created by this library" mark. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int adopt(struct shmh_objfile *f, int fd, const char *path, bool created, const struct shmh_site *site) {
    f->fd = fd;
    f->created = created;
    f->path = strdup(path);
    if (!f->path || fstat(fd, &f->st) == -1) {
        int err = f->path ? errno : ENOMEM;
        close(fd);
        if (created) unlink(path);
        free(f->path);
        f->path = NULL;
        f->fd = -1;
        return shmh_fail_call(site, "fstat", SHMH_OP_GENERIC, err, "%s", path);
    }
    return 0;
}

int shmh_objfile_create_exclusive(struct shmh_objfile *f, const char *path, mode_t mode, const struct shmh_site *site) {
    f->fd = -1;
    f->path = NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd == -1) return shmh_fail_call(site, "open", SHMH_OP_NAME, errno, "%s", path);
    return adopt(f, fd, path, true, site);
}

static const char *type_name(mode_t mode) {
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISSOCK(mode)) return "a socket";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISLNK(mode)) return "a symbolic link";
    return "not a regular file";
}

static int refuse_not_regular(const struct shmh_site *site, const char *path, const struct stat *st) {
    if (!st)
        return shmh_fail_refuse(site, SHMH_KEY_ERROR, EINVAL, "%s is not a regular file; refusing to use it", path);
    return shmh_fail_refuse(site, SHMH_KEY_ERROR, EINVAL, "%s is %s (owned by uid %u), not a regular file; refusing to use it",
                            path, type_name(st->st_mode), (unsigned)st->st_uid);
}

/* Never blocks: O_NONBLOCK (a FIFO planted at the path would block a read-only open until a writer comes),
 * the type checked with fstat on the descriptor before anything else, O_NONBLOCK cleared on the regular file. */
int shmh_objfile_open_existing(struct shmh_objfile *f, const char *path, bool allow_foreign,
                               const struct shmh_site *site) {
    f->fd = -1;
    f->path = NULL;
    const int base = O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK;
    int fd;
    do fd = open(path, O_RDWR | base);
    while (fd == -1 && errno == EINTR);
    if (fd == -1 && (errno == EACCES || errno == EISDIR)) {
        do fd = open(path, O_RDONLY | base);
        while (fd == -1 && errno == EINTR);
    }
    if (fd == -1) {
        if (errno == ELOOP)
            return shmh_fail_refuse(site, SHMH_PERMISSION_DENIED, ELOOP,
                                    "%s is a symbolic link; refusing to follow it", path);
        if (errno == ENXIO || errno == EISDIR) { /* a socket, or a device without a driver */
            struct stat st;
            return refuse_not_regular(site, path, lstat(path, &st) == 0 ? &st : NULL);
        }
        return shmh_fail_call(site, "open", SHMH_OP_NAME, errno, "%s", path);
    }
    if (adopt(f, fd, path, false, site) == -1) return -1;
    if (!S_ISREG(f->st.st_mode)) {
        struct stat st = f->st;
        shmh_objfile_close(f);
        return refuse_not_regular(site, path, &st);
    }
    int flags = fcntl(f->fd, F_GETFL);
    if (flags >= 0) (void)fcntl(f->fd, F_SETFL, flags & ~O_NONBLOCK);
    if (!allow_foreign && f->st.st_uid != geteuid()) {
        unsigned owner = (unsigned)f->st.st_uid;
        shmh_objfile_close(f);
        return shmh_fail_refuse(site, SHMH_PERMISSION_DENIED, EACCES,
                                "%s is owned by uid %u (created by another user), not by this process (uid %u); "
                                "set allow_foreign_owner to use it",
                                path, owner, (unsigned)geteuid());
    }
    return 0;
}

int shmh_objfile_open_key(struct shmh_objfile *f, const char *path, bool create, bool allow_foreign,
                          const struct shmh_site *site) {
    if (!create) return shmh_objfile_open_existing(f, path, allow_foreign, site);
    /* Create mode: make it, or use the one that exists. The last user of another object may unlink an existing
     * key file between our O_EXCL create (EEXIST) and our open (ENOENT): then make it again. */
    for (int attempt = 1;; attempt++) {
        struct shmh_failure saved;
        shmh_fail_save(&saved);
        if (shmh_objfile_create_exclusive(f, path, 0640, site) == 0) {
            /* The mark proves later, to any process using the library, that this library made the file: only
             * such key files are ever removed by it. */
            if (shmh_objfile_mark_managed(f, 0640, site) == 0) return 0;
            int err = errno;
            shmh_objfile_unlink_if_still_at_path(f);
            shmh_objfile_close(f);
            errno = err;
            return -1;
        }
        if (errno != EEXIST) return -1;
        shmh_fail_restore(&saved); /* Qt's createUnixKeyFile: an existing file is used (checked below) */
        if (shmh_objfile_open_existing(f, path, allow_foreign, site) == 0) return 0;
        if (errno != ENOENT || attempt >= 100) return -1;
        shmh_fail_restore(&saved);
    }
}

void shmh_objfile_close(struct shmh_objfile *f) {
    /* Release the usage records explicitly: a copy of this descriptor in a child that another thread is
       spawning keeps the open file description (and its locks) alive until that child execs. */
    if (f->fd >= 0) {
        int saved = errno;
        (void)shmh_ofd_lock(f->fd, 2, SHMH_USAGE_BASE, 0, false);
        errno = saved;
        close(f->fd);
    }
    f->fd = -1;
    free(f->path);
    f->path = NULL;
}

key_t shmh_objfile_ftok(const struct shmh_objfile *f, int project_id) {
    uint32_t inode = (uint32_t)f->st.st_ino & 0xFFFFu;
    uint32_t device = (uint32_t)f->st.st_dev & 0xFFu;
    uint32_t id = (uint32_t)project_id & 0xFFu;
    return (key_t)(inode | device << 16 | id << 24);
}

void shmh_objfile_refresh(struct shmh_objfile *f) {
    struct stat st;
    if (f->fd >= 0 && fstat(f->fd, &st) == 0) f->st = st;
}

bool shmh_objfile_still_at_path(const struct shmh_objfile *f) {
    struct stat st;
    if (!f->path || lstat(f->path, &st) == -1) return false;
    return st.st_ino == f->st.st_ino && st.st_dev == f->st.st_dev;
}

void shmh_objfile_release_usage(struct shmh_objfile *f) {
    if (f->fd < 0) return;
    int saved = errno;
    (void)shmh_ofd_lock(f->fd, 2, SHMH_USAGE_BASE, 0, false);
    errno = saved;
}

int shmh_objfile_record_use(struct shmh_objfile *f, int slot, const struct shmh_site *site) {
    if (shmh_ofd_lock(f->fd, 0, SHMH_USAGE_BASE + slot, 1, true) == -1)
        return shmh_fail_call(site, "fcntl(F_OFD_SETLKW)", SHMH_OP_GENERIC, errno, "%s", f->path);
    return 0;
}

bool shmh_objfile_claim_for_removal(struct shmh_objfile *f, int slot) {
    int64_t start = SHMH_USAGE_BASE + (slot < 0 ? 0 : slot);
    int64_t len = slot < 0 ? 256 : 1;
    if (shmh_ofd_lock(f->fd, 1, start, len, false) == 0) return true;
    /* A read-only descriptor cannot take an exclusive lock; ask instead (callers hold the object's lock). */
    return shmh_ofd_conflicts(f->fd, 1, start, len) == 0;
}

bool shmh_objfile_is_managed(const struct shmh_objfile *f) { return (f->st.st_mode & S_ISVTX) != 0; }

/* Ownership proof: the library's mark (set only on a file it created with O_EXCL) read fresh, and this user
 * owns the file (a stranger's file used with allow_foreign_owner is never ours to remove). */
bool shmh_objfile_provably_ours(struct shmh_objfile *f) {
    shmh_objfile_refresh(f);
    return f->fd >= 0 && (f->st.st_mode & S_ISVTX) != 0 && f->st.st_uid == geteuid();
}

bool shmh_objfile_may_remove_key_file(struct shmh_objfile *f) {
    /* still empty too: the library never writes to a key file */
    return shmh_objfile_provably_ours(f) && f->st.st_size == 0 && shmh_objfile_claim_for_removal(f, -1) &&
           shmh_objfile_still_at_path(f);
}

int shmh_objfile_mark_managed(struct shmh_objfile *f, mode_t mode, const struct shmh_site *site) {
    if (fchmod(f->fd, mode | S_ISVTX) == -1) return shmh_fail_call(site, "fchmod", SHMH_OP_GENERIC, errno, "%s", f->path);
    shmh_objfile_refresh(f);
    return 0;
}

void shmh_objfile_unlink_if_still_at_path(const struct shmh_objfile *f) {
    if (shmh_objfile_still_at_path(f)) unlink(f->path);
}
