/* --wrap=posix_fallocate: the next `wrap_fallocate_failures` calls return the error queued by will_return()
 * (a full /dev/shm cannot be made on demand without root-only tmpfs mounts). */
#include "support.h"

#include <fcntl.h>

int wrap_fallocate_failures;
int __real_posix_fallocate(int fd, off_t offset, off_t len);
int __wrap_posix_fallocate(int fd, off_t offset, off_t len);

int __wrap_posix_fallocate(int fd, off_t offset, off_t len) {
    if (wrap_fallocate_failures > 0) {
        wrap_fallocate_failures--;
        return (int)mock();
    }
    return __real_posix_fallocate(fd, offset, len);
}
