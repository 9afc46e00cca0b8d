/* clock.h - the monotonic clock, for timeouts and cache ages. */
#ifndef BERTH_UTIL_CLOCK_H
#define BERTH_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC: only differences mean anything. */
static inline int64_t mono_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Microseconds of CLOCK_MONOTONIC, for measuring. */
static inline int64_t mono_us(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Monotonic seconds, never 0: a cache entry stamped 0 is stale. */
static inline int64_t mono_stamp(void)
{
    return mono_ms() / 1000 + 1;
}

#endif
