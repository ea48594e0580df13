// CShmShim: the few calls Swift cannot make directly (variadic C, GNU-only constants).
// Every function keeps the syscall contract: it returns -1 (or NULL) and sets errno on failure,
// and ENOSYS where the platform lacks the feature. Never define _GNU_SOURCE here (see shim.c).
#ifndef CSHMSHIM_H
#define CSHMSHIM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <semaphore.h>

#ifdef __cplusplus
extern "C" {
#endif

// --- System V semaphores (semctl is variadic; union semun lives in shim.c) ---
int shm_shim_semctl_setval(int semid, int semnum, int value);
int shm_shim_semctl_getval(int semid, int semnum);
int shm_shim_semctl_getncnt(int semid, int semnum);
int shm_shim_semctl_getpid(int semid, int semnum);
int shm_shim_semctl_rmid(int semid);
/// IPC_STAT: fills the owner uid, creator uid, mode and the number of semaphores in the set.
int shm_shim_semctl_stat(int semid, uid_t *uid, uid_t *cuid, unsigned int *mode, unsigned long *nsems);
/// semop on one semaphore; timeout_ns < 0 waits without limit. flags: SEM_UNDO, IPC_NOWAIT.
int shm_shim_semop(int semid, unsigned short semnum, short op, short flags, int64_t timeout_ns);
extern const short SHM_SHIM_SEM_UNDO;
extern const short SHM_SHIM_IPC_NOWAIT;

// --- System V shared memory ---
/// IPC_STAT of a segment: size, attach count, owner/creator uid, mode, creator and last pid.
int shm_shim_shmctl_stat(int shmid, size_t *size, unsigned long *nattch, uid_t *uid, uid_t *cuid,
                         unsigned int *mode, pid_t *cpid, pid_t *lpid);
int shm_shim_shmctl_rmid(int shmid);
/// shmat; returns NULL (not (void*)-1) with errno set on failure.
void *shm_shim_shmat(int shmid, int readonly);

// --- POSIX named semaphores (sem_open is variadic) ---
/// Returns NULL (not SEM_FAILED) with errno set on failure.
sem_t *shm_shim_sem_open(const char *name, int oflag, unsigned int mode, unsigned int value);
/// Waits on CLOCK_MONOTONIC; timeout_ns < 0 waits without limit; 0 = try.
int shm_shim_sem_wait(sem_t *sem, int64_t timeout_ns);

// --- open file description locks (F_OFD_*: GNU-only constants) ---
/// type: 0 = shared (F_RDLCK), 1 = exclusive (F_WRLCK), 2 = unlock. wait: block until granted.
int shm_shim_ofd_lock(int fd, int type, int64_t start, int64_t len, int wait);
/// Returns 1 if a conflicting lock of `type` is held by another open file description, 0 if not.
int shm_shim_ofd_conflicts(int fd, int type, int64_t start, int64_t len);

// --- processes: namespaces and parent death (prctl and mount are variadic or GNU-only) ---
/// Isolation requested with SHM_HARNESS_ISOLATE=1 is done by a constructor before main (while the process
/// has one thread): a private IPC namespace and a private mount namespace with a fresh tmpfs on /dev/shm.
/// Returns 0 when not requested, 1 when isolated, or -errno of the step that failed.
int shm_shim_isolation_status(void);
/// Which step of the isolation failed ("unshare", "mount /", "mount /dev/shm"), or "".
const char *shm_shim_isolation_failed_step(void);
/// prctl(PR_SET_PDEATHSIG, signal): the kernel sends `signal` when the parent thread exits.
int shm_shim_set_parent_death_signal(int signal);
/// pipe2(fds, O_CLOEXEC): close-on-exec from the start, so another thread's spawn cannot inherit it.
int shm_shim_pipe_cloexec(int fds[2]);

// --- files ---
/// open(2) with a mode (open is variadic in C).
int shm_shim_open(const char *path, int flags, unsigned int mode);
extern const int SHM_SHIM_O_NOFOLLOW;
extern const int SHM_SHIM_O_CLOEXEC;
extern const int SHM_SHIM_O_EXCL;
extern const int SHM_SHIM_O_CREAT;
extern const int SHM_SHIM_O_RDONLY;
extern const int SHM_SHIM_O_RDWR;
extern const int SHM_SHIM_O_DIRECTORY;
extern const int SHM_SHIM_O_PATH;


// --- memfd and seals (memfd_create, F_ADD_SEALS, F_GET_SEALS and F_SEAL_* are GNU-only) ---
/// memfd_create(2). flags: SHM_SHIM_MFD_*.
int shm_shim_memfd_create(const char *name, unsigned int flags);
extern const unsigned int SHM_SHIM_MFD_CLOEXEC;
extern const unsigned int SHM_SHIM_MFD_ALLOW_SEALING;
/// fcntl(fd, F_ADD_SEALS, seals).
int shm_shim_add_seals(int fd, unsigned int seals);
/// fcntl(fd, F_GET_SEALS): the seals (>= 0), or -1.
int shm_shim_get_seals(int fd);
extern const unsigned int SHM_SHIM_F_SEAL_SEAL;
extern const unsigned int SHM_SHIM_F_SEAL_SHRINK;
extern const unsigned int SHM_SHIM_F_SEAL_GROW;
extern const unsigned int SHM_SHIM_F_SEAL_WRITE;
extern const unsigned int SHM_SHIM_F_SEAL_FUTURE_WRITE;
extern const unsigned int SHM_SHIM_F_SEAL_EXEC;
/// fallocate(2). mode: 0, or SHM_SHIM_FALLOC_PUNCH_HOLE (which implies KEEP_SIZE here).
int shm_shim_fallocate(int fd, int mode, int64_t offset, int64_t length);
extern const int SHM_SHIM_FALLOC_PUNCH_HOLE;

// --- file systems (statfs f_type; the magic numbers live in linux/magic.h) ---
/// statfs(path): the file system's magic number in *type.
int shm_shim_statfs_type(const char *path, uint64_t *type);
/// fstatfs(fd): the file system's magic number in *type.
int shm_shim_fstatfs_type(int fd, uint64_t *type);
extern const uint64_t SHM_SHIM_TMPFS_MAGIC;
extern const uint64_t SHM_SHIM_RAMFS_MAGIC;
extern const int SHM_SHIM_O_TMPFILE;

// --- futex (syscall is variadic) ---
/// FUTEX_WAIT_BITSET (shared, not FUTEX_PRIVATE_FLAG) while *word == expected, until the absolute
/// CLOCK_MONOTONIC deadline (deadline_ns < 0: no deadline). -1 with EAGAIN when *word != expected,
/// ETIMEDOUT at the deadline, EINTR on a signal.
int shm_shim_futex_wait(uint32_t *word, uint32_t expected, int64_t deadline_ns);
/// FUTEX_WAKE (shared): wakes up to `count` waiters; returns how many were woken.
int shm_shim_futex_wake(uint32_t *word, int count);
/// CLOCK_MONOTONIC now, in nanoseconds.
int64_t shm_shim_monotonic_ns(void);
// This process's pid without a system call on every use: read once, and again in the child after fork()
// (a pthread_atfork child handler). A child made without glibc's fork() (raw clone, vfork, _Fork) that
// does not exec sees its parent's pid.
int shm_shim_cached_pid(void);
extern int shm_shim_pid_cache;
// The same, inline: one load when the pid is known.
static inline int shm_shim_pid(void) {
    int pid = __atomic_load_n(&shm_shim_pid_cache, __ATOMIC_RELAXED);
    return pid != 0 ? pid : shm_shim_cached_pid();
}
// How many times the calling thread scanned the processes' maps (ProcessMaps): for the tests that prove a
// detach does not.
void shm_shim_count_process_scan(void);
uint64_t shm_shim_process_scans(void);

// --- robust process-shared pthread mutex (pthread calls return the error; these set errno) ---
/// sizeof(pthread_mutex_t) and its alignment.
size_t shm_shim_pthread_mutex_size(void);
size_t shm_shim_pthread_mutex_alignment(void);
/// pthread_mutex_init with PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST, PTHREAD_MUTEX_NORMAL.
int shm_shim_robust_mutex_init(void *mutex);
/// timeout_ns < 0: pthread_mutex_lock; 0: pthread_mutex_trylock (EBUSY); else pthread_mutex_clocklock
/// on CLOCK_MONOTONIC (ETIMEDOUT). -1 with EOWNERDEAD means the caller holds the mutex.
int shm_shim_robust_mutex_lock(void *mutex, int64_t timeout_ns);
int shm_shim_robust_mutex_unlock(void *mutex);
int shm_shim_robust_mutex_consistent(void *mutex);

// --- SIGBUS guard for mapped file memory ---
/// memcpy(dst, src, n) under a guard: a SIGBUS raised by the copy on this thread (a mapped file that was
/// shrunk) ends the copy and returns -1 with errno EFAULT; the bytes before the fault may have been copied.
/// The handler is installed once (sigaction); a SIGBUS outside a guard goes to the previous handler
/// (the default action: the process dies with SIGBUS).
int shm_shim_guarded_copy(void *dst, const void *src, size_t n);
/// Adds `value` to the 8 bytes at p (a plain little-endian read-modify-write, or with `atomic` a relaxed
/// atomic add) under the same guard: -1 with errno EFAULT if the access faulted with SIGBUS.
int shm_shim_guarded_add_u64(void *p, uint64_t value, int atomic);
/// How many SIGBUS signals the guard has turned into errors in this process.
uint64_t shm_shim_guarded_faults(void);

// --- deliberately plain memory access (the harness's add, load, store-loaded and touch-all steps) ---
// Volatile accesses: the optimizer may not drop, merge or move them, in debug and release builds alike.
// They are not atomic: a lost update between two of them is what the steps exist to show.
/// One 64-bit load at `p` (any alignment; an aligned one is a single load).
uint64_t shm_shim_plain_load_u64(const void *p);
/// One 64-bit store at `p` (any alignment; an aligned one is a single store).
void shm_shim_plain_store_u64(void *p, uint64_t value);
/// Loads one byte of every `stride` bytes of [base, base + length), unguarded: a page whose file was shrunk
/// away raises SIGBUS here. Returns the bytes' sum (so that a caller may look at it).
uint8_t shm_shim_touch_every(const void *base, size_t length, size_t stride);
// --- where a worker is (the runner asks with SIGUSR1 before it kills a worker that ran out of time) ---
/// The scenario line of the step the worker is executing (0: none yet). Set before each step: a plain store.
extern volatile int shm_shim_current_step_line;
static inline void shm_shim_set_current_step_line(int line) { shm_shim_current_step_line = line; }
/// Installs a SIGUSR1 handler (SA_RESTART) that writes `at LINE` and a newline to standard output.
int shm_shim_install_step_reporter(void);

// --- descriptor passing over Unix sockets (sockaddr_un and CMSG_* are macros and unions) ---
/// socket + bind + listen on a path (the socket file is made 0600 before bind). Close-on-exec.
int shm_shim_unix_listen(const char *path);
/// socket + connect to a path. Close-on-exec.
int shm_shim_unix_connect(const char *path);
/// accept4 with SOCK_CLOEXEC.
int shm_shim_unix_accept(int listener);
/// getsockopt(SO_PEERCRED): the connected peer's user id.
int shm_shim_peer_uid(int socket, uid_t *uid);

#ifdef __cplusplus
}
#endif
#endif
