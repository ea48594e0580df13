/* bench.c - the C baselines of `shm-harness bench` (see CBench.h). */
#define _GNU_SOURCE 1
#include "CBench.h"
#include "shmh.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int64_t cbench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t cbench_semop_pair(int semid, long iterations) {
    struct sembuf down = {0, -1, SEM_UNDO}, up = {0, 1, SEM_UNDO};
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        if (semop(semid, &down, 1) == -1) return -1;
        if (semop(semid, &up, 1) == -1) return -1;
    }
    return cbench_now_ns() - start;
}

int64_t cbench_sem_pair(void *sem, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        while (sem_wait(sem) == -1)
            if (errno != EINTR) return -1;
        if (sem_post(sem) == -1) return -1;
    }
    return cbench_now_ns() - start;
}

static void futex_lock(uint32_t *word) {
    uint32_t c = 0;
    if (__atomic_compare_exchange_n(word, &c, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return;
    if (c != 2) c = __atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE);
    while (c != 0) {
        syscall(SYS_futex, word, FUTEX_WAIT, 2, NULL, NULL, 0);
        c = __atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE);
    }
}

static void futex_unlock(uint32_t *word) {
    if (__atomic_fetch_sub(word, 1, __ATOMIC_RELEASE) != 1) {
        __atomic_store_n(word, 0, __ATOMIC_RELEASE);
        syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
    }
}

int64_t cbench_futex_pair(uint32_t *word, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        futex_lock(word);
        futex_unlock(word);
    }
    return cbench_now_ns() - start;
}

/* The step interpreter's floor: lock / plain 64-bit add / unlock on a futex word, as a plain C loop. */
int64_t cbench_futex_add_loop(uint32_t *word, uint64_t *counter, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        futex_lock(word);
        *(volatile uint64_t *)counter += 1;
        futex_unlock(word);
    }
    return cbench_now_ns() - start;
}

int64_t cbench_mutex_pair(void *mutex, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        int rc = pthread_mutex_lock(mutex);
        if (rc != 0) return errno = rc, -1;
        pthread_mutex_unlock(mutex);
    }
    return cbench_now_ns() - start;
}

int cbench_robust_mutex_init(void *mutex) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc == 0 ? 0 : (errno = rc, -1);
}

size_t cbench_mutex_size(void) { return sizeof(pthread_mutex_t); }

int64_t cbench_ofd_pair(int fd, long iterations) {
    struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    struct flock unlock = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        if (fcntl(fd, F_OFD_SETLKW, &lock) == -1) return -1;
        if (fcntl(fd, F_OFD_SETLK, &unlock) == -1) return -1;
    }
    return cbench_now_ns() - start;
}

int64_t cbench_sysv_attach_detach(int key, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        int id = shmget((key_t)key, 0, 0600);
        if (id == -1) return -1;
        void *p = shmat(id, NULL, 0);
        if (p == (void *)-1) return -1;
        shmdt(p);
    }
    return cbench_now_ns() - start;
}

int64_t cbench_posix_attach_detach(const char *name, int with_record, long iterations) {
    struct flock record = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = INT64_MAX - 511, .l_len = 1};
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        int fd = shm_open(name, O_RDWR, 0);
        if (fd == -1) return -1;
        if (with_record && fcntl(fd, F_OFD_SETLKW, &record) == -1) return -1;
        struct stat st;
        if (fstat(fd, &st) == -1) return -1;
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) return -1;
        munmap(p, (size_t)st.st_size);
        close(fd);
    }
    return cbench_now_ns() - start;
}

int64_t cbench_sysv_create_destroy(int key, size_t size, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        int id = shmget((key_t)key, size, IPC_CREAT | IPC_EXCL | 0600);
        if (id == -1) return -1;
        void *p = shmat(id, NULL, 0);
        if (p == (void *)-1) return -1;
        shmdt(p);
        shmctl(id, IPC_RMID, NULL);
    }
    return cbench_now_ns() - start;
}

int64_t cbench_posix_create_destroy(const char *name, size_t size, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        if (fd == -1) return -1;
        if (posix_fallocate(fd, 0, (off_t)size) != 0) return -1;
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) return -1;
        munmap(p, size);
        close(fd);
        shm_unlink(name);
    }
    return cbench_now_ns() - start;
}

int64_t cbench_memfd_seal_map(size_t size, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        int fd = memfd_create("bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd == -1) return -1;
        if (ftruncate(fd, (off_t)size) == -1) return -1;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == -1) return -1;
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) return -1;
        munmap(p, size);
        close(fd);
    }
    return cbench_now_ns() - start;
}

int64_t cbench_touch_pages(void *bytes, size_t size, size_t page) {
    volatile char *b = bytes;
    int64_t start = cbench_now_ns();
    for (size_t off = 0; off < size; off += page) b[off] = 1;
    return cbench_now_ns() - start;
}

/* --- libshmh --- */

static int key_from(const char *text, struct shmh_key *key) { return shmh_key_from_string(key, text, strlen(text)); }

void *cbench_shmh_segment_open(const char *key_string, size_t create_size) {
    struct shmh_key key;
    if (key_from(key_string, &key) == -1) return NULL;
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    shmh_key_free(&key);
    if (!seg) return NULL;
    int rc = create_size ? shmh_segment_create(seg, create_size, SHMH_READ_WRITE) : shmh_segment_attach(seg, SHMH_READ_WRITE);
    if (rc == -1) {
        shmh_segment_free(seg);
        return NULL;
    }
    return seg;
}

void cbench_shmh_segment_free(void *segment) { shmh_segment_free(segment); }
void *cbench_shmh_segment_data(void *segment) { return shmh_segment_data(segment); }

int64_t cbench_shmh_lock_pair(void *segment, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        if (shmh_segment_lock(segment, -1) == -1) return -1;
        if (shmh_segment_unlock(segment) == -1) return -1;
    }
    return cbench_now_ns() - start;
}

int64_t cbench_shmh_attach_detach(const char *key_string, long iterations) {
    struct shmh_key key;
    if (key_from(key_string, &key) == -1) return -1;
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    shmh_key_free(&key);
    if (!seg) return -1;
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        if (shmh_segment_attach(seg, SHMH_READ_WRITE) == -1 || shmh_segment_detach(seg) == -1) {
            shmh_segment_free(seg);
            return -1;
        }
    }
    int64_t elapsed = cbench_now_ns() - start;
    shmh_segment_free(seg);
    return elapsed;
}

int64_t cbench_shmh_create_destroy(const char *key_string, size_t size, long iterations) {
    struct shmh_key key;
    if (key_from(key_string, &key) == -1) return -1;
    struct shmh_segment *seg = shmh_segment_new(&key, NULL);
    shmh_key_free(&key);
    if (!seg) return -1;
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        if (shmh_segment_create(seg, size, SHMH_READ_WRITE) == -1 || shmh_segment_detach(seg) == -1) {
            shmh_segment_free(seg);
            return -1;
        }
    }
    int64_t elapsed = cbench_now_ns() - start;
    shmh_segment_free(seg);
    return elapsed;
}

int64_t cbench_shmh_futex_pair(void *area, long iterations) {
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        if (shmh_futex_lock(area, -1) == -1) return -1;
        shmh_futex_unlock(area);
    }
    return cbench_now_ns() - start;
}

/* --- cross-process --- */

int64_t cbench_counter(int kind, int semid, void *sem, void *lock, uint64_t *counter, long iterations) {
    struct sembuf down = {0, -1, SEM_UNDO}, up = {0, 1, SEM_UNDO};
    int64_t start = cbench_now_ns();
    for (long i = 0; i < iterations; i++) {
        switch (kind) {
        case 1:
            while (semop(semid, &down, 1) == -1)
                if (errno != EINTR) return -1;
            (*(volatile uint64_t *)counter)++;
            semop(semid, &up, 1);
            break;
        case 2:
            while (sem_wait(sem) == -1)
                if (errno != EINTR) return -1;
            (*(volatile uint64_t *)counter)++;
            sem_post(sem);
            break;
        case 3:
            futex_lock(lock);
            (*(volatile uint64_t *)counter)++;
            futex_unlock(lock);
            break;
        case 4: {
            int rc = pthread_mutex_lock(lock);
            if (rc != 0 && rc != EOWNERDEAD) return errno = rc, -1;
            (*(volatile uint64_t *)counter)++;
            pthread_mutex_unlock(lock);
            break;
        }
        default: return errno = EINVAL, -1;
        }
    }
    return cbench_now_ns() - start;
}

int64_t cbench_pingpong(uint32_t *word, int side, int blocking, long rounds) {
    int64_t start = cbench_now_ns();
    for (long r = 0; r < rounds; r++) {
        /* side 0 moves 2r -> 2r+1, side 1 moves 2r+1 -> 2r+2 */
        uint32_t mine = (uint32_t)(2 * r + side), next = mine + 1;
        for (;;) {
            uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
            if (v == mine) break;
            if (blocking) syscall(SYS_futex, word, FUTEX_WAIT, v, NULL, NULL, 0);
        }
        __atomic_store_n(word, next, __ATOMIC_RELEASE);
        if (blocking) syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
    }
    return cbench_now_ns() - start;
}

int64_t cbench_sem_pingpong(void *mine, void *other, int side, long rounds) {
    int64_t start = cbench_now_ns();
    for (long r = 0; r < rounds; r++) {
        if (side == 0) {
            if (sem_post(other) == -1) return -1;
            while (sem_wait(mine) == -1)
                if (errno != EINTR) return -1;
        } else {
            while (sem_wait(mine) == -1)
                if (errno != EINTR) return -1;
            if (sem_post(other) == -1) return -1;
        }
    }
    return cbench_now_ns() - start;
}

void *cbench_sem_open(const char *name) {
    sem_t *sem = sem_open(name, 0);
    return sem == SEM_FAILED ? NULL : sem;
}

void cbench_sem_close(void *sem) { sem_close(sem); }

int cbench_shm_create(const char *name) { return shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600); }
