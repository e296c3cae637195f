//! blitz_tokio_bench: the Tokio half of blitzio's benchmark comparison.
//!
//! Usage: blitz_tokio_bench [--json] [--list] [--each] [--warmups N] [--runs N] [ROW...]
//!
//! With no ROW arguments every row runs, in table order; otherwise only the
//! rows named (exact names, see --list). --json prints one object per line:
//!   {"row":"mutex","ns_per_op":..,"bytes_per_op":..,"allocs_per_op":..,"ops":..,"runs":10}
//! Without it, an aligned table. Defaults: 5 warm-up runs, then the median
//! of 10 timed runs; --each also prints every timed run's ns/op on stderr.
//! See harness.rs for what each figure means.

mod count_alloc;
mod harness;
mod rows_chan;
mod rows_rt;
mod rows_sync;

use std::io::{self, Write};
use std::process::exit;
use std::time::Instant;

use harness::{measure, Report, Row};

#[global_allocator]
static ALLOC: count_alloc::CountingAlloc = count_alloc::CountingAlloc;

/// Seed parameters, shared with the C suite.
const SYNC_OPS: u64 = 1_000_000;
const CHAN_OPS: u64 = 100_000;
const ASYNC_OPS: u64 = 10_000;
const WARMUPS: usize = 5;
const RUNS: usize = 10;

#[rustfmt::skip]
const ROWS: &[Row] = &[
    Row { name: "mutex", ops: SYNC_OPS, make: rows_sync::mutex },
    Row { name: "rwlock_read", ops: SYNC_OPS, make: rows_sync::rwlock_read },
    Row { name: "rwlock_write", ops: SYNC_OPS, make: rows_sync::rwlock_write },
    Row { name: "semaphore", ops: SYNC_OPS, make: rows_sync::semaphore },
    Row { name: "oncecell_get", ops: SYNC_OPS, make: rows_sync::oncecell_get },
    Row { name: "oncecell_set", ops: SYNC_OPS, make: rows_sync::oncecell_set },
    Row { name: "notify", ops: SYNC_OPS, make: rows_sync::notify },
    Row { name: "barrier", ops: SYNC_OPS, make: rows_sync::barrier },
    Row { name: "chan_send", ops: CHAN_OPS, make: rows_chan::chan_send },
    Row { name: "chan_recv", ops: CHAN_OPS, make: rows_chan::chan_recv },
    Row { name: "chan_roundtrip", ops: CHAN_OPS, make: rows_chan::chan_roundtrip },
    Row { name: "oneshot", ops: CHAN_OPS, make: rows_chan::oneshot },
    Row { name: "broadcast", ops: CHAN_OPS, make: rows_chan::broadcast },
    Row { name: "watch", ops: CHAN_OPS, make: rows_chan::watch },
    Row { name: "mpmc", ops: ASYNC_OPS, make: rows_rt::mpmc },
    Row { name: "contended_mutex", ops: ASYNC_OPS, make: rows_rt::contended_mutex },
    Row { name: "contended_rwlock", ops: ASYNC_OPS, make: rows_rt::contended_rwlock },
    Row { name: "contended_semaphore", ops: ASYNC_OPS, make: rows_rt::contended_semaphore },
    Row { name: "spawn_join", ops: ASYNC_OPS, make: rows_rt::spawn_join },
    Row { name: "yield", ops: ASYNC_OPS, make: rows_rt::yield_now },
    Row { name: "spawn_blocking", ops: ASYNC_OPS, make: rows_rt::spawn_blocking },
    Row { name: "sleep_register_cancel", ops: ASYNC_OPS, make: rows_rt::sleep_register_cancel },
    Row { name: "idle_task_memory", ops: ASYNC_OPS, make: rows_rt::idle_task_memory },
];

struct Options {
    json: bool,
    each: bool,
    warmups: usize,
    runs: usize,
    only: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: blitz_tokio_bench [--json] [--list] [--each] [--warmups N] [--runs N] [ROW...]"
    );
    exit(2);
}

fn count_arg(args: &mut impl Iterator<Item = String>, min: usize) -> usize {
    match args.next().and_then(|s| s.parse::<usize>().ok()) {
        Some(n) if n >= min => n,
        _ => usage(),
    }
}

fn parse_args() -> Options {
    let mut o = Options {
        json: false,
        each: false,
        warmups: WARMUPS,
        runs: RUNS,
        only: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => o.json = true,
            "--each" => o.each = true,
            "--warmups" => o.warmups = count_arg(&mut args, 0),
            "--runs" => o.runs = count_arg(&mut args, 1),
            "--list" => {
                for r in ROWS {
                    println!("{}", r.name);
                }
                exit(0);
            }
            "-h" | "--help" => usage(),
            _ if a.starts_with('-') => usage(),
            _ => {
                if !ROWS.iter().any(|r| r.name == a) {
                    eprintln!("blitz_tokio_bench: unknown row '{}' (try --list)", a);
                    exit(2);
                }
                o.only.push(a);
            }
        }
    }
    o
}

fn print_json(out: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(
        out,
        concat!(
            "{{\"row\":\"{}\",\"ns_per_op\":{:.3},\"bytes_per_op\":{:.3},",
            "\"allocs_per_op\":{:.5},\"ops\":{},\"runs\":{}}}"
        ),
        r.name, r.ns_per_op, r.bytes_per_op, r.allocs_per_op, r.ops, r.runs
    )
}

const NAME_W: usize = 22;

fn print_header(out: &mut impl Write, o: &Options) -> io::Result<()> {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    writeln!(
        out,
        "Tokio (Debian librust-tokio-dev), {} CPUs; median of {} runs after {} warm-ups",
        cpus, o.runs, o.warmups
    )?;
    writeln!(
        out,
        "{:<w$} {:>9} {:>12} {:>10} {:>10}",
        "row",
        "ops",
        "ns/op",
        "B/op",
        "allocs/op",
        w = NAME_W
    )
}

fn print_row(out: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(
        out,
        "{:<w$} {:>9} {:>12.2} {:>10.2} {:>10.4}",
        r.name,
        r.ops,
        r.ns_per_op,
        r.bytes_per_op,
        r.allocs_per_op,
        w = NAME_W
    )
}

fn main() {
    let o = parse_args();
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let started = Instant::now();
    if !o.json {
        print_header(&mut out, &o).expect("stdout");
    }
    for row in ROWS {
        if !o.only.is_empty() && !o.only.iter().any(|n| n == row.name) {
            continue;
        }
        let r = measure(row, o.warmups, o.runs, o.each);
        if o.json {
            print_json(&mut out, &r).expect("stdout");
        } else {
            print_row(&mut out, &r).expect("stdout");
        }
        out.flush().expect("stdout");
    }
    if !o.json {
        eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
    }
}
