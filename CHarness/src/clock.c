/* clock.c - monotonic deadlines for waits that EINTR may interrupt. */
#include "internal.h"

#include <time.h>

int64_t shmh_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t shmh_deadline(int64_t timeout_ns) {
    if (timeout_ns < 0) return INT64_MAX;
    int64_t now = shmh_now_ns();
    return timeout_ns > INT64_MAX / 2 ? INT64_MAX : now + timeout_ns;
}

int64_t shmh_remaining(int64_t deadline) {
    if (deadline == INT64_MAX) return -1;
    int64_t left = deadline - shmh_now_ns();
    return left > 0 ? left : 0;
}
