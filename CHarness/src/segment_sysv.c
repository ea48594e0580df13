/* segment_sysv.c - System V segments keyed by ftok(keyfile, type), as Qt's System V backend and
 * Segment/SharedMemory+SystemV.swift: key file 0640 in the temp dir, segment 0600, destroyed (IPC_RMID and,
 * for a legacy key, the key file unlinked) by whoever detaches last. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

/* ftok keeps only the low 16 inode bits, one device byte and the project id: two key files can give one IPC
 * key. A segment that exists under the key of a key file made just now, or of a key file with several names
 * (hard links), may be another key's: say so. Same text as SystemVSegment.foreignSegmentNote. */
void shmh_sysv_foreign_segment_note(const struct shmh_objfile *file, char *out, size_t size) {
    if (file->created)
        snprintf(out, size,
                 "; the key file %s was made just now, so the segment under its ftok key belongs to another key file "
                 "whose ftok key collides (same low 16 inode bits, device and project id), or to one since removed",
                 file->path);
    else if (file->st.st_nlink > 1)
        snprintf(out, size,
                 "; the key file %s has %lu names (hard links): the segment may belong to another key whose key file "
                 "is the same file",
                 file->path, (unsigned long)file->st.st_nlink);
}

int shmh_sysv_segment_create(struct shmh_backend *b, size_t size, const struct shmh_site *site) {
    struct shmh_objfile file;
    if (shmh_objfile_open_key(&file, b->key->native, true, b->allow_foreign, site) == -1) return -1;
    key_t ipc_key = shmh_objfile_ftok(&file, b->key->type);
    int id = shmget(ipc_key, size, IPC_CREAT | IPC_EXCL | 0600);
    if (id == -1) {
        int err = errno;
        char why[512] = "";
        if (err == EEXIST) shmh_sysv_foreign_segment_note(&file, why, sizeof why);
        /* The key file goes if this call made it. Qt keeps it when the segment already existed, but a segment
         * found through a key file made just now was made through another file (an ftok collision): keeping
         * ours would only leave it behind. */
        if (file.created && shmh_objfile_may_remove_key_file(&file)) shmh_objfile_unlink_if_still_at_path(&file);
        shmh_objfile_close(&file);
        return shmh_fail_call(site, "shmget", SHMH_OP_SIZE, err, "key 0x%x, size %zu%s", (unsigned)ipc_key, size, why);
    }
    b->shmid = id;
    b->file = file;
    return 0;
}

int shmh_sysv_segment_attach(struct shmh_backend *b, enum shmh_access access, const struct shmh_site *site) {
    struct shmh_objfile opened = {.fd = -1};
    struct shmh_objfile *file = &b->file;
    if (b->file.fd < 0) {
        if (shmh_objfile_open_key(&opened, b->key->native, false, b->allow_foreign, site) == -1) return -1;
        file = &opened;
    }
    key_t ipc_key = shmh_objfile_ftok(file, b->key->type);
    int id = shmget(ipc_key, 0, access == SHMH_READ_ONLY ? 0400 : 0600);
    struct shmid_ds ds;
    const char *call = "shmget";
    if (id != -1) call = shmctl(id, IPC_STAT, &ds) == -1 ? "shmctl(IPC_STAT)" : NULL;
    if (call) {
        int err = errno;
        shmh_objfile_close(&opened);
        return shmh_fail_call(site, call, SHMH_OP_GENERIC, err, "key 0x%x", (unsigned)ipc_key);
    }
    /* Owner and creator both this user: a stranger can make a segment at a key we will use and hand it over
     * with IPC_SET (the owner changes; the creator, and control, stay theirs). */
    if (!b->allow_foreign && !shmh_ipc_perm_is_mine(&ds.shm_perm)) {
        shmh_objfile_close(&opened);
        return shmh_fail_refuse(site, SHMH_PERMISSION_DENIED, EACCES,
                                "segment %d (key 0x%x) was created by uid %u and is owned by uid %u, not by this user "
                                "(uid %u) alone; set allow_foreign_owner to use it",
                                id, (unsigned)ipc_key, (unsigned)ds.shm_perm.cuid, (unsigned)ds.shm_perm.uid,
                                (unsigned)geteuid());
    }
    void *address = shmat(id, NULL, access == SHMH_READ_ONLY ? SHM_RDONLY : 0);
    if (address == (void *)-1) {
        int err = errno;
        shmh_objfile_close(&opened);
        return shmh_fail_call(site, "shmat", SHMH_OP_GENERIC, err, "key 0x%x", (unsigned)ipc_key);
    }
    if (file == &opened) b->file = opened;
    b->shmid = id;
    b->address = address;
    b->size = ds.shm_segsz;
    b->access = access;
    return 0;
}

int shmh_sysv_segment_detach(struct shmh_backend *b, const struct shmh_site *site) {
    if (b->address) {
        if (shmdt(b->address) == -1) return shmh_fail_call(site, "shmdt", SHMH_OP_SEMOP, errno, NULL);
        b->address = NULL;
    }
    shmh_sysv_segment_destroy_if_unused(b);
    return 0;
}

/* Qt's clean-up: when nobody is attached any more, IPC_RMID and unlink the key file. */
bool shmh_sysv_segment_destroy_if_unused(struct shmh_backend *b) {
    if (b->shmid < 0) return false;
    int id = b->shmid;
    b->shmid = -1;
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) != 0 || ds.shm_nattch != 0) return false;
    /* Only a segment this user made and owns is removed (one used with allow_foreign_owner never is). */
    if (!shmh_ipc_perm_is_mine(&ds.shm_perm)) return false;
    shmctl(id, IPC_RMID, NULL);
    /* With a native (non-legacy) key, the lock semaphore uses the same key file: leave the file to the
     * semaphore, which removes both when its last user is done. A key file the library did not make (Qt's,
     * or an existing file a native key names) is never removed here. */
    if (b->key->legacy && b->file.fd >= 0 && shmh_objfile_may_remove_key_file(&b->file))
        shmh_objfile_unlink_if_still_at_path(&b->file);
    return true;
}

/* The kernel's attach count (shm_nattch) counts every process, Qt's included. */
bool shmh_sysv_segment_attached_by_any_process(const struct shmh_key *key) {
    struct shmh_site site = {"probe", NULL, NULL};
    struct shmh_failure saved;
    shmh_fail_save(&saved);
    struct shmh_objfile file;
    bool attached = false;
    /* A key file with several names (hard links) is one ftok key for several keys: the attach count cannot
     * tell this key's users from the other names', and would keep this key's lock semaphore for as long as
     * the others stay. Qt's rule then: the lock goes with its last user of this library. */
    if (shmh_objfile_open_key(&file, key->native, false, true, &site) == 0) {
        int id = shmget(shmh_objfile_ftok(&file, key->type), 0, 0);
        struct shmid_ds ds;
        attached = file.st.st_nlink <= 1 && id >= 0 && shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_nattch > 0;
        shmh_objfile_close(&file);
    }
    shmh_fail_restore(&saved);
    return attached;
}
