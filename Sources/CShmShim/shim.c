// _GNU_SOURCE is defined here, never in the public header: defining it there makes Glibc's
// module disagree with ours about struct layouts (fd_set) and breaks the Swift build.
#define _GNU_SOURCE 1
#include "CShmShim.h"

#include <errno.h>
#include <fcntl.h>
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

int shm_shim_open(const char *path, int flags, unsigned int mode) { return open(path, flags, (mode_t)mode); }

const int SHM_SHIM_O_NOFOLLOW = O_NOFOLLOW;
const int SHM_SHIM_O_CLOEXEC = O_CLOEXEC;
const int SHM_SHIM_O_EXCL = O_EXCL;
const int SHM_SHIM_O_CREAT = O_CREAT;
const int SHM_SHIM_O_RDONLY = O_RDONLY;
const int SHM_SHIM_O_RDWR = O_RDWR;
const int SHM_SHIM_O_DIRECTORY = O_DIRECTORY;
const int SHM_SHIM_O_PATH = O_PATH;
