/* sem_sysv.c - System V semaphore sets keyed by ftok(keyfile, type), semaphore 0 with SEM_UNDO, as Qt does.
 * Same protocol as Semaphore/SystemSemaphore+SystemV.swift: sets this library creates have nsems = 2 (the
 * second semaphore marks the set as ours; Qt opens with nsems 1, which a larger set satisfies), usage records
 * on the key file in the slot of the ftok project id, removal by the last user of the library only. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <time.h>
#include <unistd.h>

#define MANAGED_SET_SIZE 2

union semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

/* EINVAL from semget(key, 2, IPC_CREAT | IPC_EXCL): the set size is past the kernel's SEMMSL (semaphores per
 * set, the first field of kernel.sem). Qt's sets have 1 semaphore, so SEMMSL 1 lets Qt work and not this
 * library: say so, as a kernel limit (out-of-resources). Same text as SystemVSemaphore.creationError. */
static int semmsl_failure(const struct shmh_site *site, key_t ipc_key) {
    char limit[32] = " is below 2";
    FILE *f = fopen("/proc/sys/kernel/sem", "re");
    int semmsl;
    if (f) {
        if (fscanf(f, "%d", &semmsl) == 1) snprintf(limit, sizeof limit, " is %d", semmsl);
        fclose(f);
    }
    shmh_fail_call(site, "semget", SHMH_OP_GENERIC, EINVAL,
                   "key 0x%x: this library's semaphore sets need %d semaphores (Qt's 1; the second marks the set as "
                   "this library's), but kernel.sem SEMMSL (semaphores per set)%s",
                   (unsigned)ipc_key, MANAGED_SET_SIZE, limit);
    shmh_fail_relabel(site->operation, SHMH_OUT_OF_RESOURCES, NULL);
    errno = EINVAL;
    return -1;
}

int shmh_sem_sysv_open(struct shmh_sem *sem, const struct shmh_site *site) {
    int project_id = sem->key.type;
    for (int attempt = 1;; attempt++) {
        struct shmh_objfile file;
        if (shmh_objfile_open_key(&file, sem->key.native, true, sem->allow_foreign, site) == -1) return -1;
        if (shmh_objfile_record_use(&file, project_id, site) == -1) {
            shmh_objfile_close(&file);
            return -1;
        }
        /* A remover may have unlinked the file between our open and our lock: start again. */
        if (!shmh_objfile_still_at_path(&file)) {
            shmh_objfile_close(&file);
            if (attempt < 100) continue;
            return shmh_fail_refuse(site, SHMH_KEY_ERROR, ENOENT, "the key file %s keeps disappearing", sem->key.native);
        }
        key_t ipc_key = shmh_objfile_ftok(&file, project_id);
        int id = semget(ipc_key, MANAGED_SET_SIZE, IPC_CREAT | IPC_EXCL | 0600);
        if (id >= 0) {
            union semun arg = {.val = sem->initial};
            if (semctl(id, 0, SETVAL, arg) == -1) {
                int err = errno;
                semctl(id, 0, IPC_RMID);
                if (file.created && shmh_objfile_may_remove_key_file(&file)) shmh_objfile_unlink_if_still_at_path(&file);
                shmh_objfile_close(&file);
                return shmh_fail_call(site, "semctl(SETVAL)", SHMH_OP_GENERIC, err, "key 0x%x", (unsigned)ipc_key);
            }
            sem->semid = id;
            sem->created = true;
            sem->managed = true;
        } else if (errno == EEXIST) {
            id = semget(ipc_key, 0, 0600);
            struct semid_ds ds;
            union semun arg = {.buf = &ds};
            if (id == -1 || semctl(id, 0, IPC_STAT, arg) == -1) {
                int err = errno;
                shmh_objfile_close(&file);
                return shmh_fail_call(site, id == -1 ? "semget" : "semctl(IPC_STAT)", SHMH_OP_GENERIC, err,
                                      "key 0x%x", (unsigned)ipc_key);
            }
            /* Owner and creator both this user: a stranger's set handed over with IPC_SET is no lock of ours. */
            if (!sem->allow_foreign && !shmh_ipc_perm_is_mine(&ds.sem_perm)) {
                shmh_objfile_close(&file);
                return shmh_fail_refuse(site, SHMH_PERMISSION_DENIED, EACCES,
                                        "semaphore set %d (key 0x%x) was created by uid %u and is owned by uid %u, "
                                        "not by this user (uid %u) alone; set allow_foreign_owner to use it",
                                        id, (unsigned)ipc_key, (unsigned)ds.sem_perm.cuid,
                                        (unsigned)ds.sem_perm.uid, (unsigned)geteuid());
            }
            sem->semid = id;
            sem->created = false;
            /* Ours to remove only if this user made it (a foreign set used with allow_foreign_owner never is). */
            sem->managed = ds.sem_nsems == MANAGED_SET_SIZE && shmh_ipc_perm_is_mine(&ds.sem_perm);
        } else {
            int err = errno;
            /* Unlike the Swift side (which keeps it), a key file this call made goes again if nobody else
             * records a use of it: a failed open leaves nothing behind. */
            if (file.created && shmh_objfile_may_remove_key_file(&file)) shmh_objfile_unlink_if_still_at_path(&file);
            shmh_objfile_close(&file);
            if (err == EINVAL) return semmsl_failure(site, ipc_key);
            return shmh_fail_call(site, "semget", SHMH_OP_GENERIC, err, "key 0x%x", (unsigned)ipc_key);
        }
        sem->file = file;
        return 0;
    }
}

int shmh_sem_sysv_operate(struct shmh_sem *sem, int op, int64_t deadline, bool try_only, const struct shmh_site *site) {
    bool reopened = false;
    for (;;) {
        struct sembuf sb = {.sem_num = 0, .sem_op = (short)op, .sem_flg = SEM_UNDO};
        int rc;
        if (try_only) {
            sb.sem_flg |= IPC_NOWAIT;
            rc = semop(sem->semid, &sb, 1);
        } else if (deadline == INT64_MAX) {
            rc = semop(sem->semid, &sb, 1);
        } else {
            int64_t left = shmh_remaining(deadline);
            if (left == 0) sb.sem_flg |= IPC_NOWAIT;
            struct timespec ts = {(time_t)(left / 1000000000LL), (long)(left % 1000000000LL)};
            rc = semtimedop(sem->semid, &sb, 1, &ts); /* relative: recomputed after EINTR */
        }
        if (rc == 0) return 1;
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN) return 0;
        if (!reopened && (err == EIDRM || err == EINVAL)) {
            /* The set was removed under us (a Qt owner does that): open it again, as Qt does. */
            reopened = true;
            struct shmh_sem fresh = *sem;
            fresh.file.fd = -1;
            fresh.file.path = NULL;
            if (shmh_sem_sysv_open(&fresh, site) == -1) return -1;
            shmh_objfile_close(&sem->file);
            sem->file = fresh.file;
            sem->semid = fresh.semid;
            sem->managed = fresh.managed;
            continue;
        }
        return shmh_fail_call(site, "semop", SHMH_OP_SEMOP, err, "semaphore set %d", sem->semid);
    }
}

int shmh_sem_sysv_value(struct shmh_sem *sem, int *value, const struct shmh_site *site) {
    int v = semctl(sem->semid, 0, GETVAL);
    if (v == -1) return shmh_fail_call(site, "semctl(GETVAL)", SHMH_OP_GENERIC, errno, "semaphore set %d", sem->semid);
    *value = v;
    return 0;
}

void shmh_sem_sysv_close(struct shmh_sem *sem, bool remove_if_unused, shmh_still_removable check, const void *context) {
    if (sem->semid >= 0 && remove_if_unused && sem->managed &&
        shmh_objfile_claim_for_removal(&sem->file, sem->key.type) && (!check || check(context))) {
        semctl(sem->semid, 0, IPC_RMID);
        /* The key file may anchor sets of other ftok ids too: it goes only when none is in use. */
        if (shmh_objfile_may_remove_key_file(&sem->file)) shmh_objfile_unlink_if_still_at_path(&sem->file);
    }
    sem->semid = -1;
    shmh_objfile_close(&sem->file);
}
