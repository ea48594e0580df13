/* segment_posix.c - POSIX segments (shm_open names under /dev/shm), as Qt's POSIX backend and
 * Segment/SharedMemory+POSIX.swift: 0600, the descriptor kept open while attached, fully allocated with
 * posix_fallocate at create, the sticky bit marks segments this library created, and those are unlinked when
 * the last process using this library detaches (usage records on the file; crashes included). */
#include "internal.h"

#include <sys/sysmacros.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int segment_path(const struct shmh_key *key, char *path, size_t len, const struct shmh_site *site) {
    const char *bare = shmh_posix_bare_name(key);
    if (!bare)
        return shmh_fail_refuse(site, SHMH_KEY_ERROR, EINVAL, "bad name: a POSIX object name is one path component, not %s",
                                key->native);
    if (snprintf(path, len, "/dev/shm/%s", bare) >= (int)len)
        return shmh_fail_refuse(site, SHMH_KEY_ERROR, ENAMETOOLONG, "name too long: %s", key->native);
    return 0;
}

int shmh_posix_segment_create(struct shmh_backend *b, size_t size, const struct shmh_site *site) {
    char path[4096];
    if (segment_path(b->key, path, sizeof path, site) == -1) return -1;
    /* shm_open(O_CREAT|O_EXCL, 0600) is this open on glibc; opening the path ourselves keeps the descriptor. */
    struct shmh_objfile made;
    if (shmh_objfile_create_exclusive(&made, path, 0600, site) == -1) return -1;
    if (shmh_objfile_record_use(&made, 0, site) == -1 || shmh_objfile_mark_managed(&made, 0600, site) == -1) goto fail;
    /* Reserve every byte now: a full /dev/shm is an error here, not a SIGBUS on first touch. */
    int rc;
    do rc = posix_fallocate(made.fd, 0, (off_t)size);
    while (rc == EINTR);
    if (rc != 0) {
        shmh_fail_call(site, "posix_fallocate", SHMH_OP_SIZE, rc, "%s, size %zu", b->key->native, size);
        goto fail;
    }
    shmh_objfile_refresh(&made);
    b->file = made;
    return 0;
fail:;
    int err = errno;
    shmh_objfile_unlink_if_still_at_path(&made);
    shmh_objfile_close(&made);
    errno = err;
    return -1;
}

int shmh_posix_segment_attach(struct shmh_backend *b, enum shmh_access access, const struct shmh_site *site) {
    char path[4096];
    if (segment_path(b->key, path, sizeof path, site) == -1) return -1;
    bool opened_here = false;
    if (b->file.fd < 0) {
        if (shmh_objfile_open_existing(&b->file, path, b->allow_foreign, site) == -1) return -1;
        opened_here = true;
        if (shmh_objfile_record_use(&b->file, 0, site) == -1) goto fail;
        if (!shmh_objfile_still_at_path(&b->file)) {
            shmh_fail_refuse(site, SHMH_NOT_FOUND, ENOENT, "%s was removed while attaching", b->key->native);
            goto fail;
        }
    }
    size_t length = (size_t)b->file.st.st_size;
    if (length == 0) {
        /* Its creator has made the name but not sized it yet (or died in between): an attacher under the lock of
         * a segment that has just gone can get here while a new one is being made. Nothing to attach to yet. */
        shmh_fail_refuse(site, SHMH_NOT_FOUND, ENOENT, "%s has size 0: it is being created (or its creator died before sizing it)",
                         b->key->native);
        goto fail;
    }
    int prot = access == SHMH_READ_ONLY ? PROT_READ : PROT_READ | PROT_WRITE;
    void *mapped = mmap(NULL, length, prot, MAP_SHARED, b->file.fd, 0);
    if (mapped == MAP_FAILED) {
        shmh_fail_call(site, "mmap", SHMH_OP_GENERIC, errno, "%s, size %zu", b->key->native, length);
        goto fail;
    }
    b->address = mapped;
    b->size = length;
    b->access = access;
    return 0;
fail:
    if (opened_here) {
        int err = errno;
        shmh_objfile_close(&b->file);
        errno = err;
    }
    return -1;
}

int shmh_posix_segment_detach(struct shmh_backend *b, const struct shmh_site *site) {
    if (b->address) {
        if (munmap(b->address, b->size) == -1) return shmh_fail_call(site, "munmap", SHMH_OP_GENERIC, errno, NULL);
        b->address = NULL;
    }
    shmh_posix_segment_destroy_if_unused(b);
    shmh_objfile_close(&b->file);
    return 0;
}

/* Unlinks the segment when this library created it and no other process using the library records a use. */
bool shmh_posix_segment_destroy_if_unused(struct shmh_backend *b) {
    if (b->file.fd < 0) return false;
    if (!shmh_objfile_provably_ours(&b->file) || !shmh_objfile_claim_for_removal(&b->file, 0) ||
        !shmh_objfile_still_at_path(&b->file))
        return false;
    shm_unlink(b->key->native);
    return true;
}

/* Whether a process other than `except` maps a file on /dev/shm with this inode (/proc/PID/maps: the fifth
 * field is the inode). With owner_only, only processes whose /proc/PID belongs to `owner` or root are read
 * (only they can have opened a 0600 file of that owner); others cost one fstatat each. */
bool shmh_any_process_maps(dev_t device, unsigned long long inode, pid_t except, bool owner_only, uid_t owner) {
    DIR *proc = opendir("/proc");
    if (!proc) return false;
    bool found = false;
    struct dirent *entry;
    char *line = NULL;
    size_t cap = 0;
    while (!found && (entry = readdir(proc))) {
        if (!isdigit((unsigned char)entry->d_name[0])) continue;
        if (except > 0 && strtol(entry->d_name, NULL, 10) == (long)except) continue;
        if (owner_only) {
            struct stat st;
            if (fstatat(dirfd(proc), entry->d_name, &st, 0) == -1) continue;
            if (st.st_uid != owner && st.st_uid != 0) continue;
        }
        char maps[300];
        snprintf(maps, sizeof maps, "/proc/%s/maps", entry->d_name);
        FILE *f = fopen(maps, "re");
        if (!f) continue;
        while (!found && getline(&line, &cap, f) > 0) {
            if (!strstr(line, "/dev/shm/")) continue;
            /* the device too: every namespace's /dev/shm is a tmpfs of its own, numbering inodes afresh */
            unsigned long long ino = 0;
            unsigned int maj = 0, min = 0;
            if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &ino) == 3 && ino == inode && maj == major(device) &&
                min == minor(device))
                found = true;
        }
        fclose(f);
    }
    free(line);
    closedir(proc);
    return found;
}

/* POSIX has no attach count: a process is attached when it maps the segment's file. A symlink planted at
 * the path is no segment. */
bool shmh_posix_segment_attached_by_any_process(const struct shmh_key *key) {
    const char *bare = shmh_posix_bare_name(key);
    if (!bare) return false;
    char path[4096];
    snprintf(path, sizeof path, "/dev/shm/%s", bare);
    struct stat st;
    if (lstat(path, &st) == -1 || !S_ISREG(st.st_mode)) return false;
    return shmh_any_process_maps(st.st_dev, (unsigned long long)st.st_ino, 0, (st.st_mode & 077) == 0, st.st_uid);
}
