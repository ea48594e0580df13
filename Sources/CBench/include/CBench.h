/* CBench - the C side of `shm-harness bench`: the raw-system-call floor of each operation, the same work
 * through libshmh, and a per-thread allocation counter. Every timed function runs `iterations` times and
 * returns the elapsed nanoseconds (CLOCK_MONOTONIC), or -1 with errno set. */
#ifndef CBENCH_H
#define CBENCH_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Allocations (malloc, calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc) made by the calling
 * thread since it started. The executable that links CBench interposes these functions: each counts, then
 * calls glibc's allocator (__libc_malloc ...). */
uint64_t cbench_allocations(void);
/* 1 if the interposer is active (an allocation made through malloc was counted). */
int cbench_allocation_counter_works(void);

int64_t cbench_now_ns(void);

/* Floors: the system calls alone. */
int64_t cbench_semop_pair(int semid, long iterations);                 /* semop -1/+1, SEM_UNDO */
int64_t cbench_sem_pair(void *sem, long iterations);                   /* sem_wait / sem_post */
int64_t cbench_futex_pair(uint32_t *word, long iterations);            /* Drepper's futex word */
int64_t cbench_futex_add_loop(uint32_t *word, uint64_t *counter, long iterations); /* lock, add 1, unlock */
int64_t cbench_mutex_pair(void *mutex, long iterations);               /* pthread_mutex_lock/unlock */
int64_t cbench_ofd_pair(int fd, long iterations);                      /* F_OFD_SETLKW / F_UNLCK, byte 0 */
int64_t cbench_sysv_attach_detach(int key, long iterations);           /* shmget + shmat + shmdt */
/* shm_open + fstat + mmap + munmap + close; with_record: + a shared OFD lock (a usage record) */
int64_t cbench_posix_attach_detach(const char *name, int with_record, long iterations);
int64_t cbench_sysv_create_destroy(int key, size_t size, long iterations);      /* shmget(IPC_CREAT|IPC_EXCL) + IPC_RMID */
int64_t cbench_posix_create_destroy(const char *name, size_t size, long iterations); /* shm_open + posix_fallocate + close + shm_unlink */
int64_t cbench_memfd_seal_map(size_t size, long iterations); /* memfd_create + ftruncate + F_ADD_SEALS + mmap + munmap + close */
/* Writes one byte per page of `bytes` (a fresh mapping): the first touch. */
int64_t cbench_touch_pages(void *bytes, size_t size, size_t page);

/* libshmh, the C library of CHarness, doing what SharedMemoryKit does. */
void *cbench_shmh_segment_open(const char *key_string, size_t create_size); /* create_size 0: attach */
void cbench_shmh_segment_free(void *segment);
void *cbench_shmh_segment_data(void *segment);
int64_t cbench_shmh_lock_pair(void *segment, long iterations);
int64_t cbench_shmh_attach_detach(const char *key_string, long iterations);
int64_t cbench_shmh_create_destroy(const char *key_string, size_t size, long iterations);
int64_t cbench_shmh_futex_pair(void *area, long iterations);

/* Cross-process: the C worker's loops (run in a re-executed bench process). `kind`: 1 System V segment lock
 * (semid, semop), 2 POSIX segment lock (sem), 3 futex word, 4 robust mutex. Increments *counter under the
 * lock `iterations` times. */
int64_t cbench_counter(int kind, int semid, void *sem, void *lock, uint64_t *counter, long iterations);
/* Ping-pong over a shared word: side 0 writes odd values and waits for even, side 1 the reverse.
 * blocking: wait with FUTEX_WAIT instead of spinning. Returns the elapsed ns of `rounds` round trips. */
int64_t cbench_pingpong(uint32_t *word, int side, int blocking, long rounds);
/* Ping-pong over two POSIX semaphores: side 0 posts `other` then waits on `mine`; side 1 the reverse. */
int64_t cbench_sem_pingpong(void *mine, void *other, int side, long rounds);
/* sem_open(name, 0) of an existing semaphore (NULL with errno), and sem_close. */
void *cbench_sem_open(const char *name);
void cbench_sem_close(void *sem);
/* shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600): a descriptor or -1. */
int cbench_shm_create(const char *name);
/* A process-shared robust mutex at `mutex` (initialised), for the floor. */
int cbench_robust_mutex_init(void *mutex);
size_t cbench_mutex_size(void);

#ifdef __cplusplus
}
#endif
#endif
