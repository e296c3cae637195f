//! Measurement plumbing shared by every row.
//!
//! A row is built once (its runtime, if any, lives as long as the row) and
//! then run `warmups + runs` times. Each run returns one `Sample`: the wall
//! time of its measured region and the allocations made inside that region.
//! The reported figures are the median time over the timed runs divided by
//! the row's op count, and the allocations of the last timed run divided by
//! the same count.
//!
//! The measured region is what a `Meter` brackets: counters are reset just
//! before the clock starts and read just after it stops. Per-run setup that
//! is not part of the operation (creating the channel that `chan_send`
//! fills, filling the one `chan_recv` drains) sits outside it.

use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::ptr;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Instant;

use crate::count_alloc;

/// One run of one row.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub ns: u64,
    pub allocs: u64,
    pub bytes: u64,
}

/// Brackets a measured region: allocation counters first, then the clock.
pub struct Meter {
    start: Instant,
}

impl Meter {
    pub fn start() -> Meter {
        count_alloc::reset();
        Meter {
            start: Instant::now(),
        }
    }

    pub fn stop(self) -> Sample {
        let elapsed = self.start.elapsed();
        let (allocs, bytes) = count_alloc::read();
        Sample {
            ns: elapsed.as_nanos() as u64,
            allocs,
            bytes,
        }
    }
}

/// A row ready to run: each call performs one complete run.
pub type RunFn = Box<dyn FnMut() -> Sample>;

pub struct Row {
    pub name: &'static str,
    pub ops: u64,
    /// Builds the row's long-lived state (runtimes) for `ops` operations.
    pub make: fn(u64) -> RunFn,
}

pub struct Report {
    pub name: &'static str,
    pub ops: u64,
    pub runs: usize,
    pub ns_per_op: f64,
    pub bytes_per_op: f64,
    pub allocs_per_op: f64,
}

/// With `each`, every timed run's ns/op also goes to stderr.
pub fn measure(row: &Row, warmups: usize, runs: usize, each: bool) -> Report {
    let mut run = (row.make)(row.ops);
    for _ in 0..warmups {
        run();
    }
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for i in 0..runs {
        let s = run();
        if each {
            eprintln!(
                "{} run {}: {:.2} ns/op",
                row.name,
                i + 1,
                s.ns as f64 / row.ops as f64
            );
        }
        times.push(s.ns);
        last = Some(s);
    }
    drop(run);
    let last = last.expect("at least one timed run");
    let ops = row.ops as f64;
    Report {
        name: row.name,
        ops: row.ops,
        runs,
        ns_per_op: median(&mut times) / ops,
        bytes_per_op: last.bytes as f64 / ops,
        allocs_per_op: last.allocs as f64 / ops,
    }
}

/// Median; for an even count, the mean of the two middle values.
fn median(v: &mut [u64]) -> f64 {
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
    }
}

/// Hands `value` back through a volatile stack slot. The optimizer can
/// neither see where the result came from nor skip computing the input,
/// which keeps loop bodies from being hoisted or deleted. It is a stand-in
/// for `std::hint::black_box`, which Rust 1.63 lacks. Use it on small
/// values (references, integers): the copy is part of the measured cost.
#[inline(always)]
pub fn opaque<T>(value: T) -> T {
    let mut slot = MaybeUninit::<T>::uninit();
    // SAFETY: the slot is written once and read once; the read moves the
    // value out, so ownership passes through exactly as with a plain move.
    unsafe {
        ptr::write_volatile(slot.as_mut_ptr(), value);
        ptr::read_volatile(slot.as_ptr())
    }
}

/// Consumes `value` so its computation cannot be optimized away.
#[inline(always)]
pub fn sink<T>(value: T) {
    drop(opaque(value));
}

fn noop_clone(_: *const ()) -> RawWaker {
    noop_raw()
}

fn noop(_: *const ()) {}

static NOOP_VTABLE: RawWakerVTable = RawWakerVTable::new(noop_clone, noop, noop, noop);

fn noop_raw() -> RawWaker {
    RawWaker::new(ptr::null(), &NOOP_VTABLE)
}

/// A waker that does nothing, for polling a future by hand outside any
/// runtime (`Waker::noop` arrived only in Rust 1.85).
pub fn noop_waker() -> Waker {
    // SAFETY: every vtable entry ignores the data pointer, so a null one is
    // valid, and cloning yields the same inert waker.
    unsafe { Waker::from_raw(noop_raw()) }
}

/// Polls `fut` once with `waker`.
#[inline(always)]
pub fn poll_once<F: Future>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    let mut cx = Context::from_waker(waker);
    fut.poll(&mut cx)
}

/// A future that polls its inner future exactly once, with the caller's
/// real context, and resolves to the result of that poll.
pub struct PollOnce<'a, F> {
    pub inner: Pin<&'a mut F>,
}

impl<F: Future> Future for PollOnce<'_, F> {
    type Output = Poll<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(self.inner.as_mut().poll(cx))
    }
}

/// The share of `total` operations that worker `i` of `n` performs; the
/// first `total % n` workers take one extra, so the shares add up exactly.
pub fn share(total: u64, n: u64, i: u64) -> u64 {
    total / n + u64::from(i < total % n)
}
