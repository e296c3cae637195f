/*
 * Internal: every atomic in blitzio goes through these names, so a test build
 * can perturb the schedule at each atomic step (BLZ_PERTURB) and a reader can
 * grep for them. They are thin wrappers over <stdatomic.h>.
 */
#ifndef BLZ_CORE_ATOMIC_H
#define BLZ_CORE_ATOMIC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#if defined(BLZ_PERTURB) && BLZ_PERTURB
void blz__perturb(void);
# define BLZ_PERTURB_POINT() blz__perturb()
#else
# define BLZ_PERTURB_POINT() ((void) 0)
#endif

#define blz__load(p, mo)         atomic_load_explicit((p), (mo))
#define blz__store(p, v, mo)     atomic_store_explicit((p), (v), (mo))
#define blz__fetch_add(p, v, mo) atomic_fetch_add_explicit((p), (v), (mo))
#define blz__fetch_sub(p, v, mo) atomic_fetch_sub_explicit((p), (v), (mo))
#define blz__fetch_or(p, v, mo)  atomic_fetch_or_explicit((p), (v), (mo))
#define blz__fetch_and(p, v, mo) atomic_fetch_and_explicit((p), (v), (mo))
#define blz__fetch_xor(p, v, mo) atomic_fetch_xor_explicit((p), (v), (mo))
#define blz__exchange(p, v, mo)  atomic_exchange_explicit((p), (v), (mo))
#define blz__cas_weak(p, exp, des, mo_ok, mo_fail) \
 atomic_compare_exchange_weak_explicit((p), (exp), (des), (mo_ok), (mo_fail))
#define blz__cas(p, exp, des, mo_ok, mo_fail) \
 atomic_compare_exchange_strong_explicit((p), (exp), (des), (mo_ok), (mo_fail))

#define RELAXED memory_order_relaxed
#define ACQUIRE memory_order_acquire
#define RELEASE memory_order_release
#define ACQ_REL memory_order_acq_rel
#define SEQ_CST memory_order_seq_cst

/* A CPU hint for spin loops. */
static inline void
blz__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#define BLZ_CACHELINE         64
#define BLZ_ALIGNED_CACHELINE _Alignas(BLZ_CACHELINE)

#define BLZ_LIKELY(x)   __builtin_expect(!!(x), 1)
#define BLZ_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* For per-operation fast paths: inline the step, keep the waiting path out of line. */
#define BLZ_ALWAYS_INLINE inline __attribute__((always_inline))
#define BLZ_NOINLINE      __attribute__((noinline))

#endif
