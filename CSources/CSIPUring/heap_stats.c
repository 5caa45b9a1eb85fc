/* The allocator's own figures (jemalloc's mallctl), looked up at run time: a process without jemalloc simply has
 * none, instead of failing to link or start. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "include/CSIPUring.h"

typedef int (*mallctl_function)(const char *, void *, size_t *, void *, size_t);

int csip_heap_stats(uint64_t *allocated, uint64_t *resident) {
    if (allocated == NULL || resident == NULL) return -EINVAL;
    mallctl_function mallctl = (mallctl_function)dlsym(RTLD_DEFAULT, "mallctl");
    if (mallctl == NULL) return -ENOSYS;
    /* The statistics are a snapshot refreshed by writing the epoch. */
    uint64_t epoch = 1;
    size_t length = sizeof epoch;
    if (mallctl("epoch", &epoch, &length, &epoch, sizeof epoch) != 0) return -EIO;
    size_t value = 0;
    length = sizeof value;
    if (mallctl("stats.allocated", &value, &length, NULL, 0) != 0) return -EIO;
    *allocated = value;
    length = sizeof value;
    if (mallctl("stats.resident", &value, &length, NULL, 0) != 0) return -EIO;
    *resident = value;
    return 0;
}
