/* memfd.c - memfd (create, seals) and mapped files, in a simple form. A seal that refuses an operation is
 * EPERM from the kernel: "sealed". */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(SHMH_SEAL_SEAL == F_SEAL_SEAL && SHMH_SEAL_SHRINK == F_SEAL_SHRINK && SHMH_SEAL_GROW == F_SEAL_GROW &&
                   SHMH_SEAL_WRITE == F_SEAL_WRITE && SHMH_SEAL_FUTURE_WRITE == F_SEAL_FUTURE_WRITE,
               "seal values are the kernel's");

int shmh_memfd_create(const char *name, size_t size, int allow_sealing) {
    const struct shmh_site site = {"memfd create", NULL, name};
    int fd = memfd_create(name, MFD_CLOEXEC | (allow_sealing ? MFD_ALLOW_SEALING : 0u));
    if (fd == -1) return shmh_fail_call(&site, "memfd_create", SHMH_OP_NAME, errno, "%s", name);
    if (size && ftruncate(fd, (off_t)size) == -1) {
        int err = errno;
        close(fd);
        return shmh_fail_call(&site, "ftruncate", SHMH_OP_SIZE, err, "size %zu", size);
    }
    return fd;
}

int shmh_fd_add_seals(int fd, unsigned int seals) {
    const struct shmh_site site = {"seal", NULL, NULL};
    if (fcntl(fd, F_ADD_SEALS, (int)seals) == -1)
        return shmh_fail_call(&site, "fcntl(F_ADD_SEALS)", SHMH_OP_SEAL, errno, "fd %d, seals 0x%x", fd, seals);
    return 0;
}

int shmh_fd_get_seals(int fd, unsigned int *seals) {
    const struct shmh_site site = {"seal", NULL, NULL};
    int rc = fcntl(fd, F_GET_SEALS);
    if (rc == -1) return shmh_fail_call(&site, "fcntl(F_GET_SEALS)", SHMH_OP_GENERIC, errno, "fd %d", fd);
    *seals = (unsigned int)rc;
    return 0;
}

int shmh_fd_resize(int fd, size_t size) {
    const struct shmh_site site = {"resize", NULL, NULL};
    int rc;
    do rc = ftruncate(fd, (off_t)size);
    while (rc == -1 && errno == EINTR);
    if (rc == -1) return shmh_fail_call(&site, "ftruncate", SHMH_OP_SEAL, errno, "fd %d, size %zu", fd, size);
    return 0;
}

int shmh_file_create(const char *path, size_t size) {
    const struct shmh_site site = {"file create", NULL, path};
    struct shmh_objfile f;
    if (shmh_objfile_create_exclusive(&f, path, 0600, &site) == -1) return -1;
    int rc = 0;
    if (size) {
        do rc = posix_fallocate(f.fd, 0, (off_t)size);
        while (rc == EINTR);
    }
    if (rc != 0) {
        shmh_objfile_unlink_if_still_at_path(&f);
        shmh_objfile_close(&f);
        return shmh_fail_call(&site, "posix_fallocate", SHMH_OP_SIZE, rc, "size %zu", size);
    }
    int fd = f.fd;
    f.fd = -1;
    shmh_objfile_close(&f);
    return fd;
}

int shmh_file_open(const char *path, enum shmh_access access) {
    const struct shmh_site site = {"file open", NULL, path};
    struct shmh_objfile f;
    if (shmh_objfile_open_existing(&f, path, false, &site) == -1) return -1;
    int fd = f.fd;
    if (access == SHMH_READ_WRITE && (fcntl(fd, F_GETFL) & O_ACCMODE) != O_RDWR) {
        shmh_objfile_close(&f);
        return shmh_fail_refuse(&site, SHMH_PERMISSION_DENIED, EACCES, "%s is not writable", path);
    }
    f.fd = -1;
    shmh_objfile_close(&f);
    return fd;
}

void *shmh_map(int fd, size_t len, off_t offset, enum shmh_access access) {
    const struct shmh_site site = {"map", NULL, NULL};
    int prot = access == SHMH_READ_ONLY ? PROT_READ : PROT_READ | PROT_WRITE;
    void *p = mmap(NULL, len, prot, MAP_SHARED, fd, offset);
    if (p == MAP_FAILED) {
        shmh_fail_call(&site, "mmap", SHMH_OP_SEAL, errno, "fd %d, length %zu", fd, len);
        return NULL;
    }
    return p;
}

int shmh_unmap(void *address, size_t len) {
    const struct shmh_site site = {"unmap", NULL, NULL};
    if (munmap(address, len) == -1) return shmh_fail_call(&site, "munmap", SHMH_OP_GENERIC, errno, NULL);
    return 0;
}
