/*
 * blitzio/common.h — what every module header needs: the export macro, time
 * types, the error vocabulary and the allocator hook.
 *
 * Errors: every function that can fail returns an int (or ssize_t): 0 or a
 * non-negative count on success, a negative errno value on failure. There is
 * no errno side channel. blz_strerror() and blz_errname() name any code.
 */
#ifndef BLZ_COMMON_H
#define BLZ_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
# if defined(BLZ_BUILDING)
#  define BLZ_API __declspec(dllexport)
# else
#  define BLZ_API
# endif
#elif defined(__GNUC__)
# define BLZ_API __attribute__((visibility("default")))
#else
# define BLZ_API
#endif

/** A span of time in nanoseconds. Negative spans are treated as zero by every consumer. */
typedef int64_t blz_duration;

/** A point on the monotonic clock, in nanoseconds since an unspecified origin. Never wall time. */
typedef uint64_t blz_instant;

#define BLZ_NS_PER_US 1000LL
#define BLZ_NS_PER_MS 1000000LL
#define BLZ_NS_PER_S  1000000000LL

/* `n` units of `unit` nanoseconds, saturating at INT64_MAX / INT64_MIN. */
static inline blz_duration
blz__dur_scale(int64_t n, int64_t unit)
{
    int64_t r;
    if (__builtin_mul_overflow(n, unit, &r)) {
        return n < 0 ? INT64_MIN : INT64_MAX;
    }
    return r;
}

/**
 * A duration of `n` nanoseconds / microseconds / milliseconds / seconds. A count
 * too large to express in int64 nanoseconds saturates (INT64_MAX: about 292
 * years, as good as forever; INT64_MIN: treated as zero like any negative span).
 */
static inline blz_duration
blz_ns(int64_t n)
{
    return n;
}
static inline blz_duration
blz_us(int64_t n)
{
    return blz__dur_scale(n, BLZ_NS_PER_US);
}
static inline blz_duration
blz_ms(int64_t n)
{
    return blz__dur_scale(n, BLZ_NS_PER_MS);
}
static inline blz_duration
blz_secs(int64_t n)
{
    return blz__dur_scale(n, BLZ_NS_PER_S);
}

/** The deadline `d` after instant `t`, saturating instead of wrapping. */
static inline blz_instant
blz_instant_add(blz_instant t, blz_duration d)
{
    if (d <= 0) {
        return t;
    }
    blz_instant r = t + (uint64_t) d;
    return r < t ? UINT64_MAX : r;
}

/** The time from `earlier` to `later`, or 0 when `later` is not after `earlier`;
 * saturating at INT64_MAX (a gap that wide, as from UINT64_MAX, must not turn negative). */
static inline blz_duration
blz_instant_since(blz_instant later, blz_instant earlier)
{
    if (later <= earlier) {
        return 0;
    }
    uint64_t gap = later - earlier;
    return gap > (uint64_t) INT64_MAX ? INT64_MAX : (blz_duration) gap;
}

/** Reads the monotonic clock (CLOCK_MONOTONIC). Any thread. */
BLZ_API blz_instant blz_now(void);

/** The name of an error code ("EAGAIN"), or "UNKNOWN". Accepts the negative or positive value. */
BLZ_API const char *blz_errname(int err);

/** A message for an error code ("resource temporarily unavailable"). Accepts negative or positive.
 */
BLZ_API const char *blz_strerror(int err);

/*
 * The allocator hook. Every allocation blitzio makes goes through these three
 * functions, so tests and benchmarks can count allocations or make them fail.
 * Install before creating any runtime (or between runtimes: what a thread
 * keeps from one runtime to the next goes back to the allocator that made it);
 * passing NULLs restores malloc/realloc/free. The hook is process-wide. Not
 * thread-safe against concurrent allocations.
 */
typedef void *(*blz_malloc_fn)(size_t size);
typedef void *(*blz_realloc_fn)(void *ptr, size_t size);
typedef void (*blz_free_fn)(void *ptr);

BLZ_API void blz_set_allocator(blz_malloc_fn malloc_fn, blz_realloc_fn realloc_fn,
                               blz_free_fn free_fn);

/* Opaque handles shared across modules. */
typedef struct blz_runtime blz_runtime;
typedef struct blz_join blz_join;
typedef struct blz_future blz_future;

/** The signature of a task body (fiber or blocking job). Its return value is the task's result. */
typedef void *(*blz_task_fn)(void *arg);

#ifdef __cplusplus
}
#endif
#endif /* BLZ_COMMON_H */
