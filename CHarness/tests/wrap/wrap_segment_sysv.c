/* --wrap=shmget: the next `wrap_shmget_failures` calls fail with the errno queued by will_return(). */
#include "support.h"

#include <errno.h>
#include <sys/shm.h>

int wrap_shmget_failures;
int __real_shmget(key_t key, size_t size, int flags);
int __wrap_shmget(key_t key, size_t size, int flags);

int __wrap_shmget(key_t key, size_t size, int flags) {
    if (wrap_shmget_failures > 0) {
        wrap_shmget_failures--;
        errno = (int)mock();
        return -1;
    }
    return __real_shmget(key, size, flags);
}
