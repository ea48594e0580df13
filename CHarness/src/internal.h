/* internal.h - what the library's files share and no user sees. Built with -D_GNU_SOURCE. */
#ifndef SHMH_INTERNAL_H
#define SHMH_INTERNAL_H

#include "shmh.h"

#include <stdbool.h>
#include <sys/ipc.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- failures (errors.c) --- */

/* Where a failing call happened: the library operation and the object (Qt's key string or a path). */
struct shmh_site {
    const char *operation;
    const struct shmh_key *key; /* the object, when it is a key */
    const char *path;           /* the object, when it is a file */
};

/* Records a failed system call (errno `err`, mapped with `op`), sets errno = err, returns -1. */
int shmh_fail_call(const struct shmh_site *site, const char *call, enum shmh_op op, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Records a refusal by the library with `code`; sets errno = err (the closest errno), returns -1. */
int shmh_fail_refuse(const struct shmh_site *site, enum shmh_error code, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Re-labels the last failure as having happened during `operation` with `code` (errno unchanged). */
void shmh_fail_relabel(const char *operation, enum shmh_error code, const char *prefix);
/* Saves / restores the last failure around clean-up code that may fail harmlessly. */
void shmh_fail_save(struct shmh_failure *saved);
void shmh_fail_restore(const struct shmh_failure *saved);

/* --- time --- */
int64_t shmh_now_ns(void); /* CLOCK_MONOTONIC */
/* A deadline from a timeout (< 0: none, INT64_MAX). */
int64_t shmh_deadline(int64_t timeout_ns);
int64_t shmh_remaining(int64_t deadline); /* never negative; -1 for no deadline */

/* --- object files (objfile.c): key files and the files behind POSIX objects --- */

/* Usage records: one byte per slot from here (shared OFD locks), far past any data. */
#define SHMH_USAGE_BASE (INT64_MAX - 511)

struct shmh_objfile {
    int fd; /* -1: none */
    bool created;
    struct stat st;
    char *path;
};

/* Qt's createUnixKeyFile (0640, O_EXCL) when `create`, else an existing one; never through a symlink, never
 * another user's (unless allow_foreign). */
int shmh_objfile_open_key(struct shmh_objfile *f, const char *path, bool create, bool allow_foreign,
                          const struct shmh_site *site);
int shmh_objfile_create_exclusive(struct shmh_objfile *f, const char *path, mode_t mode,
                                  const struct shmh_site *site);
int shmh_objfile_open_existing(struct shmh_objfile *f, const char *path, bool allow_foreign,
                               const struct shmh_site *site);
void shmh_objfile_close(struct shmh_objfile *f);
/* glibc's ftok formula over the opened file. */
key_t shmh_objfile_ftok(const struct shmh_objfile *f, int project_id);
void shmh_objfile_refresh(struct shmh_objfile *f);
bool shmh_objfile_still_at_path(const struct shmh_objfile *f);
int shmh_objfile_record_use(struct shmh_objfile *f, int slot, const struct shmh_site *site);
/* slot < 0: every slot. */
bool shmh_objfile_claim_for_removal(struct shmh_objfile *f, int slot);
/* Drops this description's usage records (and any claim); the file stays open. */
void shmh_objfile_release_usage(struct shmh_objfile *f);
bool shmh_objfile_is_managed(const struct shmh_objfile *f);
int shmh_objfile_mark_managed(struct shmh_objfile *f, mode_t mode, const struct shmh_site *site);
void shmh_objfile_unlink_if_still_at_path(const struct shmh_objfile *f);
/* Ownership proof for removals: the library's mark (read fresh) on a file this user owns. */
bool shmh_objfile_provably_ours(struct shmh_objfile *f);
/* The key-file removal rule: provably ours, empty, no usage record in any slot, still at its path. */
bool shmh_objfile_may_remove_key_file(struct shmh_objfile *f);

/* --- OFD locks (lockfile.c) --- */
/* type 0 read, 1 write, 2 unlock. */
int shmh_ofd_lock(int fd, int type, int64_t start, int64_t len, bool wait);
/* 1 if another open file description holds a conflicting lock, 0 if not, -1 on error. */
int shmh_ofd_conflicts(int fd, int type, int64_t start, int64_t len);

/* --- keys (key.c) --- */
/* The directory part of a System V legacy native key ("/tmp"), malloc'd; NULL if none. */
char *shmh_key_directory(const struct shmh_key *key);
/* Qt's string form for messages: never NULL ("invalid key"). Writes into buf. */
const char *shmh_key_describe(const struct shmh_key *key, char *buf, size_t len);
/* The POSIX name without its leading slashes, or NULL if it is not exactly one path component. */
const char *shmh_posix_bare_name(const struct shmh_key *key);
/* The key path rule: a System V key file must be in the temp folder or $XDG_RUNTIME_DIR (or below) unless
 * allow_any_path; -1 with a key-error naming the key and the rule otherwise. */
int shmh_check_key_path(const struct shmh_key *key, bool allow_any_path, const struct shmh_site *site);

/* A System V object is this user's when both its owner (uid, which IPC_SET changes) and its creator (cuid,
 * which nothing changes) are the effective uid (root: root). */
static inline bool shmh_ipc_perm_is_mine(const struct ipc_perm *perm) {
    uid_t me = geteuid();
    return perm->uid == me && perm->cuid == me;
}

/* Allocating sprintf. */
char *shmh_strdup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- semaphore backends (sem_sysv.c, sem_posix.c) --- */
struct shmh_sem {
    struct shmh_key key;
    bool systemv;
    bool created;
    bool managed;
    struct shmh_objfile file; /* key file (System V) or /dev/shm/sem.NAME (POSIX) */
    /* System V */
    int semid;
    int initial;
    bool allow_foreign;
    /* POSIX */
    void *handle; /* sem_t * */
};

int shmh_sem_sysv_open(struct shmh_sem *sem, const struct shmh_site *site);
/* 1 acquired, 0 deadline passed, -1 error. deadline: see shmh_deadline; 0 = try. */
int shmh_sem_sysv_operate(struct shmh_sem *sem, int op, int64_t deadline, bool try_only,
                          const struct shmh_site *site);
int shmh_sem_sysv_value(struct shmh_sem *sem, int *value, const struct shmh_site *site);
/* A last check before a semaphore is removed, asked only once it could be (ours, no other library user). */
typedef bool (*shmh_still_removable)(const void *context);
void shmh_sem_sysv_close(struct shmh_sem *sem, bool remove_if_unused, shmh_still_removable check, const void *context);

int shmh_sem_posix_open(struct shmh_sem *sem, unsigned int initial, const struct shmh_site *site);
int shmh_sem_posix_acquire(struct shmh_sem *sem, int64_t deadline, bool try_only, const struct shmh_site *site);
int shmh_sem_posix_release(struct shmh_sem *sem, long n, const struct shmh_site *site);
int shmh_sem_posix_value(struct shmh_sem *sem, int *value, const struct shmh_site *site);
void shmh_sem_posix_close(struct shmh_sem *sem, bool remove_if_unused, shmh_still_removable check, const void *context);
/* shmh_sem_close, removing the semaphore only if `check(context)` (asked last) agrees too. */
void shmh_sem_close_if(struct shmh_sem *sem, int remove_if_unused, shmh_still_removable check, const void *context);
/* The first step of shmh_sem_close(sem, 1); the second is shmh_sem_close_if. Apart for the test that interleaves
 * two closers step by step (tests/test_sem_close_race.c). */
void shmh_sem_drop_record_before_close(struct shmh_sem *sem);
/* No process but this one can hold a unit: no other open file description records a use of the semaphore's
 * file and no other process maps it (see acquire_for_operation in segment.c). */
bool shmh_sem_posix_no_other_holder(struct shmh_sem *sem);
/* Whether a process other than `except` (0: none excepted) maps a file on /dev/shm with this device and inode
 * (/proc/PID/maps). With owner_only, only processes whose /proc/PID belongs to `owner` or root are read (only
 * they can have opened a 0600 file of that owner); others cost one fstatat each. */
bool shmh_any_process_maps(dev_t device, unsigned long long inode, pid_t except, bool owner_only, uid_t owner);

/* --- segment backends (segment_sysv.c, segment_posix.c) --- */
struct shmh_backend {
    const struct shmh_key *key;
    bool allow_foreign;
    bool systemv;
    struct shmh_objfile file; /* key file (System V) or /dev/shm/NAME (POSIX) */
    int shmid;                /* System V; -1 none */
    void *address;
    size_t size;
    enum shmh_access access;
};

void shmh_backend_init(struct shmh_backend *b, const struct shmh_key *key, bool allow_foreign);
int shmh_backend_create(struct shmh_backend *b, size_t size, const struct shmh_site *site);
int shmh_backend_attach(struct shmh_backend *b, enum shmh_access access, const struct shmh_site *site);
int shmh_backend_detach(struct shmh_backend *b, const struct shmh_site *site);
bool shmh_backend_destroy_if_unused(struct shmh_backend *b);
bool shmh_backend_attached_by_any_process(const struct shmh_key *key);
void shmh_backend_release(struct shmh_backend *b); /* unmaps if mapped, closes files; removes nothing */

int shmh_sysv_segment_create(struct shmh_backend *b, size_t size, const struct shmh_site *site);
int shmh_sysv_segment_attach(struct shmh_backend *b, enum shmh_access access, const struct shmh_site *site);
int shmh_sysv_segment_detach(struct shmh_backend *b, const struct shmh_site *site);
bool shmh_sysv_segment_destroy_if_unused(struct shmh_backend *b);
bool shmh_sysv_segment_attached_by_any_process(const struct shmh_key *key);
void shmh_sysv_foreign_segment_note(const struct shmh_objfile *file, char *out, size_t size);

int shmh_posix_segment_create(struct shmh_backend *b, size_t size, const struct shmh_site *site);
int shmh_posix_segment_attach(struct shmh_backend *b, enum shmh_access access, const struct shmh_site *site);
int shmh_posix_segment_detach(struct shmh_backend *b, const struct shmh_site *site);
bool shmh_posix_segment_destroy_if_unused(struct shmh_backend *b);
bool shmh_posix_segment_attached_by_any_process(const struct shmh_key *key);

#endif
