/*
 * Readiness reaches its waiter while the worker that registered the
 * descriptor keeps running tasks that make no syscall.
 *
 * On io_uring with cooperative task running the kernel posts a poll's
 * readiness only when the thread that armed the poll next enters the kernel
 * (io/backend.h, flush_deferred). Here the arming worker spins on blz_yield
 * (no syscalls of its own), the waiter sits on another task, and the data
 * comes from a plain thread: the read must still complete. On epoll the same
 * test checks the ordinary path.
 *
 * What delivers the readiness today is usually the yield itself: a task
 * pushed while the other worker idles wakes that worker, and the wake is a
 * syscall on the spinning thread. The maintenance tick's flush_deferred is
 * the guarantee behind it for stretches without such wakes; this test does
 * not isolate that case (it fails only if delivery breaks altogether).
 */
#include "net_common.h"

#include <pthread.h>
#include <stdatomic.h>

enum { ROUNDS = 50, SPIN_LIMIT = 20 * 1000 * 1000 };

static blz_unix_stream *ends[2];
static _Atomic int got;

static void *
reader(void *arg)
{
    (void) arg;
    char c = 0;
    ssize_t n = blz_unix_read(ends[0], &c, 1);
    atomic_store(&got, n == 1 && c == 'x' ? 1 : -1);
    return NULL;
}

static void *
foreign_writer(void *arg)
{
    (void) arg;
    ssize_t n = blz_unix_write(ends[1], "x", 1); /* room: no wait, one send(2) */
    return (void *) (intptr_t) n;
}

static void *
spinning_registrar(void *arg)
{
    (void) arg;
    for (int round = 0; round < ROUNDS; round++) {
        atomic_store(&got, 0);
        CHECK_OK(blz_unix_pair(&ends[0], &ends[1])); /* armed from this worker */
        blz_join *j = NULL;
        CHECK_OK(blz_spawn(reader, NULL, &j));
        /* Let the reader reach its wait before the data exists. */
        for (int i = 0; i < 1000; i++) {
            blz_yield();
        }
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, foreign_writer, NULL), 0);
        void *wrote = NULL;
        CHECK_EQ(pthread_join(t, &wrote), 0);
        CHECK_EQ((intptr_t) wrote, 1);
        long spins = 0;
        while (atomic_load(&got) == 0 && spins < SPIN_LIMIT) {
            blz_yield(); /* no syscall on this worker */
            spins++;
        }
        CHECK_EQ(atomic_load(&got), 1);
        CHECK_OK(blz_join_wait(j, NULL));
        blz_unix_close(ends[0]);
        blz_unix_close(ends[1]);
    }
    return NULL;
}

BLZ_TEST(readiness_reaches_waiter_while_registrar_spins)
{
    net_run(2, spinning_registrar, NULL);
}
