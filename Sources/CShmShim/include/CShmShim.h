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

#ifdef __cplusplus
}
#endif
#endif
