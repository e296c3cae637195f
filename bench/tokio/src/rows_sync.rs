//! Rows 1-8: synchronization primitives on their non-waiting paths.
//!
//! Single thread, 1,000,000 ops per run. Rows 1-7 need no runtime: the try
//! tier and a hand poll with a no-op waker never touch one. Row 8 runs on a
//! current-thread runtime because the brief asks for `.await`.

use tokio::runtime::Builder;
use tokio::sync::{Barrier, Mutex, Notify, OnceCell, RwLock, Semaphore};

use crate::harness::{noop_waker, opaque, poll_once, sink, Meter, RunFn};

/// Row 1: `Mutex::try_lock` on a free mutex, then drop the guard.
pub fn mutex(ops: u64) -> RunFn {
    let m = Mutex::new(0u64);
    Box::new(move || {
        let meter = Meter::start();
        for _ in 0..ops {
            let g = opaque(&m).try_lock().expect("uncontended");
            sink(*g);
        }
        meter.stop()
    })
}

/// Row 2: `RwLock::try_read`, then drop the guard.
pub fn rwlock_read(ops: u64) -> RunFn {
    let l = RwLock::new(0u64);
    Box::new(move || {
        let meter = Meter::start();
        for _ in 0..ops {
            let g = opaque(&l).try_read().expect("uncontended");
            sink(*g);
        }
        meter.stop()
    })
}

/// Row 3: `RwLock::try_write`, then drop the guard.
pub fn rwlock_write(ops: u64) -> RunFn {
    let l = RwLock::new(0u64);
    Box::new(move || {
        let meter = Meter::start();
        for _ in 0..ops {
            let mut g = opaque(&l).try_write().expect("uncontended");
            *g += 1;
        }
        meter.stop()
    })
}

/// Row 4: `Semaphore::try_acquire` of one permit out of ten, then drop it.
pub fn semaphore(ops: u64) -> RunFn {
    let s = Semaphore::new(10);
    Box::new(move || {
        let meter = Meter::start();
        for _ in 0..ops {
            let p = opaque(&s).try_acquire().expect("permits free");
            drop(opaque(p));
        }
        meter.stop()
    })
}

/// Row 5: `OnceCell::get` on a cell that is already set.
pub fn oncecell_get(ops: u64) -> RunFn {
    let c = OnceCell::new();
    c.set(42u64).expect("fresh cell");
    Box::new(move || {
        let meter = Meter::start();
        for _ in 0..ops {
            sink(*opaque(&c).get().expect("set"));
        }
        meter.stop()
    })
}

/// Row 6: A fresh `OnceCell` per op, set once.
pub fn oncecell_set(ops: u64) -> RunFn {
    Box::new(move || {
        let meter = Meter::start();
        for i in 0..ops {
            let c = OnceCell::new();
            opaque(&c).set(i).expect("fresh cell");
            sink(*c.get().expect("set"));
        }
        meter.stop()
    })
}

/// Row 7: A fresh `Notify` per op (as the seed suite does): `notify_one` with
/// no waiter stores a permit, and one poll of `notified()` consumes it.
pub fn notify(ops: u64) -> RunFn {
    let waker = noop_waker();
    Box::new(move || {
        let meter = Meter::start();
        for _ in 0..ops {
            let n = Notify::new();
            let n = opaque(&n);
            n.notify_one();
            let fut = n.notified();
            tokio::pin!(fut);
            assert!(poll_once(fut, &waker).is_ready(), "permit consumed");
        }
        meter.stop()
    })
}

/// Row 8: `Barrier::new(1).wait().await` per op: a one-task barrier whose only
/// waiter is the leader, so every wait completes a generation at once.
pub fn barrier(ops: u64) -> RunFn {
    let rt = Builder::new_current_thread()
        .build()
        .expect("current-thread runtime");
    Box::new(move || {
        rt.block_on(async {
            let meter = Meter::start();
            for _ in 0..ops {
                let b = Barrier::new(1);
                let r = opaque(&b).wait().await;
                sink(r.is_leader());
            }
            meter.stop()
        })
    })
}
