/*
 * The blocking pool: OS threads for jobs that block (blz_spawn_blocking).
 *
 * Threads are created on demand, one per job that finds no idle thread, up to
 * max_threads; a thread idle for idle_timeout exits. Jobs wait in a FIFO when
 * every thread is busy and the limit is reached. Everything is under `lock`.
 * Pool threads belong to the runtime (blz__rt_current() answers it there) but
 * are not workers, so blz_await on them parks the thread as on any foreign
 * thread and never holds up a worker.
 */
#include "core/atomic.h"
#include "os/unix/sys.h"
#include "rt/runtime.h"

#include <pthread.h>
#include <time.h>

void blz__blocking_run(blz__task *t);
void blz__rt_set_thread(blz_runtime *rt, blz__worker *w);
void blz__thread_cleanup(void);

int
blz__blocking_init(blz__blocking_pool *p, unsigned max_threads, blz_duration idle)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, &ca);
    pthread_cond_init(&p->exited, NULL);
    pthread_condattr_destroy(&ca);
    p->head = p->tail = NULL;
    p->queued = 0;
    p->threads = 0;
    p->idle = 0;
    p->max_threads = max_threads;
    p->idle_timeout = idle;
    p->shutdown = false;
    return 0;
}

static blz_runtime *
pool_runtime(blz__blocking_pool *p)
{
    return (blz_runtime *) (void *) ((char *) p - offsetof(blz_runtime, blocking));
}

static void *
pool_thread(void *arg)
{
    blz__blocking_pool *p = arg;
    blz_runtime *rt = pool_runtime(p);
    blz__sys_set_thread_name("blz-blocking");
    blz_thread_info info = {BLZ_THREAD_BLOCKING, 0};
    blz__rt_thread_hook(rt, rt->cfg.on_thread_start, &info);
    blz__rt_set_thread(rt, NULL);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->shutdown) {
            struct timespec ts = blz__monotonic_deadline(p->idle_timeout);
            p->idle++;
            int rc = pthread_cond_timedwait(&p->cond, &p->lock, &ts);
            p->idle--;
            if (rc != 0 && !p->head) {
                goto out; /* idle too long */
            }
        }
        if (!p->head) {
            goto out; /* shutdown with nothing queued */
        }
        blz__task *t = p->head;
        p->head = t->queue_next;
        if (!p->head) {
            p->tail = NULL;
        }
        p->queued--;
        pthread_mutex_unlock(&p->lock);
        blz__blocking_run(t);
        pthread_mutex_lock(&p->lock);
    }
out:
    /* Give back per-thread caches now: free() may count allocations right after. */
    pthread_mutex_unlock(&p->lock);
    blz__rt_set_thread(NULL, NULL);
    blz__rt_thread_hook(rt, rt->cfg.on_thread_stop, &info);
    blz__thread_cleanup();
    pthread_mutex_lock(&p->lock);
    p->threads--;
    pthread_cond_broadcast(&p->exited);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int
blz__blocking_submit(blz_runtime *rt, blz__task *t)
{
    blz__blocking_pool *p = &rt->blocking;
    t->queue_next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->shutdown) {
        pthread_mutex_unlock(&p->lock);
        return -ESHUTDOWN;
    }
    if (p->tail) {
        p->tail->queue_next = t;
    } else {
        p->head = t;
    }
    p->tail = t;
    p->queued++;
    /* Queued jobs against idle threads: a new thread per job nobody will take. */
    if (p->queued > p->idle && p->threads < p->max_threads) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, pool_thread, p) == 0) {
            p->threads++;
        }
        pthread_attr_destroy(&attr);
        if (p->threads == 0) {
            /* Could not start any thread: the job would never run. */
            p->head = p->tail = NULL;
            p->queued = 0;
            pthread_mutex_unlock(&p->lock);
            return -EAGAIN;
        }
    } else {
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void
blz__blocking_fini(blz__blocking_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->shutdown = true;
    pthread_cond_broadcast(&p->cond);
    while (p->threads > 0) {
        pthread_cond_wait(&p->exited, &p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    pthread_cond_destroy(&p->cond);
    pthread_cond_destroy(&p->exited);
    pthread_mutex_destroy(&p->lock);
}
