// _GNU_SOURCE is defined here, never in the public header: defining it there makes Glibc's
// module disagree with ours about struct layouts (fd_set) and breaks the Swift build.
#define _GNU_SOURCE 1
#include "CShmShim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <semaphore.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <time.h>
#include <unistd.h>

union shm_shim_semun {
    int val;
    struct semid_ds *buf;
    unsigned short *array;
};

int shm_shim_semctl_setval(int semid, int semnum, int value) {
    union shm_shim_semun arg;
    arg.val = value;
    return semctl(semid, semnum, SETVAL, arg);
}

int shm_shim_semctl_getval(int semid, int semnum) { return semctl(semid, semnum, GETVAL); }
int shm_shim_semctl_getncnt(int semid, int semnum) { return semctl(semid, semnum, GETNCNT); }
int shm_shim_semctl_getpid(int semid, int semnum) { return semctl(semid, semnum, GETPID); }
int shm_shim_semctl_rmid(int semid) { return semctl(semid, 0, IPC_RMID); }

int shm_shim_semctl_stat(int semid, uid_t *uid, uid_t *cuid, unsigned int *mode, unsigned long *nsems) {
    struct semid_ds ds;
    union shm_shim_semun arg;
    memset(&ds, 0, sizeof ds);
    arg.buf = &ds;
    if (semctl(semid, 0, IPC_STAT, arg) == -1) return -1;
    if (uid) *uid = ds.sem_perm.uid;
    if (cuid) *cuid = ds.sem_perm.cuid;
    if (mode) *mode = ds.sem_perm.mode & 0777;
    if (nsems) *nsems = ds.sem_nsems;
    return 0;
}

const short SHM_SHIM_SEM_UNDO = SEM_UNDO;
const short SHM_SHIM_IPC_NOWAIT = IPC_NOWAIT;

int shm_shim_semop(int semid, unsigned short semnum, short op, short flags, int64_t timeout_ns) {
    struct sembuf sb;
    sb.sem_num = semnum;
    sb.sem_op = op;
    sb.sem_flg = flags;
    if (timeout_ns < 0) return semop(semid, &sb, 1);
    // semtimedop's timeout is relative; the caller recomputes it after EINTR.
    struct timespec ts;
    ts.tv_sec = (time_t)(timeout_ns / 1000000000LL);
    ts.tv_nsec = (long)(timeout_ns % 1000000000LL);
    return semtimedop(semid, &sb, 1, &ts);
}

int shm_shim_shmctl_stat(int shmid, size_t *size, unsigned long *nattch, uid_t *uid, uid_t *cuid,
                         unsigned int *mode, pid_t *cpid, pid_t *lpid) {
    struct shmid_ds ds;
    memset(&ds, 0, sizeof ds);
    if (shmctl(shmid, IPC_STAT, &ds) == -1) return -1;
    if (size) *size = ds.shm_segsz;
    if (nattch) *nattch = ds.shm_nattch;
    if (uid) *uid = ds.shm_perm.uid;
    if (cuid) *cuid = ds.shm_perm.cuid;
    if (mode) *mode = ds.shm_perm.mode & 0777;
    if (cpid) *cpid = ds.shm_cpid;
    if (lpid) *lpid = ds.shm_lpid;
    return 0;
}

int shm_shim_shmctl_rmid(int shmid) { return shmctl(shmid, IPC_RMID, NULL); }

void *shm_shim_shmat(int shmid, int readonly) {
    void *p = shmat(shmid, NULL, readonly ? SHM_RDONLY : 0);
    return p == (void *)-1 ? NULL : p;
}

sem_t *shm_shim_sem_open(const char *name, int oflag, unsigned int mode, unsigned int value) {
    sem_t *s = (oflag & O_CREAT) ? sem_open(name, oflag, (mode_t)mode, value) : sem_open(name, oflag);
    return s == SEM_FAILED ? NULL : s;
}

int shm_shim_sem_wait(sem_t *sem, int64_t timeout_ns) {
    if (timeout_ns < 0) return sem_wait(sem);
    if (timeout_ns == 0) return sem_trywait(sem);
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) == -1) return -1;
    int64_t total = (int64_t)now.tv_nsec + timeout_ns % 1000000000LL;
    struct timespec deadline;
    deadline.tv_sec = now.tv_sec + (time_t)(timeout_ns / 1000000000LL) + (time_t)(total / 1000000000LL);
    deadline.tv_nsec = (long)(total % 1000000000LL);
    return sem_clockwait(sem, CLOCK_MONOTONIC, &deadline);
}

int shm_shim_ofd_lock(int fd, int type, int64_t start, int64_t len, int wait) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type == 0 ? F_RDLCK : type == 1 ? F_WRLCK : F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)start;
    fl.l_len = (off_t)len;
    fl.l_pid = 0;
    return fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
}

int shm_shim_ofd_conflicts(int fd, int type, int64_t start, int64_t len) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type == 0 ? F_RDLCK : F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)start;
    fl.l_len = (off_t)len;
    fl.l_pid = 0;
    if (fcntl(fd, F_OFD_GETLK, &fl) == -1) return -1;
    return fl.l_type == F_UNLCK ? 0 : 1;
}

static int shm_shim_isolation = 0;
static const char *shm_shim_isolation_step = "";

/* Runs before main, while the process has a single thread: unshare() of a mount namespace needs that. */
__attribute__((constructor)) static void shm_shim_isolate_if_asked(void) {
    const char *ask = getenv("SHM_HARNESS_ISOLATE");
    if (ask == NULL || strcmp(ask, "1") != 0) return;
    /* Children (the workers) share these namespaces: they must not make their own. */
    unsetenv("SHM_HARNESS_ISOLATE");
    if (unshare(CLONE_NEWIPC | CLONE_NEWNS) == -1) {
        shm_shim_isolation = -errno;
        shm_shim_isolation_step = "unshare(CLONE_NEWIPC|CLONE_NEWNS)";
        return;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1) {
        shm_shim_isolation = -errno;
        shm_shim_isolation_step = "mount --make-rprivate /";
        return;
    }
    if (mount("shm-harness", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") == -1) {
        shm_shim_isolation = -errno;
        shm_shim_isolation_step = "mount tmpfs /dev/shm";
        return;
    }
    shm_shim_isolation = 1;
}

int shm_shim_isolation_status(void) { return shm_shim_isolation; }
const char *shm_shim_isolation_failed_step(void) { return shm_shim_isolation_step; }

int shm_shim_set_parent_death_signal(int signal) { return prctl(PR_SET_PDEATHSIG, (unsigned long)signal, 0, 0, 0); }

int shm_shim_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }

int shm_shim_open(const char *path, int flags, unsigned int mode) { return open(path, flags, (mode_t)mode); }

const int SHM_SHIM_O_NOFOLLOW = O_NOFOLLOW;
const int SHM_SHIM_O_CLOEXEC = O_CLOEXEC;
const int SHM_SHIM_O_EXCL = O_EXCL;
const int SHM_SHIM_O_CREAT = O_CREAT;
const int SHM_SHIM_O_RDONLY = O_RDONLY;
const int SHM_SHIM_O_RDWR = O_RDWR;
const int SHM_SHIM_O_DIRECTORY = O_DIRECTORY;
const int SHM_SHIM_O_PATH = O_PATH;

// ===================== file-backed sharing: memfd, seals, statfs, futex, robust mutex, SIGBUS, SCM_RIGHTS

#include <linux/futex.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif
#ifndef F_SEAL_EXEC
#define F_SEAL_EXEC 0x0020
#endif
#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

int shm_shim_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }
const unsigned int SHM_SHIM_MFD_CLOEXEC = MFD_CLOEXEC;
const unsigned int SHM_SHIM_MFD_ALLOW_SEALING = MFD_ALLOW_SEALING;

int shm_shim_add_seals(int fd, unsigned int seals) { return fcntl(fd, F_ADD_SEALS, (int)seals); }
int shm_shim_get_seals(int fd) { return fcntl(fd, F_GET_SEALS); }
const unsigned int SHM_SHIM_F_SEAL_SEAL = F_SEAL_SEAL;
const unsigned int SHM_SHIM_F_SEAL_SHRINK = F_SEAL_SHRINK;
const unsigned int SHM_SHIM_F_SEAL_GROW = F_SEAL_GROW;
const unsigned int SHM_SHIM_F_SEAL_WRITE = F_SEAL_WRITE;
const unsigned int SHM_SHIM_F_SEAL_FUTURE_WRITE = F_SEAL_FUTURE_WRITE;
const unsigned int SHM_SHIM_F_SEAL_EXEC = F_SEAL_EXEC;

const int SHM_SHIM_FALLOC_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE;

int shm_shim_fallocate(int fd, int mode, int64_t offset, int64_t length) {
    if (mode & FALLOC_FL_PUNCH_HOLE) mode |= FALLOC_FL_KEEP_SIZE;
    return fallocate(fd, mode, (off_t)offset, (off_t)length);
}

int shm_shim_statfs_type(const char *path, uint64_t *type) {
    struct statfs st;
    if (statfs(path, &st) == -1) return -1;
    if (type) *type = (uint64_t)(unsigned long)st.f_type;
    return 0;
}

int shm_shim_fstatfs_type(int fd, uint64_t *type) {
    struct statfs st;
    if (fstatfs(fd, &st) == -1) return -1;
    if (type) *type = (uint64_t)(unsigned long)st.f_type;
    return 0;
}

const uint64_t SHM_SHIM_TMPFS_MAGIC = 0x01021994;  // linux/magic.h TMPFS_MAGIC
const uint64_t SHM_SHIM_RAMFS_MAGIC = 0x858458f6;  // linux/magic.h RAMFS_MAGIC
const int SHM_SHIM_O_TMPFILE = O_TMPFILE;

// --- futex ---

int shm_shim_futex_wait(uint32_t *word, uint32_t expected, int64_t deadline_ns) {
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (deadline_ns >= 0) {
        ts.tv_sec = (time_t)(deadline_ns / 1000000000LL);
        ts.tv_nsec = (long)(deadline_ns % 1000000000LL);
        tsp = &ts;
    }
    // FUTEX_WAIT_BITSET takes an absolute deadline (CLOCK_MONOTONIC without FUTEX_CLOCK_REALTIME), so a
    // retry after EINTR or a spurious wake-up keeps the caller's deadline without recomputing it.
    return (int)syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
}

int shm_shim_futex_wake(uint32_t *word, int count) {
    return (int)syscall(SYS_futex, word, FUTEX_WAKE, count, NULL, NULL, 0);
}

int shm_shim_pid_cache; // 0: not read yet (or reset in a fork child)
static pthread_once_t shm_shim_pid_once = PTHREAD_ONCE_INIT;
static void shm_shim_pid_reset(void) { __atomic_store_n(&shm_shim_pid_cache, 0, __ATOMIC_RELAXED); }
static void shm_shim_pid_register(void) { pthread_atfork(NULL, NULL, shm_shim_pid_reset); }

int shm_shim_cached_pid(void) {
    int pid = __atomic_load_n(&shm_shim_pid_cache, __ATOMIC_RELAXED);
    if (pid != 0) return pid;
    pthread_once(&shm_shim_pid_once, shm_shim_pid_register);
    pid = (int)getpid();
    __atomic_store_n(&shm_shim_pid_cache, pid, __ATOMIC_RELAXED);
    return pid;
}

static __thread uint64_t shm_shim_scans;
void shm_shim_count_process_scan(void) { shm_shim_scans++; }
uint64_t shm_shim_process_scans(void) { return shm_shim_scans; }

int64_t shm_shim_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

// --- robust mutex ---

size_t shm_shim_pthread_mutex_size(void) { return sizeof(pthread_mutex_t); }
size_t shm_shim_pthread_mutex_alignment(void) { return _Alignof(pthread_mutex_t); }

static int shm_shim_fail(int rc) {
    errno = rc;
    return -1;
}

int shm_shim_robust_mutex_init(void *mutex) {
    pthread_mutexattr_t attr;
    int rc = pthread_mutexattr_init(&attr);
    if (rc != 0) return shm_shim_fail(rc);
    if ((rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED)) == 0 &&
        (rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST)) == 0 &&
        (rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_NORMAL)) == 0) {
        rc = pthread_mutex_init((pthread_mutex_t *)mutex, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    return rc == 0 ? 0 : shm_shim_fail(rc);
}

int shm_shim_robust_mutex_lock(void *mutex, int64_t timeout_ns) {
    pthread_mutex_t *m = (pthread_mutex_t *)mutex;
    int rc;
    if (timeout_ns < 0) {
        rc = pthread_mutex_lock(m);
    } else if (timeout_ns == 0) {
        rc = pthread_mutex_trylock(m);
    } else {
        int64_t deadline = shm_shim_monotonic_ns() + timeout_ns;
        struct timespec abs;
        abs.tv_sec = (time_t)(deadline / 1000000000LL);
        abs.tv_nsec = (long)(deadline % 1000000000LL);
        rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &abs);
    }
    return rc == 0 ? 0 : shm_shim_fail(rc);
}

int shm_shim_robust_mutex_unlock(void *mutex) {
    int rc = pthread_mutex_unlock((pthread_mutex_t *)mutex);
    return rc == 0 ? 0 : shm_shim_fail(rc);
}

int shm_shim_robust_mutex_consistent(void *mutex) {
    int rc = pthread_mutex_consistent((pthread_mutex_t *)mutex);
    return rc == 0 ? 0 : shm_shim_fail(rc);
}

// --- SIGBUS guard ---
// A thread arms the guard around one memcpy. The handler, installed once, jumps back only when the guard
// is armed on the faulting thread and the signal came from the kernel (si_code > 0: a real fault, not a
// kill(2)); anything else goes to the handler that was installed before ours (or the default action).

static struct sigaction shm_shim_previous_bus;
static pthread_once_t shm_shim_bus_once = PTHREAD_ONCE_INIT;
static int shm_shim_bus_install_error;
static _Atomic uint64_t shm_shim_bus_faults;
static __thread sigjmp_buf shm_shim_bus_jump;
static __thread volatile sig_atomic_t shm_shim_bus_armed;

static void shm_shim_bus_handler(int sig, siginfo_t *info, void *context) {
    if (shm_shim_bus_armed && info != NULL && info->si_code > 0) {
        shm_shim_bus_armed = 0;
        siglongjmp(shm_shim_bus_jump, 1);
    }
    if (shm_shim_previous_bus.sa_flags & SA_SIGINFO) {
        if (shm_shim_previous_bus.sa_sigaction != NULL) {
            shm_shim_previous_bus.sa_sigaction(sig, info, context);
            return;
        }
    } else if (shm_shim_previous_bus.sa_handler != SIG_DFL && shm_shim_previous_bus.sa_handler != SIG_IGN) {
        shm_shim_previous_bus.sa_handler(sig);
        return;
    }
    // The default action. SIGBUS is blocked while we run: the raised signal is delivered on return (and a
    // faulting instruction faults again), so the process dies with SIGBUS as it would without us.
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGBUS, &dfl, NULL);
    raise(SIGBUS);
}

static void shm_shim_bus_install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = shm_shim_bus_handler;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGBUS, &action, &shm_shim_previous_bus) == -1) shm_shim_bus_install_error = errno;
}

/* Back from the handler (siglongjmp): SIGBUS is still blocked on this thread (savemask 0 keeps the fast path
 * free of a sigprocmask call), so unblock it here, count the fault, and fail with EFAULT. */
static int shm_shim_bus_recovered(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGBUS);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    atomic_fetch_add(&shm_shim_bus_faults, 1);
    return shm_shim_fail(EFAULT);
}

int shm_shim_guarded_copy(void *dst, const void *src, size_t n) {
    pthread_once(&shm_shim_bus_once, shm_shim_bus_install);
    if (shm_shim_bus_install_error != 0) return shm_shim_fail(shm_shim_bus_install_error);
    if (sigsetjmp(shm_shim_bus_jump, 0) != 0) return shm_shim_bus_recovered();
    shm_shim_bus_armed = 1;
    atomic_signal_fence(memory_order_seq_cst);
    memcpy(dst, src, n);
    atomic_signal_fence(memory_order_seq_cst);
    shm_shim_bus_armed = 0;
    return 0;
}

int shm_shim_guarded_add_u64(void *p, uint64_t value, int atomic) {
    pthread_once(&shm_shim_bus_once, shm_shim_bus_install);
    if (shm_shim_bus_install_error != 0) return shm_shim_fail(shm_shim_bus_install_error);
    if (sigsetjmp(shm_shim_bus_jump, 0) != 0) return shm_shim_bus_recovered();
    shm_shim_bus_armed = 1;
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic) {
        __atomic_fetch_add((uint64_t *)p, value, __ATOMIC_RELAXED);
    } else {
        uint64_t old; /* a plain little-endian read-modify-write, on purpose not atomic */
        memcpy(&old, p, 8);
        old += value;
        memcpy(p, &old, 8);
    }
    atomic_signal_fence(memory_order_seq_cst);
    shm_shim_bus_armed = 0;
    return 0;
}

uint64_t shm_shim_guarded_faults(void) { return atomic_load(&shm_shim_bus_faults); }

// --- where a worker is ---

volatile int shm_shim_current_step_line;

static void shm_shim_report_step(int sig) {
    (void)sig;
    int saved = errno;
    char text[32] = "at ";
    char digits[16];
    int n = 0;
    unsigned line = shm_shim_current_step_line > 0 ? (unsigned)shm_shim_current_step_line : 0;
    do {
        digits[n++] = (char)('0' + line % 10);
        line /= 10;
    } while (line && n < (int)sizeof digits);
    size_t used = 3;
    while (n) text[used++] = digits[--n];
    text[used++] = '\n';
    ssize_t ignored = write(1, text, used); // async-signal-safe
    (void)ignored;
    errno = saved;
}

int shm_shim_install_step_reporter(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = shm_shim_report_step;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGUSR1, &action, NULL);
}

// --- Unix sockets and SCM_RIGHTS ---

static int shm_shim_unix_address(const char *path, struct sockaddr_un *addr) {
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr->sun_path) return shm_shim_fail(ENAMETOOLONG);
    strcpy(addr->sun_path, path);
    return 0;
}

static int shm_shim_close_keeping_errno(int fd) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int shm_shim_unix_listen(const char *path) {
    struct sockaddr_un addr;
    if (shm_shim_unix_address(path, &addr) == -1) return -1;
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s == -1) return -1;
    // bind(2) gives the socket file the socket inode's mode minus the umask: 0600 whatever the umask.
    if (fchmod(s, 0600) == -1) return shm_shim_close_keeping_errno(s);
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) == -1) return shm_shim_close_keeping_errno(s);
    if (listen(s, 16) == -1) {
        int saved = errno;
        unlink(path);
        close(s);
        errno = saved;
        return -1;
    }
    return s;
}

int shm_shim_unix_connect(const char *path) {
    struct sockaddr_un addr;
    if (shm_shim_unix_address(path, &addr) == -1) return -1;
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (s == -1) return -1;
    if (connect(s, (struct sockaddr *)&addr, sizeof addr) == -1) return shm_shim_close_keeping_errno(s);
    return s;
}

int shm_shim_unix_accept(int listener) { return accept4(listener, NULL, NULL, SOCK_CLOEXEC); }

int shm_shim_peer_uid(int socket, uid_t *uid) {
    struct ucred credentials;
    socklen_t length = sizeof credentials;
    if (getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == -1) return -1;
    if (uid) *uid = credentials.uid;
    return 0;
}

/* --- deliberately plain memory access ------------------------------------------------------------------- */

uint64_t shm_shim_plain_load_u64(const void *p) {
    if (((uintptr_t)p & 7) == 0) return *(const volatile uint64_t *)p;
    const volatile uint8_t *b = (const volatile uint8_t *)p;
    uint64_t value = 0;
    for (int i = 0; i < 8; i++) value |= (uint64_t)b[i] << (8 * i);
    return value;
}

void shm_shim_plain_store_u64(void *p, uint64_t value) {
    if (((uintptr_t)p & 7) == 0) {
        *(volatile uint64_t *)p = value;
        return;
    }
    volatile uint8_t *b = (volatile uint8_t *)p;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(value >> (8 * i));
}

uint8_t shm_shim_touch_every(const void *base, size_t length, size_t stride) {
    const volatile uint8_t *bytes = (const volatile uint8_t *)base;
    uint8_t sum = 0;
    if (stride == 0) stride = 1;
    for (size_t offset = 0; offset < length; offset += stride) sum = (uint8_t)(sum + bytes[offset]);
    return sum;
}
