/* --wrap=semget: the next `wrap_semget_failures` calls fail with the errno queued by will_return(). */
#include "support.h"

#include <errno.h>
#include <sys/sem.h>

int wrap_semget_failures;
int __real_semget(key_t key, int nsems, int flags);
int __wrap_semget(key_t key, int nsems, int flags);

int __wrap_semget(key_t key, int nsems, int flags) {
    if (wrap_semget_failures > 0) {
        wrap_semget_failures--;
        errno = (int)mock();
        return -1;
    }
    return __real_semget(key, nsems, flags);
}
