//! Rows 15-22: the await tier, on a running scheduler.
//!
//! 10,000 ops per run. Each row builds its runtime once and reuses it for
//! every run, so runtime start-up is never measured. Rows 15-18 use a
//! multi-thread runtime with 4 workers, whatever the core count; rows 19-22
//! use Tokio's default worker count (one per CPU).
//!
//! In rows 15-18 the measured region starts before the first spawn and ends
//! after the last join, so it includes spawning the 6-8 tasks; with 10,000
//! ops that adds well under 1 ns/op. Rows 19-21 measure from inside one
//! driver task, to time the operation on a worker thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::{Builder, Runtime};
use tokio::sync::{Mutex, Notify, RwLock, Semaphore};
use tokio::task::JoinHandle;

use crate::harness::{opaque, share, sink, Meter, PollOnce, RunFn, Sample};

/// Worker threads for rows 15-18, as in the C suite.
const WORKERS: usize = 4;
const MPMC_PRODUCERS: u64 = 4;
const MPMC_CONSUMERS: u64 = 4;
const MPMC_BUFFER: usize = 1000;
const MUTEX_TASKS: u64 = 4;
const RWLOCK_READERS: u64 = 4;
const RWLOCK_WRITERS: u64 = 2;
const SEM_TASKS: u64 = 8;
const SEM_PERMITS: usize = 2;

fn four_workers() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .expect("multi-thread runtime")
}

fn default_workers() -> Runtime {
    Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("multi-thread runtime")
}

/// Awaits every handle and adds up what the tasks returned.
async fn join_sum(handles: Vec<JoinHandle<u64>>) -> u64 {
    let mut sum = 0;
    for h in handles {
        sum += h.await.expect("task finished");
    }
    sum
}

/// Row 15: MPMC: 4 producers and 4 consumers on one bounded(1000) channel.
///
/// Tokio's mpsc has a single receiver, so this row uses async-channel (an
/// MPMC channel for any executor) rather than a Mutex around an mpsc
/// receiver, which would serialize the consumers on the lock instead of the
/// channel. Consumers run until the channel closes, which happens when the
/// last producer drops its sender; every message is counted and the total
/// is checked.
pub fn mpmc(ops: u64) -> RunFn {
    let rt = four_workers();
    Box::new(move || {
        rt.block_on(async {
            let (tx, rx) = async_channel::bounded::<u64>(MPMC_BUFFER);
            let mut prod = Vec::with_capacity(MPMC_PRODUCERS as usize);
            let mut cons = Vec::with_capacity(MPMC_CONSUMERS as usize);
            let meter = Meter::start();
            for _ in 0..MPMC_CONSUMERS {
                let rx = rx.clone();
                cons.push(tokio::spawn(async move {
                    let mut got = 0u64;
                    while let Ok(v) = rx.recv().await {
                        sink(v);
                        got += 1;
                    }
                    got
                }));
            }
            for p in 0..MPMC_PRODUCERS {
                let tx = tx.clone();
                let n = share(ops, MPMC_PRODUCERS, p);
                prod.push(tokio::spawn(async move {
                    for i in 0..n {
                        tx.send(i).await.expect("consumers alive");
                    }
                    n
                }));
            }
            drop((tx, rx));
            let sent = join_sum(prod).await;
            let got = join_sum(cons).await;
            let s = meter.stop();
            assert_eq!((sent, got), (ops, ops), "every message crosses once");
            s
        })
    })
}

/// Row 16: Four tasks share one Mutex; each locks, increments, unlocks.
pub fn contended_mutex(ops: u64) -> RunFn {
    let rt = four_workers();
    Box::new(move || {
        rt.block_on(async {
            let m = Arc::new(Mutex::new(0u64));
            let mut tasks = Vec::with_capacity(MUTEX_TASKS as usize);
            let meter = Meter::start();
            for t in 0..MUTEX_TASKS {
                let m = m.clone();
                let n = share(ops, MUTEX_TASKS, t);
                tasks.push(tokio::spawn(async move {
                    for _ in 0..n {
                        *m.lock().await += 1;
                    }
                    n
                }));
            }
            let done = join_sum(tasks).await;
            let s = meter.stop();
            assert_eq!((done, *m.lock().await), (ops, ops));
            s
        })
    })
}

/// Row 17: Four readers and two writers share one RwLock; the 10,000 ops are
/// split evenly across the six tasks.
pub fn contended_rwlock(ops: u64) -> RunFn {
    let rt = four_workers();
    Box::new(move || {
        rt.block_on(async {
            let l = Arc::new(RwLock::new(0u64));
            let all = RWLOCK_READERS + RWLOCK_WRITERS;
            let mut tasks = Vec::with_capacity(all as usize);
            let meter = Meter::start();
            for t in 0..all {
                let l = l.clone();
                let n = share(ops, all, t);
                let writer = t >= RWLOCK_READERS;
                tasks.push(tokio::spawn(async move {
                    for _ in 0..n {
                        if writer {
                            *l.write().await += 1;
                        } else {
                            sink(*l.read().await);
                        }
                    }
                    n
                }));
            }
            let done = join_sum(tasks).await;
            let s = meter.stop();
            assert_eq!(done, ops);
            s
        })
    })
}

/// Row 18: Eight tasks take turns on a two-permit Semaphore.
pub fn contended_semaphore(ops: u64) -> RunFn {
    let rt = four_workers();
    Box::new(move || {
        rt.block_on(async {
            let sem = Arc::new(Semaphore::new(SEM_PERMITS));
            let inside = Arc::new(AtomicU64::new(0));
            let mut tasks = Vec::with_capacity(SEM_TASKS as usize);
            let meter = Meter::start();
            for t in 0..SEM_TASKS {
                let sem = sem.clone();
                let inside = inside.clone();
                let n = share(ops, SEM_TASKS, t);
                tasks.push(tokio::spawn(async move {
                    for _ in 0..n {
                        let permit = sem.acquire().await.expect("never closed");
                        inside.fetch_add(1, Ordering::Relaxed);
                        drop(permit);
                    }
                    n
                }));
            }
            let done = join_sum(tasks).await;
            let s = meter.stop();
            assert_eq!((done, inside.load(Ordering::Relaxed)), (ops, ops));
            s
        })
    })
}

/// Runs `body` as one task on `rt` and returns its sample. Starting from a
/// task puts the measured loop on a worker thread, where Tokio's local
/// queue and LIFO slot apply.
fn in_task<F>(rt: &Runtime, body: F) -> Sample
where
    F: std::future::Future<Output = Sample> + Send + 'static,
{
    rt.block_on(rt.spawn(body)).expect("driver task")
}

/// Row 19: Spawn a trivial task and await its JoinHandle, one at a time.
pub fn spawn_join(ops: u64) -> RunFn {
    let rt = default_workers();
    Box::new(move || {
        in_task(&rt, async move {
            let meter = Meter::start();
            for i in 0..ops {
                let h = tokio::spawn(async move { opaque(i) });
                sink(h.await.expect("task finished"));
            }
            meter.stop()
        })
    })
}

/// spawn_blocking: a closure to the blocking pool and back, awaited from a
/// task, one at a time (bench/rt.c's row of the same name).
pub fn spawn_blocking(ops: u64) -> RunFn {
    let rt = default_workers();
    Box::new(move || {
        in_task(&rt, async move {
            let meter = Meter::start();
            for i in 0..ops {
                let v = tokio::task::spawn_blocking(move || opaque(i + 1))
                    .await
                    .expect("blocking closure finished");
                assert_eq!(v, i + 1);
            }
            meter.stop()
        })
    })
}

/// Row 20: `yield_now` in a loop in one task. Tokio 1.24 defers the wake until
/// the worker next checks its driver, so each yield also polls the I/O
/// driver once.
pub fn yield_now(ops: u64) -> RunFn {
    let rt = default_workers();
    Box::new(move || {
        in_task(&rt, async move {
            let meter = Meter::start();
            for _ in 0..ops {
                tokio::task::yield_now().await;
            }
            meter.stop()
        })
    })
}

/// Row 21: Create `sleep(1s)`, poll it once (the first poll registers the
/// timer with the driver), drop it (which deregisters it).
///
/// The driver runs under `unconstrained`: Sleep consumes coop budget, and
/// once the task's 128-poll budget ran out its poll would return Pending
/// without registering anything.
pub fn sleep_register_cancel(ops: u64) -> RunFn {
    let rt = default_workers();
    Box::new(move || {
        in_task(
            &rt,
            tokio::task::unconstrained(async move {
                let meter = Meter::start();
                for _ in 0..ops {
                    let s = tokio::time::sleep(Duration::from_secs(1));
                    tokio::pin!(s);
                    let r = PollOnce { inner: s.as_mut() }.await;
                    assert!(r.is_pending(), "a 1 s sleep cannot be due yet");
                }
                meter.stop()
            }),
        )
    })
}

/// Row 22: Spawn `ops` tasks that each wait on a Notify nobody signals. The
/// measured region runs from the first spawn until every task has started,
/// so bytes/op is the heap cost of one idle task (Tokio boxes each task
/// with its future inline) and ns/op the cost to spawn and first-poll it.
/// The tasks are then aborted and joined, outside the region.
pub fn idle_task_memory(ops: u64) -> RunFn {
    let rt = default_workers();
    Box::new(move || {
        rt.block_on(async {
            let never = Arc::new(Notify::new());
            let started = Arc::new(AtomicU64::new(0));
            let all_started = Arc::new(Notify::new());
            let mut tasks = Vec::with_capacity(ops as usize);
            let meter = Meter::start();
            for _ in 0..ops {
                let never = never.clone();
                let started = started.clone();
                let all_started = all_started.clone();
                tasks.push(tokio::spawn(async move {
                    // AcqRel: the last task to start must see every
                    // other increment before it signals the spawner.
                    if started.fetch_add(1, Ordering::AcqRel) + 1 == ops {
                        all_started.notify_one();
                    }
                    never.notified().await;
                }));
            }
            all_started.notified().await;
            let s = meter.stop();
            for t in &tasks {
                t.abort();
            }
            for t in tasks {
                let e = t.await.expect_err("idle tasks never finish");
                assert!(e.is_cancelled());
            }
            s
        })
    })
}
