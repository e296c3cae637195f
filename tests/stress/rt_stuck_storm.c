/*
 * A storm of stuck workers: rounds of tasks on two workers and a spare, a
 * fifth of which keep their worker 25–41 ms (a spin after waking a child
 * into the LIFO slot) while the rest yield, spawn and join children, and
 * run short. Rescues and spare activations race with the ordinary
 * scheduling. Every task and child must run exactly once, and every round
 * must drain.
 * blz-test: timeout=600
 */
#include "../harness.h"
#include "../rt_util.h"

#include <stdatomic.h>
#include <time.h>

#define ROUNDS 10
#define TASKS  200

typedef struct storm {
    atomic_uint ran[TASKS];
    atomic_uint children_spawned;
    atomic_uint children_ran;
} storm;

typedef struct storm_arg {
    storm *s;
    unsigned i;
} storm_arg;

static void *
child(void *arg)
{
    atomic_fetch_add(&((storm *) arg)->children_ran, 1);
    return NULL;
}

static void
spawn_child(storm *s, blz_join **j)
{
    atomic_fetch_add(&s->children_spawned, 1);
    CHECK_OK(blz_spawn(child, s, j));
}

static void *
storm_task(void *arg)
{
    storm_arg *a = arg;
    storm *s = a->s;
    blz_join *j;
    switch (a->i % 10) {
    case 0:
    case 8: { /* stuck: the child waits in this worker's LIFO slot */
        spawn_child(s, &j);
        int64_t until = wall_us() + 25000 + (int64_t) (a->i % 17) * 1000;
        while (wall_us() < until) {
        }
        CHECK_OK(blz_join_wait(j, NULL));
        break;
    }
    case 1:
    case 2:
    case 3:
        for (int k = 0; k < 3; k++) {
            blz_yield();
        }
        break;
    case 4:
    case 5:
    case 6:
        spawn_child(s, &j);
        CHECK_OK(blz_join_wait(j, NULL));
        break;
    default:
        break;
    }
    atomic_fetch_add(&s->ran[a->i], 1);
    return NULL;
}

BLZ_TEST(every_task_runs_once_while_workers_get_stuck)
{
    blz_runtime_config cfg;
    blz_runtime_config_default(&cfg);
    cfg.workers = 2;
    cfg.spare_workers = 1;
    blz_runtime *rt;
    CHECK_OK(blz_runtime_new(&cfg, &rt));
    static storm s;
    static storm_arg args[TASKS];
    static blz_join *js[TASKS];
    for (int round = 0; round < ROUNDS; round++) {
        memset(&s, 0, sizeof s);
        for (unsigned i = 0; i < TASKS; i++) {
            args[i] = (storm_arg){&s, i};
            CHECK_OK(blz_runtime_spawn(rt, storm_task, &args[i], &js[i]));
        }
        CHECK_OK(blz_join_all(js, TASKS, NULL));
        for (unsigned i = 0; i < TASKS; i++) {
            CHECK_EQ(atomic_load(&s.ran[i]), 1);
        }
        CHECK_EQ(atomic_load(&s.children_ran), atomic_load(&s.children_spawned));
    }
    blz_metrics m;
    blz_runtime_metrics(rt, &m);
    printf("rescued %llu, spare activations %llu, steals %llu\n", (unsigned long long) m.rescued,
           (unsigned long long) m.worker[2].spare_activations, (unsigned long long) m.steals);
    blz_runtime_free(rt);
}
