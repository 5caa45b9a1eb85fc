/* Names the calling thread for the kernel (top -H, perf, /proc/PID/task/TID/comm). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "include/CSIPUring.h"

int csip_set_thread_name(const char *name) {
    if (name == NULL) return -EINVAL;
    char truncated[16];
    /* The kernel keeps 15 bytes and a NUL; longer names are cut, not refused. */
    strncpy(truncated, name, sizeof(truncated) - 1);
    truncated[sizeof(truncated) - 1] = '\0';
    int result = pthread_setname_np(pthread_self(), truncated);
    return result == 0 ? 0 : -result;
}
