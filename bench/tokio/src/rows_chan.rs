//! Rows 9-14: channels on their non-waiting paths.
//!
//! Single thread, no runtime, 100,000 messages of `u64` per run. Creating
//! or pre-filling a channel is setup and sits outside the measured region,
//! except in `oneshot`, where creation is the operation.

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::harness::{opaque, sink, Meter, RunFn};

/// Row 9: Fill a fresh `mpsc::channel(ops)` with `try_send`. Tokio allocates
/// its 32-slot blocks as the queue grows, so that cost is measured.
pub fn chan_send(ops: u64) -> RunFn {
    Box::new(move || {
        let (tx, rx) = mpsc::channel::<u64>(ops as usize);
        let meter = Meter::start();
        for i in 0..ops {
            opaque(&tx).try_send(i).expect("room left");
        }
        let s = meter.stop();
        drop((tx, rx));
        s
    })
}

/// Row 10: Drain a channel holding `ops` messages with `try_recv`.
pub fn chan_recv(ops: u64) -> RunFn {
    Box::new(move || {
        let (tx, mut rx) = mpsc::channel::<u64>(ops as usize);
        for i in 0..ops {
            tx.try_send(i).expect("room left");
        }
        let meter = Meter::start();
        for _ in 0..ops {
            sink(opaque(&mut rx).try_recv().expect("message queued"));
        }
        let s = meter.stop();
        drop((tx, rx));
        s
    })
}

/// Row 11: Capacity 1: `try_send` then `try_recv`, `ops` times.
pub fn chan_roundtrip(ops: u64) -> RunFn {
    let (tx, mut rx) = mpsc::channel::<u64>(1);
    Box::new(move || {
        let meter = Meter::start();
        for i in 0..ops {
            opaque(&tx).try_send(i).expect("slot free");
            sink(opaque(&mut rx).try_recv().expect("message queued"));
        }
        meter.stop()
    })
}

/// Row 12: Per op: create a oneshot, send, `try_recv`.
pub fn oneshot(ops: u64) -> RunFn {
    Box::new(move || {
        let meter = Meter::start();
        for i in 0..ops {
            let (tx, mut rx) = oneshot::channel::<u64>();
            opaque(tx).send(i).expect("receiver alive");
            sink(opaque(&mut rx).try_recv().expect("value sent"));
        }
        meter.stop()
    })
}

/// Receivers in the broadcast row.
const BROADCAST_RECEIVERS: usize = 4;

/// Row 13: One sender, four receivers, capacity >= `ops` (Tokio rounds it up to
/// a power of two), so nothing lags. The measured region sends every
/// message, then lets each receiver drain all of them with `try_recv`;
/// ops = messages, so one op is one send plus four receives.
pub fn broadcast(ops: u64) -> RunFn {
    Box::new(move || {
        let (tx, rx0) = broadcast::channel::<u64>(ops as usize);
        let mut rxs = vec![rx0];
        while rxs.len() < BROADCAST_RECEIVERS {
            rxs.push(tx.subscribe());
        }
        let meter = Meter::start();
        for i in 0..ops {
            opaque(&tx).send(i).expect("receivers alive");
        }
        for rx in rxs.iter_mut() {
            for _ in 0..ops {
                sink(opaque(&mut *rx).try_recv().expect("message queued"));
            }
        }
        let s = meter.stop();
        drop((tx, rxs));
        s
    })
}

/// Row 14: `watch`: send a new value, then borrow it from the receiver.
pub fn watch(ops: u64) -> RunFn {
    let (tx, rx) = watch::channel(0u64);
    Box::new(move || {
        let meter = Meter::start();
        for i in 0..ops {
            opaque(&tx).send(i).expect("receiver alive");
            sink(*opaque(&rx).borrow());
        }
        meter.stop()
    })
}
