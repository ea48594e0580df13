/*
 * shmh.h - libshmh: Qt-compatible shared memory for C (the C side of shm-harness).
 *
 * Speaks the same keys, key files, lock protocol, usage records and in-memory lock layout as the Swift
 * library SharedMemoryKit (and, where the README says so, as Qt's QSharedMemory / QSystemSemaphore /
 * QNativeIpcKey), so that a C process, a Swift process and a Qt process can share one segment.
 *
 * Conventions: every function that can fail returns 0 (or a valid pointer / descriptor) on success and
 * -1 (or NULL) with errno set on failure, as system calls do. The failure is also recorded, per thread,
 * with its error code in Qt's vocabulary, the operation, the system call and the object:
 * see shmh_last_failure() and shmh_failure_format().
 *
 * Plain C11 with libc and pthreads. Not thread-safe per object (one object per thread, as with Qt).
 */
#ifndef SHMH_H
#define SHMH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------------
 * Errors: the same list, order and spelling as SharedMemoryError.Code in Swift.
 */
enum shmh_error {
    SHMH_OK = 0,
    SHMH_PERMISSION_DENIED = 1,
    SHMH_INVALID_SIZE,
    SHMH_KEY_ERROR,
    SHMH_ALREADY_EXISTS,
    SHMH_NOT_FOUND,
    SHMH_LOCK_ERROR,
    SHMH_OUT_OF_RESOURCES,
    SHMH_BUSY,
    SHMH_SEALED,
    SHMH_BUS_ERROR,
    SHMH_OWNER_DIED,
    SHMH_UNKNOWN,
};
#define SHMH_ERROR_COUNT 12 /* codes 1..12 */

/* What an errno means depends on the call that returned it (Qt's call-site rules, as the Swift side). */
enum shmh_op {
    SHMH_OP_GENERIC = 0, /* the common table only */
    SHMH_OP_NAME,        /* opening a name or key file: EINVAL -> key-error */
    SHMH_OP_SIZE,        /* sizing (shmget on create, posix_fallocate): EINVAL -> invalid-size */
    SHMH_OP_SEMOP,       /* semop / shmdt: EINVAL -> not-found (the object went away) */
    SHMH_OP_POST,        /* sem_post: EINVAL -> out-of-resources */
    SHMH_OP_TRYLOCK,     /* a try-lock: EAGAIN / EACCES (F_OFD_SETLK) / EBUSY -> busy */
    SHMH_OP_SEAL,        /* anything a memfd seal may refuse: EPERM -> sealed, EBUSY -> busy */
    SHMH_OP_LOCK,        /* a lock or unlock: EPERM (not the holder) -> lock-error */
};

/* The scenario spelling ("permission-denied"); "ok" for SHMH_OK, NULL for values outside the list. */
const char *shmh_error_name(enum shmh_error code);
/* Looks a code up by its scenario spelling; SHMH_OK (0) if unknown. */
enum shmh_error shmh_error_from_name(const char *name);
/* The one errno -> code table (with the call-site refinement of `op`). */
enum shmh_error shmh_error_from_errno(enum shmh_op op, int err);
/* The C spelling of an errno value ("EACCES"), or NULL if not in the table. */
const char *shmh_errno_symbol(int err);

/* The last failure of the calling thread. */
struct shmh_failure {
    enum shmh_error code;
    int err;              /* errno of the failing call, 0 for a refusal by the library */
    const char *operation; /* "create", "attach", "lock", ... */
    const char *call;      /* "shmget", ... or NULL for a refusal */
    char object[512];      /* Qt's string form of the key, or a path ("" if none) */
    char detail[512];      /* more context: the IPC key in hex, a size, the reason of a refusal */
};
const struct shmh_failure *shmh_last_failure(void);
/* Formats the last failure as the Swift side does:
 *   attach: shmget(key 0x5102f3a1): permission-denied (EACCES: Permission denied) [systemv:/tmp/...]
 * Returns buf. */
char *shmh_failure_format(char *buf, size_t len);

/* ---------------------------------------------------------------------------------------------------
 * Keys (QNativeIpcKey). Strings carry a length because Qt's keys may contain NUL characters; each is also
 * NUL-terminated for convenience. Text is UTF-8.
 */
#define SHMH_TYPE_INVALID 0x0000u
#define SHMH_TYPE_SYSTEMV 0x0051u /* 'Q'; 1..255 are System V with that ftok project id */
#define SHMH_TYPE_POSIX 0x0100u
#define SHMH_TYPE_WINDOWS 0x0101u

enum shmh_kind { SHMH_KIND_SHARED_MEMORY = 0, SHMH_KIND_SYSTEM_SEMAPHORE = 1 };

struct shmh_key {
    uint16_t type;
    char *native;      /* never NULL after a successful init (may be "") */
    size_t native_len;
    char *legacy;      /* NULL: no legacy key */
    size_t legacy_len;
};

/* A native key (no legacy key). `len` may be (size_t)-1 for strlen(native). */
int shmh_key_init(struct shmh_key *key, uint16_t type, const char *native, size_t len);
/* Qt's legacyNativeKey(key, type) for QSharedMemory or QSystemSemaphore. `tempdir` NULL: Qt's
 * QDir::tempPath() ($TMPDIR cleaned and made canonical, or /tmp). `len` may be (size_t)-1. */
int shmh_key_legacy(struct shmh_key *out, const char *legacy, size_t len, uint16_t type, enum shmh_kind kind,
                    const char *tempdir);
/* Qt's QNativeIpcKey::toString(); malloc'd, *len_out (optional) gets its length. NULL with EINVAL for a type
 * that has no scheme (Qt's null string). */
char *shmh_key_to_string(const struct shmh_key *key, size_t *len_out);
/* Qt's QNativeIpcKey::fromString(): -1 with EINVAL where Qt's result is invalid. */
int shmh_key_from_string(struct shmh_key *out, const char *text, size_t len);
/* The key of the semaphore a segment with this key locks through (Qt 6.6+ semaphoreNativeKey()). */
int shmh_key_lock_semaphore_key(const struct shmh_key *key, struct shmh_key *out);
int shmh_key_copy(struct shmh_key *out, const struct shmh_key *key);
void shmh_key_free(struct shmh_key *key);
/* Equality as Qt's: type, native key and legacy key. */
int shmh_key_equal(const struct shmh_key *a, const struct shmh_key *b);
int shmh_key_is_systemv(uint16_t type);
/* Qt's QDir::tempPath() on Unix into buf; -1 with ERANGE if it does not fit. */
int shmh_qt_temp_path(char *buf, size_t len);
/* SHA-1 (for the legacy derivation): 20 bytes into digest. */
void shmh_sha1(const void *data, size_t len, uint8_t digest[20]);

/* ---------------------------------------------------------------------------------------------------
 * Options shared by segments and semaphores.
 */
struct shmh_options {
    /* use objects another uid owns or created (off by default: a System V object only when its owner and its
     * creator are this user, a file only when this user owns it); objects used so are never removed */
    int allow_foreign_owner;
    int64_t operation_timeout_ns; /* how long create/attach/detach wait for the lock; < 0 forever */
    /* accept a System V key file outside the temp folder and $XDG_RUNTIME_DIR (off by default) */
    int allow_any_path;
};
#define SHMH_DEFAULT_OPERATION_TIMEOUT_NS (30LL * 1000000000LL)
void shmh_options_default(struct shmh_options *options);

enum shmh_access { SHMH_READ_WRITE = 0, SHMH_READ_ONLY = 1 };

/* ---------------------------------------------------------------------------------------------------
 * System semaphores (QSystemSemaphore), System V and POSIX.
 */
enum shmh_sem_mode { SHMH_SEM_OPEN = 0, SHMH_SEM_CREATE = 1 };
struct shmh_sem;

/* Opens or creates the semaphore now. Both modes create a missing semaphore with `initial` and never reset an
 * existing one. `options` may be NULL. */
struct shmh_sem *shmh_sem_open(const struct shmh_key *key, long initial, enum shmh_sem_mode mode,
                               const struct shmh_options *options);
/* Takes one unit; timeout_ns < 0 waits forever; a timeout is -1 with ETIMEDOUT (lock-error). */
int shmh_sem_acquire(struct shmh_sem *sem, int64_t timeout_ns);
/* Takes one unit if the count is above 0; -1 with EAGAIN (busy) otherwise. */
int shmh_sem_try_acquire(struct shmh_sem *sem);
/* Adds n units (0 does nothing; n < 0 or > 32767: invalid-size). */
int shmh_sem_release(struct shmh_sem *sem, long n);
int shmh_sem_value(struct shmh_sem *sem, int *value);
/* Whether this handle created the semaphore. */
int shmh_sem_created(const struct shmh_sem *sem);
/* Closes and frees. The semaphore is removed only if this library created it and no other process using
 * the library has it open (remove_if_unused 0 keeps it in any case). NULL is allowed. */
void shmh_sem_close(struct shmh_sem *sem, int remove_if_unused);

/* ---------------------------------------------------------------------------------------------------
 * Keyed segments (QSharedMemory), System V and POSIX.
 */
struct shmh_segment;

/* A handle; nothing is opened until create or attach. `options` may be NULL. */
struct shmh_segment *shmh_segment_new(const struct shmh_key *key, const struct shmh_options *options);
/* Creates a zero-filled segment of `size` bytes (0600) and attaches to it. */
int shmh_segment_create(struct shmh_segment *seg, size_t size, enum shmh_access access);
int shmh_segment_attach(struct shmh_segment *seg, enum shmh_access access);
/* Detaches; the last detacher removes the segment (see README). Releases a lock held through this handle. */
int shmh_segment_detach(struct shmh_segment *seg);
/* The segment's lock (its system semaphore); timeout_ns < 0 waits forever. Locking twice is a no-op. */
int shmh_segment_lock(struct shmh_segment *seg, int64_t timeout_ns);
/* -1 with EAGAIN (busy) if another holder has the lock. */
int shmh_segment_trylock(struct shmh_segment *seg);
int shmh_segment_unlock(struct shmh_segment *seg);
int shmh_segment_is_attached(const struct shmh_segment *seg);
size_t shmh_segment_size(const struct shmh_segment *seg);
void *shmh_segment_data(const struct shmh_segment *seg);
const struct shmh_key *shmh_segment_key(const struct shmh_segment *seg);
/* The size of an attached POSIX segment's file now (fstat): another process may shrink it under the mapping,
 * and touching a page that is gone raises SIGBUS. -1 for System V (it cannot shrink) or when not attached. */
long long shmh_segment_file_size(const struct shmh_segment *seg);
/* Detaches if attached, closes the lock semaphore (removing it if no process is attached), frees. */
void shmh_segment_free(struct shmh_segment *seg);

/* ---------------------------------------------------------------------------------------------------
 * In-memory locks, laid out as docs/lock-layout.md says (shared byte for byte with the Swift side).
 */
#define SHMH_LOCK_MAGIC 0x4C4D4853u
enum shmh_lock_kind { SHMH_LOCK_FUTEX = 1, SHMH_LOCK_ROBUST_MUTEX = 2 };

struct shmh_lock_area {
    uint32_t magic; /* SHMH_LOCK_MAGIC once initialised (written last, release store) */
    uint32_t kind;  /* enum shmh_lock_kind */
    uint64_t reserved;
    union {
        struct {
            uint32_t word;  /* 0 free, 1 locked, 2 locked with possible waiters */
            uint32_t owner; /* pid of the holder, informational */
            uint8_t reserved[40];
        } futex;
        pthread_mutex_t mutex; /* PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST, PTHREAD_MUTEX_NORMAL */
        uint8_t raw[48];
    } lock;
};
_Static_assert(sizeof(struct shmh_lock_area) == 64, "the lock area is 64 bytes");
_Static_assert(offsetof(struct shmh_lock_area, magic) == 0, "magic at 0");
_Static_assert(offsetof(struct shmh_lock_area, kind) == 4, "kind at 4");
_Static_assert(offsetof(struct shmh_lock_area, reserved) == 8, "reserved at 8");
_Static_assert(offsetof(struct shmh_lock_area, lock) == 16, "the lock at 16");
_Static_assert(offsetof(struct shmh_lock_area, lock.futex.word) == 16, "futex word at 16");
_Static_assert(offsetof(struct shmh_lock_area, lock.futex.owner) == 20, "futex owner at 20");
_Static_assert(sizeof(pthread_mutex_t) <= 48, "pthread_mutex_t fits in bytes 16..63");

/* The creator: zero-fills the 64 bytes at `area` (8-byte aligned), initialises the lock, writes magic last. */
int shmh_lock_init(void *area, enum shmh_lock_kind kind);
/* Checks magic and kind (lock-error if the area is not an initialised lock of that kind). */
int shmh_lock_check(const void *area, enum shmh_lock_kind kind);
/* Lock by the area's kind; timeout_ns < 0 waits forever. A robust mutex whose holder died: -1 with
 * EOWNERDEAD (owner-died) and the caller HOLDS the lock; repair, then shmh_lock_consistent(). */
int shmh_lock_acquire(void *area, int64_t timeout_ns);
int shmh_lock_try(void *area); /* -1 with EBUSY (busy) when taken */
int shmh_lock_release(void *area);
int shmh_lock_consistent(void *area); /* robust mutex only */

/* The same, per kind (no dispatch). */
int shmh_futex_lock(struct shmh_lock_area *area, int64_t timeout_ns);
int shmh_futex_trylock(struct shmh_lock_area *area);
int shmh_futex_unlock(struct shmh_lock_area *area);
int shmh_robust_mutex_lock(struct shmh_lock_area *area, int64_t timeout_ns);
int shmh_robust_mutex_trylock(struct shmh_lock_area *area);
int shmh_robust_mutex_unlock(struct shmh_lock_area *area);
int shmh_robust_mutex_consistent(struct shmh_lock_area *area);

/* Lock files: `path` created 0600 (O_NOFOLLOW), an exclusive OFD lock on byte 0. */
struct shmh_lockfile {
    int fd;
    char path[4096];
};
int shmh_lockfile_open(struct shmh_lockfile *lf, const char *path);
int shmh_lockfile_lock(struct shmh_lockfile *lf, int64_t timeout_ns);
int shmh_lockfile_trylock(struct shmh_lockfile *lf); /* -1 with EAGAIN (busy) when taken */
int shmh_lockfile_unlock(struct shmh_lockfile *lf);
/* Closes; unlinks the file too if `remove` (only if the path still names the file we opened). */
int shmh_lockfile_close(struct shmh_lockfile *lf, int remove);

/* ---------------------------------------------------------------------------------------------------
 * memfd and mapped files, in a simple form.
 */
#define SHMH_SEAL_SEAL 0x0001u
#define SHMH_SEAL_SHRINK 0x0002u
#define SHMH_SEAL_GROW 0x0004u
#define SHMH_SEAL_WRITE 0x0008u
#define SHMH_SEAL_FUTURE_WRITE 0x0010u

/* memfd_create(name, MFD_CLOEXEC | (allow_sealing ? MFD_ALLOW_SEALING : 0)), sized with ftruncate. */
int shmh_memfd_create(const char *name, size_t size, int allow_sealing);
int shmh_fd_add_seals(int fd, unsigned int seals); /* EPERM -> sealed */
int shmh_fd_get_seals(int fd, unsigned int *seals);
int shmh_fd_resize(int fd, size_t size); /* ftruncate; EPERM -> sealed */
/* Creates `path` 0600 with O_EXCL|O_NOFOLLOW and reserves `size` bytes (posix_fallocate). Returns the fd. */
int shmh_file_create(const char *path, size_t size);
/* Opens an existing regular file without following a symlink. Returns the fd. */
int shmh_file_open(const char *path, enum shmh_access access);
/* mmap(MAP_SHARED) of `len` bytes at `offset`; NULL with errno (EPERM on a write-sealed memfd: sealed). */
void *shmh_map(int fd, size_t len, off_t offset, enum shmh_access access);
int shmh_unmap(void *address, size_t len);

/* ---------------------------------------------------------------------------------------------------
 * Descriptor passing over a connected Unix socket (e.g. a socketpair(AF_UNIX, SOCK_SEQPACKET) end):
 * SCM_RIGHTS, one descriptor and a short message per call, as the Swift library's UnixSocket.
 */
/* sendmsg(MSG_NOSIGNAL) of `fd` with `len` bytes of `msg` (an empty message travels as one zero byte).
 * A peer that is gone is not-found (EPIPE / ECONNRESET). */
int shmh_fd_send(int sock, int fd, const void *msg, size_t len);
/* recvmsg(MSG_CMSG_CLOEXEC) of one descriptor and up to `cap` bytes of message (*len). Returns the new
 * descriptor; -1 with not-found (ECONNRESET) when the peer closed without sending, key-error (EBADMSG) when
 * the message carried no descriptor. Extra descriptors in one message are closed. */
int shmh_fd_recv(int sock, void *msg, size_t cap, size_t *len);
/* The same two without the library's error report: -1 with errno (recv: ECONNRESET at end of stream, EBADMSG
 * for a message without a descriptor, EMSGSIZE for a cut control message). */
int shmh_fd_send_raw(int sock, int fd, const void *msg, size_t len);
int shmh_fd_recv_raw(int sock, void *msg, size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif
#endif /* SHMH_H */
